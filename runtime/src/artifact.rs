//! The artifact contract: what the exporter writes and the runtime loads, in one place.
//!
//! An artifact is a folder with two files: [`MODEL_FILE`], a standard ONNX `ModelProto`, and
//! [`WEIGHTS_FILE`], the external data of its larger initializers, each tensor at an offset
//! that is a multiple of [`ALIGNMENT`] bytes (so that a page-aligned mapping views every tensor
//! in place). `metadata_props` carry the `META_*` keys below; [`META_WEIGHTS_CHECKSUM`] holds
//! [`weights_checksum`] of the whole weights file, so a loader can tell a mismatched or
//! corrupted pair. The writer is `ctr_edge_exporter::artifact::write_artifact`; the loader is
//! [`crate::Model::open`] (which does not check the checksum yet).
//!
//! Plain `core` + `alloc` code: the `no_std` runtime and the exporter share it.

use alloc::format;
use alloc::string::String;

/// File name of the ONNX graph inside an artifact folder.
pub const MODEL_FILE: &str = "model.onnx";
/// File name of the external weights inside an artifact folder (the `location` of every
/// external tensor).
pub const WEIGHTS_FILE: &str = "model.weights";
/// Alignment, in bytes, of every tensor's offset in [`WEIGHTS_FILE`] (a cache line; enough for
/// any SIMD load the runtime does).
pub const ALIGNMENT: u64 = 64;

/// `metadata_props` key: the version of the exporter that wrote the artifact.
pub const META_VERSION: &str = "ctr_edge.version";
/// `metadata_props` key: the checksum of [`WEIGHTS_FILE`], as [`weights_checksum`] writes it.
pub const META_WEIGHTS_CHECKSUM: &str = "ctr_edge.weights_checksum";
/// `metadata_props` key: the method (`afm`, `svd` or `none`).
pub const META_METHOD: &str = "ctr_edge.method";
/// `metadata_props` key: the ranks, a JSON object from site name to rank (factorized sites).
pub const META_RANKS: &str = "ctr_edge.ranks";
/// `metadata_props` key: the weight precision (`f32` or `f16`).
pub const META_WEIGHTS: &str = "ctr_edge.weights";

/// The checksum of a weights file as recorded under [`META_WEIGHTS_CHECKSUM`]: `fnv1a64:` and
/// the 64-bit FNV-1a hash of `bytes` in 16 lowercase hex digits. (FNV-1a: start from
/// `0xcbf29ce484222325`; for each byte, xor it in, then multiply by `0x100000001b3` modulo
/// 2^64.)
pub fn weights_checksum(bytes: &[u8]) -> String {
    let mut h = Fnv1a64::new();
    h.update(bytes);
    h.finish_string()
}

/// Streaming 64-bit FNV-1a, for writers that hash a file as they write it:
/// `new`, `update` with each piece in order, then `finish_string` gives what
/// [`weights_checksum`] gives for the whole.
#[derive(Debug, Clone)]
pub struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The hash of no bytes.
    pub fn new() -> Self {
        Fnv1a64(Self::OFFSET_BASIS)
    }

    /// Hashes `bytes` after what came before.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
        self.0 = h;
    }

    /// The 64-bit hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }

    /// The hash so far in the checksum's text form (`fnv1a64:` + 16 hex digits).
    pub fn finish_string(&self) -> String {
        format!("fnv1a64:{:016x}", self.0)
    }
}

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks `weights` against the checksum recorded under [`META_WEIGHTS_CHECKSUM`] in
/// `metadata` (the model's `metadata_props`), as `verify` says; a model without the key is not
/// checked. A mismatch is [`crate::Error::WeightsMismatch`].
pub fn verify_weights(
    metadata: &[(&str, &str)],
    weights: &[u8],
    verify: crate::options::Verify,
) -> crate::error::Result<()> {
    // TODO(issue 13): identity and full checks.
    let _ = (metadata, weights, verify);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_published_fnv1a64_vectors() {
        // From the FNV reference test suite (Landon Curt Noll's `test_fnv.c`, FNV-1a 64-bit,
        // also in draft-eastlake-fnv): "" (the offset basis), "a" and "foobar".
        assert_eq!(weights_checksum(b""), "fnv1a64:cbf29ce484222325");
        assert_eq!(weights_checksum(b"a"), "fnv1a64:af63dc4c8601ec8c");
        assert_eq!(weights_checksum(b"foobar"), "fnv1a64:85944171f73967e8");
    }

    #[test]
    fn streaming_equals_one_shot() {
        let bytes: alloc::vec::Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut h = Fnv1a64::default();
        for piece in bytes.chunks(97) {
            h.update(piece);
        }
        assert_eq!(h.finish_string(), weights_checksum(&bytes));
        assert_eq!(format!("fnv1a64:{:016x}", h.finish()), h.finish_string());
    }
}

//! The artifact contract: what the exporter writes and the runtime loads, in one place.
//!
//! An artifact is a folder with two files: [`MODEL_FILE`], a standard ONNX `ModelProto`, and
//! [`WEIGHTS_FILE`], the external data of its larger initializers, each tensor at an offset
//! that is a multiple of [`ALIGNMENT`] bytes (so that a page-aligned mapping views every tensor
//! in place). `metadata_props` carry the `META_*` keys below; [`META_WEIGHTS_CHECKSUM`] holds
//! [`weights_checksum`] of the whole weights file, so a loader can tell a mismatched or
//! corrupted pair, and [`META_WEIGHTS_BYTES`] and [`META_WEIGHTS_IDENTITY`] give a check
//! cheap enough for every open ([`verify_weights`]). The writer is
//! `ctr_edge_exporter::artifact::write_artifact`; the loaders are [`crate::Model`]'s openers,
//! which verify by default ([`crate::OpenOptions::verify`]).
//!
//! An artifact may also sit inside a larger file, as the two files of an app's assets do
//! inside its APK: then each file is a byte range of that one file, and the range openers
//! ([`crate::Model::open_ranges_with`], `Model::open_file_ranges`, the C ABI's
//! `ctr_edge_model_open_fd`) hold the ranges to [`check_file_ranges`] and
//! [`check_weights_alignment`].
//!
//! Plain `core` + `alloc` code: the `no_std` runtime and the exporter share it.

use alloc::format;
use alloc::string::{String, ToString};
use core::ops::Range;

use crate::error::{Error, Result};
use crate::options::Verify;

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
/// `metadata_props` key: the size in bytes of [`WEIGHTS_FILE`], in decimal.
pub const META_WEIGHTS_BYTES: &str = "ctr_edge.weights_bytes";
/// `metadata_props` key: [`weights_identity`] of [`WEIGHTS_FILE`], the cheap check openers
/// make by default.
pub const META_WEIGHTS_IDENTITY: &str = "ctr_edge.weights_identity";
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

/// Size of each block [`weights_identity`] samples.
const IDENTITY_BLOCK: usize = 4096;
/// Number of blocks [`weights_identity`] samples (files up to this many blocks are hashed
/// whole).
const IDENTITY_BLOCKS: usize = 64;

/// A cheap fingerprint of a weights file, recorded under [`META_WEIGHTS_IDENTITY`]:
/// `fnv1a64-sampled:` and 16 hex digits, the FNV-1a hash of the file's length (8 bytes,
/// little-endian) followed by [`IDENTITY_BLOCKS`] blocks of [`IDENTITY_BLOCK`] bytes at evenly
/// spaced offsets, the first at 0 and the last ending at the end of the file (the whole file
/// when it is at most 256 KiB). It reads 256 KiB whatever the size: it tells apart files of
/// different models or a truncated or regenerated file, not a flipped bit in an unsampled
/// block (the full [`weights_checksum`] does).
pub fn weights_identity(bytes: &[u8]) -> String {
    let mut h = Fnv1a64::new();
    h.update(&(bytes.len() as u64).to_le_bytes());
    if bytes.len() <= IDENTITY_BLOCK * IDENTITY_BLOCKS {
        h.update(bytes);
    } else {
        let last_start = bytes.len() - IDENTITY_BLOCK;
        for i in 0..IDENTITY_BLOCKS {
            // Evenly spaced starts from 0 to `last_start`, in u128 so the product cannot
            // overflow on any file size.
            let start = (last_start as u128 * i as u128 / (IDENTITY_BLOCKS as u128 - 1)) as usize;
            h.update(&bytes[start..start + IDENTITY_BLOCK]);
        }
    }
    format!("fnv1a64-sampled:{:016x}", h.finish())
}

/// Checks `weights` against what the exporter recorded in `metadata` (the model's
/// `metadata_props`), as `verify` says:
/// - [`Verify::Identity`] checks the size ([`META_WEIGHTS_BYTES`]) and [`weights_identity`]
///   ([`META_WEIGHTS_IDENTITY`]); an artifact written before those keys existed, which has
///   only [`META_WEIGHTS_CHECKSUM`], gets the full check instead;
/// - [`Verify::Full`] checks the size when recorded, then [`weights_checksum`] of every byte;
/// - [`Verify::None`] checks nothing.
///
/// A model with none of the keys (an ONNX file not written by ctr-edge) is not checked.
/// A mismatch is [`Error::WeightsMismatch`]; a recorded value that does not parse is
/// [`Error::Weights`].
pub fn verify_weights(metadata: &[(&str, &str)], weights: &[u8], verify: Verify) -> Result<()> {
    let get = |key: &str| metadata.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if verify == Verify::None {
        return Ok(());
    }
    if let Some(recorded) = get(META_WEIGHTS_BYTES) {
        let expected: u64 = recorded.trim().parse().map_err(|_| Error::Weights {
            reason: format!("metadata {META_WEIGHTS_BYTES} = {recorded:?} is not a byte count"),
        })?;
        if expected != weights.len() as u64 {
            return Err(Error::WeightsMismatch {
                check: "size",
                expected: format!("{expected} bytes"),
                found: format!("{} bytes", weights.len()),
            });
        }
    }
    let identity = get(META_WEIGHTS_IDENTITY);
    let full = match verify {
        Verify::Full => true,
        _ => identity.is_none(),
    };
    if full {
        if let Some(expected) = get(META_WEIGHTS_CHECKSUM) {
            let found = weights_checksum(weights);
            if found != expected.trim() {
                return Err(Error::WeightsMismatch {
                    check: "checksum",
                    expected: expected.to_string(),
                    found,
                });
            }
        }
    } else if let Some(expected) = identity {
        let found = weights_identity(weights);
        if found != expected.trim() {
            return Err(Error::WeightsMismatch {
                check: "identity",
                expected: expected.to_string(),
                found,
            });
        }
    }
    Ok(())
}

/// The rules for an artifact given as two byte ranges of one file of `file_len` bytes (`file`
/// names it in messages), checked before anything is mapped:
/// - the ONNX range is not empty; the weights range is empty only for a model without external
///   data (the opener refuses an empty one when the model has external tensors);
/// - each range ends at or before the end of the file (and not before it starts);
/// - the two ranges do not overlap.
///
/// A broken rule is [`Error::FileRange`] naming the range, its offset and its length.
pub fn check_file_ranges(
    file: &str,
    file_len: u64,
    onnx: &Range<u64>,
    weights: &Range<u64>,
) -> Result<()> {
    let error = |range: &'static str, r: &Range<u64>, reason: String| Error::FileRange {
        file: file.to_string(),
        range,
        offset: r.start,
        len: r.end.saturating_sub(r.start),
        reason,
    };
    for (name, r) in [("onnx", onnx), ("weights", weights)] {
        if r.end < r.start {
            return Err(error(
                name,
                r,
                format!("ends at {}, before it starts", r.end),
            ));
        }
        if r.end > file_len {
            return Err(error(
                name,
                r,
                format!(
                    "ends at {}, past the end of the file ({file_len} bytes)",
                    r.end
                ),
            ));
        }
    }
    if onnx.is_empty() {
        return Err(error("onnx", onnx, "is empty".to_string()));
    }
    if !weights.is_empty() && onnx.start < weights.end && weights.start < onnx.end {
        return Err(error(
            "weights",
            weights,
            format!(
                "overlaps the onnx range at offset {} ({} bytes)",
                onnx.start,
                onnx.end - onnx.start
            ),
        ));
    }
    Ok(())
}

/// The alignment rule of a weights range once mapped (`bytes`, the range's bytes in memory,
/// `weights` the range): the bytes start at an address that is a multiple of [`ALIGNMENT`], so
/// that every tensor is viewed in place as in a mapping of the whole file. A mapping starts on
/// a page boundary, so this is the range's offset in the file being a multiple of 64 bytes;
/// otherwise [`Error::FileRange`] naming the offset (pack the asset at an aligned offset). An
/// empty range is always aligned.
pub fn check_weights_alignment(file: &str, weights: &Range<u64>, bytes: &[u8]) -> Result<()> {
    let misalignment = bytes.as_ptr() as usize % ALIGNMENT as usize;
    if bytes.is_empty() || misalignment == 0 {
        return Ok(());
    }
    Err(Error::FileRange {
        file: file.to_string(),
        range: "weights",
        offset: weights.start,
        len: weights.end.saturating_sub(weights.start),
        reason: format!(
            "offset {} is not a multiple of {ALIGNMENT} bytes ({misalignment} past one), so the \
             tensors would be misaligned; store the weights at a {ALIGNMENT}-byte-aligned offset \
             of the file",
            weights.start
        ),
    })
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
    fn identity_reads_whole_small_files_and_samples_large_ones() {
        // Independent reference: the definition spelled out with the streaming hasher.
        let small: alloc::vec::Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        let mut h = Fnv1a64::new();
        h.update(&(small.len() as u64).to_le_bytes());
        h.update(&small);
        assert_eq!(
            weights_identity(&small),
            format!("fnv1a64-sampled:{:016x}", h.finish())
        );

        let mut large: alloc::vec::Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let before = weights_identity(&large);
        // The last byte is in the last block, always sampled; a byte far from every sampled
        // block is not (blocks start every ~15.8 KB and are 4 KB long).
        let n = large.len();
        large[n - 1] ^= 1;
        assert_ne!(weights_identity(&large), before);
        large[n - 1] ^= 1;
        large[4096 + 5000] ^= 1;
        assert_eq!(weights_identity(&large), before);
        assert_ne!(weights_identity(&large[..n - 1]), before);
    }

    #[test]
    fn verify_checks_size_identity_and_checksum() {
        let w: alloc::vec::Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let (bytes, id, sum) = (
            format!("{}", w.len()),
            weights_identity(&w),
            weights_checksum(&w),
        );
        let meta = [
            (META_WEIGHTS_BYTES, bytes.as_str()),
            (META_WEIGHTS_IDENTITY, id.as_str()),
            (META_WEIGHTS_CHECKSUM, sum.as_str()),
        ];
        for v in [Verify::None, Verify::Identity, Verify::Full] {
            assert_eq!(verify_weights(&meta, &w, v), Ok(()));
        }
        let mut other = w.clone();
        other[150_000] ^= 0x80; // in no sampled block: only the full check sees it
        assert_eq!(verify_weights(&meta, &other, Verify::Identity), Ok(()));
        assert!(matches!(
            verify_weights(&meta, &other, Verify::Full),
            Err(Error::WeightsMismatch {
                check: "checksum",
                ..
            })
        ));
        assert!(matches!(
            verify_weights(&meta, &w[..w.len() - 1], Verify::Identity),
            Err(Error::WeightsMismatch { check: "size", .. })
        ));
        other[150_000] ^= 0x80;
        other[0] ^= 1;
        assert!(matches!(
            verify_weights(&meta, &other, Verify::Identity),
            Err(Error::WeightsMismatch {
                check: "identity",
                ..
            })
        ));
        assert_eq!(verify_weights(&meta, &other, Verify::None), Ok(()));
        // Only the old key: the identity check falls back to the full one.
        assert!(verify_weights(&meta[2..], &other, Verify::Identity).is_err());
        assert_eq!(verify_weights(&[], &other, Verify::Full), Ok(()));
        assert!(matches!(
            verify_weights(&[(META_WEIGHTS_BYTES, "many")], &w, Verify::Identity),
            Err(Error::Weights { .. })
        ));
    }

    #[test]
    fn file_ranges_may_touch_each_other_and_the_end_of_the_file() {
        // Boundaries that pass: adjacent ranges, a range ending at the end of the file, an
        // empty weights range anywhere inside the file.
        assert_eq!(check_file_ranges("f", 100, &(0..36), &(36..100)), Ok(()));
        assert_eq!(check_file_ranges("f", 100, &(64..100), &(0..64)), Ok(()));
        assert_eq!(check_file_ranges("f", 100, &(0..100), &(50..50)), Ok(()));
        // One byte more fails.
        for (onnx, weights) in [(0..37, 36..100), (0..36, 36..101), (64..100, 0..65)] {
            assert!(matches!(
                check_file_ranges("f", 100, &onnx, &weights),
                Err(Error::FileRange { .. })
            ));
        }
        // Alignment is of the address in memory.
        let buffer = [0u64; 24];
        let bytes = bytemuck::cast_slice::<u64, u8>(&buffer);
        let at = bytes.as_ptr().align_offset(64);
        assert_eq!(
            check_weights_alignment("f", &(0..64), &bytes[at..at + 64]),
            Ok(())
        );
        let e = check_weights_alignment("f", &(68..132), &bytes[at + 4..at + 68]);
        assert!(
            matches!(&e, Err(Error::FileRange { offset: 68, reason, .. }) if reason.contains("offset 68")),
            "{e:?}"
        );
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

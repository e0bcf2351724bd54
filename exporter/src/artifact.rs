//! The artifact writer: lays out `model.onnx` + `model.weights`, the pair the runtime
//! memory-maps. The contract's constants (file names, alignment, metadata keys) and the
//! checksum function live in the runtime (`ctr_edge_runtime::artifact`) and are re-exported
//! here; this module owns the writing.
//!
//! Layout rules (the runtime relies on each; the tests check each with an independent reader):
//! - [`MODEL_FILE`] is a standard ONNX `ModelProto`. Every initializer of more than
//!   [`INLINE_MAX_BYTES`] bytes (main graph and subgraphs) is external data in [`WEIGHTS_FILE`]:
//!   `data_location = EXTERNAL`, `external_data` entries `location` (the bare file name),
//!   `offset` and `length` (decimal bytes), and no inline values left.
//! - In [`WEIGHTS_FILE`] each tensor starts at a multiple of [`ALIGNMENT`] bytes (zero bytes pad
//!   the gaps), tensors follow initializer order and never overlap, and values are little-endian,
//!   row-major, exactly `numel * element size` bytes, whatever field (`raw_data`, `float_data`,
//!   `int32_data`...) held them before. Since the runtime maps the file page-aligned, every
//!   tensor can be viewed in place, f32 and f16 alike.
//! - `metadata_props` gain [`META_VERSION`] (the exporter's version), [`META_WEIGHTS_CHECKSUM`]
//!   (`fnv1a64:` then 16 lowercase hex digits of the 64-bit FNV-1a hash of the whole weights
//!   file, see [`weights_checksum`]), [`META_WEIGHTS_BYTES`] (its size, decimal) and
//!   [`META_WEIGHTS_IDENTITY`] (its [`weights_identity`], the cheap check of every open), so a
//!   loader can tell a mismatched or corrupted pair. The caller's entries (method, ranks...)
//!   follow.
//! - The output folder is written as a unit ([`crate::fsutil::StagedDir`]): every file goes
//!   into a fresh folder beside it, which replaces the old folder by renames, so after a crash
//!   the folder holds the old artifact or the new one, never a mix (and `compress`'s
//!   `report.json` is part of the unit). The writer replaces only a folder that is new, empty
//!   or holds nothing but [`ARTIFACT_FILES`]; on any error the old folder is untouched.
//!
//! Loading goes the other way: [`verify_artifact`] and [`read_verified_weights`] check a
//! weights file against what its model records, every byte, before the exporter or the CLI
//! uses the pair ([`Error::WeightsMismatch`] names both files and the check).
//!
//! Tensors whose values the exporter cannot re-encode (STRING, 4-bit and 8-bit float types given
//! in typed fields) stay inline; the runtime does not compute with those types anyway.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb::tensor_proto::{DataLocation, DataType};
use tract_onnx::pb::{GraphProto, ModelProto, StringStringEntryProto, TensorProto};

use crate::error::{Error, Result};
use crate::fsutil::{FolderState, StagedDir};

use ctr_edge_runtime::artifact::Fnv1a64;
pub use ctr_edge_runtime::artifact::{
    weights_checksum, weights_identity, ALIGNMENT, META_VERSION, META_WEIGHTS_BYTES,
    META_WEIGHTS_CHECKSUM, META_WEIGHTS_IDENTITY, MODEL_FILE, WEIGHTS_FILE,
};

/// Initializers of at most this many bytes stay inline in [`MODEL_FILE`].
pub const INLINE_MAX_BYTES: u64 = 64;

/// Name of the report `compress` writes beside the artifact.
pub const REPORT_FILE: &str = "report.json";

/// The files of an artifact folder, the only ones a writer replaces or removes.
pub const ARTIFACT_FILES: &[&str] = &[MODEL_FILE, WEIGHTS_FILE, REPORT_FILE];

/// The `metadata_props` keys this module writes itself.
const RESERVED_KEYS: [&str; 4] = [
    META_VERSION,
    META_WEIGHTS_CHECKSUM,
    META_WEIGHTS_BYTES,
    META_WEIGHTS_IDENTITY,
];

/// What [`write_artifact`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// Path of the ONNX file.
    pub model_path: PathBuf,
    /// Path of the weights file.
    pub weights_path: PathBuf,
    /// Size of the ONNX file in bytes.
    pub model_bytes: u64,
    /// Size of the weights file in bytes (padding included).
    pub weights_bytes: u64,
    /// Number of initializers moved to the weights file.
    pub external_tensors: usize,
    /// Number of initializers left inline.
    pub inline_tensors: usize,
    /// The value recorded under [`META_WEIGHTS_CHECKSUM`].
    pub weights_checksum: String,
    /// The value recorded under [`META_WEIGHTS_IDENTITY`].
    pub weights_identity: String,
}

/// Writes `model` as an artifact in `out_dir` (created when missing, replaced as a unit when
/// it holds an artifact): [`MODEL_FILE`] and [`WEIGHTS_FILE`], laid out as the module
/// documentation says. `meta` entries are appended to `metadata_props` (an existing entry
/// with the same key is replaced); they may not use the keys this function writes itself.
///
/// Initializers must carry their values (not already be external data). On error `out_dir`
/// is left as it was.
pub fn write_artifact(
    model: ModelProto,
    out_dir: &Path,
    meta: &[(String, String)],
) -> Result<ArtifactInfo> {
    check_meta(meta)?;
    let staged = stage_output(out_dir)?;
    let info = write_artifact_into(model, &staged, meta)?;
    staged.commit()?;
    Ok(info)
}

/// Starts a new version of the artifact folder `out_dir`: [`write_artifact_into`] (and any
/// other file of [`ARTIFACT_FILES`]) fills it, [`StagedDir::commit`] puts it in place. Fails
/// when `out_dir` is not a folder that may be replaced ([`output_folder_state`]).
pub fn stage_output(out_dir: &Path) -> Result<StagedDir> {
    StagedDir::create(out_dir, ARTIFACT_FILES)
}

/// What the output folder `out_dir` holds, after leftovers of crashed runs beside it are
/// cleaned up: absent, empty, or an artifact's files ([`ARTIFACT_FILES`]). Any other entry in
/// it, or something that is not a folder, is an error: the writer never replaces those.
pub fn output_folder_state(out_dir: &Path) -> Result<FolderState> {
    crate::fsutil::recover_stale(out_dir, ARTIFACT_FILES);
    crate::fsutil::folder_state(out_dir, ARTIFACT_FILES)
}

/// [`write_artifact`] into a staged folder, which the caller commits (after adding its own
/// files). The paths in the result are those the files will have once committed.
pub fn write_artifact_into(
    mut model: ModelProto,
    staged: &StagedDir,
    meta: &[(String, String)],
) -> Result<ArtifactInfo> {
    check_meta(meta)?;
    let graph = model.graph.as_mut().ok_or_else(|| Error::InvalidArgument {
        reason: "the model has no graph".into(),
    })?;
    let staged_weights = staged.path().join(WEIGHTS_FILE);
    let staged_model = staged.path().join(MODEL_FILE);
    let create = |path: &Path| {
        File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| io_err(path, "cannot create", e))
    };
    let mut weights = WeightsWriter {
        out: BufWriter::with_capacity(1 << 20, create(&staged_weights)?),
        path: staged_weights.clone(),
        hash: Fnv1a64::new(),
        len: 0,
        external: 0,
        inline: 0,
    };
    visit_initializers(graph, &mut |t| weights.place(t))?;
    let (weights_bytes, external_tensors, inline_tensors) =
        (weights.len, weights.external, weights.inline);
    let weights_checksum = weights.hash.finish_string();
    let file = weights
        .out
        .into_inner()
        .map_err(|e| io_err(&staged_weights, "cannot write", e.into_error()))?;
    file.sync_all()
        .map_err(|e| io_err(&staged_weights, "cannot sync", e))?;
    drop(file);
    // The identity samples blocks of the final file: read back what was written.
    let written =
        fs::read(&staged_weights).map_err(|e| io_err(&staged_weights, "cannot read", e))?;
    if written.len() as u64 != weights_bytes {
        return Err(io_err(
            &staged_weights,
            "cannot write",
            io::Error::other(format!(
                "{} bytes on disk, {weights_bytes} written",
                written.len()
            )),
        ));
    }
    let weights_identity = weights_identity(&written);
    drop(written);

    let mut entries = vec![
        (
            META_VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (META_WEIGHTS_CHECKSUM.to_string(), weights_checksum.clone()),
        (META_WEIGHTS_BYTES.to_string(), weights_bytes.to_string()),
        (META_WEIGHTS_IDENTITY.to_string(), weights_identity.clone()),
    ];
    entries.extend(meta.iter().cloned());
    for (key, value) in entries {
        model.metadata_props.retain(|e| e.key != key);
        model
            .metadata_props
            .push(StringStringEntryProto { key, value });
    }

    let encoded = model.encode_to_vec();
    // Protobuf messages (and every ONNX reader) stop at 2 GiB.
    if encoded.len() > i32::MAX as usize {
        return Err(Error::InvalidArgument {
            reason: format!(
                "the ONNX graph takes {} bytes once its weights are external, over protobuf's \
                 2 GiB limit",
                encoded.len()
            ),
        });
    }
    let mut model_file = create(&staged_model)?;
    model_file
        .write_all(&encoded)
        .and_then(|()| model_file.sync_all())
        .map_err(|e| io_err(&staged_model, "cannot write", e))?;
    drop(model_file);

    Ok(ArtifactInfo {
        model_path: staged.target().join(MODEL_FILE),
        weights_path: staged.target().join(WEIGHTS_FILE),
        model_bytes: encoded.len() as u64,
        weights_bytes,
        external_tensors,
        inline_tensors,
        weights_checksum,
        weights_identity,
    })
}

fn check_meta(meta: &[(String, String)]) -> Result<()> {
    match meta
        .iter()
        .find(|(key, _)| RESERVED_KEYS.contains(&key.as_str()))
    {
        Some((key, _)) => Err(Error::InvalidArgument {
            reason: format!("metadata key '{key}' is reserved for the artifact writer"),
        }),
        None => Ok(()),
    }
}

/// Only the `metadata_props` of an ONNX `ModelProto` (field 14): decoding skips the graph.
#[derive(Clone, PartialEq, Message)]
struct ModelMetadata {
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntryProto>,
}

/// Checks that the weights file beside the ONNX file `model_path` belongs to it, reading every
/// byte ([`read_verified_weights`]). A model that records no check (an ONNX file not written
/// by ctr-edge) passes.
pub fn verify_artifact(model_path: &Path) -> Result<()> {
    let bytes = read_regular(model_path)?;
    let meta = ModelMetadata::decode(bytes.as_slice()).map_err(|e| Error::InvalidModel {
        path: model_path.to_path_buf(),
        reason: format!("not an ONNX model: {e}"),
    })?;
    read_verified_weights(model_path, &meta.metadata_props).map(drop)
}

/// Reads [`WEIGHTS_FILE`] beside the ONNX file `model_path` and checks it against `metadata`,
/// the model's `metadata_props`, with the runtime's full check
/// ([`ctr_edge_runtime::artifact::verify_weights`], `Verify::Full`: the recorded size, then the
/// checksum of every byte). Returns the bytes, or `None` (without reading) when the metadata
/// records no check. A mismatch is [`Error::WeightsMismatch`]; a weights file that is missing
/// (unless the model records 0 bytes) or not a regular file is [`Error::Io`].
pub fn read_verified_weights(
    model_path: &Path,
    metadata: &[StringStringEntryProto],
) -> Result<Option<Vec<u8>>> {
    let recorded: Vec<(&str, &str)> = metadata
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .filter(|(key, _)| RESERVED_KEYS[1..].contains(key))
        .collect();
    if recorded.is_empty() {
        return Ok(None);
    }
    let weights_path = model_path.with_file_name(WEIGHTS_FILE);
    let empty = recorded.contains(&(META_WEIGHTS_BYTES, "0"));
    let weights = match read_regular(&weights_path) {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound && empty => {
            Vec::new()
        }
        Err(Error::Io { path, source }) if source.kind() == io::ErrorKind::NotFound => {
            return Err(io_err(
                &path,
                &format!("the weights file of {} is missing", model_path.display()),
                source,
            ))
        }
        other => other?,
    };
    let check = ctr_edge_runtime::artifact::verify_weights(
        &recorded,
        &weights,
        ctr_edge_runtime::Verify::Full,
    );
    match check {
        Ok(()) => Ok(Some(weights)),
        Err(ctr_edge_runtime::Error::WeightsMismatch {
            check,
            expected,
            found,
        }) => Err(Error::WeightsMismatch {
            model: model_path.to_path_buf(),
            weights: weights_path,
            check,
            expected,
            found,
        }),
        Err(e) => Err(Error::InvalidModel {
            path: model_path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Reads a whole regular file (a FIFO or a device would block or never end).
fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(io::Error::other(if meta.is_dir() {
            "is a folder, not a file"
        } else {
            "not a regular file"
        })));
    }
    fs::read(path).map_err(io)
}

fn io_err(path: &Path, what: &str, e: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: io::Error::new(e.kind(), format!("{what}: {e}")),
    }
}

/// Calls `f` on every initializer of `graph` and of its subgraphs, in order.
fn visit_initializers(
    graph: &mut GraphProto,
    f: &mut impl FnMut(&mut TensorProto) -> Result<()>,
) -> Result<()> {
    for t in &mut graph.initializer {
        f(t)?;
    }
    for node in &mut graph.node {
        for a in &mut node.attribute {
            if let Some(g) = a.g.as_mut() {
                visit_initializers(g, f)?;
            }
            for g in &mut a.graphs {
                visit_initializers(g, f)?;
            }
        }
    }
    Ok(())
}

/// Appends tensors to the temporary weights file, hashing as it goes.
struct WeightsWriter {
    out: BufWriter<File>,
    path: PathBuf,
    hash: Fnv1a64,
    len: u64,
    external: usize,
    inline: usize,
}

impl WeightsWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| io_err(&self.path, "cannot write", e))?;
        self.hash.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Moves `t`'s values to the weights file when they are larger than [`INLINE_MAX_BYTES`].
    fn place(&mut self, t: &mut TensorProto) -> Result<()> {
        let Some(bytes) = take_le_bytes(t)? else {
            self.inline += 1;
            return Ok(());
        };
        let offset = self.len.next_multiple_of(ALIGNMENT);
        const ZEROS: [u8; ALIGNMENT as usize] = [0; ALIGNMENT as usize];
        self.write(&ZEROS[..(offset - self.len) as usize])?;
        self.write(&bytes)?;
        t.data_location = Some(DataLocation::External as i32);
        t.external_data = [
            ("location", WEIGHTS_FILE.to_string()),
            ("offset", offset.to_string()),
            ("length", bytes.len().to_string()),
        ]
        .into_iter()
        .map(|(key, value)| StringStringEntryProto {
            key: key.to_string(),
            value,
        })
        .collect();
        self.external += 1;
        Ok(())
    }
}

/// How a dtype's values are stored in the typed fields of a `TensorProto`.
#[derive(Clone, Copy)]
enum TypedField {
    /// `float_data`, `per_elem` values per element (2 for complex).
    Float { per_elem: usize },
    /// `int32_data`, each value truncated to `bytes` bytes (FLOAT16 and BFLOAT16 carry bits).
    Int32 { bytes: usize },
    /// `int64_data`.
    Int64,
    /// `double_data`, `per_elem` values per element.
    Double { per_elem: usize },
    /// `uint64_data`, each value truncated to `bytes` bytes.
    Uint64 { bytes: usize },
}

/// Element size in bytes and typed field of an ONNX dtype; `None` for the dtypes this writer
/// leaves inline.
fn dtype_layout(data_type: i32) -> Option<(u64, TypedField)> {
    use TypedField::*;
    let dt = DataType::try_from(data_type).ok()?;
    Some(match dt {
        DataType::Float => (4, Float { per_elem: 1 }),
        DataType::Complex64 => (8, Float { per_elem: 2 }),
        DataType::Uint8 | DataType::Int8 | DataType::Bool => (1, Int32 { bytes: 1 }),
        DataType::Uint16 | DataType::Int16 | DataType::Float16 | DataType::Bfloat16 => {
            (2, Int32 { bytes: 2 })
        }
        DataType::Int32 => (4, Int32 { bytes: 4 }),
        DataType::Int64 => (8, Int64),
        DataType::Double => (8, Double { per_elem: 1 }),
        DataType::Complex128 => (16, Double { per_elem: 2 }),
        DataType::Uint32 => (4, Uint64 { bytes: 4 }),
        DataType::Uint64 => (8, Uint64 { bytes: 8 }),
        _ => return None,
    })
}

/// Size in bytes of one element of an ONNX dtype; `None` for the dtypes this writer leaves
/// inline (STRING, 4-bit and 8-bit floats...).
pub(crate) fn element_size(data_type: i32) -> Option<u64> {
    dtype_layout(data_type).map(|(size, _)| size)
}

/// When `t` is to become external: its values as little-endian bytes, taken out of the tensor
/// (every data field cleared). `None` leaves `t` untouched (small, or a dtype kept inline).
fn take_le_bytes(t: &mut TensorProto) -> Result<Option<Vec<u8>>> {
    let bad = |reason: String| Error::InvalidArgument {
        reason: format!("initializer '{}': {reason}", t.name),
    };
    if t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty() {
        return Err(bad(
            "already external data; load its values into the model before writing".into(),
        ));
    }
    if t.segment.is_some() {
        return Err(bad("segmented tensors are not supported".into()));
    }
    let Some((elem_size, field)) = dtype_layout(t.data_type) else {
        return Ok(None);
    };
    let numel = t.dims.iter().try_fold(1u64, |acc, &d| {
        u64::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    });
    let byte_size = numel.and_then(|n| n.checked_mul(elem_size));
    let (Some(numel), Some(byte_size)) = (numel, byte_size) else {
        return Err(bad(format!("invalid dims {:?}", t.dims)));
    };
    if byte_size <= INLINE_MAX_BYTES {
        return Ok(None);
    }
    let byte_size = usize::try_from(byte_size)
        .map_err(|_| bad(format!("{byte_size} bytes do not fit in memory")))?;
    let numel = numel as usize; // <= byte_size, which fits.
    let typed_len = |per_elem: usize, len: usize| {
        if len == numel * per_elem {
            Ok(())
        } else {
            Err(bad(format!(
                "dims {:?} need {} values, the tensor has {len}",
                t.dims,
                numel * per_elem
            )))
        }
    };
    let bytes = if !t.raw_data.is_empty() {
        if t.raw_data.len() != byte_size {
            return Err(bad(format!(
                "raw_data has {} bytes, dims {:?} of {} need {byte_size}",
                t.raw_data.len(),
                t.dims,
                DataType::try_from(t.data_type).map_or("?", |d| d.as_str_name())
            )));
        }
        std::mem::take(&mut t.raw_data)
    } else {
        use TypedField::*;
        let (per_elem, len) = match field {
            Float { per_elem } => (per_elem, t.float_data.len()),
            Int32 { .. } => (1, t.int32_data.len()),
            Int64 => (1, t.int64_data.len()),
            Double { per_elem } => (per_elem, t.double_data.len()),
            Uint64 { .. } => (1, t.uint64_data.len()),
        };
        typed_len(per_elem, len)?;
        match field {
            Float { .. } => le_bytes(&t.float_data, 4, f32::to_le_bytes),
            Int32 { bytes: n } => le_bytes(&t.int32_data, n, i32::to_le_bytes),
            Int64 => le_bytes(&t.int64_data, 8, i64::to_le_bytes),
            Double { .. } => le_bytes(&t.double_data, 8, f64::to_le_bytes),
            Uint64 { bytes: n } => le_bytes(&t.uint64_data, n, u64::to_le_bytes),
        }
    };
    t.float_data = Vec::new();
    t.int32_data = Vec::new();
    t.int64_data = Vec::new();
    t.double_data = Vec::new();
    t.uint64_data = Vec::new();
    t.raw_data = Vec::new();
    Ok(Some(bytes))
}

/// The first `keep` little-endian bytes of each value, concatenated.
fn le_bytes<T: Copy, const N: usize>(
    values: &[T],
    keep: usize,
    to_le: fn(T) -> [u8; N],
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * keep);
    values
        .iter()
        .for_each(|&v| bytes.extend_from_slice(&to_le(v)[..keep]));
    bytes
}

#[cfg(test)]
mod tests;

//! The runtime's one error type. Every failure on a file or an input ends here, with a message
//! naming what was wrong (tensor, node, input); the runtime never panics on bad data.

use alloc::string::String;
use core::fmt;

/// Result alias used throughout the runtime.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong while loading a model or scoring with it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The protobuf stream of the ONNX file is malformed or truncated.
    Protobuf {
        /// Which message/field was being decoded (e.g. `GraphProto.node[3].attribute`).
        context: String,
        /// What was wrong.
        reason: String,
    },
    /// An initializer or constant tensor is inconsistent (dims, dtype, data size, external
    /// data offset/length outside the weights file...).
    InvalidTensor {
        /// Tensor name.
        tensor: String,
        /// What was wrong.
        reason: String,
    },
    /// A tensor uses a dtype the runtime does not support (ONNX `TensorProto.DataType` code).
    UnsupportedDType {
        /// Tensor (or node output) name.
        tensor: String,
        /// ONNX data type code.
        dtype: i32,
    },
    /// A node has wrong inputs, attributes or shapes.
    InvalidNode {
        /// Node name (or `#index` when the node has no name).
        node: String,
        /// ONNX op type.
        op: String,
        /// What was wrong.
        reason: String,
    },
    /// The graph uses an op the runtime does not implement.
    UnsupportedOp {
        /// ONNX op type (with domain when not the default one).
        op: String,
        /// Node name (or `#index`).
        node: String,
    },
    /// The graph structure is invalid: cycles, values used but never produced, duplicates.
    InvalidGraph {
        /// What was wrong.
        reason: String,
    },
    /// The weights file does not match the model (checksum, location, size).
    Weights {
        /// What was wrong.
        reason: String,
    },
    /// An input given to `Session::run` does not match the model's input.
    InputMismatch {
        /// Input name.
        input: String,
        /// What the model expects (dtype and shape).
        expected: String,
        /// What was given.
        got: String,
    },
    /// A Gather index is outside its table.
    IndexOutOfRange {
        /// Model input (or tensor) the index came from.
        input: String,
        /// Row of the batch (first axis) holding the bad index.
        row: usize,
        /// The index value.
        index: i64,
        /// Number of rows in the table.
        table_rows: usize,
    },
    /// A value became NaN where the runtime checks for it (model inputs).
    NotFinite {
        /// Input name.
        input: String,
        /// Flat position of the first non-finite value.
        position: usize,
    },
    /// A Cast from float to an integer type (ids computed from float inputs) met a value that
    /// is not a number or outside the integer type's range (an id of 1e30).
    CastOutOfRange {
        /// The Cast node.
        node: String,
        /// The model input its values come from.
        input: String,
        /// Row of the batch (first axis of the Cast's input) holding the value.
        row: usize,
        /// Flat position of the value in the Cast's input.
        position: usize,
        /// The value.
        value: f32,
    },
    /// A run gave a NaN in an f32 output although every input was finite (inputs so large that
    /// the model's arithmetic overflows: inf - inf, 0 * inf).
    NotFiniteOutput {
        /// Output name.
        output: String,
        /// Flat position of the first non-finite value.
        position: usize,
    },
    /// The weights file does not belong to the model: its size or checksum differs from what
    /// the exporter recorded in the model's metadata.
    WeightsMismatch {
        /// Which check failed (`size`, `identity` or `checksum`).
        check: &'static str,
        /// What the model's metadata records.
        expected: String,
        /// What the weights file gives.
        found: String,
    },
    /// A model asked for more than a limit of its [`crate::OpenOptions`] allows (nodes,
    /// depth, folded-constant or scratch bytes), or for a size that overflows.
    ResourceLimit {
        /// Node name (or `#index`), or `graph` for whole-graph limits.
        node: String,
        /// Which limit (`max_nodes`, `max_depth`, `max_folded_bytes`, `max_scratch_bytes`).
        limit: &'static str,
        /// What was asked for (`u64::MAX` when the size overflows).
        requested: u64,
        /// The limit's value.
        allowed: u64,
    },
    /// A byte range given to a range opener ([`crate::Model::open_ranges_with`]: an artifact
    /// inside a larger file, such as an asset of an Android APK) does not fit the file or the
    /// artifact contract ([`crate::artifact::check_file_ranges`]): empty, past the end of the
    /// file, overlapping the other range, or weights not at a 64-byte-aligned address.
    FileRange {
        /// How the file is named in messages (`fd 7`).
        file: String,
        /// Which range: `onnx` or `weights`.
        range: &'static str,
        /// Offset of the range in the file.
        offset: u64,
        /// Length of the range in bytes.
        len: u64,
        /// What was wrong.
        reason: String,
    },
    /// An I/O error (std only): opening or mapping a file.
    Io {
        /// Path involved.
        path: String,
        /// The OS error message.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protobuf { context, reason } => {
                write!(f, "malformed ONNX protobuf in {context}: {reason}")
            }
            Error::InvalidTensor { tensor, reason } => {
                write!(f, "invalid tensor '{tensor}': {reason}")
            }
            Error::UnsupportedDType { tensor, dtype } => write!(
                f,
                "tensor '{tensor}' has unsupported data type {dtype} ({})",
                crate::tensor::onnx_dtype_name(*dtype)
            ),
            Error::InvalidNode { node, op, reason } => {
                write!(f, "invalid {op} node '{node}': {reason}")
            }
            Error::UnsupportedOp { op, node } => {
                write!(f, "unsupported op {op} (node '{node}')")
            }
            Error::InvalidGraph { reason } => write!(f, "invalid graph: {reason}"),
            Error::Weights { reason } => write!(f, "weights file: {reason}"),
            Error::InputMismatch {
                input,
                expected,
                got,
            } => write!(f, "input '{input}': expected {expected}, got {got}"),
            Error::IndexOutOfRange {
                input,
                row,
                index,
                table_rows,
            } => write!(
                f,
                "input '{input}': id {index} at row {row} is outside the table of {table_rows} rows"
            ),
            Error::NotFinite { input, position } => {
                write!(
                    f,
                    "input '{input}': non-finite value at flat position {position}"
                )
            }
            Error::CastOutOfRange {
                node,
                input,
                row,
                position,
                value,
            } => {
                let what = if value.is_nan() {
                    "is not a number"
                } else {
                    "is outside the integer range"
                };
                write!(
                    f,
                    "Cast node '{node}' (values from input '{input}'): {value:e} at row {row} \
                     (flat position {position} of the Cast's input) {what}"
                )
            }
            Error::NotFiniteOutput { output, position } => write!(
                f,
                "output '{output}': non-finite score (NaN) at flat position {position}: finite \
                 inputs that overflow the model's arithmetic"
            ),
            Error::WeightsMismatch {
                check,
                expected,
                found,
            } => write!(
                f,
                "weights file does not belong to this model: {check} is {found}, the model records {expected}"
            ),
            Error::ResourceLimit {
                node,
                limit,
                requested,
                allowed,
            } => {
                if *requested == u64::MAX {
                    write!(f, "resource limit: node '{node}' asks for a size that overflows ({limit} is {allowed})")
                } else {
                    write!(f, "resource limit: node '{node}' needs {requested}, over {limit} = {allowed}")
                }
            }
            Error::FileRange {
                file,
                range,
                offset,
                len,
                reason,
            } => write!(
                f,
                "{file}: {range} range at offset {offset} ({len} bytes): {reason}"
            ),
            Error::Io { path, reason } => write!(f, "{path}: {reason}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

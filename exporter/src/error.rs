//! The exporter library's one error type. Every message names what was wrong: the file, the
//! array or model input, and both sides of a mismatch; the library never panics on bad files.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias used throughout the exporter library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the exporter library.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed at the operating-system level.
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A `.npy`/`.npz` file is malformed, truncated or uses an unsupported feature, or an
    /// array given to a writer is inconsistent (`ctr_edge_npz`'s error, its message as is; its
    /// I/O errors are [`Error::Io`]).
    Npz(ctr_edge_npz::Error),
    /// Inputs of a metric are unusable (length mismatch, NaN, a single class...).
    Metric {
        /// `"AUC"` or `"LogLoss"`.
        metric: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A model input is absent from the data.
    MissingInput {
        /// Model input name.
        input: String,
        /// What the model expects (dtype and shape).
        expected: String,
        /// Names of the arrays that the data does have.
        available: Vec<String>,
    },
    /// A data array does not match the model input of the same name (dtype or shape).
    InputMismatch {
        /// Model input name.
        input: String,
        /// What the model expects, e.g. `f32 [N, 8]`.
        expected: String,
        /// What the data has, e.g. `f32 [100, 9]`.
        got: String,
    },
    /// The input arrays disagree on the number of rows (first axis).
    RowCountMismatch {
        /// The first input and its row count.
        first: (String, usize),
        /// A later input with a different row count.
        other: (String, usize),
    },
    /// A model output cannot be assembled across batches (first axis is not the batch).
    OutputNotBatched {
        /// Output name.
        output: String,
        /// Its shape in one batch.
        shape: Vec<usize>,
        /// The batch size of that run.
        batch_rows: usize,
    },
    /// The model uses an element type this tool cannot feed or read.
    UnsupportedType {
        /// Model input or output name.
        value: String,
        /// The type, as the backend names it.
        dtype: String,
    },
    /// tract failed to load, optimize or run the model.
    Tract {
        /// The model file.
        path: PathBuf,
        /// The step that failed (`loading`, `optimizing`, `running`...).
        stage: &'static str,
        /// tract's message, with its chain of causes.
        reason: String,
    },
    /// The native runtime failed to load or run the model.
    Runtime {
        /// The model file.
        path: PathBuf,
        /// The runtime's error.
        source: ctr_edge_runtime::Error,
    },
    /// An artifact's weights file does not belong to its model: the size or checksum the model
    /// records does not match the file (files of two artifacts, or a corrupted file).
    WeightsMismatch {
        /// The ONNX file.
        model: PathBuf,
        /// The weights file.
        weights: PathBuf,
        /// Which check failed (`size` or `checksum`).
        check: &'static str,
        /// What the model records.
        expected: String,
        /// What the weights file gives.
        found: String,
    },
    /// An argument is out of range (e.g. a batch size of 0).
    InvalidArgument {
        /// What was wrong.
        reason: String,
    },
    /// An ONNX file cannot be decoded or is not a model the compressor can work on.
    InvalidModel {
        /// The model file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Compression cannot proceed (no site to compress, an unreachable budget, a failed
    /// decomposition...).
    Compression {
        /// The site (weight initializer) concerned, if one.
        site: Option<String>,
        /// What was wrong.
        reason: String,
    },
    /// The native runtime cannot load or score the compressed model; nothing was written.
    NativeCheck {
        /// The runtime's error.
        reason: String,
    },
    /// The compressed model lost more AUC than allowed; nothing was written.
    AucGate {
        /// AUC of the original model on the evaluation data.
        before: f64,
        /// AUC of the compressed model.
        after: f64,
        /// The largest drop allowed.
        max_drop: f64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Npz(e) => write!(f, "{e}"),
            Error::Metric { metric, reason } => write!(f, "{metric}: {reason}"),
            Error::MissingInput {
                input,
                expected,
                available,
            } => write!(
                f,
                "input '{input}': model expects {expected}, the data has no such array (arrays: {})",
                if available.is_empty() {
                    String::from("none")
                } else {
                    available.join(", ")
                }
            ),
            Error::InputMismatch {
                input,
                expected,
                got,
            } => write!(f, "input '{input}': model expects {expected}, file has {got}"),
            Error::RowCountMismatch { first, other } => write!(
                f,
                "inputs disagree on the number of rows: '{}' has {}, '{}' has {}",
                first.0, first.1, other.0, other.1
            ),
            Error::OutputNotBatched {
                output,
                shape,
                batch_rows,
            } => write!(
                f,
                "output '{output}' has shape {shape:?} for a batch of {batch_rows} rows: its first \
                 axis is not the batch, so it cannot be assembled across batches (use a batch size \
                 of at least the number of rows)"
            ),
            Error::UnsupportedType { value, dtype } => {
                write!(f, "'{value}' has element type {dtype}, which is not supported here")
            }
            Error::Tract {
                path,
                stage,
                reason,
            } => write!(f, "tract, {stage} {}: {reason}", path.display()),
            Error::Runtime { path, source } => {
                write!(f, "native runtime, {}: {source}", path.display())
            }
            Error::WeightsMismatch {
                model,
                weights,
                check,
                expected,
                found,
            } => write!(
                f,
                "{} does not belong to {}: its {check} is {found}, the model records {expected} \
                 (the files of two different artifacts, or a corrupted weights file)",
                weights.display(),
                model.display()
            ),
            Error::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
            Error::InvalidModel { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Compression {
                site: Some(site),
                reason,
            } => write!(f, "site '{site}': {reason}"),
            Error::Compression { site: None, reason } => f.write_str(reason),
            Error::NativeCheck { reason } => write!(
                f,
                "the native runtime cannot run the compressed model: {reason} (nothing written; \
                 --force writes it anyway, and it will fail the same way on the device)"
            ),
            Error::AucGate {
                before,
                after,
                max_drop,
            } => write!(
                f,
                "the compressed model's AUC is {after:.6}, the original's {before:.6}: a drop of \
                 {:.6}, more than the allowed {max_drop} (nothing written; raise \
                 --max-auc-drop, use a higher rank, or --force to write anyway)",
                before - after
            ),
        }
    }
}

// Display already carries the message of any wrapped error, so `source()` stays empty: a
// report printing the chain of causes would otherwise repeat it.
impl std::error::Error for Error {}

/// Opening a file is this crate's [`Error::Io`]; everything else keeps the npz error.
impl From<ctr_edge_npz::Error> for Error {
    fn from(e: ctr_edge_npz::Error) -> Error {
        match e {
            ctr_edge_npz::Error::Io { path, source } => Error::Io { path, source },
            other => Error::Npz(other),
        }
    }
}

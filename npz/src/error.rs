//! The crate's error type. Messages name the file and the array; the exporter wraps it in its
//! own error (`Error::Npz`, or `Error::Io` for files that cannot be opened), messages unchanged.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing arrays.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Opening a file failed at the operating-system level.
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A `.npy`/`.npz` file is malformed, truncated or uses an unsupported feature.
    Npy {
        /// The file involved.
        path: PathBuf,
        /// The array (zip member without `.npy`), when the problem is inside one.
        array: Option<String>,
        /// What was wrong.
        reason: String,
    },
    /// An array given to a writer is inconsistent (shape vs number of values).
    InvalidArray {
        /// Array name.
        array: String,
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Npy {
                path,
                array: Some(array),
                reason,
            } => write!(f, "{}: array '{array}': {reason}", path.display()),
            Error::Npy {
                path,
                array: None,
                reason,
            } => write!(f, "{}: {reason}", path.display()),
            Error::InvalidArray { array, reason } => write!(f, "array '{array}': {reason}"),
        }
    }
}

// Display already carries the message of a wrapped io::Error (as in the exporter's error).
impl std::error::Error for Error {}

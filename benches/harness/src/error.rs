//! The harness's one error type: bad arguments, a model that fails to open or run, an input the
//! harness cannot synthesize, a missing feature.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can stop a benchmark run.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// The command line is invalid (the message names the argument).
    Usage(String),
    /// `--vs tract` in a build without the `tract` feature.
    MissingFeature {
        /// The cargo feature the option needs.
        feature: &'static str,
    },
    /// The model file does not exist or cannot be read.
    ModelNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The ctr-edge runtime failed to open or run the model.
    Runtime {
        /// The model.
        path: PathBuf,
        /// What was being done (`opening`, `running at batch 32`...).
        stage: String,
        /// The runtime's error (boxed: it is large, and errors are the rare path).
        source: Box<ctr_edge_runtime::Error>,
    },
    /// tract failed to load, optimize or run the model.
    Tract {
        /// The model.
        path: PathBuf,
        /// What was being done.
        stage: String,
        /// tract's error, its chain of causes on one line.
        reason: String,
    },
    /// A model input the harness cannot fill (dtype other than f32, i64, i32).
    UnsupportedInput {
        /// Input name.
        input: String,
        /// Why.
        reason: String,
    },
}

impl BenchError {
    /// [`BenchError::UnsupportedInput`] for `input`.
    pub(crate) fn unsupported(input: &str, reason: impl Into<String>) -> BenchError {
        BenchError::UnsupportedInput {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Usage(msg) => write!(f, "{msg}"),
            BenchError::MissingFeature { feature } => write!(
                f,
                "this build of ctr-edge-bench lacks the `{feature}` feature: rebuild with \
                 `--features {feature}` (host only), or use `ctr-edge bench`"
            ),
            BenchError::ModelNotFound { path } => {
                write!(f, "model file {} not found", path.display())
            }
            BenchError::Runtime {
                path,
                stage,
                source,
            } => failed(f, "ctr-edge", stage, path, source),
            BenchError::Tract {
                path,
                stage,
                reason,
            } => failed(f, "tract", stage, path, reason),
            BenchError::UnsupportedInput { input, reason } => {
                write!(f, "cannot synthesize input '{input}': {reason}")
            }
        }
    }
}

/// `ENGINE failed STAGE PATH: WHY`, the message of both engines' failures.
fn failed(
    f: &mut fmt::Formatter<'_>,
    engine: &str,
    stage: &str,
    path: &Path,
    why: &dyn fmt::Display,
) -> fmt::Result {
    write!(f, "{engine} failed {stage} {}: {why}", path.display())
}

impl std::error::Error for BenchError {}

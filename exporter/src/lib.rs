//! ctr-edge exporter library: everything the `ctr-edge` command line does, as a library.
//!
//! - [`npz`]: NumPy `.npy`/`.npz` reading and writing (the data format of every command; the
//!   `ctr-edge-npz` crate with this crate's [`Error`]);
//! - [`metrics`]: AUC and LogLoss, defined exactly as scikit-learn computes them;
//! - [`backend`]: running an ONNX model on data with the native runtime or with tract;
//! - [`compress`]: low-rank compression (AFM and SVD) of the model's embedding tables and dense
//!   layers, written as an [`artifact`];
//! - [`fsutil`]: atomic file writes (temporary file, sync, rename);
//! - [`health`]: whether a trained model is far from degenerate (spectra, denormals).
//!
//! Errors are one typed enum, [`Error`]; only the binary uses `anyhow`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod artifact;
pub mod backend;
pub mod compress;
mod error;
pub mod fsutil;
pub mod health;
pub mod metrics;
pub mod npz;
pub mod onnx_build;
pub mod rng;

pub use error::{Error, Result};

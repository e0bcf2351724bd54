//! The immutable, shareable `Model`: decoded graph, constants viewing the weights buffer in
//! place, and the load-time plan. (Stub: the graph engine fills it in.)

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::kernels::KernelVariant;
use crate::session::Session;
use crate::tensor::DType;

/// Description of a model input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoInfo {
    /// Value name in the graph.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape; `None` marks the symbolic (batch) dimension.
    pub shape: Vec<Option<usize>>,
}

/// A loaded model. Immutable and `Send + Sync`: share it between threads, give each thread
/// its own [`Session`].
pub struct Model<'w> {
    _weights: &'w [u8],
}

impl<'w> Model<'w> {
    /// Load from the ONNX bytes and the bytes of its external weights file (which the model
    /// borrows: weights are viewed in place).
    pub fn from_bytes(_onnx: &[u8], _weights: &'w [u8]) -> Result<Model<'w>> {
        Err(Error::InvalidGraph {
            reason: String::from("not implemented yet"),
        })
    }

    /// Model inputs.
    pub fn inputs(&self) -> &[IoInfo] {
        &[]
    }

    /// Model outputs.
    pub fn outputs(&self) -> &[IoInfo] {
        &[]
    }

    /// `metadata_props` of the file.
    pub fn metadata(&self) -> &[(String, String)] {
        &[]
    }

    /// The kernel family this model's sessions run.
    pub fn kernel_variant(&self) -> KernelVariant {
        crate::kernels::best().variant
    }

    /// A new session with its own scratch memory.
    pub fn session(&self) -> Session<'_, 'w> {
        Session::new(self)
    }
}

#[cfg(feature = "std")]
impl Model<'static> {
    /// Open `model.onnx` and memory-map the weights file its external data names (relative to
    /// the model's folder).
    pub fn open(_onnx_path: impl AsRef<std::path::Path>) -> Result<Model<'static>> {
        Err(Error::InvalidGraph {
            reason: String::from("not implemented yet"),
        })
    }
}

//! ctr-edge runtime: loads an ONNX CTR model whose weights live in an aligned external file,
//! views those weights in place (zero copy), plans the graph once per batch size and scores
//! candidates with SIMD kernels (NEON on aarch64, AVX2+FMA on x86-64, scalar elsewhere).
//!
//! Layout of the crate:
//! - [`onnx`]: a compact protobuf reader and the ONNX `ModelProto` decoder (borrowing the file);
//! - [`tensor`]: dtypes, constant tensors and their zero-copy storage;
//! - [`kernels`]: the kernel table (scalar reference, NEON, AVX2+FMA) chosen once;
//! - [`graph`]: the planner (constant folding, shape resolution) and the op implementations;
//! - [`model`] / [`session`]: the public API: an immutable `Model`, a per-thread `Session`;
//! - [`artifact`]: the contract with the exporter (file names, alignment, metadata keys, the
//!   weights checksum).
//!
//! The core is `no_std` + `alloc`; the `std` feature (default) adds loading from paths with
//! memory-mapped weights.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod artifact;
pub mod error;
mod fpmode;
pub mod graph;
pub mod kernels;
pub mod math;
pub mod model;
pub mod onnx;
pub mod options;
pub mod session;
pub mod tensor;

pub use error::{Error, Result};
pub use kernels::KernelVariant;
pub use model::Model;
pub use options::{Limits, OpenOptions, Verify};
pub use session::{Input, Session};
pub use tensor::DType;

//! ONNX decoding: a compact protobuf wire reader and the `ModelProto` decoder.
//!
//! Loading is two steps, both borrowing the caller's bytes:
//! 1. [`decode_model`] walks the `.onnx` bytes ([`proto`] reads the wire format) into the
//!    structs of [`types`], checking structure only (wire format, UTF-8, nesting depth);
//! 2. [`resolve_tensor`] checks each initializer against the weights buffer (dtype, dims,
//!    sizes, offsets, path safety) and yields a [`crate::tensor::ConstTensor`] that views the
//!    weights in place when aligned; [`view_f32`] and friends give those views at run time.
//!
//! No `unsafe` here: every read is a `.get()`, every size a checked operation.

#![forbid(unsafe_code)]

pub mod decode;
pub mod external;
pub mod proto;
pub mod types;

pub use decode::{decode_model, decode_tensor_file, DecodedTensor, MAX_GRAPH_DEPTH};
pub use external::{
    check_location, external_bytes, external_location, resolve_initializers, resolve_tensor,
    tensor_byte_len, view_bool_bytes, view_f16, view_f32, view_i32, view_i64, MAX_TENSOR_BYTES,
};
pub use types::*;

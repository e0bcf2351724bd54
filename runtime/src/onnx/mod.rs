//! ONNX decoding: a compact protobuf wire reader and the `ModelProto` decoder.

pub mod types;


pub use types::*;

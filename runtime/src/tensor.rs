//! Data types and constant tensors (initializers, `Constant` nodes, folded shape values).
//!
//! A constant either points into the weights buffer (zero copy: the model keeps the buffer and
//! views the bytes as `&[f32]`/`&[f16]`/... on demand) or owns its values (inline initializers,
//! folded constants, and external tensors whose offset is misaligned for their dtype).

use alloc::vec::Vec;
use half::f16;

/// ONNX `TensorProto.DataType` codes the runtime knows by name.
pub mod onnx_codes {
    /// FLOAT
    pub const FLOAT: i32 = 1;
    /// UINT8
    pub const UINT8: i32 = 2;
    /// INT8
    pub const INT8: i32 = 3;
    /// INT32
    pub const INT32: i32 = 6;
    /// INT64
    pub const INT64: i32 = 7;
    /// BOOL
    pub const BOOL: i32 = 9;
    /// FLOAT16
    pub const FLOAT16: i32 = 10;
    /// DOUBLE
    pub const DOUBLE: i32 = 11;
}

/// Name of an ONNX data type code, for messages.
pub fn onnx_dtype_name(code: i32) -> &'static str {
    match code {
        0 => "UNDEFINED",
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        16 => "BFLOAT16",
        _ => "unknown",
    }
}

/// Element types the runtime computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float (weights only; computed in f32).
    F16,
    /// 64-bit signed integer (ids, shapes).
    I64,
    /// 32-bit signed integer (ids).
    I32,
    /// Boolean (one byte per value).
    Bool,
}

impl DType {
    /// From an ONNX data type code.
    pub fn from_onnx(code: i32) -> Option<DType> {
        match code {
            onnx_codes::FLOAT => Some(DType::F32),
            onnx_codes::FLOAT16 => Some(DType::F16),
            onnx_codes::INT64 => Some(DType::I64),
            onnx_codes::INT32 => Some(DType::I32),
            onnx_codes::BOOL => Some(DType::Bool),
            _ => None,
        }
    }

    /// The ONNX data type code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => onnx_codes::FLOAT,
            DType::F16 => onnx_codes::FLOAT16,
            DType::I64 => onnx_codes::INT64,
            DType::I32 => onnx_codes::INT32,
            DType::Bool => onnx_codes::BOOL,
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    /// Lower-case name (`f32`, `f16`, `i64`, `i32`, `bool`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        }
    }
}

/// Values owned by the model (inline initializers, folded constants, misaligned copies).
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedData {
    /// f32 values.
    F32(Vec<f32>),
    /// f16 values.
    F16(Vec<f16>),
    /// i64 values.
    I64(Vec<i64>),
    /// i32 values.
    I32(Vec<i32>),
    /// bool values.
    Bool(Vec<bool>),
}

impl OwnedData {
    /// The dtype of the values.
    pub fn dtype(&self) -> DType {
        match self {
            OwnedData::F32(_) => DType::F32,
            OwnedData::F16(_) => DType::F16,
            OwnedData::I64(_) => DType::I64,
            OwnedData::I32(_) => DType::I32,
            OwnedData::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            OwnedData::F32(v) => v.len(),
            OwnedData::F16(v) => v.len(),
            OwnedData::I64(v) => v.len(),
            OwnedData::I32(v) => v.len(),
            OwnedData::Bool(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a constant's values live.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstData {
    /// `len` elements of `dtype` at byte `offset` of the weights buffer, whose address is
    /// aligned for the dtype (checked at load): viewed in place, never copied.
    Weights {
        /// Byte offset in the weights buffer.
        offset: usize,
        /// Length in bytes.
        byte_len: usize,
    },
    /// Values owned by the model.
    Owned(OwnedData),
}

/// A constant tensor: an initializer, a `Constant` node's value, or a folded value.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstTensor {
    /// Element type.
    pub dtype: DType,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Values.
    pub data: ConstData,
}

impl ConstTensor {
    /// Number of elements (product of the shape; the loader checked it does not overflow).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// An owned constant.
    pub fn owned(shape: Vec<usize>, data: OwnedData) -> ConstTensor {
        ConstTensor {
            dtype: data.dtype(),
            shape,
            data: ConstData::Owned(data),
        }
    }
}

//! Data types, typed values and constant tensors (initializers, `Constant` nodes, folded shape
//! values).
//!
//! Typed values have two shapes: [`OwnedData`] (a constant's own values, the planner's folded
//! values and the session's buffers) and [`BorrowedData`] (values viewed in place: op inputs,
//! model inputs given to [`crate::Session::run`], outputs read back).
//!
//! A constant either points into the weights buffer (zero copy: the model keeps the buffer and
//! views the bytes as `&[f32]`/`&[f16]`/... on demand) or owns its values (inline initializers,
//! folded constants, and external tensors whose offset is misaligned for their dtype).

use alloc::vec::Vec;
use half::f16;

/// Defines a module of ONNX enum codes from one list: a documented `pub const` per name and
/// `name(code)`, the name of a code for messages (`"unknown"` for a code not listed).
macro_rules! code_table {
    ($(#[$meta:meta])* $vis:vis mod $module:ident { $($name:ident = $code:literal,)* }) => {
        $(#[$meta])*
        $vis mod $module {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: i32 = $code;
            )*

            /// The name of `code`, for messages (`"unknown"` for a code not listed).
            pub fn name(code: i32) -> &'static str {
                match code {
                    $($name => stringify!($name),)*
                    _ => "unknown",
                }
            }
        }
    };
}
pub(crate) use code_table;

code_table! {
    /// ONNX `TensorProto.DataType` codes.
    pub mod onnx_codes {
        UNDEFINED = 0, FLOAT = 1, UINT8 = 2, INT8 = 3, UINT16 = 4, INT16 = 5, INT32 = 6,
        INT64 = 7, STRING = 8, BOOL = 9, FLOAT16 = 10, DOUBLE = 11, UINT32 = 12, UINT64 = 13,
        COMPLEX64 = 14, COMPLEX128 = 15, BFLOAT16 = 16,
    }
}

/// Name of an ONNX data type code, for messages.
pub fn onnx_dtype_name(code: i32) -> &'static str {
    onnx_codes::name(code)
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

/// Owned values of one tensor: a constant's values (inline initializers, misaligned copies),
/// a folded value, or a session buffer (preallocated by the planner; ops write into it in
/// place).
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

impl Default for OwnedData {
    /// No f32 values (an empty buffer does not allocate).
    fn default() -> Self {
        OwnedData::F32(Vec::new())
    }
}

impl OwnedData {
    /// `len` zeroed elements of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> OwnedData {
        match dtype {
            DType::F32 => OwnedData::F32(alloc::vec![0.0; len]),
            DType::F16 => OwnedData::F16(alloc::vec![f16::ZERO; len]),
            DType::I64 => OwnedData::I64(alloc::vec![0; len]),
            DType::I32 => OwnedData::I32(alloc::vec![0; len]),
            DType::Bool => OwnedData::Bool(alloc::vec![false; len]),
        }
    }

    /// The values, borrowed.
    pub fn data(&self) -> BorrowedData<'_> {
        match self {
            OwnedData::F32(v) => BorrowedData::F32(v),
            OwnedData::F16(v) => BorrowedData::F16(v),
            OwnedData::I64(v) => BorrowedData::I64(v),
            OwnedData::I32(v) => BorrowedData::I32(v),
            OwnedData::Bool(v) => BorrowedData::Bool(v),
        }
    }

    /// The dtype of the values.
    pub fn dtype(&self) -> DType {
        self.data().dtype()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data().len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `src` into these values when both have one dtype and one length (no
    /// allocation); `false`, leaving them unchanged, otherwise.
    pub fn copy_from(&mut self, src: BorrowedData<'_>) -> bool {
        fn copy<T: Copy>(d: &mut [T], s: &[T]) -> bool {
            let same = d.len() == s.len();
            if same {
                d.copy_from_slice(s);
            }
            same
        }
        match (self, src) {
            (OwnedData::F32(d), BorrowedData::F32(s)) => copy(d, s),
            (OwnedData::F16(d), BorrowedData::F16(s)) => copy(d, s),
            (OwnedData::I64(d), BorrowedData::I64(s)) => copy(d, s),
            (OwnedData::I32(d), BorrowedData::I32(s)) => copy(d, s),
            (OwnedData::Bool(d), BorrowedData::Bool(s)) => copy(d, s),
            _ => false,
        }
    }
}

/// Borrowed values of one tensor. Inside the graph engine `F16` carries float values stored as
/// f16 (weights after the `Cast(FLOAT16 -> FLOAT)` pattern), whose logical dtype is f32.
#[derive(Debug, Clone, Copy)]
pub enum BorrowedData<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 values.
    F16(&'a [f16]),
    /// i64 values.
    I64(&'a [i64]),
    /// i32 values.
    I32(&'a [i32]),
    /// bool values.
    Bool(&'a [bool]),
}

impl BorrowedData<'_> {
    /// The dtype of the values.
    pub fn dtype(&self) -> DType {
        match self {
            BorrowedData::F32(_) => DType::F32,
            BorrowedData::F16(_) => DType::F16,
            BorrowedData::I64(_) => DType::I64,
            BorrowedData::I32(_) => DType::I32,
            BorrowedData::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            BorrowedData::F32(v) => v.len(),
            BorrowedData::F16(v) => v.len(),
            BorrowedData::I64(v) => v.len(),
            BorrowedData::I32(v) => v.len(),
            BorrowedData::Bool(v) => v.len(),
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

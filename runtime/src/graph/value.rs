//! Values flowing through the graph: borrowed typed views (`View`) for op inputs and owned typed
//! buffers (`Buf`) for op outputs and folded constants.

use alloc::string::ToString;
use alloc::vec::Vec;
use half::f16;

use crate::error::{Error, Result};
use crate::tensor::{ConstData, ConstTensor, DType, OwnedData};

/// Borrowed values of one tensor. `F16` carries float values stored as f16 (weights after the
/// `Cast(FLOAT16 -> FLOAT)` pattern): its logical dtype is f32.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Data<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    Bool(&'a [bool]),
}

impl<'a> Data<'a> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F16(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }
}

/// A borrowed tensor: shape and values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub shape: &'a [usize],
    pub data: Data<'a>,
}

impl<'a> View<'a> {
    pub(crate) fn f32(&self) -> Option<&'a [f32]> {
        match self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
}

/// An owned, typed buffer. Preallocated by the planner; ops write into it in place.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Buf {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    F16(Vec<f16>),
}

impl Default for Buf {
    fn default() -> Self {
        Buf::F32(Vec::new())
    }
}

impl Buf {
    /// A zeroed buffer of `len` elements of `dtype`.
    pub(crate) fn zeros(dtype: DType, len: usize) -> Buf {
        match dtype {
            DType::F32 => Buf::F32(alloc::vec![0.0; len]),
            DType::F16 => Buf::F16(alloc::vec![f16::ZERO; len]),
            DType::I64 => Buf::I64(alloc::vec![0; len]),
            DType::I32 => Buf::I32(alloc::vec![0; len]),
            DType::Bool => Buf::Bool(alloc::vec![false; len]),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.data().len()
    }

    pub(crate) fn data(&self) -> Data<'_> {
        match self {
            Buf::F32(v) => Data::F32(v),
            Buf::F16(v) => Data::F16(v),
            Buf::I64(v) => Data::I64(v),
            Buf::I32(v) => Data::I32(v),
            Buf::Bool(v) => Data::Bool(v),
        }
    }
}

/// Row-major strides of `shape`.
pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The values of a model constant, viewed in place in the weights buffer when stored there.
pub(crate) fn const_data<'a>(
    c: &'a ConstTensor,
    weights: &'a [u8],
    name: &str,
) -> Result<Data<'a>> {
    let bad = |reason: &str| Error::InvalidTensor {
        tensor: name.to_string(),
        reason: reason.to_string(),
    };
    Ok(match &c.data {
        ConstData::Owned(OwnedData::F32(v)) => Data::F32(v),
        ConstData::Owned(OwnedData::F16(v)) => Data::F16(v),
        ConstData::Owned(OwnedData::I64(v)) => Data::I64(v),
        ConstData::Owned(OwnedData::I32(v)) => Data::I32(v),
        ConstData::Owned(OwnedData::Bool(v)) => Data::Bool(v),
        ConstData::Weights { offset, byte_len } => {
            let (o, n) = (*offset, *byte_len);
            match c.dtype {
                DType::F32 => Data::F32(crate::onnx::view_f32(weights, o, n)?),
                DType::F16 => Data::F16(crate::onnx::view_f16(weights, o, n)?),
                DType::I64 => Data::I64(crate::onnx::view_i64(weights, o, n)?),
                DType::I32 => Data::I32(crate::onnx::view_i32(weights, o, n)?),
                // The loader turns bool tensors into owned values (bytes are not `bool`s).
                DType::Bool => return Err(bad("bool tensor left in the weights file")),
            }
        }
    })
}

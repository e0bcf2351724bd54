//! Values flowing through the graph: borrowed typed views (`View`) for op inputs and owned typed
//! buffers (`Buf`) for op outputs and folded constants.

use alloc::string::ToString;

use crate::error::{Error, Result};
use crate::tensor::{BorrowedData, ConstData, ConstTensor, DType, OwnedData};

/// Borrowed values of one tensor (see [`BorrowedData`]).
pub(crate) type Data<'a> = BorrowedData<'a>;

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

/// An owned, typed buffer (see [`OwnedData`]). Preallocated by the planner; ops write into it
/// in place.
pub(crate) type Buf = OwnedData;

/// Number of elements of `shape` (of a shape [`checked_bytes`] accepted: the planner checks
/// every shape it resolves, so the product cannot overflow).
pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Bytes of a value of `shape` with elements of `elem_size` bytes; `None` when that overflows.
/// The dims are multiplied with every 0 taken as 1, and the result must stay within
/// `isize::MAX` (the most one allocation may hold): so a shape like `[0, 2^40, 2^40]` (0
/// elements, but rows of 2^80) is refused too, and every product of some of the dims (row
/// lengths, strides, offsets) fits in a `usize`.
pub(crate) fn checked_bytes(shape: &[usize], elem_size: usize) -> Option<usize> {
    let volume = shape
        .iter()
        .try_fold(elem_size.max(1), |acc, &d| acc.checked_mul(d.max(1)))
        .filter(|&v| v <= isize::MAX as usize)?;
    Some(if shape.contains(&0) { 0 } else { volume })
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

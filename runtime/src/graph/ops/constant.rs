//! Constant and ConstantOfShape: nodes whose values are known at load or plan time. They never
//! reach [`super::eval`]: the loader stores a Constant's value as a graph constant, and the
//! planner folds ConstantOfShape with [`infer_constant_of_shape`] and [`fill_constant`].

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use super::attrs::kind;
use super::{const_ints, logical, need, Attrs, Inferred, Metas, NodeCtx};
use crate::error::Result;
use crate::graph::value::{const_data, Buf, Data};
use crate::onnx::AttrValue;
use crate::tensor::{ConstTensor, OwnedData};

/// A Constant node's value, from its one attribute.
pub(super) fn parse_constant(a: &Attrs, weights: &[u8]) -> Result<ConstTensor> {
    let Some(attr) = a.node.attributes.first() else {
        return Err(a.err("Constant without a value attribute".to_string()));
    };
    if a.node.attributes.len() != 1 {
        return Err(a.err("Constant must have exactly one value attribute".to_string()));
    }
    Ok(match (attr.name, &attr.value) {
        ("value", AttrValue::Tensor(t)) => crate::onnx::resolve_tensor(t, weights)?,
        ("value_float", AttrValue::Float(v)) => {
            ConstTensor::owned(Vec::new(), OwnedData::F32(alloc::vec![*v]))
        }
        ("value_floats", AttrValue::Floats(v)) => {
            ConstTensor::owned(alloc::vec![v.len()], OwnedData::F32(v.clone()))
        }
        ("value_int", AttrValue::Int(v)) => {
            ConstTensor::owned(Vec::new(), OwnedData::I64(alloc::vec![*v]))
        }
        ("value_ints", AttrValue::Ints(v)) => {
            ConstTensor::owned(alloc::vec![v.len()], OwnedData::I64(v.clone()))
        }
        (name, v) => {
            return Err(a.err(format!(
                "unsupported Constant attribute '{name}' ({})",
                kind(v)
            )))
        }
    })
}

/// ConstantOfShape's fill value (one element; f32 0 by default).
pub(super) fn parse_constant_of_shape(a: &Attrs, weights: &[u8]) -> Result<ConstTensor> {
    match a.get("value") {
        None => Ok(ConstTensor::owned(
            alloc::vec![1],
            OwnedData::F32(alloc::vec![0.0]),
        )),
        Some(AttrValue::Tensor(t)) => {
            let c = crate::onnx::resolve_tensor(t, weights)?;
            if c.numel() != 1 {
                return Err(a.err(format!("'value' must hold one element, has {}", c.numel())));
            }
            Ok(c)
        }
        Some(other) => Err(a.err(format!(
            "attribute 'value' must be a tensor, got {}",
            kind(other)
        ))),
    }
}

/// ConstantOfShape's output: `value`'s dtype, the shape its (constant) input holds.
pub(crate) fn infer_constant_of_shape(
    value: &ConstTensor,
    ins: &Metas,
    cx: &NodeCtx,
) -> Result<Inferred> {
    let s = const_ints(need(ins, 0, cx)?, "the shape input", cx)?;
    let mut shape = Vec::with_capacity(s.len());
    for d in s {
        shape.push(usize::try_from(d).map_err(|_| cx.err(format!("negative dimension {d}")))?);
    }
    Ok((logical(value.dtype), shape))
}

/// Fills `out` with ConstantOfShape's `value`.
pub(crate) fn fill_constant(
    out: &mut Buf,
    value: &ConstTensor,
    weights: &[u8],
    cx: &NodeCtx,
) -> Result<()> {
    let v = const_data(value, weights, cx.node)?;
    match (v, out) {
        (Data::F32(s), Buf::F32(d)) if !s.is_empty() => d.iter_mut().for_each(|x| *x = s[0]),
        (Data::F16(s), Buf::F32(d)) if !s.is_empty() => {
            d.iter_mut().for_each(|x| *x = s[0].to_f32())
        }
        (Data::I64(s), Buf::I64(d)) if !s.is_empty() => d.iter_mut().for_each(|x| *x = s[0]),
        (Data::I32(s), Buf::I32(d)) if !s.is_empty() => d.iter_mut().for_each(|x| *x = s[0]),
        (Data::Bool(s), Buf::Bool(d)) if !s.is_empty() => d.iter_mut().for_each(|x| *x = s[0]),
        _ => return Err(cx.err("value dtype does not match the output".to_string())),
    }
    Ok(())
}

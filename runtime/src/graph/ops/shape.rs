//! Ops that change only the shape: Reshape, Flatten, Unsqueeze, Squeeze and Identity (with
//! inference Dropout) keep their input's data, so the planner aliases them and their `eval`
//! is a copy (used when folding); Shape gives the input's dimensions.

use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::{const_ints, ints_from, need, norm_axis, Attrs, Inferred, Metas, NodeCtx, Op};
use crate::error::Result;
use crate::graph::value::{numel, Buf, View};
use crate::tensor::DType;

pub(super) fn parse_dropout(a: &Attrs) -> Result<Op> {
    // Inference Dropout is the identity; training mode and its mask are not. A
    // 'training_mode' input is checked by the loader, which has the constants: only a
    // constant false is accepted.
    a.unused_output(1, "the 'mask' output is not supported (inference only)")?;
    Ok(Op::Identity)
}

pub(super) fn infer_identity(ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    Ok((x.dtype, x.shape.to_vec()))
}

pub(super) fn infer_reshape(allowzero: bool, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    let target = const_ints(need(ins, 1, cx)?, "the shape input", cx)?;
    let total = numel(x.shape);
    let mut s = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                s.push(1);
            }
            0 if !allowzero => s.push(*x.shape.get(i).ok_or_else(|| {
                cx.err(format!("shape {target:?}: 0 at axis {i} beyond input rank"))
            })?),
            t if t >= 0 => s.push(t as usize),
            _ => return Err(cx.err(format!("invalid target shape {target:?}"))),
        }
    }
    let known = s
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| cx.err("shape overflow".to_string()))?;
    if let Some(i) = infer_at {
        // With 0 elements (a batch of 0 rows) the -1 is what it would be for a non-empty
        // input: counted with every 0 dim of the input and of the target taken as 1.
        let (total, known) = if total == 0 && known == 0 {
            let nonzero = |d: &[usize]| {
                d.iter()
                    .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
                    .ok_or_else(|| cx.err("shape overflow".to_string()))
            };
            (nonzero(x.shape)?, nonzero(&s)?)
        } else {
            (total, known)
        };
        if known == 0 || !total.is_multiple_of(known) {
            return Err(cx.err(format!("cannot reshape {:?} to {target:?}", x.shape)));
        }
        s[i] = total / known;
    } else if known != total {
        return Err(cx.err(format!(
            "cannot reshape {:?} ({total} elements) to {target:?}",
            x.shape
        )));
    }
    Ok((x.dtype, s))
}

pub(super) fn infer_flatten(axis: i64, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    let r = x.shape.len() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a > r {
        return Err(cx.err(format!("axis {axis} out of range for rank {r}")));
    }
    let a = a as usize;
    Ok((x.dtype, vec![numel(&x.shape[..a]), numel(&x.shape[a..])]))
}

pub(super) fn infer_unsqueeze(axes: Option<&[i64]>, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    let axes = match axes {
        Some(a) => a.to_vec(),
        None => const_ints(need(ins, 1, cx)?, "axes", cx)?,
    };
    let r = x.shape.len() + axes.len();
    let mut is_new = vec![false; r];
    for &a in &axes {
        let a = norm_axis(a, r, cx)?;
        if is_new[a] {
            return Err(cx.err(format!("axis {a} repeated")));
        }
        is_new[a] = true;
    }
    let mut it = x.shape.iter();
    let s = is_new
        .iter()
        .map(|&n| if n { 1 } else { *it.next().unwrap_or(&1) })
        .collect();
    Ok((x.dtype, s))
}

pub(super) fn infer_squeeze(axes: Option<&[i64]>, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    let axes = ints_from(axes, ins.get(1).and_then(|m| m.as_ref()), "axes", cx)?;
    let mut drop = vec![false; x.shape.len()];
    match axes {
        Some(axes) => {
            for a in axes {
                let a = norm_axis(a, x.shape.len(), cx)?;
                if x.shape[a] != 1 {
                    return Err(cx.err(format!(
                        "cannot squeeze axis {a} of size {} ({:?})",
                        x.shape[a], x.shape
                    )));
                }
                drop[a] = true;
            }
        }
        None => {
            for (i, &d) in x.shape.iter().enumerate() {
                drop[i] = d == 1;
            }
        }
    }
    let s = x
        .shape
        .iter()
        .zip(&drop)
        .filter(|(_, &d)| !d)
        .map(|(&s, _)| s)
        .collect();
    Ok((x.dtype, s))
}

pub(super) fn parse_shape(a: &Attrs) -> Result<Op> {
    Ok(Op::Shape {
        start: a.int("start", 0)?,
        end: match a.get("end") {
            None => None,
            Some(_) => Some(a.int("end", 0)?),
        },
    })
}

pub(super) fn infer_shape(
    start: i64,
    end: Option<i64>,
    ins: &Metas,
    cx: &NodeCtx,
) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    let (s, e) = shape_range(x.shape.len(), start, end);
    Ok((DType::I64, vec![e.saturating_sub(s)]))
}

pub(super) fn eval_shape(
    start: i64,
    end: Option<i64>,
    x: View,
    out: &mut Buf,
    cx: &NodeCtx,
) -> Result<()> {
    let (s, e) = shape_range(x.shape.len(), start, end);
    match out {
        Buf::I64(o) if o.len() == e.saturating_sub(s) => {
            for (d, &v) in o.iter_mut().zip(&x.shape[s..e]) {
                *d = v as i64;
            }
            Ok(())
        }
        _ => Err(cx.err("internal: Shape output buffer".to_string())),
    }
}

fn shape_range(rank: usize, start: i64, end: Option<i64>) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(start);
    // start > end gives an empty shape (ONNX), not a reversed range.
    (start, clamp(end.unwrap_or(r)).max(start))
}

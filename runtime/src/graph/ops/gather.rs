//! Gather: rows of a table (embedding lookups) by index. [`gather_index`] and [`ids_per_row`]
//! are shared with the fused gather steps, so both report an out-of-range id the same way.

use alloc::format;
use alloc::string::ToString;
use half::f16;

use super::{internal, need, norm_axis, Inferred, Meta, NodeCtx};
use crate::error::{Error, Result};
use crate::graph::value::{numel, Buf, Data, View};
use crate::tensor::DType;

pub(super) fn infer(axis: i64, ins: &[Option<Meta>], cx: &NodeCtx) -> Result<Inferred> {
    let data = need(ins, 0, cx)?;
    let idx = need(ins, 1, cx)?;
    if !matches!(idx.dtype, DType::I64 | DType::I32) {
        return Err(cx.err(format!(
            "indices must be int64 or int32, got {}",
            idx.dtype.name()
        )));
    }
    if data.shape.is_empty() {
        return Err(cx.err("data must have rank >= 1".to_string()));
    }
    let ax = norm_axis(axis, data.shape.len(), cx)?;
    let mut s = data.shape[..ax].to_vec();
    s.extend_from_slice(idx.shape);
    s.extend_from_slice(&data.shape[ax + 1..]);
    Ok((data.dtype, s))
}

pub(super) fn eval(axis: i64, data: View, idx: View, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    let ax = norm_axis(axis, data.shape.len(), cx)?;
    let outer = numel(&data.shape[..ax]);
    let rows = data.shape[ax];
    let inner = numel(&data.shape[ax + 1..]);
    let nidx = idx.data.len();
    let per_row = ids_per_row(idx.shape, nidx);
    let index_at = |j: usize| gather_index(idx.data, j, rows, per_row, cx);
    macro_rules! run {
        ($src:expr, $dst:expr, $conv:expr) => {{
            let (src, dst) = ($src, $dst);
            if dst.len() != outer * nidx * inner || src.len() != outer * rows * inner {
                return Err(internal(cx, "Gather"));
            }
            for o in 0..outer {
                for j in 0..nidx {
                    let i = index_at(j)?;
                    let s = &src[(o * rows + i) * inner..(o * rows + i + 1) * inner];
                    let d = &mut dst[(o * nidx + j) * inner..(o * nidx + j + 1) * inner];
                    for (d, s) in d.iter_mut().zip(s) {
                        *d = $conv(*s);
                    }
                }
            }
        }};
    }
    match (data.data, out) {
        (Data::F32(s), Buf::F32(d)) => run!(s, d, |v: f32| v),
        (Data::F16(s), Buf::F32(d)) => run!(s, d, |v: f16| v.to_f32()),
        (Data::I64(s), Buf::I64(d)) => run!(s, d, |v: i64| v),
        (Data::I32(s), Buf::I32(d)) => run!(s, d, |v: i32| v),
        (Data::Bool(s), Buf::Bool(d)) => run!(s, d, |v: bool| v),
        _ => return Err(internal(cx, "Gather")),
    }
    Ok(())
}

/// Indices per batch row of a Gather's `indices` (shape `idx_shape`, `nidx` values), for the
/// row named in out-of-range errors.
pub(crate) fn ids_per_row(idx_shape: &[usize], nidx: usize) -> usize {
    if idx_shape.is_empty() || idx_shape[0] == 0 {
        nidx.max(1)
    } else {
        nidx / idx_shape[0]
    }
}

/// Index `j` of a Gather's `indices` as a row of a table of `rows` rows (negative indices count
/// from the end); out of range: [`Error::IndexOutOfRange`] naming the model input the indices
/// come from and the batch row (`j / per_row`).
pub(crate) fn gather_index(
    idx: Data,
    j: usize,
    rows: usize,
    per_row: usize,
    cx: &NodeCtx,
) -> Result<usize> {
    let v = match idx {
        Data::I64(s) => s.get(j).copied(),
        Data::I32(s) => s.get(j).map(|&v| i64::from(v)),
        _ => None,
    }
    .ok_or_else(|| internal(cx, "Gather indices"))?;
    let r = rows as i64;
    let i = if v < 0 { v + r } else { v };
    if i < 0 || i >= r {
        return Err(Error::IndexOutOfRange {
            input: cx.source.to_string(),
            row: j / per_row.max(1),
            index: v,
            table_rows: rows,
        });
    }
    Ok(i as usize)
}

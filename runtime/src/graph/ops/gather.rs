//! Gather: rows of a table (embedding lookups) by index. [`gather_index`] and [`ids_per_row`]
//! are shared with the fused gather steps, so both report an out-of-range id the same way.

use alloc::format;
use alloc::string::ToString;

use super::{checked, copy_blocks, internal, need, norm_axis, Inferred, Metas, NodeCtx};
use crate::error::{Error, Result};
use crate::graph::value::{numel, Buf, Data, View};
use crate::tensor::DType;

pub(super) fn infer(axis: i64, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
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
    if out.len() != outer * nidx * inner || data.data.len() != outer * rows * inner {
        return Err(internal(cx, "Gather"));
    }
    let index_at = |j: usize| gather_index(idx.data, j, rows, per_row, cx);
    // Row `index_at(j)` of each outer block of the table to row `j` of the output's block.
    let rows_read = (0..outer).flat_map(|o| {
        (0..nidx).map(move |j| Ok(((o * rows + index_at(j)?) * inner, (o * nidx + j) * inner)))
    });
    checked(copy_blocks(data.data, out, inner, rows_read)?, cx, "Gather")
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

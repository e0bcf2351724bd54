//! Ops that move data: Concat, Transpose, Slice, Split, Expand and Tile. Each output element
//! reads one input element, found by strides (see [`crate::graph::strided`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::{
    broadcast_shapes, checked, const_ints, copy_blocks, internal, ints_from, need, need_view,
    norm_axis, view_ints, Attrs, Inferred, Metas, NodeCtx, Op, Views,
};
use crate::error::Result;
use crate::graph::strided::{broadcast_strides, gather_strided, signed, strides_of, MAX_RANK};
use crate::graph::value::{numel, Buf, Data, View};

/// [`gather_strided`] for whichever dtype `src` and `out` share; `false` when they differ or
/// an index falls outside `src`.
fn gather_any(
    src: Data,
    offset: isize,
    strides: &[isize; MAX_RANK],
    shape: &[usize],
    out: &mut Buf,
) -> bool {
    match (src, out) {
        (Data::F32(s), Buf::F32(d)) => gather_strided(s, offset, strides, shape, d),
        (Data::I64(s), Buf::I64(d)) => gather_strided(s, offset, strides, shape, d),
        (Data::I32(s), Buf::I32(d)) => gather_strided(s, offset, strides, shape, d),
        (Data::Bool(s), Buf::Bool(d)) => gather_strided(s, offset, strides, shape, d),
        _ => false,
    }
}

pub(super) fn parse_concat(a: &Attrs) -> Result<Op> {
    match a.get("axis") {
        Some(_) => Ok(Op::Concat {
            axis: a.int("axis", 0)?,
        }),
        None => Err(a.err("missing required attribute 'axis'".to_string())),
    }
}

pub(super) fn infer_concat(axis: i64, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let first = need(ins, 0, cx)?;
    let ax = norm_axis(axis, first.shape.len(), cx)?;
    let mut s = first.shape.to_vec();
    s[ax] = 0;
    for m in ins.iter() {
        let m = m
            .as_ref()
            .ok_or_else(|| cx.err("missing input".to_string()))?;
        if m.dtype != first.dtype || m.shape.len() != s.len() {
            return Err(cx.err(format!(
                "inputs differ in dtype or rank: {:?} vs {:?}",
                first.shape, m.shape
            )));
        }
        for (i, (&d, &f)) in m.shape.iter().zip(first.shape).enumerate() {
            if i != ax && d != f {
                return Err(cx.err(format!(
                    "input shapes {:?} and {:?} differ outside axis {ax}",
                    first.shape, m.shape
                )));
            }
        }
        // Saturated: the planner's size check refuses an overflowing shape as a resource limit.
        s[ax] = s[ax].saturating_add(m.shape[ax]);
    }
    Ok((first.dtype, s))
}

pub(super) fn concat(
    axis: i64,
    ins: &Views,
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx,
) -> Result<()> {
    let ax = norm_axis(axis, out_shape.len(), cx)?;
    let outer = numel(&out_shape[..ax]);
    let inner = numel(&out_shape[ax + 1..]);
    let out_row = out_shape[ax] * inner;
    let mut col = 0usize;
    for v in ins {
        let v = v.ok_or_else(|| internal(cx, "Concat input"))?;
        let w = v.shape.get(ax).copied().unwrap_or(0) * inner;
        if v.data.len() != outer * w || out.len() != outer * out_row {
            return Err(internal(cx, "Concat"));
        }
        let blocks = (0..outer).map(|o| Ok((o * w, o * out_row + col)));
        checked(copy_blocks(v.data, out, w, blocks)?, cx, "Concat dtypes")?;
        col += w;
    }
    Ok(())
}

pub(super) fn infer_transpose(perm: Option<&[i64]>, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    let p = transpose_perm(perm, x.shape.len(), cx)?;
    Ok((x.dtype, p.iter().map(|&i| x.shape[i]).collect()))
}

fn transpose_perm(perm: Option<&[i64]>, rank: usize, cx: &NodeCtx) -> Result<Vec<usize>> {
    match perm {
        None => Ok((0..rank).rev().collect()),
        Some(p) => {
            if p.len() != rank {
                return Err(cx.err(format!("perm {p:?} does not match rank {rank}")));
            }
            let mut seen = vec![false; rank];
            let mut out = Vec::with_capacity(rank);
            for &a in p {
                let a = norm_axis(a, rank, cx)?;
                if seen[a] {
                    return Err(cx.err(format!("perm {p:?} repeats axis {a}")));
                }
                seen[a] = true;
                out.push(a);
            }
            Ok(out)
        }
    }
}

pub(super) fn transpose(perm: Option<&[i64]>, x: View, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    let rank = x.shape.len();
    let mut p = [0usize; MAX_RANK];
    match perm {
        None => (0..rank).for_each(|i| p[i] = rank - 1 - i),
        Some(v) => {
            for (i, &a) in v.iter().enumerate().take(rank) {
                p[i] = norm_axis(a, rank, cx)?;
            }
        }
    }
    let own = strides_of(x.shape);
    let mut st = [0isize; MAX_RANK];
    let mut shape = [0usize; MAX_RANK];
    for i in 0..rank {
        st[i] = own[p[i]] as isize;
        shape[i] = x.shape[p[i]];
    }
    let sh = &shape[..rank];
    checked(gather_any(x.data, 0, &st, sh, out), cx, "Transpose")
}

pub(super) fn parse_slice(a: &Attrs) -> Result<Op> {
    if a.get("starts").is_some() {
        return Err(
            a.err("Slice with 'starts' attribute (opset < 10) is not supported".to_string())
        );
    }
    Ok(Op::Slice)
}

pub(super) fn infer_slice(ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    if x.shape.len() > MAX_RANK {
        return Err(cx.err(format!("rank {} above {MAX_RANK}", x.shape.len())));
    }
    let v = |i: usize| -> Result<Option<View>> {
        match ins.get(i).and_then(|m| m.as_ref()) {
            None => Ok(None),
            Some(m) => match m.value {
                Some(v) if matches!(v.data, Data::I64(_) | Data::I32(_)) => Ok(Some(v)),
                Some(_) => Err(cx.err(format!("input #{i} must be int64/int32"))),
                None => Err(cx.err(format!("input #{i} must be constant at plan time"))),
            },
        }
    };
    let (st, en) = (
        v(1)?.ok_or_else(|| cx.err("missing starts".to_string()))?,
        v(2)?.ok_or_else(|| cx.err("missing ends".to_string()))?,
    );
    let (ax, sp) = (v(3)?, v(4)?);
    let mut p = [(0i64, 1i64, 0usize); MAX_RANK];
    slice_params(x.shape, &st, &en, ax.as_ref(), sp.as_ref(), &mut p).map_err(|r| cx.err(r))?;
    Ok((x.dtype, p[..x.shape.len()].iter().map(|t| t.2).collect()))
}

struct SliceAxis {
    start: i64,
    step: i64,
    len: usize,
}

/// ONNX Slice parameters for one axis, with the spec's clamping.
fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> SliceAxis {
    let d = dim as i64;
    // A step past the dimension takes one element either way; clamped, it cannot overflow
    // the strides computed from it.
    let step = step.clamp(-d.max(1), d.max(1));
    let (s, e);
    if step > 0 {
        let st = if start < 0 { start + d } else { start };
        let en = if end < 0 { end + d } else { end };
        s = st.clamp(0, d);
        e = en.clamp(0, d);
        // (e - s) / step rounded up, without the overflow of `e - s + step - 1`.
        let len = if e > s { (e - s - 1) / step + 1 } else { 0 };
        SliceAxis {
            start: s,
            step,
            len: len as usize,
        }
    } else {
        let st = if start < 0 { start + d } else { start };
        let en = if end < 0 { end + d } else { end };
        s = st.clamp(-1, d - 1);
        e = en.clamp(-1, d - 1);
        // `step` may be i64::MIN, whose negation overflows.
        let len = if s > e {
            ((s - e - 1) as u64 / step.unsigned_abs() + 1) as i64
        } else {
            0
        };
        SliceAxis {
            start: s,
            step,
            len: len as usize,
        }
    }
}

/// Fills `axes` (per data axis: start, step, len) from Slice's inputs. Returns `false` when the
/// parameters are inconsistent.
fn slice_params(
    shape: &[usize],
    starts: &View,
    ends: &View,
    axes: Option<&View>,
    steps: Option<&View>,
    out: &mut [(i64, i64, usize); MAX_RANK],
) -> core::result::Result<(), String> {
    let rank = shape.len();
    for (i, &d) in shape.iter().enumerate() {
        out[i] = (0, 1, d);
    }
    let (mut st, mut en, mut ax, mut sp) = (
        [0i64; MAX_RANK],
        [0i64; MAX_RANK],
        [0i64; MAX_RANK],
        [1i64; MAX_RANK],
    );
    let n = view_ints(starts, &mut st);
    if n != starts.data.len() || view_ints(ends, &mut en) != n {
        return Err(format!(
            "starts and ends must have the same length (<= {MAX_RANK})"
        ));
    }
    match axes {
        Some(a) => {
            if view_ints(a, &mut ax) != n {
                return Err("axes must have the same length as starts".to_string());
            }
        }
        None => {
            for (i, v) in ax.iter_mut().enumerate().take(n) {
                *v = i as i64;
            }
        }
    }
    if let Some(s) = steps {
        if view_ints(s, &mut sp) != n {
            return Err("steps must have the same length as starts".to_string());
        }
    }
    let mut seen = [false; MAX_RANK];
    for i in 0..n {
        let a = if ax[i] < 0 {
            ax[i] + rank as i64
        } else {
            ax[i]
        };
        if a < 0 || a >= rank as i64 {
            return Err(format!("slice axis {} out of range for rank {rank}", ax[i]));
        }
        let a = a as usize;
        if seen[a] {
            return Err(format!("slice axis {a} repeated"));
        }
        seen[a] = true;
        if sp[i] == 0 {
            return Err("slice step 0".to_string());
        }
        let p = slice_axis(shape[a], st[i], en[i], sp[i]);
        out[a] = (p.start, p.step, p.len);
    }
    Ok(())
}

pub(super) fn slice(ins: &Views, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    let x = need_view(ins, 0, cx)?;
    let st = need_view(ins, 1, cx)?;
    let en = need_view(ins, 2, cx)?;
    let ax = ins.get(3).copied().flatten();
    let sp = ins.get(4).copied().flatten();
    let mut p = [(0i64, 1i64, 0usize); MAX_RANK];
    slice_params(x.shape, &st, &en, ax.as_ref(), sp.as_ref(), &mut p).map_err(|r| cx.err(r))?;
    let rank = x.shape.len();
    let own = strides_of(x.shape);
    let mut strides = [0isize; MAX_RANK];
    let mut shape = [0usize; MAX_RANK];
    let mut offset = 0isize;
    for i in 0..rank {
        let (s, step, len) = p[i];
        offset += s as isize * own[i] as isize;
        strides[i] = step as isize * own[i] as isize;
        shape[i] = len;
    }
    let sh = &shape[..rank];
    checked(gather_any(x.data, offset, &strides, sh, out), cx, "Slice")
}

/// Part `part` of a Split with `count` outputs; `sizes` from the attribute (older opsets) or
/// from the optional second input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SplitPart {
    pub axis: i64,
    pub part: usize,
    pub count: usize,
    pub sizes: Option<Vec<i64>>,
}

impl SplitPart {
    pub(super) fn infer(&self, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
        let x = need(ins, 0, cx)?;
        let ax = norm_axis(self.axis, x.shape.len(), cx)?;
        let sizes = ints_from(
            self.sizes.as_deref(),
            ins.get(1).and_then(|m| m.as_ref()),
            "split",
            cx,
        )?;
        let get = |i: usize| sizes.as_ref().map(|s| s[i]).unwrap_or(0);
        let given = sizes
            .as_ref()
            .map(|s| (s.len(), &get as &dyn Fn(usize) -> i64));
        let (_, len) =
            split_range(x.shape[ax], self.part, self.count, given).map_err(|r| cx.err(r))?;
        let mut s = x.shape.to_vec();
        s[ax] = len;
        Ok((x.dtype, s))
    }

    pub(super) fn eval(&self, ins: &Views, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
        let x = need_view(ins, 0, cx)?;
        let ax = norm_axis(self.axis, x.shape.len(), cx)?;
        let from_input = ins.get(1).copied().flatten();
        let sizes = &self.sizes;
        let get = |i: usize| -> i64 {
            match (sizes, from_input.map(|v| v.data)) {
                (Some(s), _) => s.get(i).copied().unwrap_or(-1),
                (None, Some(Data::I64(v))) => v.get(i).copied().unwrap_or(-1),
                (None, Some(Data::I32(v))) => v.get(i).map(|&x| x as i64).unwrap_or(-1),
                _ => -1,
            }
        };
        let n = match (sizes, from_input) {
            (Some(s), _) => Some(s.len()),
            (None, Some(v)) => Some(v.data.len()),
            (None, None) => None,
        };
        let given = n.map(|n| (n, &get as &dyn Fn(usize) -> i64));
        let (start, len) =
            split_range(x.shape[ax], self.part, self.count, given).map_err(|r| cx.err(r))?;
        let own = strides_of(x.shape);
        let mut st = signed(&own);
        let mut shape = [0usize; MAX_RANK];
        shape[..x.shape.len()].copy_from_slice(x.shape);
        shape[ax] = len;
        let offset = (start * own[ax]) as isize;
        let sh = &shape[..x.shape.len()];
        st[x.shape.len()..].iter_mut().for_each(|v| *v = 0);
        checked(gather_any(x.data, offset, &st, sh, out), cx, "Split")
    }
}

/// Start and length of part `part` of a Split along a dimension of size `dim`; `sizes` is the
/// optional `split` list given as (count, accessor) so run-time calls need no allocation.
fn split_range(
    dim: usize,
    part: usize,
    count: usize,
    sizes: Option<(usize, &dyn Fn(usize) -> i64)>,
) -> core::result::Result<(usize, usize), String> {
    match sizes {
        Some((n, get)) => {
            // i128: the model's sizes may sum past i64 (each is an i64).
            let total: i128 = (0..n).map(|i| get(i) as i128).sum();
            if n != count || (0..n).any(|i| get(i) < 0) || total != dim as i128 {
                return Err(format!(
                    "{n} split sizes summing to {total} do not cover a dimension of {dim} in {count} parts"
                ));
            }
            let start: i64 = (0..part).map(get).sum();
            Ok((start as usize, get(part) as usize))
        }
        None => {
            if count == 0 {
                return Err("no outputs".to_string());
            }
            // Equal parts, the last one smaller when the dimension does not divide (opset 18).
            let chunk = dim.div_ceil(count);
            let start = (chunk * part).min(dim);
            Ok((start, chunk.min(dim - start)))
        }
    }
}

pub(super) fn infer_expand(ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    let target = const_ints(need(ins, 1, cx)?, "the shape input", cx)?;
    let mut t = Vec::with_capacity(target.len());
    for d in &target {
        t.push(usize::try_from(*d).map_err(|_| cx.err(format!("invalid shape {target:?}")))?);
    }
    if t.len() > MAX_RANK {
        return Err(cx.err(format!("shape rank {} above {MAX_RANK}", t.len())));
    }
    Ok((x.dtype, broadcast_shapes(x.shape, &t, cx)?))
}

/// `out` = `x` broadcast to `out_shape`.
pub(super) fn expand(x: View, out: &mut Buf, out_shape: &[usize], cx: &NodeCtx) -> Result<()> {
    if out.len() != numel(out_shape) || x.shape.len() > out_shape.len() {
        return Err(internal(cx, "Expand"));
    }
    let st = signed(&broadcast_strides(x.shape, out_shape.len()));
    checked(gather_any(x.data, 0, &st, out_shape, out), cx, "Expand")
}

pub(super) fn infer_tile(ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    let reps = const_ints(need(ins, 1, cx)?, "the repeats input", cx)?;
    if reps.len() != x.shape.len() {
        return Err(cx.err(format!(
            "repeats {reps:?} must have one entry per input dimension ({:?})",
            x.shape
        )));
    }
    let mut s = Vec::with_capacity(reps.len());
    for (&d, &r) in x.shape.iter().zip(&reps) {
        let r = usize::try_from(r).map_err(|_| cx.err(format!("negative repeat in {reps:?}")))?;
        // Saturated: the planner's size check refuses an overflowing shape as a resource limit.
        s.push(d.saturating_mul(r));
    }
    Ok((x.dtype, s))
}

/// Tile: output index `i` along each dim reads input index `i % dim`.
pub(super) fn tile(x: View, out: &mut Buf, out_shape: &[usize], cx: &NodeCtx) -> Result<()> {
    let r = x.shape.len();
    if r != out_shape.len() || r > MAX_RANK || out.len() != numel(out_shape) {
        return Err(internal(cx, "Tile"));
    }
    fn fill<T: Copy>(src: &[T], shape: &[usize], out_shape: &[usize], d: &mut [T]) -> bool {
        if d.is_empty() {
            return true;
        }
        if shape.contains(&0) {
            return false;
        }
        let r = shape.len();
        let st = strides_of(shape);
        let mut idx = [0usize; MAX_RANK];
        for slot in d.iter_mut() {
            let at: usize = (0..r).map(|i| (idx[i] % shape[i]) * st[i]).sum();
            match src.get(at) {
                Some(&v) => *slot = v,
                None => return false,
            }
            for i in (0..r).rev() {
                idx[i] += 1;
                if idx[i] < out_shape[i] {
                    break;
                }
                idx[i] = 0;
            }
        }
        true
    }
    let ok = match (x.data, out) {
        (Data::F32(s), Buf::F32(d)) => fill(s, x.shape, out_shape, d),
        (Data::I64(s), Buf::I64(d)) => fill(s, x.shape, out_shape, d),
        (Data::I32(s), Buf::I32(d)) => fill(s, x.shape, out_shape, d),
        (Data::Bool(s), Buf::Bool(d)) => fill(s, x.shape, out_shape, d),
        _ => false,
    };
    checked(ok, cx, "Tile")
}

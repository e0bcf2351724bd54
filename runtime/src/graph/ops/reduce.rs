//! ReduceSum, ReduceMean and ReduceMax over a set of axes.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::{
    checked, copy_into, ints_from, need, need_view, norm_axis, view_ints, Attrs, Inferred, Meta,
    Metas, NodeCtx, Op, Views,
};
use crate::error::Result;
use crate::graph::strided::{for_each2, signed, strides_of, MAX_RANK};
use crate::graph::value::{Buf, Data};
use crate::tensor::DType;

/// Reductions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReduceKind {
    Sum,
    Mean,
    Max,
}

/// A reduction; `axes` from the attribute (older opsets) or from the optional second input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reduce {
    pub kind: ReduceKind,
    pub axes: Option<Vec<i64>>,
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
}

pub(super) fn parse(a: &Attrs) -> Result<Op> {
    Ok(Op::Reduce(Reduce {
        kind: match a.node.op_type {
            "ReduceSum" => ReduceKind::Sum,
            "ReduceMean" => ReduceKind::Mean,
            _ => ReduceKind::Max,
        },
        axes: a.ints("axes")?,
        keepdims: a.flag("keepdims", true)?,
        noop_with_empty_axes: a.flag("noop_with_empty_axes", false)?,
    }))
}

impl Reduce {
    pub(super) fn infer(&self, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
        let x = need(ins, 0, cx)?;
        let ok = matches!(x.dtype, DType::F32 | DType::I64)
            || (self.kind == ReduceKind::Max && x.dtype == DType::Bool);
        if !ok {
            return Err(cx.err(format!("unsupported input dtype {}", x.dtype.name())));
        }
        let red = self.mask(x.shape.len(), ins.get(1).and_then(|m| m.as_ref()), cx)?;
        let mut s = Vec::new();
        for (i, &d) in x.shape.iter().enumerate() {
            if !red[i] {
                s.push(d);
            } else if self.keepdims {
                s.push(1);
            }
        }
        Ok((x.dtype, s))
    }

    /// Which of `rank` axes are reduced.
    fn mask(&self, rank: usize, input: Option<&Meta>, cx: &NodeCtx) -> Result<Vec<bool>> {
        let axes = ints_from(self.axes.as_deref(), input, "axes", cx)?.unwrap_or_default();
        if axes.is_empty() {
            return Ok(vec![!self.noop_with_empty_axes; rank]);
        }
        let mut red = vec![false; rank];
        for a in axes {
            red[norm_axis(a, rank, cx)?] = true;
        }
        Ok(red)
    }

    pub(super) fn eval(&self, ins: &Views, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
        let x = need_view(ins, 0, cx)?;
        let rank = x.shape.len();
        let mut red = [false; MAX_RANK];
        let mut axes = [0i64; MAX_RANK];
        let n = match (&self.axes, ins.get(1).copied().flatten()) {
            (Some(a), _) => {
                let n = a.len().min(MAX_RANK);
                axes[..n].copy_from_slice(&a[..n]);
                n
            }
            (None, Some(v)) => view_ints(&v, &mut axes),
            (None, None) => 0,
        };
        if n == 0 {
            if self.noop_with_empty_axes {
                return copy_into(x.data, out, cx);
            }
            red[..rank].iter_mut().for_each(|r| *r = true);
        }
        for &a in &axes[..n] {
            red[norm_axis(a, rank, cx)?] = true;
        }
        // Output strides over the input's index space, 0 on reduced axes.
        let mut oshape = [0usize; MAX_RANK];
        for i in 0..rank {
            oshape[i] = if red[i] { 1 } else { x.shape[i] };
        }
        let ost = strides_of(&oshape[..rank]);
        let mut so = [0isize; MAX_RANK];
        for i in 0..rank {
            so[i] = if red[i] { 0 } else { ost[i] as isize };
        }
        let sx = signed(&strides_of(x.shape));
        let count = (0..rank)
            .filter(|&i| red[i])
            .map(|i| x.shape[i])
            .product::<usize>();
        let max = self.kind == ReduceKind::Max;
        let ok = match (x.data, out) {
            (Data::F32(s), Buf::F32(d)) if max => {
                accumulate(x.shape, (&sx, &so), s, d, f32::NEG_INFINITY, |a, v| {
                    if v > *a || v.is_nan() {
                        *a = v
                    }
                })
            }
            // Max over bools is "any" (opset 20); the empty set gives false.
            (Data::Bool(s), Buf::Bool(d)) if max => {
                accumulate(x.shape, (&sx, &so), s, d, false, |a, v| *a |= v)
            }
            (Data::I64(s), Buf::I64(d)) if max => {
                accumulate(x.shape, (&sx, &so), s, d, i64::MIN, |a, v| *a = (*a).max(v))
            }
            // Long sums accumulate in f64: in f32 a sum of ones stops growing at 2^24. Each
            // output sums its reduced values in a register (no buffer, runs allocate
            // nothing); short sums (FM's over a few fields, on every run) stay in f32.
            (Data::F32(s), Buf::F32(d)) if count >= WIDE_SUM => {
                let div = if self.kind == ReduceKind::Mean {
                    count as f64
                } else {
                    1.0
                };
                let mut rshape = [1usize; MAX_RANK];
                for i in 0..rank {
                    if red[i] {
                        rshape[i] = x.shape[i];
                    }
                }
                let dense = signed(&ost);
                let mut ok = d.len() == oshape[..rank].iter().product::<usize>();
                for_each2(&oshape[..rank], &sx, 0, &dense, 0, |_, base, io| {
                    let mut acc = 0f64;
                    for_each2(&rshape[..rank], &sx, base, &sx, 0, |_, ix, _| {
                        match s.get(ix as usize) {
                            Some(&v) => acc += f64::from(v),
                            None => ok = false,
                        }
                    });
                    match d.get_mut(io as usize) {
                        Some(o) => *o = (acc / div) as f32,
                        None => ok = false,
                    }
                });
                ok
            }
            (Data::F32(s), Buf::F32(d)) => {
                let ok = accumulate(x.shape, (&sx, &so), s, d, 0.0, |a, v| *a += v);
                if self.kind == ReduceKind::Mean && count > 0 {
                    let inv = count as f32;
                    d.iter_mut().for_each(|v| *v /= inv);
                }
                ok
            }
            (Data::I64(s), Buf::I64(d)) => {
                let mut overflow = false;
                let ok = accumulate(x.shape, (&sx, &so), s, d, 0, |a, v| {
                    match a.checked_add(v) {
                        Some(t) => *a = t,
                        None => overflow = true,
                    }
                });
                if overflow {
                    return Err(cx.err(format!("int64 sum out of range (beyond {})", i64::MAX)));
                }
                if self.kind == ReduceKind::Mean && count > 0 {
                    d.iter_mut().for_each(|v| *v /= count as i64);
                }
                ok
            }
            _ => false,
        };
        checked(ok, cx, "reduce")
    }
}

/// Reduced counts from which an f32 sum accumulates in f64.
const WIDE_SUM: usize = 1024;

/// Sets every output to `init`, then folds each input value into its output with `f`
/// (`strides`: the input's, then the output's over the input's index space).
fn accumulate<T: Copy>(
    shape: &[usize],
    (sx, so): (&[isize; MAX_RANK], &[isize; MAX_RANK]),
    s: &[T],
    d: &mut [T],
    init: T,
    mut f: impl FnMut(&mut T, T),
) -> bool {
    d.iter_mut().for_each(|v| *v = init);
    let mut ok = true;
    for_each2(shape, sx, 0, so, 0, |_, ix, io| {
        match (s.get(ix as usize), d.get_mut(io as usize)) {
            (Some(&v), Some(acc)) => f(acc, v),
            _ => ok = false,
        }
    });
    ok
}

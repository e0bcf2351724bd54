//! Op semantics: output shape/dtype inference (plan time) and evaluation (run time, and plan
//! time for constant folding). `eval` writes into preallocated buffers and does not allocate.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use half::f16;

use super::op::{BinOp, CmpOp, Op, ReduceKind, UnOp};
use super::strided::{
    broadcast_strides, for_each2, gather_strided, signed, strides_of, Dims, MAX_RANK,
};
use super::value::{numel, Buf, Data, View};
use crate::error::{Error, Result};
use crate::kernels::{BLayout, Kernels, MatMulDims};
use crate::math;
use crate::tensor::DType;

/// What the planner knows of an op input: dtype, shape, and the values when constant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub dtype: DType,
    pub shape: &'a [usize],
    pub value: Option<View<'a>>,
}

/// Names used in error messages of one node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeCtx<'a> {
    pub node: &'a str,
    pub op_type: &'a str,
    /// The model input the node's index/data operand derives from, for id errors.
    pub source: &'a str,
}

impl NodeCtx<'_> {
    pub(crate) fn err(&self, reason: String) -> Error {
        Error::InvalidNode {
            node: self.node.to_string(),
            op: self.op_type.to_string(),
            reason,
        }
    }
}

fn need<'a, 'b>(ins: &'b [Option<Meta<'a>>], i: usize, cx: &NodeCtx<'_>) -> Result<&'b Meta<'a>> {
    ins.get(i)
        .and_then(|m| m.as_ref())
        .ok_or_else(|| cx.err(format!("missing input #{i}")))
}

fn need_view<'a>(ins: &[Option<View<'a>>], i: usize, cx: &NodeCtx<'_>) -> Result<View<'a>> {
    ins.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| cx.err(format!("missing input #{i}")))
}

/// Normalizes an axis in `[-rank, rank)`.
pub(crate) fn norm_axis(axis: i64, rank: usize, cx: &NodeCtx<'_>) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) && !(r == 0 && a == 0) || (r > 0 && a >= r) {
        return Err(cx.err(format!("axis {axis} out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// Reads a constant integer tensor (axes, shapes, slice bounds).
fn const_ints(m: &Meta<'_>, what: &str, cx: &NodeCtx<'_>) -> Result<Vec<i64>> {
    match m.value.map(|v| v.data) {
        Some(Data::I64(v)) => Ok(v.to_vec()),
        Some(Data::I32(v)) => Ok(v.iter().map(|&x| x as i64).collect()),
        Some(_) => Err(cx.err(format!("{what} must be an integer tensor"))),
        None => Err(cx.err(format!(
            "{what} must be constant at plan time (it depends on run-time values)"
        ))),
    }
}

fn view_ints(v: &View<'_>, out: &mut [i64; MAX_RANK]) -> usize {
    let n = v.data.len().min(MAX_RANK);
    match v.data {
        Data::I64(s) => out[..n].copy_from_slice(&s[..n]),
        Data::I32(s) => {
            for i in 0..n {
                out[i] = s[i] as i64;
            }
        }
        _ => return 0,
    }
    n
}

/// NumPy broadcast of two shapes.
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize], cx: &NodeCtx<'_>) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(cx.err(format!("shapes {a:?} and {b:?} cannot be broadcast")));
        };
    }
    Ok(out)
}

struct SliceAxis {
    start: i64,
    step: i64,
    len: usize,
}

/// ONNX Slice parameters for one axis, with the spec's clamping.
fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> SliceAxis {
    let d = dim as i64;
    let (s, e);
    if step > 0 {
        let st = if start < 0 { start + d } else { start };
        let en = if end < 0 { end + d } else { end };
        s = st.clamp(0, d);
        e = en.clamp(0, d);
        let len = if e > s { (e - s + step - 1) / step } else { 0 };
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
        let len = if s > e {
            (s - e + (-step) - 1) / (-step)
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
    starts: &View<'_>,
    ends: &View<'_>,
    axes: Option<&View<'_>>,
    steps: Option<&View<'_>>,
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

/// Output dtypes and shapes of a node.
pub(crate) fn infer(
    op: &Op,
    ins: &[Option<Meta<'_>>],
    cx: &NodeCtx<'_>,
) -> Result<Vec<(DType, Vec<usize>)>> {
    let one = |d: DType, s: Vec<usize>| Ok(vec![(d, s)]);
    match op {
        Op::Gather { axis } => {
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
            let ax = norm_axis(*axis, data.shape.len(), cx)?;
            let mut s = data.shape[..ax].to_vec();
            s.extend_from_slice(idx.shape);
            s.extend_from_slice(&data.shape[ax + 1..]);
            one(data.dtype, s)
        }
        Op::MatMul => {
            let a = need(ins, 0, cx)?;
            let b = need(ins, 1, cx)?;
            if a.dtype != DType::F32 || b.dtype != DType::F32 {
                return Err(cx.err(format!(
                    "MatMul needs float inputs, got {} and {}",
                    a.dtype.name(),
                    b.dtype.name()
                )));
            }
            if a.shape.is_empty() || b.shape.is_empty() {
                return Err(cx.err("MatMul inputs must have rank >= 1".to_string()));
            }
            let (a2, b2) = (
                matmul_view_shape(a.shape, true),
                matmul_view_shape(b.shape, false),
            );
            let (ra, rb) = (a2.len(), b2.len());
            let (m, k) = (a2[ra - 2], a2[ra - 1]);
            let (k2, n) = (b2[rb - 2], b2[rb - 1]);
            if k != k2 {
                return Err(cx.err(format!(
                    "inner dimensions differ: {:?} x {:?}",
                    a.shape, b.shape
                )));
            }
            let mut s = broadcast_shapes(&a2[..ra - 2], &b2[..rb - 2], cx)?;
            if a.shape.len() > 1 {
                s.push(m);
            }
            if b.shape.len() > 1 {
                s.push(n);
            }
            one(DType::F32, s)
        }
        Op::Gemm {
            trans_a, trans_b, ..
        } => {
            let a = need(ins, 0, cx)?;
            let b = need(ins, 1, cx)?;
            if a.shape.len() != 2 || b.shape.len() != 2 {
                return Err(cx.err(format!(
                    "Gemm needs 2-D A and B, got {:?} and {:?}",
                    a.shape, b.shape
                )));
            }
            if a.dtype != DType::F32 || b.dtype != DType::F32 {
                return Err(cx.err("Gemm needs float inputs".to_string()));
            }
            let (m, k) = if *trans_a {
                (a.shape[1], a.shape[0])
            } else {
                (a.shape[0], a.shape[1])
            };
            let (k2, n) = if *trans_b {
                (b.shape[1], b.shape[0])
            } else {
                (b.shape[0], b.shape[1])
            };
            if k != k2 {
                return Err(cx.err(format!(
                    "inner dimensions differ: A {:?} B {:?}",
                    a.shape, b.shape
                )));
            }
            if let Some(Some(c)) = ins.get(2) {
                let bs = broadcast_shapes(&[m, n], c.shape, cx)?;
                if bs != [m, n] {
                    return Err(cx.err(format!("C {:?} does not broadcast to [{m}, {n}]", c.shape)));
                }
            }
            one(DType::F32, vec![m, n])
        }
        Op::Binary(bop) => {
            let a = need(ins, 0, cx)?;
            let b = need(ins, 1, cx)?;
            // Pow's exponent has its own numeric type (ONNX T1); the result has the base's.
            let mixed_pow = *bop == BinOp::Pow
                && matches!(
                    (a.dtype, b.dtype),
                    (DType::F32, DType::I64 | DType::I32) | (DType::I64 | DType::I32, DType::F32)
                );
            if (a.dtype != b.dtype && !mixed_pow) || a.dtype == DType::Bool {
                return Err(cx.err(format!(
                    "operands must have one numeric dtype, got {} and {}",
                    a.dtype.name(),
                    b.dtype.name()
                )));
            }
            one(a.dtype, broadcast_shapes(a.shape, b.shape, cx)?)
        }
        Op::Compare(_) => {
            let a = need(ins, 0, cx)?;
            let b = need(ins, 1, cx)?;
            if a.dtype != b.dtype {
                return Err(cx.err(format!(
                    "operands differ in dtype: {} and {}",
                    a.dtype.name(),
                    b.dtype.name()
                )));
            }
            one(DType::Bool, broadcast_shapes(a.shape, b.shape, cx)?)
        }
        Op::Unary(u) => {
            let x = need(ins, 0, cx)?;
            let ok = x.dtype == DType::F32
                || (matches!(u, UnOp::Neg | UnOp::Abs | UnOp::Relu) && x.dtype == DType::I64);
            if !ok {
                return Err(cx.err(format!("unsupported input dtype {}", x.dtype.name())));
            }
            one(x.dtype, x.shape.to_vec())
        }
        Op::Concat { axis } => {
            let first = need(ins, 0, cx)?;
            let ax = norm_axis(*axis, first.shape.len(), cx)?;
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
                s[ax] += m.shape[ax];
            }
            one(first.dtype, s)
        }
        Op::Reshape { allowzero } => {
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
                    0 if !*allowzero => s.push(*x.shape.get(i).ok_or_else(|| {
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
            one(x.dtype, s)
        }
        Op::Flatten { axis } => {
            let x = need(ins, 0, cx)?;
            let r = x.shape.len() as i64;
            let a = if *axis < 0 { axis + r } else { *axis };
            if a < 0 || a > r {
                return Err(cx.err(format!("axis {axis} out of range for rank {r}")));
            }
            let a = a as usize;
            one(x.dtype, vec![numel(&x.shape[..a]), numel(&x.shape[a..])])
        }
        Op::Unsqueeze { axes } => {
            let x = need(ins, 0, cx)?;
            let axes = match axes {
                Some(a) => a.clone(),
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
            one(x.dtype, s)
        }
        Op::Squeeze { axes } => {
            let x = need(ins, 0, cx)?;
            let axes = match (axes, ins.get(1).and_then(|m| m.as_ref())) {
                (Some(a), _) => Some(a.clone()),
                (None, Some(m)) => Some(const_ints(m, "axes", cx)?),
                (None, None) => None,
            };
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
            one(x.dtype, s)
        }
        Op::Transpose { perm } => {
            let x = need(ins, 0, cx)?;
            let p = transpose_perm(perm.as_deref(), x.shape.len(), cx)?;
            one(x.dtype, p.iter().map(|&i| x.shape[i]).collect())
        }
        Op::Reduce {
            kind,
            axes,
            keepdims,
            noop_with_empty_axes,
        } => {
            let x = need(ins, 0, cx)?;
            let ok = matches!(x.dtype, DType::F32 | DType::I64)
                || (*kind == ReduceKind::Max && x.dtype == DType::Bool);
            if !ok {
                return Err(cx.err(format!("unsupported input dtype {}", x.dtype.name())));
            }
            let red = reduce_mask(
                x.shape.len(),
                axes.as_deref(),
                ins.get(1).and_then(|m| m.as_ref()),
                *noop_with_empty_axes,
                cx,
            )?;
            let mut s = Vec::new();
            for (i, &d) in x.shape.iter().enumerate() {
                if !red[i] {
                    s.push(d);
                } else if *keepdims {
                    s.push(1);
                }
            }
            one(x.dtype, s)
        }
        Op::Cast { to } => {
            let x = need(ins, 0, cx)?;
            // f16 is a storage format: values cast to FLOAT16 stay f32 rounded to f16 precision.
            let d = if *to == DType::F16 { DType::F32 } else { *to };
            one(d, x.shape.to_vec())
        }
        Op::Identity => {
            let x = need(ins, 0, cx)?;
            one(x.dtype, x.shape.to_vec())
        }
        Op::Constant { value } => one(logical(value.dtype), value.shape.clone()),
        Op::Shape { start, end } => {
            let x = need(ins, 0, cx)?;
            let (s, e) = shape_range(x.shape.len(), *start, *end);
            one(DType::I64, vec![e.saturating_sub(s)])
        }
        Op::Slice => {
            let x = need(ins, 0, cx)?;
            if x.shape.len() > MAX_RANK {
                return Err(cx.err(format!("rank {} above {MAX_RANK}", x.shape.len())));
            }
            let v = |i: usize| -> Result<Option<View<'_>>> {
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
            slice_params(x.shape, &st, &en, ax.as_ref(), sp.as_ref(), &mut p)
                .map_err(|r| cx.err(r))?;
            one(x.dtype, p[..x.shape.len()].iter().map(|t| t.2).collect())
        }
        Op::ConstantOfShape { value } => {
            let s = const_ints(need(ins, 0, cx)?, "the shape input", cx)?;
            let mut shape = Vec::with_capacity(s.len());
            for d in s {
                shape.push(
                    usize::try_from(d).map_err(|_| cx.err(format!("negative dimension {d}")))?,
                );
            }
            one(logical(value.dtype), shape)
        }
        Op::Softmax { axis } => {
            let x = need(ins, 0, cx)?;
            if x.dtype != DType::F32 {
                return Err(cx.err("Softmax needs a float input".to_string()));
            }
            norm_axis(*axis, x.shape.len(), cx)?;
            one(DType::F32, x.shape.to_vec())
        }
        Op::Einsum { equation } => {
            let metas: Vec<&Meta<'_>> = ins.iter().flatten().collect();
            let shapes: Vec<&[usize]> = metas.iter().map(|m| m.shape).collect();
            if metas.iter().any(|m| m.dtype != DType::F32) {
                return Err(cx.err("Einsum needs float inputs".to_string()));
            }
            let e = parse_einsum(equation, &shapes).map_err(|r| cx.err(r))?;
            one(DType::F32, e.out_shape())
        }
        Op::BatchNorm { .. } => {
            let x = need(ins, 0, cx)?;
            if x.shape.len() < 2 || x.dtype != DType::F32 {
                return Err(cx.err(format!("X must be float of rank >= 2, got {:?}", x.shape)));
            }
            for i in 1..5 {
                let p = need(ins, i, cx)?;
                if numel(p.shape) != x.shape[1] {
                    return Err(cx.err(format!(
                        "parameter #{i} has shape {:?}, expected [{}]",
                        p.shape, x.shape[1]
                    )));
                }
            }
            one(DType::F32, x.shape.to_vec())
        }
        Op::Clip { .. } => {
            let x = need(ins, 0, cx)?;
            if x.dtype != DType::F32 {
                return Err(cx.err("Clip supports float input".to_string()));
            }
            for i in 1..3 {
                if let Some(Some(m)) = ins.get(i) {
                    if numel(m.shape) != 1 {
                        return Err(cx.err(format!("min/max must be scalars, got {:?}", m.shape)));
                    }
                }
            }
            one(DType::F32, x.shape.to_vec())
        }
        Op::Conv {
            strides,
            pads,
            dilations,
            group,
        } => {
            let x = need(ins, 0, cx)?;
            let w = need(ins, 1, cx)?;
            let p = conv_params(
                x.shape,
                w.shape,
                strides.as_deref(),
                pads.as_deref(),
                dilations.as_deref(),
                *group,
            )
            .map_err(|r| cx.err(r))?;
            if let Some(Some(b)) = ins.get(2) {
                if numel(b.shape) != p.m {
                    return Err(cx.err(format!("bias has shape {:?}, expected [{}]", b.shape, p.m)));
                }
            }
            let mut s = vec![x.shape[0], p.m];
            s.extend_from_slice(&p.out[..p.nd]);
            one(DType::F32, s)
        }
        Op::SplitPart {
            axis,
            part,
            count,
            sizes,
        } => {
            let x = need(ins, 0, cx)?;
            let ax = norm_axis(*axis, x.shape.len(), cx)?;
            let sizes = match (sizes, ins.get(1).and_then(|m| m.as_ref())) {
                (Some(s), _) => Some(s.clone()),
                (None, Some(m)) => Some(const_ints(m, "split", cx)?),
                (None, None) => None,
            };
            let get = |i: usize| sizes.as_ref().map(|s| s[i]).unwrap_or(0);
            let given = sizes
                .as_ref()
                .map(|s| (s.len(), &get as &dyn Fn(usize) -> i64));
            let (_, len) = split_range(x.shape[ax], *part, *count, given).map_err(|r| cx.err(r))?;
            let mut s = x.shape.to_vec();
            s[ax] = len;
            one(x.dtype, s)
        }
        Op::Expand => {
            let x = need(ins, 0, cx)?;
            let target = const_ints(need(ins, 1, cx)?, "the shape input", cx)?;
            let mut t = Vec::with_capacity(target.len());
            for d in &target {
                t.push(
                    usize::try_from(*d).map_err(|_| cx.err(format!("invalid shape {target:?}")))?,
                );
            }
            if t.len() > MAX_RANK {
                return Err(cx.err(format!("shape rank {} above {MAX_RANK}", t.len())));
            }
            one(x.dtype, broadcast_shapes(x.shape, &t, cx)?)
        }
        Op::Where => {
            let c = need(ins, 0, cx)?;
            let x = need(ins, 1, cx)?;
            let y = need(ins, 2, cx)?;
            if c.dtype != DType::Bool {
                return Err(cx.err(format!("condition must be bool, got {}", c.dtype.name())));
            }
            if x.dtype != y.dtype {
                return Err(cx.err(format!(
                    "X and Y differ in dtype: {} and {}",
                    x.dtype.name(),
                    y.dtype.name()
                )));
            }
            let xy = broadcast_shapes(x.shape, y.shape, cx)?;
            one(x.dtype, broadcast_shapes(c.shape, &xy, cx)?)
        }
        Op::Tile => {
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
                let r = usize::try_from(r)
                    .map_err(|_| cx.err(format!("negative repeat in {reps:?}")))?;
                s.push(
                    d.checked_mul(r)
                        .ok_or_else(|| cx.err("shape overflow".to_string()))?,
                );
            }
            one(x.dtype, s)
        }
        Op::LayerNorm { axis, .. } => {
            let x = need(ins, 0, cx)?;
            if x.dtype != DType::F32 {
                return Err(cx.err(format!("X must be float, got {}", x.dtype.name())));
            }
            let ax = norm_axis(*axis, x.shape.len(), cx)?;
            let norm = &x.shape[ax..];
            for (i, what) in [(1, "Scale"), (2, "B")] {
                let Some(Some(p)) = ins.get(i) else {
                    if i == 1 {
                        return Err(cx.err("missing input Scale".to_string()));
                    }
                    continue;
                };
                let ok = p.dtype == DType::F32
                    && p.shape.len() <= norm.len()
                    && broadcast_shapes(p.shape, norm, cx).is_ok_and(|b| b == norm);
                if !ok {
                    return Err(cx.err(format!(
                        "{what} {:?} does not broadcast to the normalized shape {norm:?}",
                        p.shape
                    )));
                }
            }
            one(DType::F32, x.shape.to_vec())
        }
        Op::If { .. } => Err(cx.err("internal: If is expanded by the planner".to_string())),
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
            let total: i64 = (0..n).map(get).sum();
            if n != count || (0..n).any(|i| get(i) < 0) || total != dim as i64 {
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

/// f16 values compute as f32.
pub(crate) fn logical(d: DType) -> DType {
    if d == DType::F16 {
        DType::F32
    } else {
        d
    }
}

fn shape_range(rank: usize, start: i64, end: Option<i64>) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(start);
    // start > end gives an empty shape (ONNX), not a reversed range.
    (start, clamp(end.unwrap_or(r)).max(start))
}

fn matmul_view_shape(s: &[usize], is_a: bool) -> Vec<usize> {
    if s.len() == 1 {
        if is_a {
            vec![1, s[0]]
        } else {
            vec![s[0], 1]
        }
    } else {
        s.to_vec()
    }
}

fn transpose_perm(perm: Option<&[i64]>, rank: usize, cx: &NodeCtx<'_>) -> Result<Vec<usize>> {
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

fn reduce_mask(
    rank: usize,
    attr: Option<&[i64]>,
    input: Option<&Meta<'_>>,
    noop: bool,
    cx: &NodeCtx<'_>,
) -> Result<Vec<bool>> {
    let axes = match (attr, input) {
        (Some(a), _) => a.to_vec(),
        (None, Some(m)) => const_ints(m, "axes", cx)?,
        (None, None) => Vec::new(),
    };
    if axes.is_empty() {
        return Ok(vec![!noop; rank]);
    }
    let mut red = vec![false; rank];
    for a in axes {
        red[norm_axis(a, rank, cx)?] = true;
    }
    Ok(red)
}

/// Evaluates a node into `out` (preallocated with `out_shape`'s element count and the inferred
/// dtype).
pub(crate) fn eval(
    op: &Op,
    k: &Kernels,
    ins: &[Option<View<'_>>],
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    match op {
        Op::Gather { axis } => gather(
            *axis,
            need_view(ins, 0, cx)?,
            need_view(ins, 1, cx)?,
            out,
            cx,
        ),
        Op::MatMul => matmul(
            k,
            need_view(ins, 0, cx)?,
            need_view(ins, 1, cx)?,
            out,
            out_shape,
            cx,
        ),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => gemm(
            k,
            (*alpha, *beta, *trans_a, *trans_b),
            ins,
            out,
            out_shape,
            cx,
        ),
        Op::Binary(b) => binary(
            k,
            *b,
            need_view(ins, 0, cx)?,
            need_view(ins, 1, cx)?,
            out,
            out_shape,
            cx,
        ),
        Op::Compare(c) => compare(
            *c,
            need_view(ins, 0, cx)?,
            need_view(ins, 1, cx)?,
            out,
            out_shape,
            cx,
        ),
        Op::Unary(u) => unary(k, *u, need_view(ins, 0, cx)?, out, cx),
        Op::Concat { axis } => concat(*axis, ins, out, out_shape, cx),
        Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Unsqueeze { .. }
        | Op::Squeeze { .. }
        | Op::Identity => copy_into(need_view(ins, 0, cx)?.data, out, cx),
        Op::Transpose { perm } => transpose(perm.as_deref(), need_view(ins, 0, cx)?, out, cx),
        Op::Reduce {
            kind,
            axes,
            noop_with_empty_axes,
            ..
        } => reduce(*kind, axes.as_deref(), *noop_with_empty_axes, ins, out, cx),
        Op::Cast { to } => cast(*to, need_view(ins, 0, cx)?, out, cx),
        Op::Constant { value } => {
            let _ = value;
            Err(cx.err("Constant is folded at load".to_string()))
        }
        Op::Shape { start, end } => {
            let x = need_view(ins, 0, cx)?;
            let (s, e) = shape_range(x.shape.len(), *start, *end);
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
        Op::Slice => slice(ins, out, cx),
        Op::ConstantOfShape { value } => {
            let _ = value;
            Err(cx.err("internal: ConstantOfShape is evaluated by the planner".to_string()))
        }
        Op::Softmax { axis } => softmax(*axis, need_view(ins, 0, cx)?, out, cx),
        Op::Einsum { equation } => einsum(k, equation, ins, out, cx),
        Op::BatchNorm { epsilon } => batch_norm(*epsilon, ins, out, cx),
        Op::Clip { min, max } => {
            let x = need_view(ins, 0, cx)?;
            let bound = |i: usize, attr: Option<f32>| -> Option<f32> {
                match ins.get(i).copied().flatten() {
                    Some(v) => float_at(v.data, 0),
                    None => attr,
                }
            };
            let (lo, hi) = (
                bound(1, *min).unwrap_or(f32::NEG_INFINITY),
                bound(2, *max).unwrap_or(f32::INFINITY),
            );
            match (x.data, out) {
                (Data::F32(s), Buf::F32(d)) if s.len() == d.len() => {
                    // ONNX: min(max(x, lo), hi), so lo > hi gives hi everywhere; NaN stays NaN.
                    d.iter_mut().zip(s).for_each(|(d, &v)| {
                        let v = if v < lo { lo } else { v };
                        *d = if v > hi { hi } else { v };
                    });
                    Ok(())
                }
                _ => Err(internal(cx, "Clip")),
            }
        }
        Op::Conv {
            strides,
            pads,
            dilations,
            group,
        } => conv(
            k,
            ins,
            (
                strides.as_deref(),
                pads.as_deref(),
                dilations.as_deref(),
                *group,
            ),
            out,
            cx,
        ),
        Op::SplitPart {
            axis,
            part,
            count,
            sizes,
        } => {
            let x = need_view(ins, 0, cx)?;
            let ax = norm_axis(*axis, x.shape.len(), cx)?;
            let from_input = ins.get(1).copied().flatten();
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
                split_range(x.shape[ax], *part, *count, given).map_err(|r| cx.err(r))?;
            let own = strides_of(x.shape);
            let mut st = signed(&own);
            let mut shape = [0usize; MAX_RANK];
            shape[..x.shape.len()].copy_from_slice(x.shape);
            shape[ax] = len;
            let offset = (start * own[ax]) as isize;
            let sh = &shape[..x.shape.len()];
            st[x.shape.len()..].iter_mut().for_each(|v| *v = 0);
            let ok = match (x.data, out) {
                (Data::F32(s), Buf::F32(d)) => gather_strided(s, offset, &st, sh, d),
                (Data::I64(s), Buf::I64(d)) => gather_strided(s, offset, &st, sh, d),
                (Data::I32(s), Buf::I32(d)) => gather_strided(s, offset, &st, sh, d),
                (Data::Bool(s), Buf::Bool(d)) => gather_strided(s, offset, &st, sh, d),
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                Err(internal(cx, "Split"))
            }
        }
        Op::Expand => expand(need_view(ins, 0, cx)?, out, out_shape, cx),
        Op::Where => where_(ins, out, out_shape, cx),
        Op::Tile => tile(need_view(ins, 0, cx)?, out, out_shape, cx),
        Op::LayerNorm { axis, epsilon } => layer_norm(*axis, *epsilon, ins, out, cx),
        Op::If { .. } => Err(cx.err("internal: If is expanded by the planner".to_string())),
    }
}

/// `out` = `x` broadcast to `out_shape`.
fn expand(x: View<'_>, out: &mut Buf, out_shape: &[usize], cx: &NodeCtx<'_>) -> Result<()> {
    if out.len() != numel(out_shape) || x.shape.len() > out_shape.len() {
        return Err(internal(cx, "Expand"));
    }
    let st = signed(&broadcast_strides(x.shape, out_shape.len()));
    let ok = match (x.data, out) {
        (Data::F32(s), Buf::F32(d)) => gather_strided(s, 0, &st, out_shape, d),
        (Data::I64(s), Buf::I64(d)) => gather_strided(s, 0, &st, out_shape, d),
        (Data::I32(s), Buf::I32(d)) => gather_strided(s, 0, &st, out_shape, d),
        (Data::Bool(s), Buf::Bool(d)) => gather_strided(s, 0, &st, out_shape, d),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "Expand"))
    }
}

/// Where: `out` gets Y broadcast, then X wherever the broadcast condition holds.
fn where_(
    ins: &[Option<View<'_>>],
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let c = need_view(ins, 0, cx)?;
    let x = need_view(ins, 1, cx)?;
    let y = need_view(ins, 2, cx)?;
    let Data::Bool(cond) = c.data else {
        return Err(internal(cx, "Where"));
    };
    let r = out_shape.len();
    if out.len() != numel(out_shape) || [c.shape, x.shape, y.shape].iter().any(|s| s.len() > r) {
        return Err(internal(cx, "Where"));
    }
    let sy = signed(&broadcast_strides(y.shape, r));
    let (sc, sx) = bstrides(c.shape, x.shape, out_shape);
    fn pick<T: Copy>(
        cond: &[bool],
        x: &[T],
        y: &[T],
        d: &mut [T],
        shape: &[usize],
        strides: [&[isize; MAX_RANK]; 3],
    ) -> bool {
        if !gather_strided(y, 0, strides[2], shape, d) {
            return false;
        }
        let mut ok = true;
        for_each2(shape, strides[0], 0, strides[1], 0, |o, ic, ix| {
            match (cond.get(ic as usize), x.get(ix as usize), d.get_mut(o)) {
                (Some(&true), Some(&v), Some(slot)) => *slot = v,
                (Some(_), Some(_), Some(_)) => {}
                _ => ok = false,
            }
        });
        ok
    }
    let st = [&sc, &sx, &sy];
    let ok = match (x.data, y.data, out) {
        (Data::F32(a), Data::F32(b), Buf::F32(d)) => pick(cond, a, b, d, out_shape, st),
        (Data::I64(a), Data::I64(b), Buf::I64(d)) => pick(cond, a, b, d, out_shape, st),
        (Data::I32(a), Data::I32(b), Buf::I32(d)) => pick(cond, a, b, d, out_shape, st),
        (Data::Bool(a), Data::Bool(b), Buf::Bool(d)) => pick(cond, a, b, d, out_shape, st),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "Where"))
    }
}

/// Tile: output index `i` along each dim reads input index `i % dim`.
fn tile(x: View<'_>, out: &mut Buf, out_shape: &[usize], cx: &NodeCtx<'_>) -> Result<()> {
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
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "Tile"))
    }
}

/// LayerNormalization over the dims from `axis` on; mean and variance accumulate in f64.
fn layer_norm(
    axis: i64,
    eps: f32,
    ins: &[Option<View<'_>>],
    out: &mut Buf,
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let x = need_view(ins, 0, cx)?;
    let scale = need_view(ins, 1, cx)?;
    let bias = ins.get(2).copied().flatten();
    let (Data::F32(s), Buf::F32(d)) = (x.data, out) else {
        return Err(internal(cx, "LayerNormalization"));
    };
    let ax = norm_axis(axis, x.shape.len(), cx)?;
    let norm = &x.shape[ax..];
    let inner = numel(norm);
    if s.len() != d.len() || inner == 0 {
        return if s.len() == d.len() {
            Ok(())
        } else {
            Err(internal(cx, "LayerNormalization"))
        };
    }
    let ss = signed(&broadcast_strides(scale.shape, norm.len()));
    let sb = match bias {
        Some(b) => signed(&broadcast_strides(b.shape, norm.len())),
        None => [0isize; MAX_RANK],
    };
    let mut ok = true;
    for (src, dst) in s.chunks_exact(inner).zip(d.chunks_exact_mut(inner)) {
        let mean = src.iter().map(|&v| v as f64).sum::<f64>() / inner as f64;
        let var = src
            .iter()
            .map(|&v| {
                let c = v as f64 - mean;
                c * c
            })
            .sum::<f64>()
            / inner as f64;
        let inv = 1.0 / math::sqrt((var + eps as f64) as f32) as f64;
        for_each2(norm, &ss, 0, &sb, 0, |o, is, ib| {
            let g = float_at(scale.data, is);
            let b = match bias {
                Some(b) => float_at(b.data, ib),
                None => Some(0.0),
            };
            match (g, b, src.get(o), dst.get_mut(o)) {
                (Some(g), Some(b), Some(&v), Some(slot)) => {
                    *slot = ((v as f64 - mean) * inv * g as f64 + b as f64) as f32
                }
                _ => ok = false,
            }
        });
    }
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "LayerNormalization"))
    }
}

fn internal(cx: &NodeCtx<'_>, what: &str) -> Error {
    cx.err(format!("internal: inconsistent buffers in {what}"))
}

fn copy_into(src: Data<'_>, out: &mut Buf, cx: &NodeCtx<'_>) -> Result<()> {
    match (src, out) {
        (Data::F32(s), Buf::F32(o)) if s.len() == o.len() => o.copy_from_slice(s),
        (Data::F16(s), Buf::F32(o)) if s.len() == o.len() => {
            for (d, v) in o.iter_mut().zip(s) {
                *d = v.to_f32();
            }
        }
        (Data::I64(s), Buf::I64(o)) if s.len() == o.len() => o.copy_from_slice(s),
        (Data::I32(s), Buf::I32(o)) if s.len() == o.len() => o.copy_from_slice(s),
        (Data::Bool(s), Buf::Bool(o)) if s.len() == o.len() => o.copy_from_slice(s),
        _ => return Err(internal(cx, "copy")),
    }
    Ok(())
}

fn gather(axis: i64, data: View<'_>, idx: View<'_>, out: &mut Buf, cx: &NodeCtx<'_>) -> Result<()> {
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
    idx: Data<'_>,
    j: usize,
    rows: usize,
    per_row: usize,
    cx: &NodeCtx<'_>,
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

/// One matrix product through the kernel table, f32 or f16 weights.
#[allow(clippy::too_many_arguments)]
fn kernel_matmul(
    k: &Kernels,
    dims: MatMulDims,
    a: &[f32],
    b: Data<'_>,
    layout: BLayout,
    c: &mut [f32],
    acc: bool,
    cx: &NodeCtx<'_>,
) -> Result<()> {
    match b {
        Data::F32(b) => (k.matmul_f32)(dims, a, b, layout, c, acc),
        Data::F16(b) => (k.matmul_f16)(dims, a, b, layout, c, acc),
        _ => return Err(internal(cx, "MatMul weights")),
    }
    Ok(())
}

fn data_slice<'a>(d: Data<'a>, start: usize, len: usize) -> Option<Data<'a>> {
    Some(match d {
        Data::F32(v) => Data::F32(v.get(start..start + len)?),
        Data::F16(v) => Data::F16(v.get(start..start + len)?),
        Data::I64(v) => Data::I64(v.get(start..start + len)?),
        Data::I32(v) => Data::I32(v.get(start..start + len)?),
        Data::Bool(v) => Data::Bool(v.get(start..start + len)?),
    })
}

fn matmul(
    k: &Kernels,
    a: View<'_>,
    b: View<'_>,
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let Buf::F32(c) = out else {
        return Err(internal(cx, "MatMul"));
    };
    let Some(av) = a.f32() else {
        return Err(cx.err("A must be f32".to_string()));
    };
    // Treat 1-D operands as matrices (NumPy rules).
    // 1-D operands as matrices, on the stack (no allocation at run time).
    let a_sh = match a.shape {
        [k] => Dims::from(&[1, *k]),
        s => Dims::from(s),
    };
    let b_sh = match b.shape {
        [k] => Dims::from(&[*k, 1]),
        s => Dims::from(s),
    };
    let (ra, rb) = (a_sh.n, b_sh.n);
    let (m, kk, n) = (a_sh.d[ra - 2], a_sh.d[ra - 1], b_sh.d[rb - 1]);
    let dims = MatMulDims { m, k: kk, n };
    let (sa, sb) = (m * kk, kk * n);
    let batch_a = &a_sh.d[..ra - 2];
    let batch_b = &b_sh.d[..rb - 2];
    if batch_a.is_empty() && batch_b.is_empty() {
        if c.len() != m * n {
            return Err(internal(cx, "MatMul"));
        }
        return kernel_matmul(k, dims, av, b.data, BLayout::KxN, c, false, cx);
    }
    // Batched: iterate the broadcast batch index.
    let br = batch_a.len().max(batch_b.len());
    let mut bshape = [1usize; MAX_RANK];
    let bs = &mut bshape[..br];
    for i in 0..br {
        let da = if i + batch_a.len() >= br {
            batch_a[i + batch_a.len() - br]
        } else {
            1
        };
        let db = if i + batch_b.len() >= br {
            batch_b[i + batch_b.len() - br]
        } else {
            1
        };
        bs[i] = da.max(db);
    }
    let ssa = signed(&broadcast_strides(batch_a, br));
    let ssb = signed(&broadcast_strides(batch_b, br));
    let _ = out_shape;
    let mut result = Ok(());
    let mut chunks = c.chunks_mut(m * n);
    for_each2(bs, &ssa, 0, &ssb, 0, |_, ia, ib| {
        if result.is_err() {
            return;
        }
        let (ia, ib) = (ia as usize * sa, ib as usize * sb);
        let (Some(ablk), Some(bblk), Some(cblk)) = (
            av.get(ia..ia + sa),
            data_slice(b.data, ib, sb),
            chunks.next(),
        ) else {
            result = Err(internal(cx, "MatMul batch"));
            return;
        };
        result = kernel_matmul(k, dims, ablk, bblk, BLayout::KxN, cblk, false, cx);
    });
    result
}

fn gemm(
    k: &Kernels,
    (alpha, beta, trans_a, trans_b): (f32, f32, bool, bool),
    ins: &[Option<View<'_>>],
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let a = need_view(ins, 0, cx)?;
    let b = need_view(ins, 1, cx)?;
    let Buf::F32(c) = out else {
        return Err(internal(cx, "Gemm"));
    };
    let Some(av) = a.f32() else {
        return Err(cx.err("A must be f32".to_string()));
    };
    let (m, n) = (out_shape[0], out_shape[1]);
    let kk = if trans_a { a.shape[0] } else { a.shape[1] };
    if c.len() != m * n {
        return Err(internal(cx, "Gemm"));
    }
    let bias = ins.get(2).copied().flatten().filter(|_| beta != 0.0);
    // Common case (PyTorch Linear): C = A B^T + bias, the bias written first and the product
    // accumulated onto it by the kernel.
    let bias_first = alpha == 1.0 && bias.is_some();
    if let (true, Some(bias)) = (bias_first, bias) {
        fill_broadcast(c, out_shape, bias, beta, cx)?;
    }
    if trans_a {
        // Rare in exported models: a plain loop, A stored k x m.
        let bf = |p: usize, j: usize| -> f32 {
            let i = if trans_b { j * kk + p } else { p * n + j };
            match b.data {
                Data::F32(v) => v.get(i).copied().unwrap_or(0.0),
                Data::F16(v) => v.get(i).map(|x| x.to_f32()).unwrap_or(0.0),
                _ => 0.0,
            }
        };
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f32;
                for p in 0..kk {
                    s += av.get(p * m + i).copied().unwrap_or(0.0) * bf(p, j);
                }
                c[i * n + j] = if bias_first { c[i * n + j] + s } else { s };
            }
        }
    } else {
        let layout = if trans_b { BLayout::NxK } else { BLayout::KxN };
        kernel_matmul(
            k,
            MatMulDims { m, k: kk, n },
            av,
            b.data,
            layout,
            c,
            bias_first,
            cx,
        )?;
    }
    if !bias_first {
        if alpha != 1.0 {
            c.iter_mut().for_each(|v| *v *= alpha);
        }
        if let Some(bias) = bias {
            let r = out_shape.len();
            let sc = signed(&strides_of(out_shape));
            let sb = signed(&broadcast_strides(bias.shape, r));
            let mut ok = true;
            for_each2(out_shape, &sc, 0, &sb, 0, |o, _, ib| {
                match (c.get_mut(o), float_at(bias.data, ib)) {
                    (Some(d), Some(v)) => *d += beta * v,
                    _ => ok = false,
                }
            });
            if !ok {
                return Err(internal(cx, "Gemm bias"));
            }
        }
    }
    Ok(())
}

fn float_at(d: Data<'_>, i: isize) -> Option<f32> {
    let i = usize::try_from(i).ok()?;
    match d {
        Data::F32(v) => v.get(i).copied(),
        Data::F16(v) => v.get(i).map(|x| x.to_f32()),
        _ => None,
    }
}

/// `c = scale * src` with `src` broadcast to `shape`.
fn fill_broadcast(
    c: &mut [f32],
    shape: &[usize],
    src: View<'_>,
    scale: f32,
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let n = *shape.last().unwrap_or(&1);
    if let (Data::F32(v), true) = (src.data, scale == 1.0 && numel(src.shape) == n && n > 0) {
        for row in c.chunks_exact_mut(n) {
            row.copy_from_slice(v);
        }
        return Ok(());
    }
    let sc = signed(&strides_of(shape));
    let sb = signed(&broadcast_strides(src.shape, shape.len()));
    let mut ok = true;
    for_each2(shape, &sc, 0, &sb, 0, |o, _, ib| {
        match (c.get_mut(o), float_at(src.data, ib)) {
            (Some(d), Some(v)) => *d = scale * v,
            _ => ok = false,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "broadcast"))
    }
}

/// Broadcast strides of both operands for `out_shape`.
fn bstrides(
    a: &[usize],
    b: &[usize],
    out_shape: &[usize],
) -> ([isize; MAX_RANK], [isize; MAX_RANK]) {
    let r = out_shape.len();
    (
        signed(&broadcast_strides(a, r)),
        signed(&broadcast_strides(b, r)),
    )
}

fn binary(
    k: &Kernels,
    op: BinOp,
    a: View<'_>,
    b: View<'_>,
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    match (a.data, b.data, out) {
        (Data::F32(x), Data::F32(y), Buf::F32(o)) => {
            binary_f32(k, op, (x, a.shape), (y, b.shape), o, out_shape, cx)
        }
        (Data::I64(x), Data::I64(y), Buf::I64(o)) => {
            let f = |p: i64, q: i64| -> i64 {
                match op {
                    BinOp::Add => p.wrapping_add(q),
                    BinOp::Sub => p.wrapping_sub(q),
                    BinOp::Mul => p.wrapping_mul(q),
                    // Integer division by zero has no ONNX result; 0 keeps it total.
                    BinOp::Div => p.checked_div(q).unwrap_or(0),
                    BinOp::Pow => p.wrapping_pow(q.clamp(0, 63) as u32),
                }
            };
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        (Data::I32(x), Data::I32(y), Buf::I32(o)) => {
            let f = |p: i32, q: i32| -> i32 {
                match op {
                    BinOp::Add => p.wrapping_add(q),
                    BinOp::Sub => p.wrapping_sub(q),
                    BinOp::Mul => p.wrapping_mul(q),
                    BinOp::Div => p.checked_div(q).unwrap_or(0),
                    BinOp::Pow => p.wrapping_pow(q.clamp(0, 31) as u32),
                }
            };
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        // Pow with an integer exponent (checked at plan time: only Pow gets here).
        (Data::F32(x), Data::I64(y), Buf::F32(o)) => {
            generic_binary(x, a.shape, y, b.shape, o, out_shape, pow_f32_int, cx)
        }
        (Data::F32(x), Data::I32(y), Buf::F32(o)) => {
            let f = |p: f32, q: i32| pow_f32_int(p, i64::from(q));
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        // Integer base, float exponent: computed in float, truncated like NumPy's astype.
        (Data::I64(x), Data::F32(y), Buf::I64(o)) => {
            let f = |p: i64, q: f32| math::powf(p as f32, q) as i64;
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        (Data::I32(x), Data::F32(y), Buf::I32(o)) => {
            let f = |p: i32, q: f32| math::powf(p as f32, q) as i32;
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        _ => Err(internal(cx, "binary op dtypes")),
    }
}

/// `p` to an integer power, as f32 `powf` would give it.
fn pow_f32_int(p: f32, q: i64) -> f32 {
    match q {
        2 => p * p,
        // Exact for any exponent an f32 can represent; larger ones overflow or vanish anyway.
        _ => math::powf(p, q as f32),
    }
}

#[allow(clippy::too_many_arguments)]
fn generic_binary<T: Copy, V: Copy, U: Copy>(
    x: &[T],
    xs: &[usize],
    y: &[V],
    ys: &[usize],
    o: &mut [U],
    out_shape: &[usize],
    f: impl Fn(T, V) -> U,
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let (sa, sb) = bstrides(xs, ys, out_shape);
    let so = [0isize; MAX_RANK];
    let _ = so;
    let mut ok = o.len() == numel(out_shape);
    for_each2(out_shape, &sa, 0, &sb, 0, |i, ia, ib| {
        match (x.get(ia as usize), y.get(ib as usize), o.get_mut(i)) {
            (Some(&p), Some(&q), Some(d)) => *d = f(p, q),
            _ => ok = false,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "broadcast"))
    }
}

fn binary_f32(
    k: &Kernels,
    op: BinOp,
    (x, xs): (&[f32], &[usize]),
    (y, ys): (&[f32], &[usize]),
    o: &mut [f32],
    out_shape: &[usize],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let scalar = |p: f32, q: f32| -> f32 {
        match op {
            BinOp::Add => p + q,
            BinOp::Sub => p - q,
            BinOp::Mul => p * q,
            BinOp::Div => p / q,
            BinOp::Pow => {
                if q == 2.0 {
                    p * p
                } else {
                    math::powf(p, q)
                }
            }
        }
    };
    let vector = match op {
        BinOp::Add => Some(k.add),
        BinOp::Sub => Some(k.sub),
        BinOp::Mul => Some(k.mul),
        BinOp::Div => Some(k.div),
        BinOp::Pow => None,
    };
    let n = o.len();
    if let Some(vf) = vector {
        if x.len() == n && y.len() == n {
            vf(x, y, o);
            return Ok(());
        }
        // Row broadcast: y is one row repeated over x's leading dims.
        let row = y.len();
        if x.len() == n && row > 0 && n.is_multiple_of(row) && suffix_broadcast(ys, out_shape) {
            for (xo, oo) in x.chunks_exact(row).zip(o.chunks_exact_mut(row)) {
                vf(xo, y, oo);
            }
            return Ok(());
        }
        if x.len() == n && y.len() == 1 {
            let s = y[0];
            match op {
                BinOp::Add => (k.add_scalar)(x, s, o),
                BinOp::Sub => (k.add_scalar)(x, -s, o),
                BinOp::Mul => (k.mul_scalar)(x, s, o),
                _ => o.iter_mut().zip(x).for_each(|(d, &p)| *d = p / s),
            }
            return Ok(());
        }
    }
    generic_binary(x, xs, y, ys, o, out_shape, scalar, cx)
}

/// True when `small` broadcast to `out` is one contiguous row repeated: its dims, after
/// leading 1s, equal `out`'s trailing dims.
fn suffix_broadcast(small: &[usize], out: &[usize]) -> bool {
    let s: &[usize] = {
        let first = small.iter().position(|&d| d != 1).unwrap_or(small.len());
        &small[first..]
    };
    s.len() <= out.len() && out[out.len() - s.len()..] == *s
}

fn compare(
    op: CmpOp,
    a: View<'_>,
    b: View<'_>,
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let Buf::Bool(o) = out else {
        return Err(internal(cx, "compare"));
    };
    macro_rules! cmp {
        ($x:expr, $y:expr) => {
            generic_binary(
                $x,
                a.shape,
                $y,
                b.shape,
                o,
                out_shape,
                |p, q| match op {
                    CmpOp::Equal => p == q,
                    CmpOp::Less => p < q,
                    CmpOp::Greater => p > q,
                },
                cx,
            )
        };
    }
    match (a.data, b.data) {
        (Data::F32(x), Data::F32(y)) => cmp!(x, y),
        (Data::I64(x), Data::I64(y)) => cmp!(x, y),
        (Data::I32(x), Data::I32(y)) => cmp!(x, y),
        (Data::Bool(x), Data::Bool(y)) => cmp!(x, y),
        _ => Err(internal(cx, "compare dtypes")),
    }
}

fn unary(k: &Kernels, op: UnOp, x: View<'_>, out: &mut Buf, cx: &NodeCtx<'_>) -> Result<()> {
    match (x.data, out) {
        (Data::F32(s), Buf::F32(o)) if s.len() == o.len() => {
            match op {
                UnOp::Relu | UnOp::Sigmoid | UnOp::Tanh | UnOp::Exp => {
                    o.copy_from_slice(s);
                    let f = match op {
                        UnOp::Relu => k.relu,
                        UnOp::Sigmoid => k.sigmoid,
                        UnOp::Tanh => k.tanh,
                        _ => k.exp,
                    };
                    f(o);
                }
                UnOp::Log => o.iter_mut().zip(s).for_each(|(d, &v)| *d = math::ln(v)),
                UnOp::Sqrt => o.iter_mut().zip(s).for_each(|(d, &v)| *d = math::sqrt(v)),
                UnOp::Abs => o.iter_mut().zip(s).for_each(|(d, &v)| *d = v.abs()),
                UnOp::Neg => o.iter_mut().zip(s).for_each(|(d, &v)| *d = -v),
            }
            Ok(())
        }
        (Data::I64(s), Buf::I64(o)) if s.len() == o.len() => {
            for (d, &v) in o.iter_mut().zip(s) {
                *d = match op {
                    UnOp::Neg => v.wrapping_neg(),
                    UnOp::Abs => v.wrapping_abs(),
                    _ => v.max(0),
                };
            }
            Ok(())
        }
        _ => Err(internal(cx, "unary")),
    }
}

fn concat(
    axis: i64,
    ins: &[Option<View<'_>>],
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let ax = norm_axis(axis, out_shape.len(), cx)?;
    let outer = numel(&out_shape[..ax]);
    let inner = numel(&out_shape[ax + 1..]);
    let out_row = out_shape[ax] * inner;
    let mut col = 0usize;
    for v in ins {
        let v = v.ok_or_else(|| internal(cx, "Concat input"))?;
        let w = v.shape.get(ax).copied().unwrap_or(0) * inner;
        macro_rules! cp {
            ($s:expr, $d:expr, $conv:expr) => {{
                let (s, d) = ($s, $d);
                if s.len() != outer * w || d.len() != outer * out_row {
                    return Err(internal(cx, "Concat"));
                }
                for o in 0..outer {
                    let src = &s[o * w..(o + 1) * w];
                    let dst = &mut d[o * out_row + col..o * out_row + col + w];
                    for (dd, ss) in dst.iter_mut().zip(src) {
                        *dd = $conv(*ss);
                    }
                }
            }};
        }
        match (v.data, &mut *out) {
            (Data::F32(s), Buf::F32(d)) => cp!(s, d, |x: f32| x),
            (Data::F16(s), Buf::F32(d)) => cp!(s, d, |x: f16| x.to_f32()),
            (Data::I64(s), Buf::I64(d)) => cp!(s, d, |x: i64| x),
            (Data::I32(s), Buf::I32(d)) => cp!(s, d, |x: i32| x),
            (Data::Bool(s), Buf::Bool(d)) => cp!(s, d, |x: bool| x),
            _ => return Err(internal(cx, "Concat dtypes")),
        }
        col += w;
    }
    Ok(())
}

fn transpose(perm: Option<&[i64]>, x: View<'_>, out: &mut Buf, cx: &NodeCtx<'_>) -> Result<()> {
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
    let ok = match (x.data, out) {
        (Data::F32(s), Buf::F32(d)) => gather_strided(s, 0, &st, sh, d),
        (Data::I64(s), Buf::I64(d)) => gather_strided(s, 0, &st, sh, d),
        (Data::I32(s), Buf::I32(d)) => gather_strided(s, 0, &st, sh, d),
        (Data::Bool(s), Buf::Bool(d)) => gather_strided(s, 0, &st, sh, d),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "Transpose"))
    }
}

fn reduce(
    kind: ReduceKind,
    axes_attr: Option<&[i64]>,
    noop: bool,
    ins: &[Option<View<'_>>],
    out: &mut Buf,
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let x = need_view(ins, 0, cx)?;
    let rank = x.shape.len();
    let mut red = [false; MAX_RANK];
    let mut axes = [0i64; MAX_RANK];
    let n = match (axes_attr, ins.get(1).copied().flatten()) {
        (Some(a), _) => {
            let n = a.len().min(MAX_RANK);
            axes[..n].copy_from_slice(&a[..n]);
            n
        }
        (None, Some(v)) => view_ints(&v, &mut axes),
        (None, None) => 0,
    };
    if n == 0 {
        if noop {
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
    let mut ok = true;
    match (x.data, out) {
        (Data::F32(s), Buf::F32(d)) if kind == ReduceKind::Max => {
            d.iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
            for_each2(x.shape, &sx, 0, &so, 0, |_, ix, io| {
                match (s.get(ix as usize), d.get_mut(io as usize)) {
                    (Some(&v), Some(acc)) => {
                        if v > *acc || v.is_nan() {
                            *acc = v
                        }
                    }
                    _ => ok = false,
                }
            });
        }
        // Max over bools is "any" (opset 20); the empty set gives false.
        (Data::Bool(s), Buf::Bool(d)) if kind == ReduceKind::Max => {
            d.iter_mut().for_each(|v| *v = false);
            for_each2(x.shape, &sx, 0, &so, 0, |_, ix, io| {
                match (s.get(ix as usize), d.get_mut(io as usize)) {
                    (Some(&v), Some(acc)) => *acc |= v,
                    _ => ok = false,
                }
            });
        }
        (Data::I64(s), Buf::I64(d)) if kind == ReduceKind::Max => {
            d.iter_mut().for_each(|v| *v = i64::MIN);
            for_each2(x.shape, &sx, 0, &so, 0, |_, ix, io| {
                match (s.get(ix as usize), d.get_mut(io as usize)) {
                    (Some(&v), Some(acc)) => *acc = (*acc).max(v),
                    _ => ok = false,
                }
            });
        }
        (Data::F32(s), Buf::F32(d)) => {
            d.iter_mut().for_each(|v| *v = 0.0);
            for_each2(x.shape, &sx, 0, &so, 0, |_, ix, io| {
                match (s.get(ix as usize), d.get_mut(io as usize)) {
                    (Some(&v), Some(acc)) => *acc += v,
                    _ => ok = false,
                }
            });
            if kind == ReduceKind::Mean && count > 0 {
                let inv = count as f32;
                d.iter_mut().for_each(|v| *v /= inv);
            }
        }
        (Data::I64(s), Buf::I64(d)) => {
            d.iter_mut().for_each(|v| *v = 0);
            for_each2(x.shape, &sx, 0, &so, 0, |_, ix, io| {
                match (s.get(ix as usize), d.get_mut(io as usize)) {
                    (Some(&v), Some(acc)) => *acc = acc.wrapping_add(v),
                    _ => ok = false,
                }
            });
            if kind == ReduceKind::Mean && count > 0 {
                d.iter_mut().for_each(|v| *v /= count as i64);
            }
        }
        _ => ok = false,
    }
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "reduce"))
    }
}

fn cast(to: DType, x: View<'_>, out: &mut Buf, cx: &NodeCtx<'_>) -> Result<()> {
    // Float -> integer: NaN/inf or values outside the target range are an error (an id that
    // is not a number must not silently become row 0).
    fn f2i<T: TryFrom<i64>>(v: f32, pos: usize, cx: &NodeCtx<'_>) -> Result<T> {
        if !v.is_finite() || !(-9.2e18..9.2e18).contains(&v) {
            return Err(Error::NotFinite {
                input: cx.source.to_string(),
                position: pos,
            });
        }
        T::try_from(v as i64).map_err(|_| Error::NotFinite {
            input: cx.source.to_string(),
            position: pos,
        })
    }
    let n = x.data.len();
    if out.len() != n {
        return Err(internal(cx, "Cast"));
    }
    let round16 = |v: f32| {
        if to == DType::F16 {
            f16::from_f32(v).to_f32()
        } else {
            v
        }
    };
    match (x.data, out) {
        (Data::F32(s), Buf::F32(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = round16(v)),
        (Data::F16(s), Buf::F32(d)) => d.iter_mut().zip(s).for_each(|(d, v)| *d = v.to_f32()),
        (Data::F32(s), Buf::I64(d)) => {
            for (i, (d, &v)) in d.iter_mut().zip(s).enumerate() {
                *d = f2i(v, i, cx)?;
            }
        }
        (Data::F32(s), Buf::I32(d)) => {
            for (i, (d, &v)) in d.iter_mut().zip(s).enumerate() {
                *d = f2i(v, i, cx)?;
            }
        }
        (Data::F32(s), Buf::Bool(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v != 0.0),
        (Data::I64(s), Buf::F32(d)) => d
            .iter_mut()
            .zip(s)
            .for_each(|(d, &v)| *d = round16(v as f32)),
        (Data::I64(s), Buf::I64(d)) => d.copy_from_slice(s),
        (Data::I64(s), Buf::I32(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as i32),
        (Data::I64(s), Buf::Bool(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v != 0),
        (Data::I32(s), Buf::F32(d)) => d
            .iter_mut()
            .zip(s)
            .for_each(|(d, &v)| *d = round16(v as f32)),
        (Data::I32(s), Buf::I64(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as i64),
        (Data::I32(s), Buf::I32(d)) => d.copy_from_slice(s),
        (Data::I32(s), Buf::Bool(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v != 0),
        (Data::Bool(s), Buf::F32(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as u8 as f32),
        (Data::Bool(s), Buf::I64(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as i64),
        (Data::Bool(s), Buf::I32(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as i32),
        (Data::Bool(s), Buf::Bool(d)) => d.copy_from_slice(s),
        _ => return Err(internal(cx, "Cast dtypes")),
    }
    Ok(())
}

fn slice(ins: &[Option<View<'_>>], out: &mut Buf, cx: &NodeCtx<'_>) -> Result<()> {
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
    let ok = match (x.data, out) {
        (Data::F32(s), Buf::F32(d)) => gather_strided(s, offset, &strides, sh, d),
        (Data::I64(s), Buf::I64(d)) => gather_strided(s, offset, &strides, sh, d),
        (Data::I32(s), Buf::I32(d)) => gather_strided(s, offset, &strides, sh, d),
        (Data::Bool(s), Buf::Bool(d)) => gather_strided(s, offset, &strides, sh, d),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "Slice"))
    }
}

fn softmax(axis: i64, x: View<'_>, out: &mut Buf, cx: &NodeCtx<'_>) -> Result<()> {
    let ax = norm_axis(axis, x.shape.len(), cx)?;
    let (Data::F32(s), Buf::F32(d)) = (x.data, out) else {
        return Err(internal(cx, "Softmax"));
    };
    if s.len() != d.len() {
        return Err(internal(cx, "Softmax"));
    }
    let outer = numel(&x.shape[..ax]);
    let n = x.shape[ax];
    let inner = numel(&x.shape[ax + 1..]);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * n * inner + j * inner + i;
            let mut mx = f32::NEG_INFINITY;
            for j in 0..n {
                mx = mx.max(s[at(j)]);
            }
            let mut sum = 0f32;
            for j in 0..n {
                let e = math::exp(s[at(j)] - mx);
                d[at(j)] = e;
                sum += e;
            }
            for j in 0..n {
                d[at(j)] /= sum;
            }
        }
    }
    Ok(())
}

/// A parsed Einsum: per-letter sizes, each operand's letters, the output letters. Fixed-size
/// arrays: parsing at run time does not allocate.
struct EinsumSpec {
    sizes: [usize; 26],
    terms: [[u8; MAX_RANK]; 2],
    term_len: [usize; 2],
    nterms: usize,
    out: [u8; MAX_RANK],
    out_len: usize,
}

impl EinsumSpec {
    fn term(&self, i: usize) -> &[u8] {
        &self.terms[i][..self.term_len[i]]
    }

    fn out(&self) -> &[u8] {
        &self.out[..self.out_len]
    }

    fn out_shape(&self) -> Vec<usize> {
        self.out().iter().map(|&c| self.sizes[c as usize]).collect()
    }
}

fn letters_of(t: &str, eq: &str, dst: &mut [u8; MAX_RANK]) -> core::result::Result<usize, String> {
    if t.len() > MAX_RANK {
        return Err(format!(
            "equation '{eq}': term '{t}' has rank above {MAX_RANK}"
        ));
    }
    for (d, c) in dst.iter_mut().zip(t.bytes()) {
        if !c.is_ascii_lowercase() {
            return Err(format!(
                "equation '{eq}': only lower-case letters are supported"
            ));
        }
        *d = c - b'a';
    }
    Ok(t.len())
}

fn parse_einsum(eq: &str, shapes: &[&[usize]]) -> core::result::Result<EinsumSpec, String> {
    let (lhs, rhs) = eq
        .split_once("->")
        .ok_or_else(|| format!("equation '{eq}' needs an explicit '->' output"))?;
    if eq.contains("...") {
        return Err(format!("equation '{eq}': ellipsis is not supported"));
    }
    let mut spec = EinsumSpec {
        sizes: [0; 26],
        terms: [[0; MAX_RANK]; 2],
        term_len: [0; 2],
        nterms: 0,
        out: [0; MAX_RANK],
        out_len: 0,
    };
    for t in lhs.split(',') {
        if spec.nterms == 2 {
            return Err(format!("equation '{eq}': more than 2 operands"));
        }
        spec.term_len[spec.nterms] = letters_of(t, eq, &mut spec.terms[spec.nterms])?;
        spec.nterms += 1;
    }
    spec.out_len = letters_of(rhs, eq, &mut spec.out)?;
    if spec.nterms != shapes.len() {
        return Err(format!(
            "equation '{eq}' has {} operands, the node {}",
            spec.nterms,
            shapes.len()
        ));
    }
    let mut seen = [false; 26];
    for (ti, s) in shapes.iter().enumerate() {
        let (terms, len) = (spec.terms[ti], spec.term_len[ti]);
        let t = &terms[..len];
        if t.len() != s.len() {
            return Err(format!(
                "equation '{eq}': term of rank {} for an input of shape {s:?}",
                t.len()
            ));
        }
        for (&c, &d) in t.iter().zip(s.iter()) {
            if seen[c as usize] && spec.sizes[c as usize] != d {
                return Err(format!(
                    "equation '{eq}': letter '{}' has sizes {} and {d}",
                    (c + b'a') as char,
                    spec.sizes[c as usize]
                ));
            }
            seen[c as usize] = true;
            spec.sizes[c as usize] = d;
        }
    }
    if spec.out().iter().any(|&c| !seen[c as usize]) {
        return Err(format!("equation '{eq}': output letter not in the inputs"));
    }
    Ok(spec)
}

/// Einsum by one loop over every letter (output letters first, then the summed ones); a
/// plain 2-D matrix product goes through the matmul kernel.
fn einsum(
    k: &Kernels,
    eq: &str,
    ins: &[Option<View<'_>>],
    out: &mut Buf,
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let mut views: [Option<View<'_>>; 2] = [None, None];
    let mut n = 0;
    for v in ins.iter().flatten() {
        if n < 2 {
            views[n] = Some(*v);
        }
        n += 1;
    }
    let Buf::F32(d) = out else {
        return Err(internal(cx, "Einsum"));
    };
    let (a, b) = match (views[0], views[1]) {
        (Some(a), b) => (a, b),
        _ => return Err(internal(cx, "Einsum inputs")),
    };
    // Fast path "ij,jk->ik".
    let bytes = eq.as_bytes();
    if let (Some(bv), 10) = (b, bytes.len()) {
        let (i, j, j2, kk, o1, o2) = (bytes[0], bytes[1], bytes[3], bytes[4], bytes[7], bytes[8]);
        if bytes[2] == b','
            && &bytes[5..7] == b"->"
            && j == j2
            && o1 == i
            && o2 == kk
            && i != j
            && kk != j
            && i != kk
            && a.shape.len() == 2
            && bv.shape.len() == 2
        {
            let (m, kd, nn) = (a.shape[0], a.shape[1], bv.shape[1]);
            let Some(av) = a.f32() else {
                return Err(internal(cx, "Einsum A"));
            };
            if d.len() != m * nn {
                return Err(internal(cx, "Einsum"));
            }
            return kernel_matmul(
                k,
                MatMulDims { m, k: kd, n: nn },
                av,
                bv.data,
                BLayout::KxN,
                d,
                false,
                cx,
            );
        }
    }
    let shapes: [&[usize]; 2] = [a.shape, b.map(|v| v.shape).unwrap_or(&[])];
    let spec = parse_einsum(eq, &shapes[..n.min(2)]).map_err(|r| cx.err(r))?;
    // Loop letters: output letters then summed letters.
    let mut letters = [0u8; 26];
    let mut nl = 0;
    for &c in spec
        .out()
        .iter()
        .chain(spec.term(0))
        .chain(if spec.nterms > 1 { spec.term(1) } else { &[] })
    {
        if !letters[..nl].contains(&c) {
            letters[nl] = c;
            nl += 1;
        }
    }
    if nl > MAX_RANK {
        return Err(cx.err(format!("equation '{eq}' uses more than {MAX_RANK} letters")));
    }
    let mut dims = [0usize; MAX_RANK];
    for i in 0..nl {
        dims[i] = spec.sizes[letters[i] as usize];
    }
    let stride_for = |term: &[u8], shape: &[usize]| -> [isize; MAX_RANK] {
        let own = strides_of(shape);
        let mut st = [0isize; MAX_RANK];
        for (pos, &c) in term.iter().enumerate() {
            if let Some(li) = letters[..nl].iter().position(|&l| l == c) {
                st[li] += own[pos] as isize;
            }
        }
        st
    };
    let sa = stride_for(spec.term(0), a.shape);
    let sb = match b {
        Some(bv) if spec.nterms > 1 => stride_for(spec.term(1), bv.shape),
        _ => [0isize; MAX_RANK],
    };
    let out_numel: usize = spec.out().iter().map(|&c| spec.sizes[c as usize]).product();
    if d.len() != out_numel {
        return Err(internal(cx, "Einsum"));
    }
    d.iter_mut().for_each(|v| *v = 0.0);
    let (Some(av), bvals) = (a.f32(), b.and_then(|v| v.f32())) else {
        return Err(internal(cx, "Einsum A"));
    };
    let mut ok = true;
    // Output index from the loop index: the first `spec.out.len()` letters, row-major.
    let nout = spec.out_len;
    let inner: usize = dims[nout..nl].iter().product();
    for_each2(&dims[..nl], &sa, 0, &sb, 0, |flat, ia, ib| {
        let o = flat / inner.max(1);
        let va = av.get(ia as usize).copied();
        let vb = match bvals {
            Some(bv) => bv.get(ib as usize).copied(),
            None => Some(1.0),
        };
        match (va, vb, d.get_mut(o)) {
            (Some(x), Some(y), Some(acc)) => *acc += x * y,
            _ => ok = false,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "Einsum"))
    }
}

fn batch_norm(eps: f32, ins: &[Option<View<'_>>], out: &mut Buf, cx: &NodeCtx<'_>) -> Result<()> {
    let x = need_view(ins, 0, cx)?;
    let p: [View<'_>; 4] = [
        need_view(ins, 1, cx)?,
        need_view(ins, 2, cx)?,
        need_view(ins, 3, cx)?,
        need_view(ins, 4, cx)?,
    ];
    let (Data::F32(s), Buf::F32(d)) = (x.data, out) else {
        return Err(internal(cx, "BatchNormalization"));
    };
    let c = x.shape[1];
    let inner = numel(&x.shape[2..]);
    if s.len() != d.len() {
        return Err(internal(cx, "BatchNormalization"));
    }
    let outer = x.shape[0];
    for ch in 0..c {
        let get = |v: &View<'_>| float_at(v.data, ch as isize).unwrap_or(0.0);
        let (scale, bias, mean, var) = (get(&p[0]), get(&p[1]), get(&p[2]), get(&p[3]));
        let mul = scale / math::sqrt(var + eps);
        for o in 0..outer {
            let at = (o * c + ch) * inner;
            let (Some(src), Some(dst)) = (s.get(at..at + inner), d.get_mut(at..at + inner)) else {
                return Err(internal(cx, "BatchNormalization"));
            };
            for (dv, &sv) in dst.iter_mut().zip(src) {
                *dv = (sv - mean) * mul + bias;
            }
        }
    }
    Ok(())
}

struct ConvParams {
    nd: usize,
    m: usize,
    cin: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
    inp: [usize; 2],
    out: [usize; 2],
}

fn conv_params(
    x: &[usize],
    w: &[usize],
    strides: Option<&[i64]>,
    pads: Option<&[i64]>,
    dil: Option<&[i64]>,
    group: i64,
) -> core::result::Result<ConvParams, String> {
    if group != 1 {
        return Err(format!("group {group} is not supported (only 1)"));
    }
    let nd = x.len().saturating_sub(2);
    if !(1..=2).contains(&nd) || w.len() != x.len() {
        return Err(format!(
            "only 1-D and 2-D convolutions are supported (X {x:?}, W {w:?})"
        ));
    }
    if w[1] != x[1] {
        return Err(format!("W {w:?} does not match {} input channels", x[1]));
    }
    let get = |v: Option<&[i64]>, i: usize, d: i64| -> core::result::Result<usize, String> {
        let val = v.and_then(|v| v.get(i).copied()).unwrap_or(d);
        usize::try_from(val).map_err(|_| format!("negative conv attribute {val}"))
    };
    let mut p = ConvParams {
        nd,
        m: w[0],
        cin: x[1],
        kernel: [1; 2],
        stride: [1; 2],
        pad: [0; 2],
        dil: [1; 2],
        inp: [1; 2],
        out: [1; 2],
    };
    for i in 0..nd {
        p.kernel[i] = w[2 + i];
        p.stride[i] = get(strides, i, 1)?.max(1);
        p.dil[i] = get(dil, i, 1)?.max(1);
        let (pb, pe) = (get(pads, i, 0)?, get(pads, i + nd, 0)?);
        if pb != pe {
            return Err("asymmetric padding is not supported".to_string());
        }
        p.pad[i] = pb;
        p.inp[i] = x[2 + i];
        let span = p.dil[i] * (p.kernel[i].max(1) - 1) + 1;
        let padded = p.inp[i] + 2 * pb;
        if padded < span {
            return Err(format!(
                "kernel {:?} larger than the padded input {x:?}",
                &w[2..]
            ));
        }
        p.out[i] = (padded - span) / p.stride[i] + 1;
    }
    Ok(p)
}

type ConvAttrs<'a> = (Option<&'a [i64]>, Option<&'a [i64]>, Option<&'a [i64]>, i64);

/// Direct convolution (CTR models use small 1-D kernels: xDeepFM's CIN has kernel 1).
fn conv(
    k: &Kernels,
    ins: &[Option<View<'_>>],
    (strides, pads, dil, group): ConvAttrs<'_>,
    out: &mut Buf,
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let x = need_view(ins, 0, cx)?;
    let w = need_view(ins, 1, cx)?;
    let p = conv_params(x.shape, w.shape, strides, pads, dil, group).map_err(|r| cx.err(r))?;
    let bias = ins.get(2).copied().flatten();
    let (Some(xs), Buf::F32(d)) = (x.f32(), out) else {
        return Err(internal(cx, "Conv"));
    };
    let n = x.shape[0];
    let (ih, iw) = if p.nd == 2 {
        (p.inp[0], p.inp[1])
    } else {
        (1, p.inp[0])
    };
    let (oh, ow) = if p.nd == 2 {
        (p.out[0], p.out[1])
    } else {
        (1, p.out[0])
    };
    let (kh, kw) = if p.nd == 2 {
        (p.kernel[0], p.kernel[1])
    } else {
        (1, p.kernel[0])
    };
    let (sh, sw) = if p.nd == 2 {
        (p.stride[0], p.stride[1])
    } else {
        (1, p.stride[0])
    };
    let (ph, pw) = if p.nd == 2 {
        (p.pad[0], p.pad[1])
    } else {
        (0, p.pad[0])
    };
    let (dh, dw) = if p.nd == 2 {
        (p.dil[0], p.dil[1])
    } else {
        (1, p.dil[0])
    };
    if d.len() != n * p.m * oh * ow || xs.len() != n * p.cin * ih * iw {
        return Err(internal(cx, "Conv"));
    }
    // Pointwise convolution (kernel 1, stride 1, no padding; xDeepFM's CIN): per batch row,
    // out[b] (M x L) = W (M x C) * X[b] (C x L), through the matmul kernel.
    if kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 {
        if let Some(wf) = w.f32() {
            let l = ih * iw;
            for b in 0..n {
                let xb = &xs[b * p.cin * l..(b + 1) * p.cin * l];
                let ob = &mut d[b * p.m * l..(b + 1) * p.m * l];
                match bias.map(|v| v.data) {
                    Some(bd) => {
                        for (m, row) in ob.chunks_exact_mut(l).enumerate() {
                            let bv = float_at(bd, m as isize).unwrap_or(0.0);
                            row.iter_mut().for_each(|v| *v = bv);
                        }
                    }
                    None => ob.iter_mut().for_each(|v| *v = 0.0),
                }
                let dims = MatMulDims {
                    m: p.m,
                    k: p.cin,
                    n: l,
                };
                (k.matmul_f32)(dims, wf, xb, BLayout::KxN, ob, true);
            }
            return Ok(());
        }
    }
    let wv = |i: usize| float_at(w.data, i as isize).unwrap_or(0.0);
    for b in 0..n {
        for m in 0..p.m {
            let b0 = bias
                .and_then(|v| float_at(v.data, m as isize))
                .unwrap_or(0.0);
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = b0;
                    for c in 0..p.cin {
                        for ky in 0..kh {
                            let iy = (y * sh + ky * dh) as isize - ph as isize;
                            if iy < 0 || iy >= ih as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (xo * sw + kx * dw) as isize - pw as isize;
                                if ix < 0 || ix >= iw as isize {
                                    continue;
                                }
                                let xi = ((b * p.cin + c) * ih + iy as usize) * iw + ix as usize;
                                let wi = ((m * p.cin + c) * kh + ky) * kw + kx;
                                acc += xs[xi] * wv(wi);
                            }
                        }
                    }
                    d[((b * p.m + m) * oh + y) * ow + xo] = acc;
                }
            }
        }
    }
    Ok(())
}

//! Normalizations: Softmax, inference BatchNormalization, LayerNormalization.

use alloc::format;
use alloc::string::ToString;

use super::{
    broadcast_shapes, checked, float_at, internal, need, need_view, norm_axis, Attrs, Inferred,
    Metas, NodeCtx, Op, Views,
};
use crate::error::Result;
use crate::graph::strided::{broadcast_strides, for_each2, signed, MAX_RANK};
use crate::graph::value::{numel, Buf, Data, View};
use crate::math;
use crate::tensor::DType;

pub(super) fn infer_softmax(axis: i64, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    if x.dtype != DType::F32 {
        return Err(cx.err("Softmax needs a float input".to_string()));
    }
    norm_axis(axis, x.shape.len(), cx)?;
    Ok((DType::F32, x.shape.to_vec()))
}

pub(super) fn softmax(axis: i64, x: View, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
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

pub(super) fn parse_batch_norm(a: &Attrs) -> Result<Op> {
    if a.int("training_mode", 0)? != 0 {
        return Err(a.err("training_mode=1 is not supported".to_string()));
    }
    Ok(Op::BatchNorm {
        epsilon: a.float("epsilon", 1e-5)?,
    })
}

pub(super) fn infer_batch_norm(ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
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
    Ok((DType::F32, x.shape.to_vec()))
}

pub(super) fn batch_norm(eps: f32, ins: &Views, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    let x = need_view(ins, 0, cx)?;
    let p: [View; 4] = [
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
        let get = |v: &View| float_at(v.data, ch as isize).unwrap_or(0.0);
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

pub(super) fn parse_layer_norm(a: &Attrs) -> Result<Op> {
    for (i, name) in [(1, "Mean"), (2, "InvStdDev")] {
        a.unused_output(
            i,
            &format!("the '{name}' output is not supported (only Y is computed)"),
        )?;
    }
    let stash = a.int("stash_type", 1)?;
    if stash != 1 {
        return Err(a.err(format!(
            "attribute 'stash_type' = {stash} is not supported (only 1, float)"
        )));
    }
    Ok(Op::LayerNorm {
        axis: a.int("axis", -1)?,
        epsilon: a.float("epsilon", 1e-5)?,
    })
}

pub(super) fn infer_layer_norm(axis: i64, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    if x.dtype != DType::F32 {
        return Err(cx.err(format!("X must be float, got {}", x.dtype.name())));
    }
    let ax = norm_axis(axis, x.shape.len(), cx)?;
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
    Ok((DType::F32, x.shape.to_vec()))
}

/// LayerNormalization over the dims from `axis` on; mean and variance accumulate in f64.
pub(super) fn layer_norm(
    axis: i64,
    eps: f32,
    ins: &Views,
    out: &mut Buf,
    cx: &NodeCtx,
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
    checked(ok, cx, "LayerNormalization")
}

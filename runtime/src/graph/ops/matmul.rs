//! MatMul and Gemm, through the kernel table (f32 or f16 weights).

use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::{
    aligned_dim, broadcast_shapes, float_at, internal, need, need_view, Attrs, Inferred, Metas,
    NodeCtx, Op, Views,
};
use crate::error::Result;
use crate::graph::strided::{broadcast_strides, for_each2, signed, strides_of, Dims, MAX_RANK};
use crate::graph::value::{numel, Buf, Data, View};
use crate::kernels::{BLayout, Kernels, MatMulDims};
use crate::tensor::DType;

pub(super) fn parse_gemm(a: &Attrs) -> Result<Op> {
    Ok(Op::Gemm {
        alpha: a.float("alpha", 1.0)?,
        beta: a.float("beta", 1.0)?,
        trans_a: a.flag("transA", false)?,
        trans_b: a.flag("transB", false)?,
    })
}

pub(super) fn infer_matmul(ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
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
    Ok((DType::F32, s))
}

pub(super) fn infer_gemm(
    trans_a: bool,
    trans_b: bool,
    ins: &Metas,
    cx: &NodeCtx,
) -> Result<Inferred> {
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
    let (m, k) = if trans_a {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (k2, n) = if trans_b {
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
    Ok((DType::F32, vec![m, n]))
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

/// One matrix product through the kernel table, f32 or f16 weights.
#[allow(clippy::too_many_arguments)]
pub(super) fn kernel_matmul(
    k: &Kernels,
    dims: MatMulDims,
    a: &[f32],
    b: Data,
    layout: BLayout,
    c: &mut [f32],
    acc: bool,
    cx: &NodeCtx,
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

pub(super) fn matmul(k: &Kernels, a: View, b: View, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    let Buf::F32(c) = out else {
        return Err(internal(cx, "MatMul"));
    };
    let Some(av) = a.f32() else {
        return Err(cx.err("A must be f32".to_string()));
    };
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
    // Batched: iterate the broadcast batch index. An empty output (a batch dim, m or n is 0)
    // has nothing to compute.
    if c.is_empty() {
        return Ok(());
    }
    let br = batch_a.len().max(batch_b.len());
    let mut bshape = [1usize; MAX_RANK];
    let bs = &mut bshape[..br];
    for (i, d) in bs.iter_mut().enumerate() {
        // NumPy broadcasting (the shapes were checked when planning): a 1 takes the other dim.
        let (da, db) = (aligned_dim(batch_a, i, br), aligned_dim(batch_b, i, br));
        *d = if da == 1 { db } else { da };
    }
    let ssa = signed(&broadcast_strides(batch_a, br));
    let ssb = signed(&broadcast_strides(batch_b, br));
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

pub(super) fn gemm(
    k: &Kernels,
    (alpha, beta, trans_a, trans_b): (f32, f32, bool, bool),
    ins: &Views,
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx,
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

/// `c = scale * src` with `src` broadcast to `shape`.
fn fill_broadcast(
    c: &mut [f32],
    shape: &[usize],
    src: View,
    scale: f32,
    cx: &NodeCtx,
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

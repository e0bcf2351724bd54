//! The portable scalar reference: plain loops, written to be obviously correct. It is the
//! oracle of every kernel test and the table of targets without SIMD kernels (armv7,
//! thumbv7em, ...), so the loops are kept in an order the compiler can vectorize (`KxN`
//! walks rows of B) without giving up on clarity.

use half::f16;

use super::{
    epilogue_fits, matmul_fits, Activation, BLayout, Epilogue, KernelVariant, Kernels, MatMulDims,
};
use crate::math;

/// The scalar table.
pub(super) static TABLE: Kernels = Kernels {
    variant: KernelVariant::Scalar,
    matmul_f32: |dims, a, b, layout, c, acc| matmul(dims, a, b, layout, c, acc, None, |w| w),
    matmul_f16: |dims, a, b, layout, c, acc| matmul(dims, a, b, layout, c, acc, None, f16::to_f32),
    matmul_ep_f32: |dims, a, b, layout, c, ep| {
        matmul(dims, a, b, layout, c, false, Some(ep), |w| w)
    },
    matmul_ep_f16: |dims, a, b, layout, c, ep| {
        matmul(dims, a, b, layout, c, false, Some(ep), f16::to_f32)
    },
    add: |a, b, out| binary(a, b, out, |x, y| x + y),
    sub: |a, b, out| binary(a, b, out, |x, y| x - y),
    mul: |a, b, out| binary(a, b, out, |x, y| x * y),
    div: |a, b, out| binary(a, b, out, |x, y| x / y),
    add_scalar: |a, s, out| unary_to(a, out, |x| x + s),
    mul_scalar: |a, s, out| unary_to(a, out, |x| x * s),
    relu: |x| unary_in_place(x, relu),
    sigmoid: |x| unary_in_place(x, sigmoid),
    tanh: |x| unary_in_place(x, math::tanh),
    exp: |x| unary_in_place(x, math::exp),
    sum,
};

/// `C = A * B` (or `C += A * B`), weights converted to f32 one by one by `to_f32`, then the
/// epilogue (if any) on each row of C right after the row is computed.
/// Returns without writing when a slice is shorter than `dims` require.
#[allow(clippy::too_many_arguments)]
fn matmul<W: Copy>(
    dims: MatMulDims,
    a: &[f32],
    b: &[W],
    layout: BLayout,
    c: &mut [f32],
    accumulate: bool,
    ep: Option<Epilogue<'_>>,
    to_f32: impl Fn(W) -> f32,
) {
    if !matmul_fits(dims, a.len(), b.len(), c.len())
        || !ep.as_ref().is_none_or(|e| epilogue_fits(e, dims.n))
    {
        return;
    }
    let MatMulDims { m, k, n } = dims;
    if m == 0 || n == 0 {
        return;
    }
    // A k x 1 KxN matrix is laid out as a 1 x k NxK one: take the dot-product loop.
    let layout = if n == 1 { BLayout::NxK } else { layout };
    // From here `a`, `b`, `c` have at least m*k, k*n, m*n elements: every range below is in
    // bounds (with k == 0 the rows of A and B are empty: C = 0, or unchanged when accumulating).
    for (i, c_row) in c[..m * n].chunks_exact_mut(n).enumerate() {
        let a_row = &a[i * k..(i + 1) * k];
        match layout {
            BLayout::KxN => {
                // C[i][:] (+)= sum_p A[i][p] * B[p][:]
                if !accumulate {
                    c_row.fill(0.0);
                }
                for (p, &a_ip) in a_row.iter().enumerate() {
                    let b_row = &b[p * n..(p + 1) * n];
                    for (c_ij, &b_pj) in c_row.iter_mut().zip(b_row) {
                        *c_ij += a_ip * to_f32(b_pj);
                    }
                }
            }
            BLayout::NxK => {
                // C[i][j] (+)= dot(A[i][:], B[j][:])
                for (j, c_ij) in c_row.iter_mut().enumerate() {
                    let d = dot(a_row, &b[j * k..(j + 1) * k], &to_f32);
                    *c_ij = if accumulate { *c_ij + d } else { d };
                }
            }
        }
        if let Some(ep) = &ep {
            epilogue(c_row, ep);
        }
    }
}

/// `row[j] = act(alpha * row[j] + bias[j])`, rounded step by step like the separate `Mul`,
/// `Add` and activation kernels (the bias covers the row: checked by the caller).
fn epilogue(row: &mut [f32], ep: &Epilogue<'_>) {
    let act = |x: f32| match ep.act {
        Activation::Identity => x,
        Activation::Relu => relu(x),
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => math::tanh(x),
    };
    for (j, v) in row.iter_mut().enumerate() {
        let mut x = *v;
        if ep.alpha != 1.0 {
            x *= ep.alpha;
        }
        if let Some(b) = ep.bias {
            x += b[j];
        }
        *v = act(x);
    }
}

/// `sum_p a[p] * b[p]` over the shorter slice, in 8 interleaved partial sums (lane `l` adds
/// elements `l, l + 8, ...`) added at the end: independent chains that the compiler can
/// pipeline or vectorize, where a single running sum would serialize on the add latency.
fn dot<W: Copy>(a: &[f32], b: &[W], to_f32: impl Fn(W) -> f32) -> f32 {
    let len = a.len().min(b.len());
    let (a8, b8) = (a[..len].chunks_exact(8), b[..len].chunks_exact(8));
    let mut lanes = [0.0f32; 8];
    let (a_tail, b_tail) = (a8.remainder(), b8.remainder());
    for (a8, b8) in a8.zip(b8) {
        for ((lane, &x), &w) in lanes.iter_mut().zip(a8).zip(b8) {
            *lane += x * to_f32(w);
        }
    }
    let mut tail = 0.0f32;
    for (&x, &w) in a_tail.iter().zip(b_tail) {
        tail += x * to_f32(w);
    }
    lanes.iter().sum::<f32>() + tail
}

/// `out[i] = op(a[i], b[i])` over the shortest of the three slices.
fn binary(a: &[f32], b: &[f32], out: &mut [f32], op: impl Fn(f32, f32) -> f32) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = op(x, y);
    }
}

/// `out[i] = op(a[i])` over the shorter of the two slices.
fn unary_to(a: &[f32], out: &mut [f32], op: impl Fn(f32) -> f32) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = op(x);
    }
}

fn unary_in_place(x: &mut [f32], op: impl Fn(f32) -> f32) {
    for v in x {
        *v = op(*v);
    }
}

/// `max(x, 0)`, NaN stays NaN.
fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// `1 / (1 + exp(-x))`: `exp(-x)` overflows to +inf for very negative `x`, giving exactly 0
/// (never 0/0).
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + math::exp(-x))
}

fn sum(x: &[f32]) -> f32 {
    x.iter().sum()
}

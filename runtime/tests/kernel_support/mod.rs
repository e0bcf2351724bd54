//! Test support shared by the kernel property tests (`kernels_prop.rs`, `kernels_epilogue.rs`):
//! the SIMD tables of this CPU, deterministic values, the strategies of shapes and products,
//! one case's buffers (at an offset inside their allocations) and the closeness check.
#![allow(dead_code)]

use ctr_edge_runtime::kernels::{self, BLayout, KernelVariant, Kernels, MatMulDims};
use half::f16;
use proptest::prelude::*;

/// SIMD tables available on this machine (none on targets without SIMD kernels), with a check
/// that the ones this CPU should have are there (so that the comparison cannot silently run
/// against nothing).
pub fn simd_tables() -> Vec<&'static Kernels> {
    let tables: Vec<&Kernels> = [KernelVariant::Avx2Fma, KernelVariant::Neon]
        .into_iter()
        .filter_map(kernels::for_variant)
        .collect();
    #[cfg(target_arch = "aarch64")]
    assert_eq!(
        tables.iter().map(|t| t.variant).collect::<Vec<_>>(),
        [KernelVariant::Neon]
    );
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
    {
        assert_eq!(
            tables.iter().map(|t| t.variant).collect::<Vec<_>>(),
            [KernelVariant::Avx2Fma]
        );
    }
    tables
}

/// The scalar table, then the SIMD tables of this machine.
pub fn all_tables() -> Vec<&'static Kernels> {
    std::iter::once(kernels::scalar())
        .chain(simd_tables())
        .collect()
}

/// Deterministic values in `[-1, 1)` from a seed (xorshift64*), so that proptest shrinks the
/// seed and the shape rather than megabytes of floats.
pub fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let bits = s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40; // 24 random bits
            bits as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Sizes that exercise every tail: 1, 3, 7, 17, 64, 255, 1000 and small random ones.
pub fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![1usize, 3, 7, 8, 16, 17, 24, 25, 64, 255, 1000]),
        1usize..40,
    ]
}

/// Multiply-adds per case, kept moderate so the suites stay quick under qemu.
pub const MAX_MACS: usize = 400_000;

/// `(m, k, n)` with `m` (then `n`) shrunk so that `m*k*n <= MAX_MACS`.
pub fn dims() -> impl Strategy<Value = MatMulDims> {
    (dim(), dim(), dim()).prop_map(|(m, k, n)| {
        let n = n.min((MAX_MACS / k).max(1));
        let m = m.min((MAX_MACS / (k * n)).max(1));
        MatMulDims { m, k, n }
    })
}

pub fn layout() -> impl Strategy<Value = BLayout> {
    prop_oneof![Just(BLayout::KxN), Just(BLayout::NxK)]
}

/// One product of a property test: its shape, the seed of its values, the offset of its slices
/// (unaligned for 1..3), the layout of B and whether the weights are f16.
#[derive(Debug, Clone, Copy)]
pub struct Product {
    pub dims: MatMulDims,
    pub seed: u64,
    pub offset: usize,
    pub layout: BLayout,
    pub half: bool,
}

pub fn product() -> impl Strategy<Value = Product> {
    (dims(), any::<u64>(), 0usize..4, layout(), any::<bool>()).prop_map(
        |(dims, seed, offset, layout, half)| Product {
            dims,
            seed,
            offset,
            layout,
            half,
        },
    )
}

/// Buffers for one case, each starting at `offset` inside its allocation (an unaligned pointer
/// for offsets 1..3): A, B in f32 and f16, the initial C and a bias.
pub struct Case {
    pub dims: MatMulDims,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub b16: Vec<f16>,
    pub c0: Vec<f32>,
    pub bias: Vec<f32>,
    pub offset: usize,
}

impl Case {
    pub fn new(dims: MatMulDims, seed: u64, offset: usize) -> Case {
        let MatMulDims { m, k, n } = dims;
        let b = values(seed ^ 0xb, offset + k * n);
        Case {
            dims,
            a: values(seed ^ 0xa, offset + m * k),
            b16: b.iter().map(|&x| f16::from_f32(x)).collect(),
            b,
            c0: values(seed ^ 0xc, offset + m * n),
            bias: values(seed ^ 0xc, offset + n),
            offset,
        }
    }

    /// Runs one of the two products of a table (`f32_product` on the f32 weights, or
    /// `f16_product` on the f16 ones when `half`) on the slices at the offset, C starting as
    /// `c` (a whole allocation); returns C from the offset.
    pub fn run_with(
        &self,
        mut c: Vec<f32>,
        half: bool,
        f32_product: impl FnOnce(MatMulDims, &[f32], &[f32], &mut [f32]),
        f16_product: impl FnOnce(MatMulDims, &[f32], &[f16], &mut [f32]),
    ) -> Vec<f32> {
        let o = self.offset;
        if half {
            f16_product(self.dims, &self.a[o..], &self.b16[o..], &mut c[o..]);
        } else {
            f32_product(self.dims, &self.a[o..], &self.b[o..], &mut c[o..]);
        }
        c.drain(..o);
        c
    }

    /// The weights as the kernels see them (f16 rounded when `half`).
    pub fn weights(&self, half: bool) -> Vec<f32> {
        let o = self.offset;
        if half {
            self.b16[o..].iter().map(|w| w.to_f32()).collect()
        } else {
            self.b[o..].to_vec()
        }
    }
}

/// Element `(p, j)` of B (logical `k x n`) stored as `layout` says.
pub fn b_at<T: Copy>(b: &[T], dims: MatMulDims, layout: BLayout, p: usize, j: usize) -> T {
    match layout {
        BLayout::KxN => b[p * dims.n + j],
        BLayout::NxK => b[j * dims.k + p],
    }
}

/// Per element of C (row-major), the naive f64 product `sum_p a_ip b_pj` (in order of `p`) and
/// `sum_p |a_ip b_pj|` (the scale of its rounding error).
pub fn naive_dots(dims: MatMulDims, a: &[f32], b: &[f32], layout: BLayout) -> Vec<(f64, f64)> {
    let MatMulDims { m, k, n } = dims;
    let mut dots = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut abs) = (0.0f64, 0.0f64);
            for p in 0..k {
                let t = a[i * k + p] as f64 * b_at(b, dims, layout, p, j) as f64;
                s += t;
                abs += t.abs();
            }
            dots.push((s, abs));
        }
    }
    dots
}

/// Every element within `tol * (1 + scale)` of the reference.
pub fn assert_close(
    what: &str,
    got: &[f32],
    want: &[f64],
    scale: &[f64],
    tol: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (idx, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let bound = tol * (1.0 + s);
        prop_assert!(
            (g as f64 - w).abs() <= bound,
            "{}: element {} is {}, want {} (tolerance {})",
            what,
            idx,
            g,
            w,
            bound
        );
    }
    Ok(())
}

/// Inputs of the short-slice tests: the dims, A, B (f32 and f16) and C of `(m, k, n)`, from
/// fixed seeds.
pub fn short_slice_inputs(
    m: usize,
    k: usize,
    n: usize,
) -> (MatMulDims, Vec<f32>, Vec<f32>, Vec<f16>, Vec<f32>) {
    let dims = MatMulDims { m, k, n };
    let (a, b, c) = (values(1, m * k), values(2, k * n), values(3, m * n));
    let b16: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
    (dims, a, b, b16, c)
}

/// Every (table, layout, shape) of the short-slice tests: all tables, both layouts, `shapes`.
pub fn short_slice_cases(
    shapes: &[(usize, usize, usize)],
) -> Vec<(&'static Kernels, BLayout, (usize, usize, usize))> {
    let mut all = Vec::new();
    for t in all_tables() {
        for layout in [BLayout::KxN, BLayout::NxK] {
            all.extend(shapes.iter().map(|&s| (t, layout, s)));
        }
    }
    all
}

/// All `(m, k, n)` combinations of the three lists.
pub fn shapes(ms: &[usize], ks: &[usize], ns: &[usize]) -> Vec<(usize, usize, usize)> {
    let mut all = Vec::new();
    for &m in ms {
        for &k in ks {
            for &n in ns {
                all.push((m, k, n));
            }
        }
    }
    all
}

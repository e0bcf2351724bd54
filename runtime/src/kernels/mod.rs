//! Kernels: one table of function pointers per implementation family (the scalar reference,
//! NEON on aarch64 chosen at compile time, AVX2+FMA on x86-64 detected once at run time and
//! cached), and [`best()`] to pick the one this CPU runs.
//!
//! Every kernel is a safe function: it never reads or writes outside the slices it is given,
//! whatever their lengths (the planner guarantees consistent lengths; a kernel given short
//! slices computes on what fits and must not panic).
//!
//! Design (after tract's `linalg` ops table and memchr's dispatch):
//! - [`scalar()`] is the portable reference (`scalar.rs`): plain loops, the oracle of every
//!   test, and the table of targets without SIMD kernels (armv7, thumbv7em, ...);
//! - the SIMD families share their code, written once over a register trait: `simd.rs` (the
//!   `Vector` trait of registers, the `Isa` trait of a family's `#[target_feature]` entry
//!   points, the safe table entries, the operands of a product, the elementwise loops) and
//!   `blocked.rs` (the blocked matrix products: packed 6 x 16 panels for 4+ rows of A, B read
//!   in place for GEMV-like products, the epilogue in the stores);
//! - `avx2.rs` (x86-64, `__m256`) and `neon.rs` (aarch64, `float32x4_t`) keep only the trait
//!   impls, their tile shapes, their entry points and their Cephes `exp` (see [`crate::math`]);
//!   the AVX2 table is only handed out after run-time detection of AVX2, FMA and F16C (cached
//!   in an atomic), the NEON table is chosen at compile time (NEON is part of every aarch64
//!   target that enables it);
//! - [`best()`] returns the fastest table of this CPU, [`for_variant`] a given one if supported;
//! - the `matmul_ep_*` entries (plan-time fusions) are the same products whose stores apply an
//!   [`Epilogue`] (alpha, bias per column, activation) to each tile of C in registers, after the
//!   last panel along `k`, so C is written once.
//!
//! Short slices: matrix products check `a.len() >= m*k`, `b.len() >= k*n`, `c.len() >= m*n`
//! (with overflow-checked products) up front and return without writing anything when a slice
//! is too short; elementwise kernels process `min` of their slice lengths; no kernel panics.
//! Kernels never allocate.
//!
//! INTERFACE OWNED BY THE GRAPH ENGINE: do not change the signatures of `Kernels` without
//! updating `crate::graph`.

use half::f16;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod blocked;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon;
mod scalar;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod simd;
#[cfg(test)]
mod tests;

/// Which implementation family a kernel table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelVariant {
    /// Portable scalar reference.
    Scalar,
    /// aarch64 NEON (compile-time).
    Neon,
    /// x86-64 AVX2 + FMA (detected at run time).
    Avx2Fma,
}

impl KernelVariant {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelVariant::Scalar => "scalar",
            KernelVariant::Neon => "neon",
            KernelVariant::Avx2Fma => "avx2+fma",
        }
    }
}

/// Layout of the right-hand matrix B of a matrix product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BLayout {
    /// B is row-major `k x n` (ONNX MatMul weight).
    KxN,
    /// B is row-major `n x k`, i.e. B transposed (Gemm `transB=1`, PyTorch `Linear` weight).
    NxK,
}

/// Dimensions of `C[m x n] = A[m x k] * B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatMulDims {
    /// Rows of A and C.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of C.
    pub n: usize,
}

/// `C = A * B` (or `C += A * B` when `accumulate`), A row-major `m x k`, C row-major `m x n`,
/// B as `layout` says, f32 weights.
pub type MatMulF32 =
    fn(dims: MatMulDims, a: &[f32], b: &[f32], layout: BLayout, c: &mut [f32], accumulate: bool);
/// Same with f16 weights, converted in registers, accumulated in f32.
pub type MatMulF16 =
    fn(dims: MatMulDims, a: &[f32], b: &[f16], layout: BLayout, c: &mut [f32], accumulate: bool);
/// Activation applied by the epilogue of a fused matrix product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// None: the value as computed.
    Identity,
    /// `max(x, 0)` (NaN stays NaN), as the table's `relu`.
    Relu,
    /// `1 / (1 + exp(-x))`, as the table's `sigmoid`.
    Sigmoid,
    /// `tanh(x)`, as the table's `tanh`.
    Tanh,
}

/// What a fused matrix product does to each element of C before storing it:
/// `C[i][j] = act(alpha * (A B)[i][j] + bias[j])` (the multiplication by `alpha` skipped when it
/// is 1, the addition when there is no bias), in that order of rounding, so that the result is
/// the one of the unfused product followed by `Mul`, `Add` and the activation kernel.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Scale of the product (Gemm's `alpha`; 1 otherwise).
    pub alpha: f32,
    /// One value per column of C, or none. Shorter than `n`: the kernel writes nothing.
    pub bias: Option<&'a [f32]>,
    /// Applied last.
    pub act: Activation,
}

impl Epilogue<'_> {
    /// The epilogue that changes nothing.
    pub const NONE: Epilogue<'static> = Epilogue {
        alpha: 1.0,
        bias: None,
        act: Activation::Identity,
    };
}

/// `C = epilogue(A * B)`, A row-major `m x k`, C row-major `m x n`, B as `layout` says, f32
/// weights: the epilogue is applied to each tile of C while it is in registers.
pub type MatMulEpF32 =
    fn(dims: MatMulDims, a: &[f32], b: &[f32], layout: BLayout, c: &mut [f32], ep: Epilogue<'_>);
/// Same with f16 weights.
pub type MatMulEpF16 =
    fn(dims: MatMulDims, a: &[f32], b: &[f16], layout: BLayout, c: &mut [f32], ep: Epilogue<'_>);
/// `out[i] = a[i] op b[i]` over `out.len()` elements.
pub type BinaryF32 = fn(a: &[f32], b: &[f32], out: &mut [f32]);
/// `out[i] = a[i] op s`.
pub type BinaryScalarF32 = fn(a: &[f32], s: f32, out: &mut [f32]);
/// In-place unary map.
pub type UnaryF32 = fn(x: &mut [f32]);
/// Reduction to one value.
pub type ReduceF32 = fn(x: &[f32]) -> f32;

/// The kernel table.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    /// Which family filled this table (entries a SIMD family lacks stay scalar).
    pub variant: KernelVariant,
    /// f32-weight matrix product.
    pub matmul_f32: MatMulF32,
    /// f16-weight matrix product.
    pub matmul_f16: MatMulF16,
    /// f32-weight matrix product with a bias and activation epilogue (plan-time fusions).
    pub matmul_ep_f32: MatMulEpF32,
    /// f16-weight matrix product with a bias and activation epilogue.
    pub matmul_ep_f16: MatMulEpF16,
    /// Elementwise add.
    pub add: BinaryF32,
    /// Elementwise subtract.
    pub sub: BinaryF32,
    /// Elementwise multiply.
    pub mul: BinaryF32,
    /// Elementwise divide.
    pub div: BinaryF32,
    /// Add a scalar.
    pub add_scalar: BinaryScalarF32,
    /// Multiply by a scalar.
    pub mul_scalar: BinaryScalarF32,
    /// `max(x, 0)`.
    pub relu: UnaryF32,
    /// `1 / (1 + exp(-x))`.
    pub sigmoid: UnaryF32,
    /// `tanh(x)`.
    pub tanh: UnaryF32,
    /// `exp(x)`.
    pub exp: UnaryF32,
    /// Sum of the elements.
    pub sum: ReduceF32,
}

impl KernelVariant {
    /// Every variant, scalar first.
    pub const ALL: [KernelVariant; 3] = [
        KernelVariant::Scalar,
        KernelVariant::Neon,
        KernelVariant::Avx2Fma,
    ];
}

/// The portable scalar reference table (plain loops over [`crate::math`]; the test oracle).
pub fn scalar() -> &'static Kernels {
    &scalar::TABLE
}

/// The best kernel table for this CPU (chosen once, cached).
///
/// aarch64 with NEON: the NEON table. x86-64: the AVX2+FMA table when the CPU has AVX2, FMA and
/// F16C (detected at run time with the `std` feature, from the compile-time target features
/// without it). Everything else, armv7 included: the scalar table.
pub fn best() -> &'static Kernels {
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        neon::table()
    }
    #[cfg(target_arch = "x86_64")]
    {
        avx2::table().unwrap_or(scalar())
    }
    #[cfg(not(any(
        all(target_arch = "aarch64", target_feature = "neon"),
        target_arch = "x86_64"
    )))]
    {
        scalar()
    }
}

/// The table of variant `v` if this CPU supports it (`Scalar` always is).
pub fn for_variant(v: KernelVariant) -> Option<&'static Kernels> {
    match v {
        KernelVariant::Scalar => Some(scalar()),
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        KernelVariant::Neon => Some(neon::table()),
        #[cfg(target_arch = "x86_64")]
        KernelVariant::Avx2Fma => avx2::table(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Whether the slices of a matrix product are long enough for `dims` (`a >= m*k`, `b >= k*n`,
/// `c >= m*n`, products checked for overflow). Kernels return without writing when not.
#[inline]
pub(crate) fn matmul_fits(dims: MatMulDims, a_len: usize, b_len: usize, c_len: usize) -> bool {
    let MatMulDims { m, k, n } = dims;
    matches!(
        (m.checked_mul(k), k.checked_mul(n), m.checked_mul(n)),
        (Some(a), Some(b), Some(c)) if a <= a_len && b <= b_len && c <= c_len
    )
}

/// Whether the bias of an epilogue covers the `n` columns of C (kernels write nothing when
/// not).
#[inline]
pub(crate) fn epilogue_fits(ep: &Epilogue<'_>, n: usize) -> bool {
    ep.bias.is_none_or(|b| b.len() >= n)
}

//! NEON kernels for aarch64, chosen at compile time (this module exists only where the target
//! enables NEON, which every aarch64 Linux and Android target does): the [`Vector`] impl on
//! `float32x4_t` (4 lanes, 32 registers), the tile shapes, the `#[target_feature(enable =
//! "neon")]` entry points that run the shared code of `simd.rs` and `blocked.rs`, and the
//! Cephes polynomials.
//!
//! Tiles: packed panels of 16 columns are multiplied by 6 x 16 tiles (24 accumulators);
//! `KxN` products of up to 3 rows read B in place by tiles of all rows by 32 (1 row) or 16 (2
//! or 3 rows) columns; dot products are reduced with pairwise adds. Tails (fewer than 4
//! elements) go through small stack buffers: NEON has no masked loads. f16 weights are widened
//! with `vcvt_f32_f16` (FCVTL) right after the load.
//!
//! `exp` is the Cephes polynomial of [`crate::math::exp_cephes`]; sigmoid and tanh build on it.
//!
//! NEON intrinsics are `#[target_feature(enable = "neon")]` functions: the entry points carry
//! the same attribute, and the safe table entries call them in `unsafe` blocks whose
//! justification is the `cfg(target_feature = "neon")` on this module.

use core::arch::aarch64::*;

use half::f16;

use super::blocked::{kxn_direct_rows, panel_rows};
use super::simd::{self, copy_few, entry_points, Isa, Operands, Vector, Weight};
use super::{Activation, KernelVariant, Kernels};
use crate::math::{EXP_C1, EXP_C2, EXP_HI, EXP_LO, EXP_P, TANH_Q, TANH_SMALL};

/// The NEON table.
static TABLE: Kernels = simd::table::<Neon>();

/// The NEON table (NEON is a compile-time feature of this target).
pub(super) fn table() -> &'static Kernels {
    &TABLE
}

/// Loads `count < 4` floats, zero in the other lanes.
///
/// # Safety
/// `count <= 4`, `p..p + count` readable.
#[inline(always)]
unsafe fn load_part_f32(p: *const f32, count: usize) -> float32x4_t {
    let mut buf = [0.0f32; 4];
    // SAFETY: `count <= 4` elements readable at `p` (caller) and writable in `buf`; NEON is
    // enabled for the whole target.
    unsafe {
        copy_few(p, buf.as_mut_ptr(), count);
        vld1q_f32(buf.as_ptr())
    }
}

/// Stores the first `count <= 4` lanes of `v` at `p`.
///
/// # Safety
/// `count <= 4`, `p..p + count` writable.
#[inline(always)]
unsafe fn store_part_f32(p: *mut f32, v: float32x4_t, count: usize) {
    let mut buf = [0.0f32; 4];
    // SAFETY: `buf` holds 4 lanes; `count <= 4` elements writable at `p` (caller); NEON is
    // enabled for the whole target.
    unsafe {
        vst1q_f32(buf.as_mut_ptr(), v);
        copy_few(buf.as_ptr(), p, count);
    }
}

/// The NEON family.
struct Neon;

// SAFETY: NEON is enabled for the whole target (cfg on this module), so its table may be
// handed out anywhere.
unsafe impl Isa for Neon {
    type V = float32x4_t;
    const VARIANT: KernelVariant = KernelVariant::Neon;

    #[inline(always)]
    unsafe fn panel(ops: Operands<f32>, width: usize) {
        // SAFETY: as the trait's contract; 4 vectors cover the 16 columns.
        unsafe {
            match width.div_ceil(4) {
                1 => panel_rows::<float32x4_t, 1>(ops),
                2 => panel_rows::<float32x4_t, 2>(ops),
                3 => panel_rows::<float32x4_t, 3>(ops),
                _ => panel_rows::<float32x4_t, 4>(ops),
            }
        }
    }

    #[inline(always)]
    unsafe fn kxn_direct<W: Weight>(ops: Operands<W>) {
        // SAFETY: as the trait's contract, with `m` rows.
        unsafe {
            match ops.m {
                1 => kxn_direct_rows::<float32x4_t, W, 1, 8>(ops),
                2 => kxn_direct_rows::<float32x4_t, W, 2, 4>(ops),
                _ => kxn_direct_rows::<float32x4_t, W, 3, 4>(ops),
            }
        }
    }

    entry_points!("neon");
}

// SAFETY (every method): NEON is enabled for the whole target; the pointers are valid as each
// method's contract says.
impl Vector for float32x4_t {
    const LANES: usize = 4;
    type Bcast = f32;
    type Block = [float32x4_t; 4];

    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { vdupq_n_f32(0.0) }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        unsafe { vdupq_n_f32(x) }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { vld1q_f32(p) }
    }

    #[inline(always)]
    unsafe fn load_part(p: *const f32, count: usize) -> Self {
        unsafe { load_part_f32(p, count) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { vst1q_f32(p, self) }
    }

    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, count: usize) {
        unsafe { store_part_f32(p, self, count) }
    }

    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> Self {
        // f16 is a transparent u16, 4 of them readable.
        unsafe { vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p.cast()))) }
    }

    #[inline(always)]
    unsafe fn load_f16_part(p: *const f16, count: usize) -> Self {
        let mut buf = [0u16; 4];
        // `count <= 4` elements readable at `p` and writable in `buf`; the full load then
        // reads `buf` only.
        unsafe {
            copy_few(p.cast::<u16>(), buf.as_mut_ptr(), count);
            vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(buf.as_ptr())))
        }
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { vaddq_f32(self, o) }
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        unsafe { vsubq_f32(self, o) }
    }

    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { vmulq_f32(self, o) }
    }

    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        unsafe { vdivq_f32(self, o) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        unsafe { vfmaq_f32(self, a, b) }
    }

    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> f32 {
        unsafe { *p }
    }

    #[inline(always)]
    unsafe fn mul_add_bcast(self, b: Self, a: f32) -> Self {
        unsafe { vfmaq_n_f32(self, b, a) }
    }

    #[inline(always)]
    unsafe fn zero_block() -> [float32x4_t; 4] {
        unsafe { [vdupq_n_f32(0.0); 4] }
    }

    #[inline(always)]
    unsafe fn transpose(block: [float32x4_t; 4]) -> [float32x4_t; 4] {
        unsafe { transpose4(block) }
    }

    #[inline(always)]
    unsafe fn sum4(v: [Self; 4]) -> Self {
        unsafe {
            let t0 = vpaddq_f32(v[0], v[1]);
            let t1 = vpaddq_f32(v[2], v[3]);
            vpaddq_f32(t0, t1)
        }
    }

    #[inline(always)]
    unsafe fn load4(p: *const f32) -> Self {
        unsafe { vld1q_f32(p) }
    }

    #[inline(always)]
    unsafe fn store4(self, p: *mut f32) {
        unsafe { vst1q_f32(p, self) }
    }

    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        unsafe { vaddvq_f32(self) }
    }

    #[inline(always)]
    unsafe fn first(self) -> f32 {
        unsafe { vgetq_lane_f32::<0>(self) }
    }

    #[inline(always)]
    unsafe fn relu(self) -> Self {
        unsafe { relu_ps(self) }
    }

    #[inline(always)]
    unsafe fn activate(self, act: Activation) -> Self {
        unsafe { activate(self, act) }
    }

    #[inline(always)]
    unsafe fn exp(self) -> Self {
        unsafe { exp_ps(self) }
    }

    #[inline(always)]
    unsafe fn sigmoid(self) -> Self {
        unsafe { sigmoid_ps(self) }
    }

    #[inline(always)]
    unsafe fn tanh(self) -> Self {
        unsafe { tanh_ps(self) }
    }
}

/// Transposes 4 x 4 f32.
#[inline]
#[target_feature(enable = "neon")]
fn transpose4(r: [float32x4_t; 4]) -> [float32x4_t; 4] {
    let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
    let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
    let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
    let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
    [
        vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
        vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
    ]
}

/// `max(x, 0)`: FMAX returns NaN when an operand is NaN, so NaN stays NaN.
#[inline]
#[target_feature(enable = "neon")]
fn relu_ps(x: float32x4_t) -> float32x4_t {
    vmaxq_f32(x, vdupq_n_f32(0.0))
}

/// Sigmoid or tanh of 4 lanes, out of line: the epilogue is inlined into every tile shape, the
/// polynomials need not be.
#[inline(never)]
#[target_feature(enable = "neon")]
fn activate(v: float32x4_t, act: Activation) -> float32x4_t {
    match act {
        Activation::Sigmoid => sigmoid_ps(v),
        Activation::Tanh => tanh_ps(v),
        Activation::Relu => relu_ps(v),
        Activation::Identity => v,
    }
}

/// Cephes `expf` on 4 lanes: `x` clamped to `[EXP_LO, EXP_HI]` (NaN kept), `n = round(x /
/// ln 2)`, `e^r` by polynomial on `r = x - n ln 2`, then `* 2^(n/2) * 2^(n - n/2)` so that
/// overflow gives +inf and subnormal results are right.
#[inline]
#[target_feature(enable = "neon")]
fn exp_ps(x: float32x4_t) -> float32x4_t {
    // FMIN/FMAX return NaN when an operand is NaN: NaN goes through.
    let x = vmaxq_f32(vminq_f32(x, vdupq_n_f32(EXP_HI)), vdupq_n_f32(EXP_LO));
    let n = vrndnq_f32(vmulq_n_f32(x, core::f32::consts::LOG2_E));
    let r = vfmsq_f32(x, n, vdupq_n_f32(EXP_C1));
    let r = vfmsq_f32(r, n, vdupq_n_f32(EXP_C2));
    let r2 = vmulq_f32(r, r);
    let mut p = vdupq_n_f32(EXP_P[0]);
    for &coef in &EXP_P[1..] {
        p = vfmaq_f32(vdupq_n_f32(coef), p, r);
    }
    let y = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0));
    let ni = vcvtq_s32_f32(n);
    let n1 = vshrq_n_s32::<1>(ni);
    let n2 = vsubq_s32(ni, n1);
    let bias = vdupq_n_s32(127);
    let s1 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n1, bias)));
    let s2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n2, bias)));
    vmulq_f32(vmulq_f32(y, s1), s2)
}

/// `1 / (1 + e^-x)` with a true division: 0 for very negative `x`, 1 for very positive.
#[inline]
#[target_feature(enable = "neon")]
fn sigmoid_ps(x: float32x4_t) -> float32x4_t {
    let one = vdupq_n_f32(1.0);
    vdivq_f32(one, vaddq_f32(one, exp_ps(vnegq_f32(x))))
}

/// Cephes `tanhf`: odd polynomial for `|x| < 0.625`, else `1 - 2 / (e^{2|x|} + 1)` with the
/// sign of `x`.
#[inline]
#[target_feature(enable = "neon")]
fn tanh_ps(x: float32x4_t) -> float32x4_t {
    let one = vdupq_n_f32(1.0);
    let ax = vabsq_f32(x);
    let z = vmulq_f32(x, x);
    let mut q = vdupq_n_f32(TANH_Q[0]);
    for &coef in &TANH_Q[1..] {
        q = vfmaq_f32(vdupq_n_f32(coef), q, z);
    }
    let small = vfmaq_f32(x, vmulq_f32(q, z), x);
    let e = exp_ps(vaddq_f32(ax, ax));
    let large = vsubq_f32(one, vdivq_f32(vdupq_n_f32(2.0), vaddq_f32(e, one)));
    let sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x8000_0000));
    let large = vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(large), sign));
    let is_small = vcltq_f32(ax, vdupq_n_f32(TANH_SMALL));
    vbslq_f32(is_small, small, large)
}

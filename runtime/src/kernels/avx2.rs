//! AVX2 + FMA + F16C kernels for x86-64: the [`Vector`] impl on `__m256` (8 lanes), the tile
//! shapes, the `#[target_feature(enable = "avx2,fma,f16c")]` entry points that run the shared
//! code of `simd.rs` and `blocked.rs`, and the Cephes polynomials.
//!
//! The table is handed out only by [`table`], after run-time detection (cached in an atomic);
//! its entries are safe functions that check slice lengths and then call the entry points,
//! which is sound because no one can reach them without the table.
//!
//! Tiles: packed panels of 16 columns are multiplied by 6 x 16 tiles (12 accumulators, 2
//! vectors of B, one broadcast of `A[i][p]`: 15 of the 16 registers; 4 x 24 tiles spill in
//! practice); `KxN` products of up to 3 rows read B in place by tiles of all rows by 64 (1 row),
//! 32 (2 rows) or 24 (3 rows) columns; dot products are reduced with `hadd` four columns at a
//! time. Tails use masked loads/stores (`vmaskmovps`); f16 tails go through a stack buffer of
//! 8. f16 weights are widened by `vcvtph2ps` right after the load.
//!
//! `exp` is the Cephes polynomial of [`crate::math::exp_cephes`] (~1e-7 relative), on which
//! sigmoid and tanh are built.

use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

use half::f16;

use super::blocked::{kxn_direct_rows, panel_rows};
use super::simd::{self, copy_few, entry_points, Isa, Operands, Vector, Weight};
use super::{Activation, KernelVariant, Kernels};
use crate::math::{EXP_C1, EXP_C2, EXP_HI, EXP_LO, EXP_P, TANH_Q, TANH_SMALL};

/// The AVX2 table. Private: only [`table`] hands it out, after detection.
static TABLE: Kernels = simd::table::<Avx2>();

const UNKNOWN: u8 = 0;
const UNSUPPORTED: u8 = 1;
const SUPPORTED: u8 = 2;
/// Detection result, computed once (racing first calls compute the same value).
static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The AVX2 table if this CPU has AVX2, FMA and F16C.
pub(super) fn table() -> Option<&'static Kernels> {
    let mut state = DETECTED.load(Ordering::Relaxed);
    if state == UNKNOWN {
        state = if detect() { SUPPORTED } else { UNSUPPORTED };
        DETECTED.store(state, Ordering::Relaxed);
    }
    (state == SUPPORTED).then_some(&TABLE)
}

#[cfg(feature = "std")]
fn detect() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

/// Without `std` there is no run-time detection: the target must enable the features.
#[cfg(not(feature = "std"))]
fn detect() -> bool {
    cfg!(all(
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))
}

// ---------------------------------------------------------------------------------------------
// Loads of weights and masks.

/// `[-1; 8]` then `[0; 8]`: 8 consecutive lanes starting at `8 - count` enable `count` lanes.
static LANE_MASK: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// Mask enabling the first `count` lanes.
///
/// # Safety
/// `count <= 8`; AVX available.
#[inline(always)]
unsafe fn tail_mask(count: usize) -> __m256i {
    debug_assert!(count <= 8);
    // SAFETY: 8 - count in 0..=8, so the 8 lanes read lie in LANE_MASK (16 elements).
    unsafe { _mm256_loadu_si256(LANE_MASK.as_ptr().add(8 - count).cast()) }
}

/// The AVX2 + FMA + F16C family.
struct Avx2;

// SAFETY: `TABLE`, the only `simd::table::<Avx2>()`, is handed out by `table` only after AVX2,
// FMA and F16C are detected.
unsafe impl Isa for Avx2 {
    type V = __m256;
    const VARIANT: KernelVariant = KernelVariant::Avx2Fma;

    #[inline(always)]
    unsafe fn panel(ops: Operands<f32>, width: usize) {
        // SAFETY: as the trait's contract; 2 vectors cover the 16 columns.
        unsafe {
            if width <= 8 {
                panel_rows::<__m256, 1>(ops);
            } else {
                panel_rows::<__m256, 2>(ops);
            }
        }
    }

    #[inline(always)]
    unsafe fn kxn_direct<W: Weight>(ops: Operands<W>) {
        // SAFETY: as the trait's contract, with `m` rows.
        unsafe {
            match ops.m {
                1 => kxn_direct_rows::<__m256, W, 1, 8>(ops),
                2 => kxn_direct_rows::<__m256, W, 2, 4>(ops),
                _ => kxn_direct_rows::<__m256, W, 3, 3>(ops),
            }
        }
    }

    entry_points!("avx2,fma,f16c");
}

// SAFETY (every method): AVX2, FMA and F16C are available (the trait's contract); masked lanes
// are not accessed (no fault), the others are valid as each method's contract says.
impl Vector for __m256 {
    const LANES: usize = 8;
    type Bcast = __m256;
    type Block = [__m256; 8];

    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { _mm256_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        unsafe { _mm256_set1_ps(x) }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { _mm256_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load_part(p: *const f32, count: usize) -> Self {
        unsafe { _mm256_maskload_ps(p, tail_mask(count)) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm256_storeu_ps(p, self) }
    }

    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, count: usize) {
        unsafe { _mm256_maskstore_ps(p, tail_mask(count), self) }
    }

    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> Self {
        // f16 is a transparent u16: 8 of them are 16 readable bytes.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    #[inline(always)]
    unsafe fn load_f16_part(p: *const f16, count: usize) -> Self {
        let mut buf = [0u16; 8];
        // `count <= 8` elements readable at `p` and writable in `buf`; the full load then
        // reads `buf` only.
        unsafe {
            copy_few(p.cast::<u16>(), buf.as_mut_ptr(), count);
            _mm256_cvtph_ps(_mm_loadu_si128(buf.as_ptr().cast()))
        }
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { _mm256_add_ps(self, o) }
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        unsafe { _mm256_sub_ps(self, o) }
    }

    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { _mm256_mul_ps(self, o) }
    }

    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        unsafe { _mm256_div_ps(self, o) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        unsafe { _mm256_fmadd_ps(a, b, self) }
    }

    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> __m256 {
        unsafe { _mm256_broadcast_ss(&*p) }
    }

    #[inline(always)]
    unsafe fn mul_add_bcast(self, b: Self, a: __m256) -> Self {
        unsafe { _mm256_fmadd_ps(a, b, self) }
    }

    #[inline(always)]
    unsafe fn zero_block() -> [__m256; 8] {
        unsafe { [_mm256_setzero_ps(); 8] }
    }

    #[inline(always)]
    unsafe fn transpose(block: [__m256; 8]) -> [__m256; 8] {
        unsafe { transpose8(block) }
    }

    #[inline(always)]
    unsafe fn sum4(v: [Self; 4]) -> Self {
        unsafe {
            let t0 = _mm256_hadd_ps(v[0], v[1]);
            let t1 = _mm256_hadd_ps(v[2], v[3]);
            let t2 = _mm256_hadd_ps(t0, t1);
            let s = _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps::<1>(t2));
            _mm256_zextps128_ps256(s)
        }
    }

    #[inline(always)]
    unsafe fn load4(p: *const f32) -> Self {
        unsafe { _mm256_zextps128_ps256(_mm_loadu_ps(p)) }
    }

    #[inline(always)]
    unsafe fn store4(self, p: *mut f32) {
        unsafe { _mm_storeu_ps(p, _mm256_castps256_ps128(self)) }
    }

    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        unsafe { hsum(self) }
    }

    #[inline(always)]
    unsafe fn first(self) -> f32 {
        unsafe { _mm256_cvtss_f32(self) }
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

/// Transposes 8 x 8 f32.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xee>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xee>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xee>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xee>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// `max(x, 0)`: `max_ps` returns its second operand when one is NaN, so NaN stays NaN.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn relu_ps(x: __m256) -> __m256 {
    _mm256_max_ps(_mm256_setzero_ps(), x)
}

/// Sigmoid or tanh of 8 lanes, out of line: the epilogue is inlined into every tile shape, the
/// polynomials need not be.
#[inline(never)]
#[target_feature(enable = "avx2,fma")]
fn activate(v: __m256, act: Activation) -> __m256 {
    match act {
        Activation::Sigmoid => sigmoid_ps(v),
        Activation::Tanh => tanh_ps(v),
        Activation::Relu => relu_ps(v),
        Activation::Identity => v,
    }
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

/// Cephes `expf` on 8 lanes: `x` clamped to `[EXP_LO, EXP_HI]` (NaN kept), `n = round(x /
/// ln 2)`, `e^r` by polynomial on `r = x - n ln 2`, then `* 2^(n/2) * 2^(n - n/2)` so that
/// overflow gives +inf and subnormal results are right.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp_ps(x: __m256) -> __m256 {
    // min_ps/max_ps return the second operand when one is NaN: NaN goes through.
    let x = _mm256_max_ps(
        _mm256_set1_ps(EXP_LO),
        _mm256_min_ps(_mm256_set1_ps(EXP_HI), x),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(core::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_C1), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_C2), r);
    let r2 = _mm256_mul_ps(r, r);
    let mut p = _mm256_set1_ps(EXP_P[0]);
    for &coef in &EXP_P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(coef));
    }
    let y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let bias = _mm256_set1_epi32(127);
    let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
    let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
    _mm256_mul_ps(_mm256_mul_ps(y, s1), s2)
}

/// `1 / (1 + e^-x)` with a true division: 0 for very negative `x` (`e^-x` = +inf), 1 for
/// very positive.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sigmoid_ps(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let neg = _mm256_xor_ps(x, _mm256_set1_ps(-0.0));
    _mm256_div_ps(one, _mm256_add_ps(one, exp_ps(neg)))
}

/// Cephes `tanhf`: odd polynomial for `|x| < 0.625`, else `1 - 2 / (e^{2|x|} + 1)` with the
/// sign of `x`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tanh_ps(x: __m256) -> __m256 {
    let sign_bit = _mm256_set1_ps(-0.0);
    let one = _mm256_set1_ps(1.0);
    let ax = _mm256_andnot_ps(sign_bit, x);
    let z = _mm256_mul_ps(x, x);
    let mut q = _mm256_set1_ps(TANH_Q[0]);
    for &coef in &TANH_Q[1..] {
        q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(coef));
    }
    let small = _mm256_fmadd_ps(_mm256_mul_ps(q, z), x, x);
    let e = exp_ps(_mm256_add_ps(ax, ax));
    let large = _mm256_sub_ps(
        one,
        _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
    );
    let large = _mm256_or_ps(large, _mm256_and_ps(x, sign_bit));
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(ax, _mm256_set1_ps(TANH_SMALL));
    _mm256_blendv_ps(large, small, is_small)
}

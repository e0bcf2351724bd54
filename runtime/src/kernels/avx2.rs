//! AVX2 + FMA + F16C kernels for x86-64.
//!
//! The table is handed out only by [`table`], after run-time detection (cached in an atomic);
//! its entries are safe functions that check slice lengths and then call `unsafe`
//! `#[target_feature]` code, which is sound because no one can reach them without the table.
//!
//! Matrix products, without heap allocation (the only buffer is a 16 KiB stack panel):
//! - more than 3 rows of A ([`packed`]): for each panel of 16 columns x 256 rows of logical B,
//!   the panel is copied into a contiguous stack buffer (widened from f16; transposed by 8 x 8
//!   register blocks for `NxK`), then tiles of 6 rows x 16 columns (12 accumulators, 2
//!   vectors of B, one broadcast of `A[i][p]`: 15 of the 16 registers) run from L1. Panels
//!   after the first along `k` accumulate into C. (4 x 24 tiles spill in practice.)
//! - up to 3 rows (GEMV-like, each weight used at most 3 times, so a copy does not pay):
//!   `KxN` broadcasts `A[i][p]` over up to 64 columns of row `p` of B read in place
//!   ([`kxn_direct`]); `NxK` takes dot products along `k` ([`nxk`]: 1 row x 8 columns or
//!   3 x 4, 8 lanes per accumulator, reduced with `hadd` four columns at a time; 6 x 2 when C
//!   has at most 2 columns, e.g. a last `n = 1` layer with many rows).
//! - tails use masked loads/stores (`vmaskmovps`); f16 tails go through a stack buffer of 8.
//!   f16 weights are widened by `vcvtph2ps` right after the load.
//!
//! `exp` is the Cephes polynomial of [`crate::math::exp_cephes`] (~1e-7 relative), on which
//! sigmoid and tanh are built.

use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

use half::f16;

use super::op::{ADD, DIV, EXP, MUL, RELU, SIGMOID, SUB, TANH};
use super::{
    copy_few, epilogue_fits, matmul_fits, Activation, BLayout, Ep, Epilogue, KernelVariant,
    Kernels, MatMulDims, Operands,
};
use crate::math::{EXP_C1, EXP_C2, EXP_HI, EXP_LO, EXP_P, TANH_Q, TANH_SMALL};

/// The AVX2 table. Private: only [`table`] hands it out, after detection.
static TABLE: Kernels = Kernels {
    variant: KernelVariant::Avx2Fma,
    matmul_f32: matmul::<f32>,
    matmul_f16: matmul::<f16>,
    matmul_ep_f32: matmul_ep::<f32>,
    matmul_ep_f16: matmul_ep::<f16>,
    add: binary::<ADD>,
    sub: binary::<SUB>,
    mul: binary::<MUL>,
    div: binary::<DIV>,
    add_scalar: binary_scalar::<ADD>,
    mul_scalar: binary_scalar::<MUL>,
    relu: unary::<RELU>,
    sigmoid: unary::<SIGMOID>,
    tanh: unary::<TANH>,
    exp: unary::<EXP>,
    sum,
};

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

/// An element type of B, widened to f32 as it is loaded.
///
/// The methods are `#[inline(always)]` without `#[target_feature]` (as in memchr's `Vector`):
/// they are only called from `#[target_feature(enable = "avx2,fma,f16c")]` functions, into
/// which they are inlined.
trait Weight: Copy {
    /// Loads 8 consecutive weights.
    ///
    /// # Safety
    /// `p..p + 8` is readable; AVX2 and F16C are available.
    unsafe fn load8(p: *const Self) -> __m256;
    /// Loads `count` weights, zero in the other lanes; reads nothing beyond `p + count`.
    ///
    /// # Safety
    /// `count <= 8`, `p..p + count` is readable; AVX2 and F16C are available.
    unsafe fn load_part(p: *const Self, count: usize) -> __m256;
}

impl Weight for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements and AVX.
        unsafe { _mm256_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn load_part(p: *const f32, count: usize) -> __m256 {
        // SAFETY: masked lanes are not accessed (no fault), the `count` enabled ones are
        // readable (caller).
        unsafe { _mm256_maskload_ps(p, tail_mask(count)) }
    }
}

impl Weight for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: f16 is a transparent u16: 8 of them are the 16 readable bytes the caller
        // guarantees; F16C available (caller).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    #[inline(always)]
    unsafe fn load_part(p: *const f16, count: usize) -> __m256 {
        let mut buf = [0u16; 8];
        // SAFETY: `count <= 8` elements, readable at `p` (caller) and writable in `buf`; the
        // full load then reads `buf` only.
        unsafe {
            copy_few(p.cast::<u16>(), buf.as_mut_ptr(), count);
            _mm256_cvtph_ps(_mm_loadu_si128(buf.as_ptr().cast()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Matrix products.

fn matmul<W: Weight>(
    dims: MatMulDims,
    a: &[f32],
    b: &[W],
    layout: BLayout,
    c: &mut [f32],
    accumulate: bool,
) {
    let Some((ops, layout)) = Operands::prepare(dims, a, b, layout, c, accumulate, Ep::OFF) else {
        return;
    };
    // SAFETY: this function is reachable only through `TABLE`, which `table()` hands out after
    // detecting AVX2, FMA and F16C; `Operands::prepare` checked the slices, so `ops` describes
    // valid memory for `layout`.
    unsafe { dispatch(ops, layout) }
}

/// `C = epilogue(A * B)`: the product of [`matmul`] whose stores apply the epilogue (after the
/// last panel along `k`), so C is written once.
fn matmul_ep<W: Weight>(
    dims: MatMulDims,
    a: &[f32],
    b: &[W],
    layout: BLayout,
    c: &mut [f32],
    ep: Epilogue<'_>,
) {
    if !epilogue_fits(&ep, dims.n) {
        return;
    }
    let MatMulDims { m, k, n } = dims;
    if k == 0 && m > 0 && n > 0 && matmul_fits(dims, a.len(), b.len(), c.len()) {
        // An empty sum: C is the epilogue of zeros.
        // SAFETY: reachable only through `TABLE` (features detected); C holds m x n elements
        // and the bias (checked above) n.
        unsafe { epilogue_of_zeros(c.as_mut_ptr(), m, n, Ep::new(&ep)) };
        return;
    }
    let Some((ops, layout)) = Operands::prepare(dims, a, b, layout, c, false, Ep::new(&ep)) else {
        return;
    };
    // SAFETY: as in `matmul`; the bias covers the n columns of C (checked above).
    unsafe { dispatch(ops, layout) }
}

/// Runs the product `ops` describes with the kernel for its shape.
///
/// # Safety
/// `ops` as documented on [`Operands`] (B as `layout` says; a bias, when on, covering the `n`
/// columns), `m, k, n >= 1`; AVX2, FMA and F16C available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dispatch<W: Weight>(ops: Operands<W>, layout: BLayout) {
    // SAFETY: as this function's contract.
    unsafe {
        match layout {
            // GEMV-like: each weight serves at most 3 rows, read it in place.
            BLayout::KxN if ops.m <= DIRECT_MAX_M => kxn_direct(ops),
            BLayout::NxK if ops.m <= DIRECT_MAX_M || ops.n < 8 => nxk(ops),
            _ => packed(ops, layout),
        }
    }
}

/// `C = epilogue(0)` for an empty inner dimension, through the same stores as the products.
///
/// # Safety
/// `c..c + m*n` writable, the bias of `ep` (if any) covering `n` columns; AVX2 and FMA
/// available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn epilogue_of_zeros(c: *mut f32, m: usize, n: usize, ep: Ep) {
    for i in 0..m {
        let mut j = 0;
        while j < n {
            let cols = 8.min(n - j);
            // SAFETY: columns j..j+cols <= n of row i < m of C.
            unsafe { store_row(c.add(i * n + j), _mm256_setzero_ps(), cols, false, ep.at(j)) };
            j += cols;
        }
    }
}

/// Up to this many rows of A, products read B in place ([`kxn_direct`], [`nxk`]); above, the
/// copy of B into packed panels ([`packed`]) costs little next to the arithmetic it speeds up.
const DIRECT_MAX_M: usize = 3;

/// Rows of B per packed `KxN` panel: 256 x 16 f32 = 16 KiB of stack, which stays in L1.
const KXN_KC: usize = 256;
/// Columns of a packed `KxN` panel: 2 vectors (6 x 16 tiles: 12 accumulators, 2 vectors of
/// B and a broadcast fit the 16 registers without spills; 4 x 24 does not, in practice).
const KXN_NR: usize = 16;

/// Product for 4 rows of A or more: for each panel of 16 columns and 256 rows of (logical,
/// `k x n`) B, the panel is copied (widened, and transposed for `NxK`) into a contiguous stack
/// buffer, then every row of A is multiplied with it, 6 rows at a time. Panels after the first
/// along `k` accumulate into C. The copy costs one pass over B; the tiles then run from L1.
///
/// # Safety
/// `ops` as documented on [`Operands`] (B as `layout` says), `m, k, n >= 1`; AVX2, FMA and F16C
/// available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn packed<W: Weight>(ops: Operands<W>, layout: BLayout) {
    let Operands { k, n, .. } = ops;
    let mut pack = [0.0f32; KXN_KC * KXN_NR];
    let mut j = 0;
    while j < n {
        let width = KXN_NR.min(n - j);
        let mut k0 = 0;
        while k0 < k {
            let kc = KXN_KC.min(k - k0);
            // SAFETY: rows k0..k0+kc <= k and columns j..j+width <= n of logical B, stored as
            // `layout` says; the pack holds KXN_KC * 16 elements.
            unsafe {
                match layout {
                    BLayout::KxN => {
                        pack_kxn(ops.b.add(k0 * ops.ldb + j), ops.ldb, kc, width, &mut pack)
                    }
                    BLayout::NxK => {
                        pack_nxk(ops.b.add(j * ops.ldb + k0), ops.ldb, kc, width, &mut pack)
                    }
                }
            }
            let panel = Operands {
                m: ops.m,
                k: kc,
                n: width,
                // SAFETY: column k0 <= k of A and column j < n of C: inside the operands.
                a: unsafe { ops.a.add(k0) },
                lda: ops.lda,
                b: pack.as_ptr(),
                ldb: KXN_NR,
                c: unsafe { ops.c.add(j) },
                ldc: ops.ldc,
                accumulate: ops.accumulate || k0 > 0,
                // SAFETY: column j < n of C.
                ep: if k0 + kc == k {
                    unsafe { ops.ep.at(j) }
                } else {
                    Ep::OFF
                },
            };
            // SAFETY: `panel` is a block of `ops` (rows 0..m, columns j..j+width, k0..k0+kc)
            // with B the packed copy of its part of B (kc rows of stride 16).
            unsafe {
                if width <= 8 {
                    kxn_panel::<1>(panel);
                } else {
                    kxn_panel::<2>(panel);
                }
            }
            k0 += kc;
        }
        j += width;
    }
}

/// Copies `kc` rows of `width <= 16` weights (row stride `ldb`) into `pack` (row stride 16),
/// widened to f32.
///
/// # Safety
/// `kc <= KXN_KC`; `kc` rows of `width` elements readable at `b` with stride `ldb`; AVX2 and
/// F16C available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack_kxn<W: Weight>(
    b: *const W,
    ldb: usize,
    kc: usize,
    width: usize,
    pack: &mut [f32; KXN_KC * KXN_NR],
) {
    for (p, dst) in pack.chunks_exact_mut(KXN_NR).take(kc).enumerate() {
        let mut col = 0;
        while col < width {
            let cols = 8.min(width - col);
            // SAFETY: elements col..col+cols <= width of row p < kc of B; `dst` holds 16.
            unsafe {
                let src = b.add(p * ldb + col);
                let v = if cols == 8 {
                    W::load8(src)
                } else {
                    W::load_part(src, cols)
                };
                _mm256_storeu_ps(dst.as_mut_ptr().add(col), v);
            }
            col += 8;
        }
    }
}

/// Copies `width <= 16` rows of `kc` weights (row stride `ldb`, i.e. columns of logical B)
/// into `pack` transposed (row `p` of the pack holds element `p` of each), widened to f32,
/// by 8 x 8 blocks transposed in registers.
///
/// # Safety
/// `kc <= KXN_KC`; `width` rows of `kc` elements readable at `b` with stride `ldb`; AVX2 and
/// F16C available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack_nxk<W: Weight>(
    b: *const W,
    ldb: usize,
    kc: usize,
    width: usize,
    pack: &mut [f32; KXN_KC * KXN_NR],
) {
    let mut g = 0;
    while g < width {
        let rows = 8.min(width - g);
        let mut p = 0;
        while p < kc {
            let count = 8.min(kc - p);
            let mut block = [_mm256_setzero_ps(); 8];
            for (r, v) in block.iter_mut().take(rows).enumerate() {
                // SAFETY: elements p..p+count <= kc of row g + r < width of B.
                *v = unsafe {
                    let src = b.add((g + r) * ldb + p);
                    if count == 8 {
                        W::load8(src)
                    } else {
                        W::load_part(src, count)
                    }
                };
            }
            let block = transpose8(block);
            for (q, &v) in block.iter().take(count).enumerate() {
                // SAFETY: row p + q < kc <= KXN_KC of the pack, lanes g..g+8 <= 16.
                unsafe { _mm256_storeu_ps(pack.as_mut_ptr().add((p + q) * KXN_NR + g), v) };
            }
            p += 8;
        }
        g += 8;
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

/// All rows of a packed `KxN` panel of `8*(NV-1) < n <= 8*NV` columns, 6 rows at a time.
///
/// # Safety
/// `ops` as documented on [`Operands`] with B packed (`ldb` = 16, `k` rows of `8*NV`
/// readable lanes); AVX2 and FMA available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kxn_panel<const NV: usize>(ops: Operands<f32>) {
    let m = ops.m;
    let mut i = 0;
    // SAFETY (every call below): rows i..i + MR lie within 0..m.
    while i + 6 <= m {
        unsafe { kxn_tile::<6, NV>(ops, i) };
        i += 6;
    }
    unsafe {
        match m - i {
            5 => kxn_tile::<5, NV>(ops, i),
            4 => kxn_tile::<4, NV>(ops, i),
            3 => kxn_tile::<3, NV>(ops, i),
            2 => kxn_tile::<2, NV>(ops, i),
            1 => kxn_tile::<1, NV>(ops, i),
            _ => {}
        }
    }
}

/// `C[i..i+MR][0..n]` (+)= `A[i..i+MR][0..k] * Bpacked`, in `MR*NV` accumulator registers;
/// the last vector of each row is stored masked when `n < 8*NV`.
///
/// # Safety
/// Rows `i..i+MR` within `0..m`; as [`kxn_panel`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kxn_tile<const MR: usize, const NV: usize>(ops: Operands<f32>, i: usize) {
    let Operands {
        k,
        n,
        lda,
        ldb,
        ldc,
        ..
    } = ops;
    // SAFETY: offsets of rows i of A and C, inside the operands.
    let (a, c) = unsafe { (ops.a.add(i * lda), ops.c.add(i * ldc)) };
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    for p in 0..k {
        let mut bv = [_mm256_setzero_ps(); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: lanes 8v..8v+8 <= 8*NV of packed row p < k.
            *bv = unsafe { _mm256_loadu_ps(ops.b.add(p * ldb + 8 * v)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: element (i + r, p) of A, r < MR, p < k.
            let av = _mm256_broadcast_ss(unsafe { &*a.add(r * lda + p) });
            for (acc_rv, &bv) in acc_r.iter_mut().zip(&bv) {
                *acc_rv = _mm256_fmadd_ps(av, bv, *acc_rv);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &sum) in acc_r.iter().enumerate() {
            let cols = 8.min(n - 8 * v);
            // SAFETY: columns 8v..8v+cols <= n of row i + r < m of C (masked when cols < 8).
            unsafe {
                store_row(
                    c.add(r * ldc + 8 * v),
                    sum,
                    cols,
                    ops.accumulate,
                    ops.ep.at(8 * v),
                )
            };
        }
    }
}

/// `KxN` product for 1 to 3 rows of A (GEMV-like): B is read in place, each weight once,
/// in tiles of all rows by 64 (1 row), 32 (2 rows) or 24 (3 rows) columns.
///
/// # Safety
/// `ops` as documented on [`Operands`] (B `k x n`), `1 <= m <= 3`, `k, n >= 1`; AVX2, FMA and
/// F16C available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kxn_direct<W: Weight>(ops: Operands<W>) {
    // SAFETY: as this function's contract, with `m` rows.
    unsafe {
        match ops.m {
            1 => kxn_direct_rows::<W, 1, 8>(ops),
            2 => kxn_direct_rows::<W, 2, 4>(ops),
            _ => kxn_direct_rows::<W, 3, 3>(ops),
        }
    }
}

/// All columns of the `MR = m` rows: tiles of `8*NV` columns, then of 8 (the last masked).
///
/// # Safety
/// As [`kxn_direct`], with `m == MR`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kxn_direct_rows<W: Weight, const MR: usize, const NV: usize>(ops: Operands<W>) {
    let n = ops.n;
    let mut j = 0;
    // SAFETY (every call below): columns j..j + 8*NV (or j..min(j + 8, n)) lie within 0..n.
    while j + 8 * NV <= n {
        unsafe { kxn_direct_tile::<W, MR, NV>(ops, j, 8) };
        j += 8 * NV;
    }
    while j < n {
        let cols = 8.min(n - j);
        unsafe { kxn_direct_tile::<W, MR, 1>(ops, j, cols) };
        j += cols;
    }
}

/// `C[0..MR][j..]` (+)= `A * B[:][j..]` for `8*(NV-1) + last` columns, B read in place.
///
/// # Safety
/// `MR == m`; columns `j..j + 8*(NV-1) + last` within `0..n`, `1 <= last <= 8`; `ops` as
/// documented on [`Operands`] (B `k x n`); AVX2, FMA and F16C available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kxn_direct_tile<W: Weight, const MR: usize, const NV: usize>(
    ops: Operands<W>,
    j: usize,
    last: usize,
) {
    let Operands {
        k, lda, ldb, ldc, ..
    } = ops;
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    for p in 0..k {
        // SAFETY: row p < k of B from column j, inside the operands.
        let row = unsafe { ops.b.add(p * ldb + j) };
        let mut bv = [_mm256_setzero_ps(); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: columns j + 8v .. j + 8v + (8, or `last` for the last vector) <= n.
            *bv = unsafe {
                if v + 1 == NV && last < 8 {
                    W::load_part(row.add(8 * v), last)
                } else {
                    W::load8(row.add(8 * v))
                }
            };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: element (r, p) of A, r < MR = m, p < k.
            let av = _mm256_broadcast_ss(unsafe { &*ops.a.add(r * lda + p) });
            for (acc_rv, &bv) in acc_r.iter_mut().zip(&bv) {
                *acc_rv = _mm256_fmadd_ps(av, bv, *acc_rv);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &sum) in acc_r.iter().enumerate() {
            let cols = if v + 1 == NV { last } else { 8 };
            // SAFETY: columns j + 8v .. j + 8v + cols <= n of row r < m of C.
            unsafe {
                store_row(
                    ops.c.add(r * ldc + j + 8 * v),
                    sum,
                    cols,
                    ops.accumulate,
                    ops.ep.at(j + 8 * v),
                )
            };
        }
    }
}

/// Stores (or adds) the first `cols <= 8` lanes of `v` at `dst`, through the epilogue `ep`
/// (whose bias, when on, starts at `dst`'s column).
///
/// # Safety
/// `dst..dst+cols` readable and writable, `cols` bias values readable when `ep` has a bias;
/// AVX2 and FMA available.
#[inline(always)]
unsafe fn store_row(dst: *mut f32, v: __m256, cols: usize, accumulate: bool, ep: Ep) {
    // SAFETY: full accesses when 8 lanes are valid, masked ones (no access to disabled lanes)
    // otherwise; the bias as the caller guarantees.
    unsafe {
        if cols == 8 {
            let mut out = if accumulate {
                _mm256_add_ps(v, _mm256_loadu_ps(dst))
            } else {
                v
            };
            if ep.on {
                out = finish(out, ep, cols);
            }
            _mm256_storeu_ps(dst, out);
        } else {
            let mask = tail_mask(cols);
            let mut out = if accumulate {
                _mm256_add_ps(v, _mm256_maskload_ps(dst, mask))
            } else {
                v
            };
            if ep.on {
                out = finish(out, ep, cols);
            }
            _mm256_maskstore_ps(dst, mask, out);
        }
    }
}

/// The epilogue on the first `cols <= 8` lanes of `v` (the others are garbage): times alpha,
/// plus the bias, then the activation, each rounded as the separate kernels round it.
///
/// # Safety
/// `cols` bias values readable when `ep` has a bias; AVX2 and FMA available.
#[inline(always)]
unsafe fn finish(v: __m256, ep: Ep, cols: usize) -> __m256 {
    let mut v = v;
    // SAFETY: AVX available (caller); `cols` bias values readable, the other lanes masked off.
    unsafe {
        if ep.alpha != 1.0 {
            v = _mm256_mul_ps(v, _mm256_set1_ps(ep.alpha));
        }
        if !ep.bias.is_null() {
            let b = if cols == 8 {
                _mm256_loadu_ps(ep.bias)
            } else {
                _mm256_maskload_ps(ep.bias, tail_mask(cols))
            };
            v = _mm256_add_ps(v, b);
        }
        match ep.act {
            Activation::Identity => v,
            Activation::Relu => unary_op::<RELU>(v),
            Activation::Sigmoid | Activation::Tanh => activate(v, ep.act),
        }
    }
}

/// Sigmoid or tanh of 8 lanes, out of line: the epilogue is inlined into every tile shape, the
/// polynomials need not be.
#[inline(never)]
#[target_feature(enable = "avx2,fma")]
fn activate(v: __m256, act: Activation) -> __m256 {
    match act {
        Activation::Sigmoid => sigmoid_ps(v),
        Activation::Tanh => tanh_ps(v),
        Activation::Relu => unary_op::<RELU>(v),
        Activation::Identity => v,
    }
}

/// Bytes of B rows kept hot while the rows of A go by (half of a 512 KiB L2).
const NXK_B_BYTES: usize = 256 * 1024;

/// `NxK` product: chunks of columns (rows of B) that fit in L2, each over all rows of A, in
/// tiles of 3 rows x 4 columns (6 x 2 for at most 2 columns, 1 x 8 for a single row).
///
/// # Safety
/// `ops` as documented on [`Operands`] (B `n x k`), `m, k, n >= 1`; AVX2, FMA and F16C available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nxk<W: Weight>(ops: Operands<W>) {
    let Operands { m, k, n, .. } = ops;
    let chunk = (NXK_B_BYTES / (k.max(1) * core::mem::size_of::<W>())).max(8);
    let mut j0 = 0;
    while j0 < n {
        let j1 = n.min(j0 + chunk);
        let mut i = 0;
        // SAFETY (every call below): rows i..i + MR within 0..m, columns j0..j1 within 0..n.
        if n <= 2 {
            while i + 6 <= m {
                unsafe { nxk_rows::<W, 6, 2>(ops, i, j0, j1) };
                i += 6;
            }
        }
        while i + 3 <= m {
            unsafe { nxk_rows::<W, 3, 4>(ops, i, j0, j1) };
            i += 3;
        }
        unsafe {
            match m - i {
                2 => nxk_rows::<W, 2, 4>(ops, i, j0, j1),
                1 => nxk_rows::<W, 1, 8>(ops, i, j0, j1),
                _ => {}
            }
        }
        j0 = j1;
    }
}

/// Columns `j0..j1` of rows `i..i+MR` of C, `NC` columns at a time (then 4, then 1 to 3).
///
/// # Safety
/// As [`nxk_tile`] for every `j` in `j0..j1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nxk_rows<W: Weight, const MR: usize, const NC: usize>(
    ops: Operands<W>,
    i: usize,
    j0: usize,
    j1: usize,
) {
    let mut j = j0;
    // SAFETY (every call below): columns j..j + width lie within j0..j1.
    while j + NC <= j1 {
        unsafe { nxk_tile::<W, MR, NC>(ops, i, j) };
        j += NC;
    }
    if NC > 4 && j + 4 <= j1 {
        unsafe { nxk_tile::<W, MR, 4>(ops, i, j) };
        j += 4;
    }
    unsafe {
        match j1 - j {
            3 => nxk_tile::<W, MR, 3>(ops, i, j),
            2 => nxk_tile::<W, MR, 2>(ops, i, j),
            1 => nxk_tile::<W, MR, 1>(ops, i, j),
            _ => {}
        }
    }
}

/// `C[i+r][j+c]` (+)= `dot(A[i+r][:], B[j+c][:])` for `r < MR`, `c < NC`, 8 lanes of `k` per
/// step, a masked step for the last `k % 8`.
///
/// # Safety
/// Rows `i..i+MR` within `0..m`, columns `j..j+NC` within `0..n`; `ops` as documented on
/// [`Operands`] with B `n x k`; AVX2, FMA and F16C available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nxk_tile<W: Weight, const MR: usize, const NC: usize>(
    ops: Operands<W>,
    i: usize,
    j: usize,
) {
    let Operands {
        k, lda, ldb, ldc, ..
    } = ops;
    // SAFETY: offsets of rows i of A, j of B and element (i, j) of C, inside the operands.
    let (a, b, c) = unsafe {
        (
            ops.a.add(i * lda),
            ops.b.add(j * ldb),
            ops.c.add(i * ldc + j),
        )
    };
    let mut acc = [[_mm256_setzero_ps(); NC]; MR];
    let mut av = [_mm256_setzero_ps(); MR];
    let mut p = 0;
    while p + 8 <= k {
        for (r, av) in av.iter_mut().enumerate() {
            // SAFETY: elements p..p+8 <= k of row i + r < m of A.
            *av = unsafe { _mm256_loadu_ps(a.add(r * lda + p)) };
        }
        for col in 0..NC {
            // SAFETY: elements p..p+8 <= k of row j + col < n of B.
            let bv = unsafe { W::load8(b.add(col * ldb + p)) };
            for (acc_r, &av) in acc.iter_mut().zip(&av) {
                acc_r[col] = _mm256_fmadd_ps(av, bv, acc_r[col]);
            }
        }
        p += 8;
    }
    if p < k {
        let rest = k - p;
        for (r, av) in av.iter_mut().enumerate() {
            // SAFETY: elements p..k of row i + r of A; the other lanes are masked off.
            *av = unsafe { _mm256_maskload_ps(a.add(r * lda + p), tail_mask(rest)) };
        }
        for col in 0..NC {
            // SAFETY: elements p..k of row j + col of B.
            let bv = unsafe { W::load_part(b.add(col * ldb + p), rest) };
            for (acc_r, &av) in acc.iter_mut().zip(&av) {
                acc_r[col] = _mm256_fmadd_ps(av, bv, acc_r[col]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        // SAFETY: NC elements of row i + r of C from column j (and of the bias).
        unsafe { store_dots(acc_r, c.add(r * ldc), ops.accumulate, ops.ep.at(j)) };
    }
}

/// Stores (or adds) the lane sums of `acc[0..NC]` into `c[0..NC]`, four at a time with
/// `hadd`, through the epilogue `ep` (bias starting at `c`'s column).
///
/// # Safety
/// `c..c+NC` writable, `NC` bias values readable when `ep` has a bias; AVX2 and FMA
/// available.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn store_dots<const NC: usize>(acc: &[__m256; NC], c: *mut f32, accumulate: bool, ep: Ep) {
    let mut col = 0;
    while col + 4 <= NC {
        let t0 = _mm256_hadd_ps(acc[col], acc[col + 1]);
        let t1 = _mm256_hadd_ps(acc[col + 2], acc[col + 3]);
        let t2 = _mm256_hadd_ps(t0, t1);
        let mut s = _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps::<1>(t2));
        // SAFETY: elements col..col+4 <= NC of c and of the bias.
        unsafe {
            if accumulate {
                s = _mm_add_ps(s, _mm_loadu_ps(c.add(col)));
            }
            if ep.on {
                let wide = _mm256_set_m128(_mm_setzero_ps(), s);
                s = _mm256_castps256_ps128(finish(wide, ep.at(col), 4));
            }
            _mm_storeu_ps(c.add(col), s);
        }
        col += 4;
    }
    while col < NC {
        let s = hsum(acc[col]);
        // SAFETY: element col < NC of c and of the bias.
        unsafe {
            let dst = c.add(col);
            let mut v = if accumulate { *dst + s } else { s };
            if ep.on {
                v = _mm256_cvtss_f32(finish(_mm256_set1_ps(v), ep.at(col), 1));
            }
            *dst = v;
        }
        col += 1;
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

// ---------------------------------------------------------------------------------------------
// Elementwise kernels.

#[inline]
#[target_feature(enable = "avx2,fma")]
fn binary_op<const OP: u8>(x: __m256, y: __m256) -> __m256 {
    match OP {
        ADD => _mm256_add_ps(x, y),
        SUB => _mm256_sub_ps(x, y),
        MUL => _mm256_mul_ps(x, y),
        _ => _mm256_div_ps(x, y),
    }
}

fn binary<const OP: u8>(a: &[f32], b: &[f32], out: &mut [f32]) {
    let len = out.len().min(a.len()).min(b.len());
    // SAFETY: reachable only through `TABLE` (AVX2 and FMA detected); `len` elements are
    // valid in all three slices.
    unsafe { binary_avx2::<OP>(a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), len) }
}

/// # Safety
/// `len` elements readable at `a` and `b`, writable at `out`; AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
unsafe fn binary_avx2<const OP: u8>(a: *const f32, b: *const f32, out: *mut f32, len: usize) {
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: elements i..i+8 <= len.
        unsafe {
            let v = binary_op::<OP>(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)));
            _mm256_storeu_ps(out.add(i), v);
        }
        i += 8;
    }
    if i < len {
        // SAFETY: elements i..len, the other lanes masked off.
        unsafe {
            let mask = tail_mask(len - i);
            let x = _mm256_maskload_ps(a.add(i), mask);
            let y = _mm256_maskload_ps(b.add(i), mask);
            _mm256_maskstore_ps(out.add(i), mask, binary_op::<OP>(x, y));
        }
    }
}

fn binary_scalar<const OP: u8>(a: &[f32], s: f32, out: &mut [f32]) {
    let len = out.len().min(a.len());
    // SAFETY: reachable only through `TABLE` (AVX2 and FMA detected); `len` elements are
    // valid in both slices.
    unsafe { binary_scalar_avx2::<OP>(a.as_ptr(), s, out.as_mut_ptr(), len) }
}

/// # Safety
/// `len` elements readable at `a`, writable at `out`; AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
unsafe fn binary_scalar_avx2<const OP: u8>(a: *const f32, s: f32, out: *mut f32, len: usize) {
    let y = _mm256_set1_ps(s);
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: elements i..i+8 <= len.
        unsafe { _mm256_storeu_ps(out.add(i), binary_op::<OP>(_mm256_loadu_ps(a.add(i)), y)) };
        i += 8;
    }
    if i < len {
        // SAFETY: elements i..len, the other lanes masked off.
        unsafe {
            let mask = tail_mask(len - i);
            let x = _mm256_maskload_ps(a.add(i), mask);
            _mm256_maskstore_ps(out.add(i), mask, binary_op::<OP>(x, y));
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn unary_op<const OP: u8>(x: __m256) -> __m256 {
    match OP {
        // max_ps returns its second operand when one is NaN: NaN stays NaN.
        RELU => _mm256_max_ps(_mm256_setzero_ps(), x),
        SIGMOID => sigmoid_ps(x),
        TANH => tanh_ps(x),
        _ => exp_ps(x),
    }
}

fn unary<const OP: u8>(x: &mut [f32]) {
    // SAFETY: reachable only through `TABLE` (AVX2 and FMA detected); `x.len()` elements.
    unsafe { unary_avx2::<OP>(x.as_mut_ptr(), x.len()) }
}

/// # Safety
/// `len` elements readable and writable at `x`; AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
unsafe fn unary_avx2<const OP: u8>(x: *mut f32, len: usize) {
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: elements i..i+8 <= len.
        unsafe { _mm256_storeu_ps(x.add(i), unary_op::<OP>(_mm256_loadu_ps(x.add(i)))) };
        i += 8;
    }
    if i < len {
        // SAFETY: elements i..len, the other lanes masked off.
        unsafe {
            let mask = tail_mask(len - i);
            let v = _mm256_maskload_ps(x.add(i), mask);
            _mm256_maskstore_ps(x.add(i), mask, unary_op::<OP>(v));
        }
    }
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

fn sum(x: &[f32]) -> f32 {
    // SAFETY: reachable only through `TABLE` (AVX2 and FMA detected); `x.len()` elements.
    unsafe { sum_avx2(x.as_ptr(), x.len()) }
}

/// # Safety
/// `len` elements readable at `x`; AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_avx2(x: *const f32, len: usize) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= len {
        for (q, acc) in acc.iter_mut().enumerate() {
            // SAFETY: elements i + 8q .. i + 8q + 8 <= len.
            *acc = _mm256_add_ps(*acc, unsafe { _mm256_loadu_ps(x.add(i + 8 * q)) });
        }
        i += 32;
    }
    while i + 8 <= len {
        // SAFETY: elements i..i+8 <= len.
        acc[0] = _mm256_add_ps(acc[0], unsafe { _mm256_loadu_ps(x.add(i)) });
        i += 8;
    }
    if i < len {
        // SAFETY: elements i..len, the other lanes masked off (read as 0).
        acc[1] = _mm256_add_ps(acc[1], unsafe {
            _mm256_maskload_ps(x.add(i), tail_mask(len - i))
        });
    }
    hsum(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ))
}

//! NEON kernels for aarch64, chosen at compile time (this module exists only where the target
//! enables NEON, which every aarch64 Linux and Android target does).
//!
//! Same structure as the AVX2 kernels, on 4-lane vectors and 32 registers:
//! - more than 3 rows of A: B is copied (widened, transposed for `NxK`) into a stack panel of
//!   256 x 16 f32 and multiplied by tiles of 6 rows x 16 columns (24 accumulators);
//! - up to 3 rows (GEMV-like): B is read in place, `KxN` by broadcasting `A[i][p]` over rows of
//!   B, `NxK` by dot products along `k` (3 rows x 4 columns, 1 x 8, or 6 x 2 for narrow C),
//!   reduced with pairwise adds;
//! - tails (fewer than 4 elements) go through small stack buffers: NEON has no masked loads;
//! - f16 weights are widened with `vcvt_f32_f16` (FCVTL) right after the load.
//!
//! `exp` is the Cephes polynomial of [`crate::math::exp_cephes`]; sigmoid and tanh build on it.
//!
//! NEON intrinsics are `#[target_feature(enable = "neon")]` functions: the kernels carry the
//! same attribute, and the safe entry points call them in `unsafe` blocks whose justification is
//! the `cfg(target_feature = "neon")` on this module.

use core::arch::aarch64::*;

use half::f16;

use super::op::{ADD, DIV, EXP, MUL, RELU, SIGMOID, SUB, TANH};
use super::{
    copy_few, epilogue_fits, matmul_fits, Activation, BLayout, Ep, Epilogue, KernelVariant,
    Kernels, MatMulDims, Operands,
};
use crate::math::{EXP_C1, EXP_C2, EXP_HI, EXP_LO, EXP_P, TANH_Q, TANH_SMALL};

/// The NEON table.
static TABLE: Kernels = Kernels {
    variant: KernelVariant::Neon,
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

/// The NEON table (NEON is a compile-time feature of this target).
pub(super) fn table() -> &'static Kernels {
    &TABLE
}

// ---------------------------------------------------------------------------------------------
// Loads of weights.

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

/// An element type of B, widened to f32 as it is loaded.
///
/// The methods are `#[inline(always)]` and only called from `#[target_feature(enable =
/// "neon")]` functions, into which they are inlined.
trait Weight: Copy {
    /// Loads 4 consecutive weights.
    ///
    /// # Safety
    /// `p..p + 4` is readable.
    unsafe fn load4(p: *const Self) -> float32x4_t;
    /// Loads `count` weights, zero in the other lanes; reads nothing beyond `p + count`.
    ///
    /// # Safety
    /// `count <= 4`, `p..p + count` is readable.
    unsafe fn load_part(p: *const Self, count: usize) -> float32x4_t;
}

impl Weight for f32 {
    #[inline(always)]
    unsafe fn load4(p: *const f32) -> float32x4_t {
        // SAFETY: 4 readable elements (caller); NEON is enabled for the whole target.
        unsafe { vld1q_f32(p) }
    }

    #[inline(always)]
    unsafe fn load_part(p: *const f32, count: usize) -> float32x4_t {
        // SAFETY: as the caller guarantees.
        unsafe { load_part_f32(p, count) }
    }
}

impl Weight for f16 {
    #[inline(always)]
    unsafe fn load4(p: *const f16) -> float32x4_t {
        // SAFETY: f16 is a transparent u16, 4 of them readable (caller); NEON is enabled for
        // the whole target.
        unsafe { vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p.cast()))) }
    }

    #[inline(always)]
    unsafe fn load_part(p: *const f16, count: usize) -> float32x4_t {
        let mut buf = [0u16; 4];
        // SAFETY: `count <= 4` elements readable at `p` (caller) and writable in `buf`; the
        // full load then reads `buf` only; NEON is enabled for the whole target.
        unsafe {
            copy_few(p.cast::<u16>(), buf.as_mut_ptr(), count);
            vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(buf.as_ptr())))
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
    // SAFETY: NEON is enabled for the whole target (cfg on this module); `Operands::prepare`
    // checked the slices, so `ops` describes valid memory for `layout`.
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
        // SAFETY: NEON is enabled for the whole target; C holds m x n elements and the bias
        // (checked above) n.
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
/// columns), `m, k, n >= 1`.
#[target_feature(enable = "neon")]
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
/// `c..c + m*n` writable, the bias of `ep` (if any) covering `n` columns.
#[target_feature(enable = "neon")]
unsafe fn epilogue_of_zeros(c: *mut f32, m: usize, n: usize, ep: Ep) {
    for i in 0..m {
        let mut j = 0;
        while j < n {
            let cols = 4.min(n - j);
            // SAFETY: columns j..j+cols <= n of row i < m of C.
            unsafe { store_row(c.add(i * n + j), vdupq_n_f32(0.0), cols, false, ep.at(j)) };
            j += cols;
        }
    }
}

/// Up to this many rows of A, products read B in place ([`kxn_direct`], [`nxk`]); above, the
/// copy of B into packed panels ([`packed`]) costs little next to the arithmetic it speeds up.
const DIRECT_MAX_M: usize = 3;

/// Rows of B per packed panel: 256 x 16 f32 = 16 KiB of stack.
const PANEL_KC: usize = 256;
/// Columns of a packed panel: 4 vectors (6 x 16 tiles: 24 accumulators of the 32 registers).
const PANEL_NR: usize = 16;

/// Product for 4 rows of A or more: for each panel of 16 columns and 256 rows of (logical,
/// `k x n`) B, the panel is copied (widened, and transposed for `NxK`) into a contiguous stack
/// buffer, then every row of A is multiplied with it, 6 rows at a time. Panels after the first
/// along `k` accumulate into C.
///
/// # Safety
/// `ops` as documented on [`Operands`] (B as `layout` says), `m, k, n >= 1`.
#[target_feature(enable = "neon")]
unsafe fn packed<W: Weight>(ops: Operands<W>, layout: BLayout) {
    let Operands { k, n, .. } = ops;
    let mut pack = [0.0f32; PANEL_KC * PANEL_NR];
    let mut j = 0;
    while j < n {
        let width = PANEL_NR.min(n - j);
        let mut k0 = 0;
        while k0 < k {
            let kc = PANEL_KC.min(k - k0);
            // SAFETY: rows k0..k0+kc <= k and columns j..j+width <= n of logical B, stored as
            // `layout` says; the pack holds PANEL_KC * 16 elements.
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
                ldb: PANEL_NR,
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
                match width.div_ceil(4) {
                    1 => panel_rows::<1>(panel),
                    2 => panel_rows::<2>(panel),
                    3 => panel_rows::<3>(panel),
                    _ => panel_rows::<4>(panel),
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
/// `kc <= PANEL_KC`; `kc` rows of `width` elements readable at `b` with stride `ldb`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn pack_kxn<W: Weight>(
    b: *const W,
    ldb: usize,
    kc: usize,
    width: usize,
    pack: &mut [f32; PANEL_KC * PANEL_NR],
) {
    for (p, dst) in pack.chunks_exact_mut(PANEL_NR).take(kc).enumerate() {
        let mut col = 0;
        while col < width {
            let cols = 4.min(width - col);
            // SAFETY: elements col..col+cols <= width of row p < kc of B; `dst` holds 16.
            unsafe {
                let src = b.add(p * ldb + col);
                let v = if cols == 4 {
                    W::load4(src)
                } else {
                    W::load_part(src, cols)
                };
                vst1q_f32(dst.as_mut_ptr().add(col), v);
            }
            col += 4;
        }
    }
}

/// Copies `width <= 16` rows of `kc` weights (row stride `ldb`, i.e. columns of logical B)
/// into `pack` transposed (row `p` of the pack holds element `p` of each), widened to f32,
/// by 4 x 4 blocks transposed in registers.
///
/// # Safety
/// `kc <= PANEL_KC`; `width` rows of `kc` elements readable at `b` with stride `ldb`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn pack_nxk<W: Weight>(
    b: *const W,
    ldb: usize,
    kc: usize,
    width: usize,
    pack: &mut [f32; PANEL_KC * PANEL_NR],
) {
    let mut g = 0;
    while g < width {
        let rows = 4.min(width - g);
        let mut p = 0;
        while p < kc {
            let count = 4.min(kc - p);
            let mut block = [vdupq_n_f32(0.0); 4];
            for (r, v) in block.iter_mut().take(rows).enumerate() {
                // SAFETY: elements p..p+count <= kc of row g + r < width of B.
                *v = unsafe {
                    let src = b.add((g + r) * ldb + p);
                    if count == 4 {
                        W::load4(src)
                    } else {
                        W::load_part(src, count)
                    }
                };
            }
            let block = transpose4(block);
            for (q, &v) in block.iter().take(count).enumerate() {
                // SAFETY: row p + q < kc <= PANEL_KC of the pack, lanes g..g+4 <= 16.
                unsafe { vst1q_f32(pack.as_mut_ptr().add((p + q) * PANEL_NR + g), v) };
            }
            p += 4;
        }
        g += 4;
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

/// All rows of a packed panel of `4*(NV-1) < n <= 4*NV` columns, 6 rows at a time.
///
/// # Safety
/// `ops` as documented on [`Operands`] with B packed (`ldb` = 16, `k` rows of `4*NV`
/// readable lanes).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn panel_rows<const NV: usize>(ops: Operands<f32>) {
    let m = ops.m;
    let mut i = 0;
    // SAFETY (every call below): rows i..i + MR lie within 0..m.
    while i + 6 <= m {
        unsafe { panel_tile::<6, NV>(ops, i) };
        i += 6;
    }
    unsafe {
        match m - i {
            5 => panel_tile::<5, NV>(ops, i),
            4 => panel_tile::<4, NV>(ops, i),
            3 => panel_tile::<3, NV>(ops, i),
            2 => panel_tile::<2, NV>(ops, i),
            1 => panel_tile::<1, NV>(ops, i),
            _ => {}
        }
    }
}

/// `C[i..i+MR][0..n]` (+)= `A[i..i+MR][0..k] * Bpacked`, in `MR*NV` accumulator registers;
/// the last vector of each row is stored partially when `n < 4*NV`.
///
/// # Safety
/// Rows `i..i+MR` within `0..m`; as [`panel_rows`].
#[inline]
#[target_feature(enable = "neon")]
unsafe fn panel_tile<const MR: usize, const NV: usize>(ops: Operands<f32>, i: usize) {
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
    let mut acc = [[vdupq_n_f32(0.0); NV]; MR];
    for p in 0..k {
        let mut bv = [vdupq_n_f32(0.0); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: lanes 4v..4v+4 <= 4*NV of packed row p < k.
            *bv = unsafe { vld1q_f32(ops.b.add(p * ldb + 4 * v)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: element (i + r, p) of A, r < MR, p < k.
            let ar = unsafe { *a.add(r * lda + p) };
            for (acc_rv, &bv) in acc_r.iter_mut().zip(&bv) {
                *acc_rv = vfmaq_n_f32(*acc_rv, bv, ar);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &sum) in acc_r.iter().enumerate() {
            let cols = 4.min(n - 4 * v);
            // SAFETY: columns 4v..4v+cols <= n of row i + r < m of C.
            unsafe {
                store_row(
                    c.add(r * ldc + 4 * v),
                    sum,
                    cols,
                    ops.accumulate,
                    ops.ep.at(4 * v),
                )
            };
        }
    }
}

/// Stores (or adds) the first `cols <= 4` lanes of `v` at `dst`, through the epilogue `ep`
/// (whose bias, when on, starts at `dst`'s column).
///
/// # Safety
/// `dst..dst+cols` readable and writable, `cols` bias values readable when `ep` has a bias.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store_row(dst: *mut f32, v: float32x4_t, cols: usize, accumulate: bool, ep: Ep) {
    // SAFETY: full accesses when 4 lanes are valid, accesses of `cols` elements otherwise; the
    // bias as the caller guarantees.
    unsafe {
        if cols == 4 {
            let mut out = if accumulate {
                vaddq_f32(v, vld1q_f32(dst))
            } else {
                v
            };
            if ep.on {
                out = finish(out, ep, cols);
            }
            vst1q_f32(dst, out);
        } else {
            let mut out = if accumulate {
                vaddq_f32(v, load_part_f32(dst, cols))
            } else {
                v
            };
            if ep.on {
                out = finish(out, ep, cols);
            }
            store_part_f32(dst, out, cols);
        }
    }
}

/// The epilogue on the first `cols <= 4` lanes of `v` (the others are garbage): times alpha,
/// plus the bias, then the activation, each rounded as the separate kernels round it.
///
/// # Safety
/// `cols` bias values readable when `ep` has a bias.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn finish(v: float32x4_t, ep: Ep, cols: usize) -> float32x4_t {
    let mut v = v;
    if ep.alpha != 1.0 {
        v = vmulq_n_f32(v, ep.alpha);
    }
    if !ep.bias.is_null() {
        // SAFETY: `cols` bias values readable (caller).
        let b = unsafe {
            if cols == 4 {
                vld1q_f32(ep.bias)
            } else {
                load_part_f32(ep.bias, cols)
            }
        };
        v = vaddq_f32(v, b);
    }
    match ep.act {
        Activation::Identity => v,
        Activation::Relu => unary_op::<RELU>(v),
        Activation::Sigmoid | Activation::Tanh => activate(v, ep.act),
    }
}

/// Sigmoid or tanh of 4 lanes, out of line: the epilogue is inlined into every tile shape, the
/// polynomials need not be.
#[inline(never)]
#[target_feature(enable = "neon")]
fn activate(v: float32x4_t, act: Activation) -> float32x4_t {
    match act {
        Activation::Sigmoid => sigmoid_ps(v),
        Activation::Tanh => tanh_ps(v),
        Activation::Relu => unary_op::<RELU>(v),
        Activation::Identity => v,
    }
}

/// `KxN` product for 1 to 3 rows of A (GEMV-like): B is read in place, each weight once, in
/// tiles of all rows by 32 (1 row) or 16 (2 or 3 rows) columns.
///
/// # Safety
/// `ops` as documented on [`Operands`] (B `k x n`), `1 <= m <= 3`, `k, n >= 1`.
#[target_feature(enable = "neon")]
unsafe fn kxn_direct<W: Weight>(ops: Operands<W>) {
    // SAFETY: as this function's contract, with `m` rows.
    unsafe {
        match ops.m {
            1 => kxn_direct_rows::<W, 1, 8>(ops),
            2 => kxn_direct_rows::<W, 2, 4>(ops),
            _ => kxn_direct_rows::<W, 3, 4>(ops),
        }
    }
}

/// All columns of the `MR = m` rows: tiles of `4*NV` columns, then of 4 (the last partial).
///
/// # Safety
/// As [`kxn_direct`], with `m == MR`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn kxn_direct_rows<W: Weight, const MR: usize, const NV: usize>(ops: Operands<W>) {
    let n = ops.n;
    let mut j = 0;
    // SAFETY (every call below): columns j..j + 4*NV (or j..min(j + 4, n)) lie within 0..n.
    while j + 4 * NV <= n {
        unsafe { kxn_direct_tile::<W, MR, NV>(ops, j, 4) };
        j += 4 * NV;
    }
    while j < n {
        let cols = 4.min(n - j);
        unsafe { kxn_direct_tile::<W, MR, 1>(ops, j, cols) };
        j += cols;
    }
}

/// `C[0..MR][j..]` (+)= `A * B[:][j..]` for `4*(NV-1) + last` columns, B read in place.
///
/// # Safety
/// `MR == m`; columns `j..j + 4*(NV-1) + last` within `0..n`, `1 <= last <= 4`; `ops` as
/// documented on [`Operands`] (B `k x n`).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn kxn_direct_tile<W: Weight, const MR: usize, const NV: usize>(
    ops: Operands<W>,
    j: usize,
    last: usize,
) {
    let Operands {
        k, lda, ldb, ldc, ..
    } = ops;
    let mut acc = [[vdupq_n_f32(0.0); NV]; MR];
    for p in 0..k {
        // SAFETY: row p < k of B from column j, inside the operands.
        let row = unsafe { ops.b.add(p * ldb + j) };
        let mut bv = [vdupq_n_f32(0.0); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: columns j + 4v .. j + 4v + (4, or `last` for the last vector) <= n.
            *bv = unsafe {
                if v + 1 == NV && last < 4 {
                    W::load_part(row.add(4 * v), last)
                } else {
                    W::load4(row.add(4 * v))
                }
            };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: element (r, p) of A, r < MR = m, p < k.
            let ar = unsafe { *ops.a.add(r * lda + p) };
            for (acc_rv, &bv) in acc_r.iter_mut().zip(&bv) {
                *acc_rv = vfmaq_n_f32(*acc_rv, bv, ar);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &sum) in acc_r.iter().enumerate() {
            let cols = if v + 1 == NV { last } else { 4 };
            // SAFETY: columns j + 4v .. j + 4v + cols <= n of row r < m of C.
            unsafe {
                store_row(
                    ops.c.add(r * ldc + j + 4 * v),
                    sum,
                    cols,
                    ops.accumulate,
                    ops.ep.at(j + 4 * v),
                )
            };
        }
    }
}

/// Bytes of B rows kept hot while the rows of A go by.
const NXK_B_BYTES: usize = 256 * 1024;

/// `NxK` product by dot products: chunks of columns (rows of B) that fit in L2, each over all
/// rows of A, in tiles of 3 rows x 4 columns (6 x 2 for at most 2 columns, 1 x 8 for a single
/// row).
///
/// # Safety
/// `ops` as documented on [`Operands`] (B `n x k`), `m, k, n >= 1`.
#[target_feature(enable = "neon")]
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
#[target_feature(enable = "neon")]
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

/// `C[i+r][j+c]` (+)= `dot(A[i+r][:], B[j+c][:])` for `r < MR`, `c < NC`, 4 lanes of `k` per
/// step, a partial step for the last `k % 4`.
///
/// # Safety
/// Rows `i..i+MR` within `0..m`, columns `j..j+NC` within `0..n`; `ops` as documented on
/// [`Operands`] with B `n x k`.
#[inline]
#[target_feature(enable = "neon")]
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
    let mut acc = [[vdupq_n_f32(0.0); NC]; MR];
    let mut av = [vdupq_n_f32(0.0); MR];
    let mut p = 0;
    while p + 4 <= k {
        for (r, av) in av.iter_mut().enumerate() {
            // SAFETY: elements p..p+4 <= k of row i + r < m of A.
            *av = unsafe { vld1q_f32(a.add(r * lda + p)) };
        }
        for col in 0..NC {
            // SAFETY: elements p..p+4 <= k of row j + col < n of B.
            let bv = unsafe { W::load4(b.add(col * ldb + p)) };
            for (acc_r, &av) in acc.iter_mut().zip(&av) {
                acc_r[col] = vfmaq_f32(acc_r[col], av, bv);
            }
        }
        p += 4;
    }
    if p < k {
        let rest = k - p;
        for (r, av) in av.iter_mut().enumerate() {
            // SAFETY: elements p..k of row i + r of A.
            *av = unsafe { load_part_f32(a.add(r * lda + p), rest) };
        }
        for col in 0..NC {
            // SAFETY: elements p..k of row j + col of B.
            let bv = unsafe { W::load_part(b.add(col * ldb + p), rest) };
            for (acc_r, &av) in acc.iter_mut().zip(&av) {
                acc_r[col] = vfmaq_f32(acc_r[col], av, bv);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        // SAFETY: NC elements of row i + r of C from column j (and of the bias).
        unsafe { store_dots(acc_r, c.add(r * ldc), ops.accumulate, ops.ep.at(j)) };
    }
}

/// Stores (or adds) the lane sums of `acc[0..NC]` into `c[0..NC]`, four at a time with
/// pairwise adds, through the epilogue `ep` (bias starting at `c`'s column).
///
/// # Safety
/// `c..c+NC` writable, `NC` bias values readable when `ep` has a bias.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store_dots<const NC: usize>(
    acc: &[float32x4_t; NC],
    c: *mut f32,
    accumulate: bool,
    ep: Ep,
) {
    let mut col = 0;
    while col + 4 <= NC {
        let t0 = vpaddq_f32(acc[col], acc[col + 1]);
        let t1 = vpaddq_f32(acc[col + 2], acc[col + 3]);
        let mut s = vpaddq_f32(t0, t1);
        // SAFETY: elements col..col+4 <= NC of c and of the bias.
        unsafe {
            if accumulate {
                s = vaddq_f32(s, vld1q_f32(c.add(col)));
            }
            if ep.on {
                s = finish(s, ep.at(col), 4);
            }
            vst1q_f32(c.add(col), s);
        }
        col += 4;
    }
    while col < NC {
        let s = vaddvq_f32(acc[col]);
        // SAFETY: element col < NC of c and of the bias.
        unsafe {
            let dst = c.add(col);
            let mut v = if accumulate { *dst + s } else { s };
            if ep.on {
                v = vgetq_lane_f32::<0>(finish(vdupq_n_f32(v), ep.at(col), 1));
            }
            *dst = v;
        }
        col += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise kernels.

#[inline]
#[target_feature(enable = "neon")]
fn binary_op<const OP: u8>(x: float32x4_t, y: float32x4_t) -> float32x4_t {
    match OP {
        ADD => vaddq_f32(x, y),
        SUB => vsubq_f32(x, y),
        MUL => vmulq_f32(x, y),
        _ => vdivq_f32(x, y),
    }
}

fn binary<const OP: u8>(a: &[f32], b: &[f32], out: &mut [f32]) {
    let len = out.len().min(a.len()).min(b.len());
    // SAFETY: NEON is enabled for the whole target; `len` elements are valid in all three.
    unsafe { binary_neon::<OP>(a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), len) }
}

/// # Safety
/// `len` elements readable at `a` and `b`, writable at `out`.
#[target_feature(enable = "neon")]
unsafe fn binary_neon<const OP: u8>(a: *const f32, b: *const f32, out: *mut f32, len: usize) {
    let mut i = 0;
    while i + 4 <= len {
        // SAFETY: elements i..i+4 <= len.
        unsafe {
            vst1q_f32(
                out.add(i),
                binary_op::<OP>(vld1q_f32(a.add(i)), vld1q_f32(b.add(i))),
            )
        };
        i += 4;
    }
    if i < len {
        // SAFETY: elements i..len.
        unsafe {
            let x = load_part_f32(a.add(i), len - i);
            let y = load_part_f32(b.add(i), len - i);
            store_part_f32(out.add(i), binary_op::<OP>(x, y), len - i);
        }
    }
}

fn binary_scalar<const OP: u8>(a: &[f32], s: f32, out: &mut [f32]) {
    let len = out.len().min(a.len());
    // SAFETY: NEON is enabled for the whole target; `len` elements are valid in both.
    unsafe { binary_scalar_neon::<OP>(a.as_ptr(), s, out.as_mut_ptr(), len) }
}

/// # Safety
/// `len` elements readable at `a`, writable at `out`.
#[target_feature(enable = "neon")]
unsafe fn binary_scalar_neon<const OP: u8>(a: *const f32, s: f32, out: *mut f32, len: usize) {
    let y = vdupq_n_f32(s);
    let mut i = 0;
    while i + 4 <= len {
        // SAFETY: elements i..i+4 <= len.
        unsafe { vst1q_f32(out.add(i), binary_op::<OP>(vld1q_f32(a.add(i)), y)) };
        i += 4;
    }
    if i < len {
        // SAFETY: elements i..len.
        unsafe {
            let x = load_part_f32(a.add(i), len - i);
            store_part_f32(out.add(i), binary_op::<OP>(x, y), len - i);
        }
    }
}

#[inline]
#[target_feature(enable = "neon")]
fn unary_op<const OP: u8>(x: float32x4_t) -> float32x4_t {
    match OP {
        // FMAX returns NaN when an operand is NaN: NaN stays NaN.
        RELU => vmaxq_f32(x, vdupq_n_f32(0.0)),
        SIGMOID => sigmoid_ps(x),
        TANH => tanh_ps(x),
        _ => exp_ps(x),
    }
}

fn unary<const OP: u8>(x: &mut [f32]) {
    // SAFETY: NEON is enabled for the whole target; `x.len()` elements.
    unsafe { unary_neon::<OP>(x.as_mut_ptr(), x.len()) }
}

/// # Safety
/// `len` elements readable and writable at `x`.
#[target_feature(enable = "neon")]
unsafe fn unary_neon<const OP: u8>(x: *mut f32, len: usize) {
    let mut i = 0;
    while i + 4 <= len {
        // SAFETY: elements i..i+4 <= len.
        unsafe { vst1q_f32(x.add(i), unary_op::<OP>(vld1q_f32(x.add(i)))) };
        i += 4;
    }
    if i < len {
        // SAFETY: elements i..len.
        unsafe {
            let v = load_part_f32(x.add(i), len - i);
            store_part_f32(x.add(i), unary_op::<OP>(v), len - i);
        }
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

fn sum(x: &[f32]) -> f32 {
    // SAFETY: NEON is enabled for the whole target; `x.len()` elements.
    unsafe { sum_neon(x.as_ptr(), x.len()) }
}

/// # Safety
/// `len` elements readable at `x`.
#[target_feature(enable = "neon")]
unsafe fn sum_neon(x: *const f32, len: usize) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= len {
        for (q, acc) in acc.iter_mut().enumerate() {
            // SAFETY: elements i + 4q .. i + 4q + 4 <= len.
            *acc = vaddq_f32(*acc, unsafe { vld1q_f32(x.add(i + 4 * q)) });
        }
        i += 16;
    }
    while i + 4 <= len {
        // SAFETY: elements i..i+4 <= len.
        acc[0] = vaddq_f32(acc[0], unsafe { vld1q_f32(x.add(i)) });
        i += 4;
    }
    if i < len {
        // SAFETY: elements i..len (the other lanes read as 0).
        acc[1] = vaddq_f32(acc[1], unsafe { load_part_f32(x.add(i), len - i) });
    }
    vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ))
}

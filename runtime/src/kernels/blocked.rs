//! The blocked matrix products of the SIMD families, written once over [`Vector`] (`L` below is
//! its `LANES`: 8 for AVX2, 4 for NEON), without heap allocation (the only buffer is a 16 KiB
//! stack panel):
//! - more than 3 rows of A ([`packed`]): for each panel of `PANEL_NR` = 16 columns x
//!   `PANEL_KC` = 256 rows of logical B, the panel is copied into a contiguous stack buffer
//!   (widened from f16; transposed by `L x L` register blocks for `NxK`), then tiles of 6 rows
//!   x 16 columns run from L1 (AVX2: 12 accumulators, 2 vectors of B, one broadcast: 15 of the
//!   16 registers; NEON: 24 accumulators of the 32). Panels after the first along `k`
//!   accumulate into C.
//! - up to 3 rows (GEMV-like, each weight used at most 3 times, so a copy does not pay): `KxN`
//!   broadcasts `A[i][p]` over a few vectors of row `p` of B read in place
//!   ([`kxn_direct_rows`], tile widths chosen by the family); `NxK` takes dot products along `k`
//!   ([`nxk`]: 1 row x 8 columns or 3 x 4, `L` lanes per accumulator, reduced four columns at a
//!   time; 6 x 2 when C has at most 2 columns, e.g. a last `n = 1` layer with many rows).
//! - tails use the partial loads and stores of [`Vector`] (masked on AVX2, through small stack
//!   buffers on NEON).
//!
//! Every function is `#[inline(always)]` and runs inside an [`Isa`] entry point (see
//! `simd.rs`). Each has the safety contract of its documentation plus: the ISA of `V` (or `I`)
//! is available.

use super::simd::{Ep, Isa, Operands, Vector, Weight};
use super::{Activation, BLayout};

/// Up to this many rows of A, products read B in place ([`kxn_direct_rows`], [`nxk`]); above,
/// the copy of B into packed panels ([`packed`]) costs little next to the arithmetic it speeds
/// up.
const DIRECT_MAX_M: usize = 3;

/// Rows of B per packed panel: 256 x 16 f32 = 16 KiB of stack, which stays in L1.
pub(super) const PANEL_KC: usize = 256;
/// Columns of a packed panel (AVX2: 2 vectors, since 4 x 24 tiles spill in practice; NEON: 4).
pub(super) const PANEL_NR: usize = 16;

/// Bytes of B rows kept hot while the rows of A go by (half of a 512 KiB L2).
const NXK_B_BYTES: usize = 256 * 1024;

/// Runs the product `ops` describes with the kernel for its shape.
///
/// # Safety
/// `ops` as documented on [`Operands`] (B as `layout` says; a bias, when on, covering the `n`
/// columns), `m, k, n >= 1`.
#[inline(always)]
pub(super) unsafe fn dispatch<I: Isa, W: Weight>(ops: Operands<W>, layout: BLayout) {
    // SAFETY: as this function's contract.
    unsafe {
        match layout {
            // GEMV-like: each weight serves at most 3 rows, read it in place.
            BLayout::KxN if ops.m <= DIRECT_MAX_M => I::kxn_direct(ops),
            BLayout::NxK if ops.m <= DIRECT_MAX_M || ops.n < 8 => nxk::<I::V, W>(ops),
            _ => packed::<I, W>(ops, layout),
        }
    }
}

/// `C = epilogue(0)` for an empty inner dimension, through the same stores as the products.
///
/// # Safety
/// `c..c + m*n` writable, the bias of `ep` (if any) covering `n` columns.
#[inline(always)]
pub(super) unsafe fn epilogue_of_zeros<V: Vector>(c: *mut f32, m: usize, n: usize, ep: Ep) {
    for i in 0..m {
        let mut j = 0;
        while j < n {
            let cols = V::LANES.min(n - j);
            // SAFETY: columns j..j+cols <= n of row i < m of C.
            unsafe { store_row(c.add(i * n + j), V::zero(), cols, false, ep.at(j)) };
            j += cols;
        }
    }
}

/// Product for 4 rows of A or more: for each panel of 16 columns and 256 rows of (logical,
/// `k x n`) B, the panel is copied (widened, and transposed for `NxK`) into a contiguous stack
/// buffer, then every row of A is multiplied with it, 6 rows at a time. Panels after the first
/// along `k` accumulate into C. The copy costs one pass over B; the tiles then run from L1.
///
/// # Safety
/// `ops` as documented on [`Operands`] (B as `layout` says), `m, k, n >= 1`.
#[inline(always)]
unsafe fn packed<I: Isa, W: Weight>(ops: Operands<W>, layout: BLayout) {
    let Operands { k, n, .. } = ops;
    let mut pack = [0.0f32; PANEL_KC * PANEL_NR];
    let mut j = 0;
    while j < n {
        let width = PANEL_NR.min(n - j);
        let mut k0 = 0;
        while k0 < k {
            let kc = PANEL_KC.min(k - k0);
            // SAFETY: rows k0..k0+kc <= k and columns j..j+width <= n of logical B, stored as
            // `layout` says; the pack holds PANEL_KC * PANEL_NR elements.
            unsafe {
                match layout {
                    BLayout::KxN => pack_kxn::<I::V, W>(
                        ops.b.add(k0 * ops.ldb + j),
                        ops.ldb,
                        kc,
                        width,
                        &mut pack,
                    ),
                    BLayout::NxK => pack_nxk::<I::V, W>(
                        ops.b.add(j * ops.ldb + k0),
                        ops.ldb,
                        kc,
                        width,
                        &mut pack,
                    ),
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
            // with B the packed copy of its part of B (kc rows of stride PANEL_NR).
            unsafe { I::panel(panel, width) };
            k0 += kc;
        }
        j += width;
    }
}

/// Copies `kc` rows of `width <= PANEL_NR` weights (row stride `ldb`) into `pack` (row stride
/// `PANEL_NR`), widened to f32.
///
/// # Safety
/// `kc <= PANEL_KC`; `kc` rows of `width` elements readable at `b` with stride `ldb`.
#[inline(always)]
unsafe fn pack_kxn<V: Vector, W: Weight>(
    b: *const W,
    ldb: usize,
    kc: usize,
    width: usize,
    pack: &mut [f32; PANEL_KC * PANEL_NR],
) {
    for (p, dst) in pack.chunks_exact_mut(PANEL_NR).take(kc).enumerate() {
        let mut col = 0;
        while col < width {
            let cols = V::LANES.min(width - col);
            // SAFETY: elements col..col+cols <= width of row p < kc of B; `dst` holds
            // PANEL_NR, a multiple of LANES.
            unsafe {
                let src = b.add(p * ldb + col);
                let v: V = if cols == V::LANES {
                    W::load(src)
                } else {
                    W::load_part(src, cols)
                };
                v.store(dst.as_mut_ptr().add(col));
            }
            col += V::LANES;
        }
    }
}

/// Copies `width <= PANEL_NR` rows of `kc` weights (row stride `ldb`, i.e. columns of logical
/// B) into `pack` transposed (row `p` of the pack holds element `p` of each), widened to f32,
/// by `LANES x LANES` blocks transposed in registers.
///
/// # Safety
/// `kc <= PANEL_KC`; `width` rows of `kc` elements readable at `b` with stride `ldb`.
#[inline(always)]
unsafe fn pack_nxk<V: Vector, W: Weight>(
    b: *const W,
    ldb: usize,
    kc: usize,
    width: usize,
    pack: &mut [f32; PANEL_KC * PANEL_NR],
) {
    let mut g = 0;
    while g < width {
        let rows = V::LANES.min(width - g);
        let mut p = 0;
        while p < kc {
            let count = V::LANES.min(kc - p);
            // SAFETY: ISA available.
            let mut block = unsafe { V::zero_block() };
            for (r, v) in block.as_mut().iter_mut().take(rows).enumerate() {
                // SAFETY: elements p..p+count <= kc of row g + r < width of B.
                *v = unsafe {
                    let src = b.add((g + r) * ldb + p);
                    if count == V::LANES {
                        W::load(src)
                    } else {
                        W::load_part(src, count)
                    }
                };
            }
            // SAFETY: ISA available.
            let block = unsafe { V::transpose(block) };
            for (q, &v) in block.as_ref().iter().take(count).enumerate() {
                // SAFETY: row p + q < kc <= PANEL_KC of the pack, lanes g..g+LANES <= PANEL_NR.
                unsafe { v.store(pack.as_mut_ptr().add((p + q) * PANEL_NR + g)) };
            }
            p += V::LANES;
        }
        g += V::LANES;
    }
}

/// All rows of a packed panel of `L*(NV-1) < n <= L*NV` columns, 6 rows at a time.
///
/// # Safety
/// `ops` as documented on [`Operands`] with B packed (`ldb` = `PANEL_NR`, `k` rows of `L*NV`
/// readable lanes).
#[inline(always)]
pub(super) unsafe fn panel_rows<V: Vector, const NV: usize>(ops: Operands<f32>) {
    let m = ops.m;
    let mut i = 0;
    // SAFETY (every call below): rows i..i + MR lie within 0..m.
    while i + 6 <= m {
        unsafe { panel_tile::<V, 6, NV>(ops, i) };
        i += 6;
    }
    unsafe {
        match m - i {
            5 => panel_tile::<V, 5, NV>(ops, i),
            4 => panel_tile::<V, 4, NV>(ops, i),
            3 => panel_tile::<V, 3, NV>(ops, i),
            2 => panel_tile::<V, 2, NV>(ops, i),
            1 => panel_tile::<V, 1, NV>(ops, i),
            _ => {}
        }
    }
}

/// `C[i..i+MR][0..n]` (+)= `A[i..i+MR][0..k] * Bpacked`, in `MR*NV` accumulator registers;
/// the last vector of each row is stored partially when `n < L*NV`.
///
/// # Safety
/// Rows `i..i+MR` within `0..m`; as [`panel_rows`].
#[inline(always)]
unsafe fn panel_tile<V: Vector, const MR: usize, const NV: usize>(ops: Operands<f32>, i: usize) {
    let Operands {
        k,
        n,
        lda,
        ldb,
        ldc,
        ..
    } = ops;
    // SAFETY: offsets of rows i of A and C, inside the operands; ISA available.
    let (a, c, zero) = unsafe { (ops.a.add(i * lda), ops.c.add(i * ldc), V::zero()) };
    let mut acc = [[zero; NV]; MR];
    for p in 0..k {
        let mut bv = [zero; NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: lanes L*v..L*v+L <= L*NV of packed row p < k.
            *bv = unsafe { V::load(ops.b.add(p * ldb + V::LANES * v)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: element (i + r, p) of A, r < MR, p < k.
            let av = unsafe { V::bcast(a.add(r * lda + p)) };
            for (acc_rv, &bv) in acc_r.iter_mut().zip(&bv) {
                // SAFETY: ISA available.
                *acc_rv = unsafe { acc_rv.mul_add_bcast(bv, av) };
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &sum) in acc_r.iter().enumerate() {
            let cols = V::LANES.min(n - V::LANES * v);
            // SAFETY: columns L*v..L*v+cols <= n of row i + r < m of C.
            unsafe {
                store_row(
                    c.add(r * ldc + V::LANES * v),
                    sum,
                    cols,
                    ops.accumulate,
                    ops.ep.at(V::LANES * v),
                )
            };
        }
    }
}

/// All columns of the `MR = m` rows of a `KxN` product, B read in place: tiles of `L*NV`
/// columns, then of `L` (the last partial).
///
/// # Safety
/// `ops` as documented on [`Operands`] (B `k x n`), `m == MR`, `k, n >= 1`.
#[inline(always)]
pub(super) unsafe fn kxn_direct_rows<V: Vector, W: Weight, const MR: usize, const NV: usize>(
    ops: Operands<W>,
) {
    let n = ops.n;
    let mut j = 0;
    // SAFETY (every call below): columns j..j + L*NV (or j..min(j + L, n)) lie within 0..n.
    while j + V::LANES * NV <= n {
        unsafe { kxn_direct_tile::<V, W, MR, NV>(ops, j, V::LANES) };
        j += V::LANES * NV;
    }
    while j < n {
        let cols = V::LANES.min(n - j);
        unsafe { kxn_direct_tile::<V, W, MR, 1>(ops, j, cols) };
        j += cols;
    }
}

/// `C[0..MR][j..]` (+)= `A * B[:][j..]` for `L*(NV-1) + last` columns, B read in place.
///
/// # Safety
/// `MR == m`; columns `j..j + L*(NV-1) + last` within `0..n`, `1 <= last <= L`; `ops` as
/// documented on [`Operands`] (B `k x n`).
#[inline(always)]
unsafe fn kxn_direct_tile<V: Vector, W: Weight, const MR: usize, const NV: usize>(
    ops: Operands<W>,
    j: usize,
    last: usize,
) {
    let Operands {
        k, lda, ldb, ldc, ..
    } = ops;
    // SAFETY: ISA available.
    let zero = unsafe { V::zero() };
    let mut acc = [[zero; NV]; MR];
    for p in 0..k {
        // SAFETY: row p < k of B from column j, inside the operands.
        let row = unsafe { ops.b.add(p * ldb + j) };
        let mut bv = [zero; NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: columns j + L*v .. j + L*v + (L, or `last` for the last vector) <= n.
            *bv = unsafe {
                if v + 1 == NV && last < V::LANES {
                    W::load_part(row.add(V::LANES * v), last)
                } else {
                    W::load(row.add(V::LANES * v))
                }
            };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: element (r, p) of A, r < MR = m, p < k.
            let av = unsafe { V::bcast(ops.a.add(r * lda + p)) };
            for (acc_rv, &bv) in acc_r.iter_mut().zip(&bv) {
                // SAFETY: ISA available.
                *acc_rv = unsafe { acc_rv.mul_add_bcast(bv, av) };
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &sum) in acc_r.iter().enumerate() {
            let cols = if v + 1 == NV { last } else { V::LANES };
            // SAFETY: columns j + L*v .. j + L*v + cols <= n of row r < m of C.
            unsafe {
                store_row(
                    ops.c.add(r * ldc + j + V::LANES * v),
                    sum,
                    cols,
                    ops.accumulate,
                    ops.ep.at(j + V::LANES * v),
                )
            };
        }
    }
}

/// Stores (or adds) the first `cols <= L` lanes of `v` at `dst`, through the epilogue `ep`
/// (whose bias, when on, starts at `dst`'s column).
///
/// # Safety
/// `dst..dst+cols` readable and writable, `cols` bias values readable when `ep` has a bias.
#[inline(always)]
unsafe fn store_row<V: Vector>(dst: *mut f32, v: V, cols: usize, accumulate: bool, ep: Ep) {
    // SAFETY: full accesses when L lanes are valid, partial ones (no access beyond `cols`)
    // otherwise; the bias as the caller guarantees.
    unsafe {
        if cols == V::LANES {
            let mut out = if accumulate { v.add(V::load(dst)) } else { v };
            if ep.on {
                out = finish(out, ep, cols);
            }
            out.store(dst);
        } else {
            let mut out = if accumulate {
                v.add(V::load_part(dst, cols))
            } else {
                v
            };
            if ep.on {
                out = finish(out, ep, cols);
            }
            out.store_part(dst, cols);
        }
    }
}

/// The epilogue on the first `cols <= L` lanes of `v` (the others are garbage): times alpha,
/// plus the bias, then the activation, each rounded as the separate kernels round it.
///
/// # Safety
/// `cols` bias values readable when `ep` has a bias.
#[inline(always)]
unsafe fn finish<V: Vector>(v: V, ep: Ep, cols: usize) -> V {
    let mut v = v;
    // SAFETY: `cols` bias values readable, nothing read beyond.
    unsafe {
        if ep.alpha != 1.0 {
            v = v.mul(V::splat(ep.alpha));
        }
        if !ep.bias.is_null() {
            let b = if cols == V::LANES {
                V::load(ep.bias)
            } else {
                V::load_part(ep.bias, cols)
            };
            v = v.add(b);
        }
        match ep.act {
            Activation::Identity => v,
            Activation::Relu => v.relu(),
            Activation::Sigmoid | Activation::Tanh => v.activate(ep.act),
        }
    }
}

/// `NxK` product by dot products: chunks of columns (rows of B) that fit in L2, each over all
/// rows of A, in tiles of 3 rows x 4 columns (6 x 2 for at most 2 columns, 1 x 8 for a single
/// row).
///
/// # Safety
/// `ops` as documented on [`Operands`] (B `n x k`), `m, k, n >= 1`.
#[inline(always)]
unsafe fn nxk<V: Vector, W: Weight>(ops: Operands<W>) {
    let Operands { m, k, n, .. } = ops;
    let chunk = (NXK_B_BYTES / (k.max(1) * core::mem::size_of::<W>())).max(8);
    let mut j0 = 0;
    while j0 < n {
        let j1 = n.min(j0 + chunk);
        let mut i = 0;
        // SAFETY (every call below): rows i..i + MR within 0..m, columns j0..j1 within 0..n.
        if n <= 2 {
            while i + 6 <= m {
                unsafe { nxk_rows::<V, W, 6, 2>(ops, i, j0, j1) };
                i += 6;
            }
        }
        while i + 3 <= m {
            unsafe { nxk_rows::<V, W, 3, 4>(ops, i, j0, j1) };
            i += 3;
        }
        unsafe {
            match m - i {
                2 => nxk_rows::<V, W, 2, 4>(ops, i, j0, j1),
                1 => nxk_rows::<V, W, 1, 8>(ops, i, j0, j1),
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
#[inline(always)]
unsafe fn nxk_rows<V: Vector, W: Weight, const MR: usize, const NC: usize>(
    ops: Operands<W>,
    i: usize,
    j0: usize,
    j1: usize,
) {
    let mut j = j0;
    // SAFETY (every call below): columns j..j + width lie within j0..j1.
    while j + NC <= j1 {
        unsafe { nxk_tile::<V, W, MR, NC>(ops, i, j) };
        j += NC;
    }
    if NC > 4 && j + 4 <= j1 {
        unsafe { nxk_tile::<V, W, MR, 4>(ops, i, j) };
        j += 4;
    }
    unsafe {
        match j1 - j {
            3 => nxk_tile::<V, W, MR, 3>(ops, i, j),
            2 => nxk_tile::<V, W, MR, 2>(ops, i, j),
            1 => nxk_tile::<V, W, MR, 1>(ops, i, j),
            _ => {}
        }
    }
}

/// `C[i+r][j+c]` (+)= `dot(A[i+r][:], B[j+c][:])` for `r < MR`, `c < NC`, `L` lanes of `k` per
/// step, a partial step for the last `k % L`.
///
/// # Safety
/// Rows `i..i+MR` within `0..m`, columns `j..j+NC` within `0..n`; `ops` as documented on
/// [`Operands`] with B `n x k`.
#[inline(always)]
unsafe fn nxk_tile<V: Vector, W: Weight, const MR: usize, const NC: usize>(
    ops: Operands<W>,
    i: usize,
    j: usize,
) {
    let Operands {
        k, lda, ldb, ldc, ..
    } = ops;
    // SAFETY: offsets of rows i of A, j of B and element (i, j) of C, inside the operands; ISA
    // available.
    let (a, b, c, zero) = unsafe {
        (
            ops.a.add(i * lda),
            ops.b.add(j * ldb),
            ops.c.add(i * ldc + j),
            V::zero(),
        )
    };
    let mut acc = [[zero; NC]; MR];
    let mut av = [zero; MR];
    let mut p = 0;
    while p + V::LANES <= k {
        for (r, av) in av.iter_mut().enumerate() {
            // SAFETY: elements p..p+L <= k of row i + r < m of A.
            *av = unsafe { V::load(a.add(r * lda + p)) };
        }
        for col in 0..NC {
            // SAFETY: elements p..p+L <= k of row j + col < n of B.
            let bv: V = unsafe { W::load(b.add(col * ldb + p)) };
            for (acc_r, &av) in acc.iter_mut().zip(&av) {
                // SAFETY: ISA available.
                acc_r[col] = unsafe { acc_r[col].mul_add(av, bv) };
            }
        }
        p += V::LANES;
    }
    if p < k {
        let rest = k - p;
        for (r, av) in av.iter_mut().enumerate() {
            // SAFETY: elements p..k of row i + r of A, nothing beyond.
            *av = unsafe { V::load_part(a.add(r * lda + p), rest) };
        }
        for col in 0..NC {
            // SAFETY: elements p..k of row j + col of B.
            let bv: V = unsafe { W::load_part(b.add(col * ldb + p), rest) };
            for (acc_r, &av) in acc.iter_mut().zip(&av) {
                // SAFETY: ISA available.
                acc_r[col] = unsafe { acc_r[col].mul_add(av, bv) };
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        // SAFETY: NC elements of row i + r of C from column j (and of the bias).
        unsafe { store_dots(acc_r, c.add(r * ldc), ops.accumulate, ops.ep.at(j)) };
    }
}

/// Stores (or adds) the lane sums of `acc[0..NC]` into `c[0..NC]`, four at a time
/// ([`Vector::sum4`]), through the epilogue `ep` (bias starting at `c`'s column).
///
/// # Safety
/// `c..c+NC` writable, `NC` bias values readable when `ep` has a bias.
#[inline(always)]
unsafe fn store_dots<V: Vector, const NC: usize>(
    acc: &[V; NC],
    c: *mut f32,
    accumulate: bool,
    ep: Ep,
) {
    let mut col = 0;
    while col + 4 <= NC {
        // SAFETY: elements col..col+4 <= NC of c and of the bias.
        unsafe {
            let mut s = V::sum4([acc[col], acc[col + 1], acc[col + 2], acc[col + 3]]);
            if accumulate {
                s = s.add(V::load4(c.add(col)));
            }
            if ep.on {
                s = finish(s, ep.at(col), 4);
            }
            s.store4(c.add(col));
        }
        col += 4;
    }
    while col < NC {
        // SAFETY: element col < NC of c and of the bias.
        unsafe {
            let s = acc[col].hsum();
            let dst = c.add(col);
            let mut v = if accumulate { *dst + s } else { s };
            if ep.on {
                v = finish(V::splat(v), ep.at(col), 1).first();
            }
            *dst = v;
        }
        col += 1;
    }
}

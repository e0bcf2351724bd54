//! What the SIMD families (AVX2 on x86-64, NEON on aarch64) share: the register trait
//! [`Vector`], the weight types of B ([`Weight`]), the ISA trait [`Isa`] whose `#[target_feature]`
//! entry points run the generic code, the safe table entries built on them ([`table`]), the
//! operands of a checked product ([`Operands`], [`Ep`]) and the elementwise loops. The blocked
//! matrix products are in `blocked.rs`.
//!
//! Inlining (after memchr's `Vector`): every generic function here and in `blocked.rs`, and
//! every method of [`Vector`], is `#[inline(always)]` without `#[target_feature]`. They run only
//! inside an [`Isa`] entry point (`#[target_feature(enable = "avx2,fma,f16c")]`, or `"neon"`),
//! into which they are all inlined and compiled with those features; an out-of-line copy would
//! be compiled without them, its intrinsics turned into calls.

use half::f16;

use super::{
    epilogue_fits, matmul_fits, Activation, BLayout, Epilogue, KernelVariant, Kernels, MatMulDims,
};

/// One SIMD register of f32 lanes and the operations the kernels need on it.
///
/// # Safety (of every method)
/// The ISA of the implementing type is available (the caller runs inside one of its [`Isa`]
/// entry points); pointer arguments are valid as each method says.
pub(super) trait Vector: Copy {
    /// Lanes of f32.
    const LANES: usize;
    /// A broadcast element of A, as the broadcast multiply-add takes it.
    type Bcast: Copy;
    /// `LANES` registers: a square block of `LANES x LANES` f32.
    type Block: Copy + AsRef<[Self]> + AsMut<[Self]>;

    /// All lanes 0.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// Loads `LANES` floats from `p`.
    unsafe fn load(p: *const f32) -> Self;
    /// Loads `count <= LANES` floats from `p`, zero in the other lanes; reads nothing beyond.
    unsafe fn load_part(p: *const f32, count: usize) -> Self;
    /// Stores the `LANES` lanes at `p`.
    unsafe fn store(self, p: *mut f32);
    /// Stores the first `count <= LANES` lanes at `p`; writes nothing beyond.
    unsafe fn store_part(self, p: *mut f32, count: usize);
    /// Loads `LANES` f16 from `p`, widened.
    unsafe fn load_f16(p: *const f16) -> Self;
    /// Loads `count <= LANES` f16 from `p`, widened, zero in the other lanes.
    unsafe fn load_f16_part(p: *const f16, count: usize) -> Self;
    /// Lane-wise `self + o`.
    unsafe fn add(self, o: Self) -> Self;
    /// Lane-wise `self - o`.
    unsafe fn sub(self, o: Self) -> Self;
    /// Lane-wise `self * o`.
    unsafe fn mul(self, o: Self) -> Self;
    /// Lane-wise `self / o`.
    unsafe fn div(self, o: Self) -> Self;
    /// Lane-wise `self + a * b`, fused.
    unsafe fn mul_add(self, a: Self, b: Self) -> Self;
    /// The element at `p`, broadcast for [`Vector::mul_add_bcast`].
    unsafe fn bcast(p: *const f32) -> Self::Bcast;
    /// Lane-wise `self + b * a`, fused.
    unsafe fn mul_add_bcast(self, b: Self, a: Self::Bcast) -> Self;
    /// A block of zeros.
    unsafe fn zero_block() -> Self::Block;
    /// The block transposed (lane `q` of register `r` to lane `r` of register `q`).
    unsafe fn transpose(block: Self::Block) -> Self::Block;
    /// The lane sums of the 4 registers in the first 4 lanes (0 in the others).
    unsafe fn sum4(v: [Self; 4]) -> Self;
    /// Loads 4 floats into the first 4 lanes (0 in the others).
    unsafe fn load4(p: *const f32) -> Self;
    /// Stores the first 4 lanes.
    unsafe fn store4(self, p: *mut f32);
    /// Sum of the lanes.
    unsafe fn hsum(self) -> f32;
    /// Lane 0.
    unsafe fn first(self) -> f32;
    /// `max(x, 0)`, NaN stays NaN.
    unsafe fn relu(self) -> Self;
    /// `act` applied out of line (the epilogue's sigmoid and tanh).
    unsafe fn activate(self, act: Activation) -> Self;
    /// Cephes `exp`.
    unsafe fn exp(self) -> Self;
    /// `1 / (1 + exp(-x))`.
    unsafe fn sigmoid(self) -> Self;
    /// Cephes `tanh`.
    unsafe fn tanh(self) -> Self;
}

/// An element type of B, widened to f32 as it is loaded.
pub(super) trait Weight: Copy {
    /// Loads `V::LANES` consecutive weights.
    ///
    /// # Safety
    /// `p..p + V::LANES` readable; `V`'s ISA available.
    unsafe fn load<V: Vector>(p: *const Self) -> V;
    /// Loads `count <= V::LANES` weights, zero in the other lanes; reads nothing beyond.
    ///
    /// # Safety
    /// `p..p + count` readable; `V`'s ISA available.
    unsafe fn load_part<V: Vector>(p: *const Self, count: usize) -> V;
}

/// `impl Weight for $t`, loading through the `Vector` methods `$load` / `$load_part`.
macro_rules! weight_impl {
    ($t:ty, $load:ident, $load_part:ident) => {
        impl Weight for $t {
            #[inline(always)]
            unsafe fn load<V: Vector>(p: *const $t) -> V {
                // SAFETY: as the caller guarantees.
                unsafe { V::$load(p) }
            }

            #[inline(always)]
            unsafe fn load_part<V: Vector>(p: *const $t, count: usize) -> V {
                // SAFETY: as the caller guarantees.
                unsafe { V::$load_part(p, count) }
            }
        }
    };
}
weight_impl!(f32, load, load_part);
weight_impl!(f16, load_f16, load_f16_part);

/// A SIMD family: its register type, the tile shapes it instantiates and its `#[target_feature]`
/// entry points (written by [`entry_points!`]), which run the generic code with its features.
///
/// # Safety
/// The entry points require the family's features; implementors hand out [`table::<Self>()`]
/// (the only way to reach the safe functions calling them) only where those features are
/// available.
pub(super) unsafe trait Isa {
    /// The register type.
    type V: Vector;
    /// Which family this is.
    const VARIANT: KernelVariant;

    /// All rows of a packed panel of `width <= PANEL_NR` columns (`blocked::panel_rows` with
    /// the register count of `width`).
    ///
    /// # Safety
    /// As `blocked::panel_rows`, run inside an entry point.
    unsafe fn panel(ops: Operands<f32>, width: usize);
    /// The `KxN` product of `1 <= m <= 3` rows, B read in place (`blocked::kxn_direct_rows`
    /// with this family's tile of `m` rows).
    ///
    /// # Safety
    /// As `blocked::kxn_direct_rows`, run inside an entry point.
    unsafe fn kxn_direct<W: Weight>(ops: Operands<W>);

    /// Entry point: `blocked::dispatch`.
    ///
    /// # Safety
    /// As `blocked::dispatch`; the features available.
    unsafe fn gemm<W: Weight>(ops: Operands<W>, layout: BLayout);
    /// Entry point: `blocked::epilogue_of_zeros`.
    ///
    /// # Safety
    /// As `blocked::epilogue_of_zeros`; the features available.
    unsafe fn epilogue_of_zeros(c: *mut f32, m: usize, n: usize, ep: Ep);
    /// Entry point: [`binary_loop`].
    ///
    /// # Safety
    /// As [`binary_loop`]; the features available.
    unsafe fn binary<const OP: u8>(a: *const f32, b: *const f32, out: *mut f32, len: usize);
    /// Entry point: [`binary_scalar_loop`].
    ///
    /// # Safety
    /// As [`binary_scalar_loop`]; the features available.
    unsafe fn binary_scalar<const OP: u8>(a: *const f32, s: f32, out: *mut f32, len: usize);
    /// Entry point: [`unary_loop`].
    ///
    /// # Safety
    /// As [`unary_loop`]; the features available.
    unsafe fn unary<const OP: u8>(x: *mut f32, len: usize);
    /// Entry point: [`sum_loop`].
    ///
    /// # Safety
    /// As [`sum_loop`]; the features available.
    unsafe fn sum(x: *const f32, len: usize) -> f32;
}

/// The entry points of an [`Isa`] impl, compiled with `$features` (a `#[target_feature]`
/// string cannot be a generic parameter, hence the macro): each calls the generic function of
/// the same name for `Self`.
macro_rules! entry_points {
    ($features:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn gemm<W: $crate::kernels::simd::Weight>(
            ops: $crate::kernels::simd::Operands<W>,
            layout: $crate::kernels::BLayout,
        ) {
            // SAFETY: as this function's contract.
            unsafe { $crate::kernels::blocked::dispatch::<Self, W>(ops, layout) }
        }

        #[target_feature(enable = $features)]
        unsafe fn epilogue_of_zeros(
            c: *mut f32,
            m: usize,
            n: usize,
            ep: $crate::kernels::simd::Ep,
        ) {
            // SAFETY: as this function's contract.
            unsafe { $crate::kernels::blocked::epilogue_of_zeros::<Self::V>(c, m, n, ep) }
        }

        #[target_feature(enable = $features)]
        unsafe fn binary<const OP: u8>(a: *const f32, b: *const f32, out: *mut f32, len: usize) {
            // SAFETY: as this function's contract.
            unsafe { $crate::kernels::simd::binary_loop::<Self::V, OP>(a, b, out, len) }
        }

        #[target_feature(enable = $features)]
        unsafe fn binary_scalar<const OP: u8>(a: *const f32, s: f32, out: *mut f32, len: usize) {
            // SAFETY: as this function's contract.
            unsafe { $crate::kernels::simd::binary_scalar_loop::<Self::V, OP>(a, s, out, len) }
        }

        #[target_feature(enable = $features)]
        unsafe fn unary<const OP: u8>(x: *mut f32, len: usize) {
            // SAFETY: as this function's contract.
            unsafe { $crate::kernels::simd::unary_loop::<Self::V, OP>(x, len) }
        }

        #[target_feature(enable = $features)]
        unsafe fn sum(x: *const f32, len: usize) -> f32 {
            // SAFETY: as this function's contract.
            unsafe { $crate::kernels::simd::sum_loop::<Self::V>(x, len) }
        }
    };
}
pub(super) use entry_points;

/// The kernel table of family `I` (scalar entries where it has none).
pub(super) const fn table<I: Isa>() -> Kernels {
    Kernels {
        variant: I::VARIANT,
        matmul_f32: matmul::<I, f32>,
        matmul_f16: matmul::<I, f16>,
        matmul_ep_f32: matmul_ep::<I, f32>,
        matmul_ep_f16: matmul_ep::<I, f16>,
        add: binary::<I, { op::ADD }>,
        sub: binary::<I, { op::SUB }>,
        mul: binary::<I, { op::MUL }>,
        div: binary::<I, { op::DIV }>,
        add_scalar: binary_scalar::<I, { op::ADD }>,
        mul_scalar: binary_scalar::<I, { op::MUL }>,
        relu: unary::<I, { op::RELU }>,
        sigmoid: unary::<I, { op::SIGMOID }>,
        tanh: unary::<I, { op::TANH }>,
        exp: unary::<I, { op::EXP }>,
        sum: sum::<I>,
    }
}

// ---------------------------------------------------------------------------------------------
// Safe table entries. Each is reachable only through `table::<I>()`, which `I` hands out only
// where its features are available (the contract of `Isa`): that is the justification of every
// entry point call below.

fn matmul<I: Isa, W: Weight>(
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
    // SAFETY: features available (see above); `Operands::prepare` checked the slices, so `ops`
    // describes valid memory for `layout`.
    unsafe { I::gemm(ops, layout) }
}

/// `C = epilogue(A * B)`: the product of [`matmul`] whose stores apply the epilogue (after the
/// last panel along `k`), so C is written once.
fn matmul_ep<I: Isa, W: Weight>(
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
        // SAFETY: features available; C holds m x n elements and the bias (checked above) n.
        unsafe { I::epilogue_of_zeros(c.as_mut_ptr(), m, n, Ep::new(&ep)) };
        return;
    }
    let Some((ops, layout)) = Operands::prepare(dims, a, b, layout, c, false, Ep::new(&ep)) else {
        return;
    };
    // SAFETY: as in `matmul`; the bias covers the n columns of C (checked above).
    unsafe { I::gemm(ops, layout) }
}

fn binary<I: Isa, const OP: u8>(a: &[f32], b: &[f32], out: &mut [f32]) {
    let len = out.len().min(a.len()).min(b.len());
    // SAFETY: features available; `len` elements are valid in all three slices.
    unsafe { I::binary::<OP>(a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), len) }
}

fn binary_scalar<I: Isa, const OP: u8>(a: &[f32], s: f32, out: &mut [f32]) {
    let len = out.len().min(a.len());
    // SAFETY: features available; `len` elements are valid in both slices.
    unsafe { I::binary_scalar::<OP>(a.as_ptr(), s, out.as_mut_ptr(), len) }
}

fn unary<I: Isa, const OP: u8>(x: &mut [f32]) {
    // SAFETY: features available; `x.len()` elements.
    unsafe { I::unary::<OP>(x.as_mut_ptr(), x.len()) }
}

fn sum<I: Isa>(x: &[f32]) -> f32 {
    // SAFETY: features available; `x.len()` elements.
    unsafe { I::sum(x.as_ptr(), x.len()) }
}

// ---------------------------------------------------------------------------------------------
// Operands of the matrix products.

/// Operands of a checked product (or of a block of one), for the SIMD kernels: A is `m x k`
/// with row stride `lda`, C is `m x n` with row stride `ldc`, B is `k x n` (`KxN`) or `n x k`
/// (`NxK`) with row stride `ldb`; every element those describe is valid to read (A, B) and
/// write (C).
#[derive(Clone, Copy)]
pub(super) struct Operands<W> {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) a: *const f32,
    pub(super) lda: usize,
    pub(super) b: *const W,
    pub(super) ldb: usize,
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
    pub(super) accumulate: bool,
    /// Applied when a tile of C is stored for the last time (after the last panel along `k`).
    pub(super) ep: Ep,
}

/// The epilogue as the SIMD kernels carry it: `bias` points at the bias of column 0 of the
/// operands' C (null when none), so blocks of C offset it like C.
#[derive(Clone, Copy)]
pub(super) struct Ep {
    /// Whether stores apply the epilogue at all (false for plain products and for the panels
    /// along `k` before the last).
    pub(super) on: bool,
    pub(super) alpha: f32,
    pub(super) bias: *const f32,
    pub(super) act: Activation,
}

impl Ep {
    /// Stores write the product unchanged.
    pub(super) const OFF: Ep = Ep {
        on: false,
        alpha: 1.0,
        bias: core::ptr::null(),
        act: Activation::Identity,
    };

    /// The epilogue of a checked product: `bias`, when given, has at least `n` elements.
    fn new(ep: &Epilogue<'_>) -> Ep {
        Ep {
            on: true,
            alpha: ep.alpha,
            bias: ep.bias.map_or(core::ptr::null(), |b| b.as_ptr()),
            act: ep.act,
        }
    }

    /// The same epilogue for a block of C starting `j` columns further.
    ///
    /// # Safety
    /// Column `j` is inside C (so inside the bias, which covers C's columns).
    #[inline(always)]
    pub(super) unsafe fn at(self, j: usize) -> Ep {
        Ep {
            // SAFETY: as the caller guarantees; a null bias stays null.
            bias: if self.bias.is_null() {
                self.bias
            } else {
                unsafe { self.bias.add(j) }
            },
            ..self
        }
    }
}

impl<W> Operands<W> {
    /// The operands of `C (+)= A * B` once the slices are checked against `dims`, with the
    /// layout to compute in; `None` when there is nothing (more) to compute: a slice is too
    /// short, C is empty, or `k == 0` (then C is cleared here unless accumulating). So the
    /// kernels see `m, k, n >= 1` and non-empty slices, and every offset they compute stays
    /// inside them. A `k x 1` `KxN` B is returned as `NxK` (the same memory), which the
    /// dot-product kernels serve better.
    fn prepare(
        dims: MatMulDims,
        a: &[f32],
        b: &[W],
        layout: BLayout,
        c: &mut [f32],
        accumulate: bool,
        ep: Ep,
    ) -> Option<(Operands<W>, BLayout)> {
        let MatMulDims { m, k, n } = dims;
        if !matmul_fits(dims, a.len(), b.len(), c.len()) || m == 0 || n == 0 {
            return None;
        }
        if k == 0 {
            if !accumulate {
                c[..m * n].fill(0.0);
            }
            return None;
        }
        let layout = if n == 1 { BLayout::NxK } else { layout };
        let ldb = match layout {
            BLayout::KxN => n,
            BLayout::NxK => k,
        };
        let (a, b, c) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        let ops = Operands {
            m,
            k,
            n,
            a,
            lda: k,
            b,
            ldb,
            c,
            ldc: n,
            accumulate,
            ep,
        };
        Some((ops, layout))
    }
}

/// Copies `count <= 8` elements from `src` to `dst` with constant-length copies, for the tails
/// of SIMD loops (a variable-length `copy_nonoverlapping` becomes a call to `memcpy`). Copies
/// nothing when `count > 8`.
///
/// # Safety
/// `src..src+count` readable, `dst..dst+count` writable, not overlapping.
#[inline(always)]
pub(super) unsafe fn copy_few<T: Copy>(src: *const T, dst: *mut T, count: usize) {
    use core::ptr::copy_nonoverlapping as copy;
    // SAFETY: each arm copies exactly `count` elements, valid as the caller guarantees.
    unsafe {
        match count {
            1 => copy(src, dst, 1),
            2 => copy(src, dst, 2),
            3 => copy(src, dst, 3),
            4 => copy(src, dst, 4),
            5 => copy(src, dst, 5),
            6 => copy(src, dst, 6),
            7 => copy(src, dst, 7),
            8 => copy(src, dst, 8),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise kernels.

/// Operation codes of the elementwise kernels (const generic parameters).
mod op {
    pub(super) const ADD: u8 = 0;
    pub(super) const SUB: u8 = 1;
    pub(super) const MUL: u8 = 2;
    pub(super) const DIV: u8 = 3;
    pub(super) const RELU: u8 = 0;
    pub(super) const SIGMOID: u8 = 1;
    pub(super) const TANH: u8 = 2;
    pub(super) const EXP: u8 = 3;
}

/// # Safety
/// `V`'s ISA available.
#[inline(always)]
unsafe fn binary_op<V: Vector, const OP: u8>(x: V, y: V) -> V {
    // SAFETY: as the caller guarantees.
    unsafe {
        match OP {
            op::ADD => x.add(y),
            op::SUB => x.sub(y),
            op::MUL => x.mul(y),
            _ => x.div(y),
        }
    }
}

/// # Safety
/// `V`'s ISA available.
#[inline(always)]
unsafe fn unary_op<V: Vector, const OP: u8>(x: V) -> V {
    // SAFETY: as the caller guarantees.
    unsafe {
        match OP {
            op::RELU => x.relu(),
            op::SIGMOID => x.sigmoid(),
            op::TANH => x.tanh(),
            _ => x.exp(),
        }
    }
}

/// `out[i] = a[i] op b[i]` for `i < len`, the tail through partial loads and stores. (The loops
/// of full vectors run to `full`, a multiple of `LANES`: a bound LLVM counts, so it unrolls them,
/// which it does not for `i + LANES <= len`.)
///
/// # Safety
/// `len` elements readable at `a` and `b`, writable at `out`; `V`'s ISA available.
#[inline(always)]
pub(super) unsafe fn binary_loop<V: Vector, const OP: u8>(
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    len: usize,
) {
    let (mut i, full) = (0, len - len % V::LANES);
    while i < full {
        // SAFETY: elements i..i+LANES <= len.
        unsafe { binary_op::<V, OP>(V::load(a.add(i)), V::load(b.add(i))).store(out.add(i)) };
        i += V::LANES;
    }
    if i < len {
        // SAFETY: elements i..len, no access beyond.
        unsafe {
            let x = V::load_part(a.add(i), len - i);
            let y = V::load_part(b.add(i), len - i);
            binary_op::<V, OP>(x, y).store_part(out.add(i), len - i);
        }
    }
}

/// `out[i] = a[i] op s` for `i < len`.
///
/// # Safety
/// `len` elements readable at `a`, writable at `out`; `V`'s ISA available.
#[inline(always)]
pub(super) unsafe fn binary_scalar_loop<V: Vector, const OP: u8>(
    a: *const f32,
    s: f32,
    out: *mut f32,
    len: usize,
) {
    // SAFETY: ISA available (caller).
    let y = unsafe { V::splat(s) };
    let (mut i, full) = (0, len - len % V::LANES);
    while i < full {
        // SAFETY: elements i..i+LANES <= len.
        unsafe { binary_op::<V, OP>(V::load(a.add(i)), y).store(out.add(i)) };
        i += V::LANES;
    }
    if i < len {
        // SAFETY: elements i..len, no access beyond.
        unsafe {
            let x = V::load_part(a.add(i), len - i);
            binary_op::<V, OP>(x, y).store_part(out.add(i), len - i);
        }
    }
}

/// `x[i] = op(x[i])` for `i < len`.
///
/// # Safety
/// `len` elements readable and writable at `x`; `V`'s ISA available.
#[inline(always)]
pub(super) unsafe fn unary_loop<V: Vector, const OP: u8>(x: *mut f32, len: usize) {
    let (mut i, full) = (0, len - len % V::LANES);
    while i < full {
        // SAFETY: elements i..i+LANES <= len.
        unsafe { unary_op::<V, OP>(V::load(x.add(i))).store(x.add(i)) };
        i += V::LANES;
    }
    if i < len {
        // SAFETY: elements i..len, no access beyond.
        unsafe {
            let v = V::load_part(x.add(i), len - i);
            unary_op::<V, OP>(v).store_part(x.add(i), len - i);
        }
    }
}

/// Sum of `x[0..len]` in 4 accumulators (the tail, zero-padded, in the second).
///
/// # Safety
/// `len` elements readable at `x`; `V`'s ISA available.
#[inline(always)]
pub(super) unsafe fn sum_loop<V: Vector>(x: *const f32, len: usize) -> f32 {
    // SAFETY: ISA available (caller); every load reads elements below `len` only.
    unsafe {
        let mut acc = [V::zero(); 4];
        let mut i = 0;
        while i + 4 * V::LANES <= len {
            for (q, acc) in acc.iter_mut().enumerate() {
                *acc = acc.add(V::load(x.add(i + V::LANES * q)));
            }
            i += 4 * V::LANES;
        }
        while i + V::LANES <= len {
            acc[0] = acc[0].add(V::load(x.add(i)));
            i += V::LANES;
        }
        if i < len {
            acc[1] = acc[1].add(V::load_part(x.add(i), len - i));
        }
        acc[0].add(acc[1]).add(acc[2].add(acc[3])).hsum()
    }
}

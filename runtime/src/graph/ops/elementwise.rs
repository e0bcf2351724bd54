//! Elementwise ops: binary arithmetic and comparisons (NumPy broadcasting), unary functions,
//! Clip, Where and Cast.

use alloc::format;
use alloc::string::ToString;
use half::f16;

use super::{
    broadcast_shapes, checked, float_at, internal, need, need_view, Attrs, Inferred, Meta, Metas,
    NodeCtx, Op, Views,
};
use crate::error::{Error, Result};
use crate::graph::strided::{broadcast_strides, for_each2, gather_strided, signed, MAX_RANK};
use crate::graph::value::{numel, Buf, Data, View};
use crate::kernels::Kernels;
use crate::math;
use crate::tensor::DType;

/// Elementwise binary ops (NumPy broadcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// Elementwise comparisons (bool output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Equal,
    Less,
    Greater,
}

/// Elementwise unary ops on floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Abs,
    Neg,
}

/// The two inputs of a binary op or comparison.
fn operands<'m, 'a>(ins: &'m Metas<'a>, cx: &NodeCtx) -> Result<(&'m Meta<'a>, &'m Meta<'a>)> {
    Ok((need(ins, 0, cx)?, need(ins, 1, cx)?))
}

pub(super) fn infer_binary(bop: BinOp, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let (a, b) = operands(ins, cx)?;
    // Pow's exponent has its own numeric type (ONNX T1); the result has the base's.
    let mixed_pow = bop == BinOp::Pow
        && matches!(
            (a.dtype, b.dtype),
            (DType::F32, DType::I64 | DType::I32) | (DType::I64 | DType::I32, DType::F32)
        );
    if (a.dtype != b.dtype && !mixed_pow) || a.dtype == DType::Bool {
        return Err(cx.err(format!(
            "operands must have one numeric dtype, got {} and {}",
            a.dtype.name(),
            b.dtype.name()
        )));
    }
    Ok((a.dtype, broadcast_shapes(a.shape, b.shape, cx)?))
}

pub(super) fn infer_compare(ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let (a, b) = operands(ins, cx)?;
    if a.dtype != b.dtype {
        return Err(cx.err(format!(
            "operands differ in dtype: {} and {}",
            a.dtype.name(),
            b.dtype.name()
        )));
    }
    Ok((DType::Bool, broadcast_shapes(a.shape, b.shape, cx)?))
}

pub(super) fn infer_unary(u: UnOp, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    let ok = x.dtype == DType::F32
        || (matches!(u, UnOp::Neg | UnOp::Abs | UnOp::Relu) && x.dtype == DType::I64);
    if !ok {
        return Err(cx.err(format!("unsupported input dtype {}", x.dtype.name())));
    }
    Ok((x.dtype, x.shape.to_vec()))
}

pub(super) fn infer_clip(ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    if x.dtype != DType::F32 {
        return Err(cx.err("Clip supports float input".to_string()));
    }
    for i in 1..3 {
        if let Some(Some(m)) = ins.get(i) {
            if numel(m.shape) != 1 {
                return Err(cx.err(format!("min/max must be scalars, got {:?}", m.shape)));
            }
        }
    }
    Ok((DType::F32, x.shape.to_vec()))
}

/// Clip: bounds from the inputs when given, else from the attributes (older opsets).
pub(super) fn clip(
    min: Option<f32>,
    max: Option<f32>,
    ins: &Views,
    out: &mut Buf,
    cx: &NodeCtx,
) -> Result<()> {
    let x = need_view(ins, 0, cx)?;
    let bound = |i: usize, attr: Option<f32>| -> Option<f32> {
        match ins.get(i).copied().flatten() {
            Some(v) => float_at(v.data, 0),
            None => attr,
        }
    };
    let (lo, hi) = (
        bound(1, min).unwrap_or(f32::NEG_INFINITY),
        bound(2, max).unwrap_or(f32::INFINITY),
    );
    match (x.data, out) {
        (Data::F32(s), Buf::F32(d)) if s.len() == d.len() => {
            // ONNX: min(max(x, lo), hi), so lo > hi gives hi everywhere; NaN stays NaN.
            d.iter_mut().zip(s).for_each(|(d, &v)| {
                let v = if v < lo { lo } else { v };
                *d = if v > hi { hi } else { v };
            });
            Ok(())
        }
        _ => Err(internal(cx, "Clip")),
    }
}

pub(super) fn infer_where(ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let c = need(ins, 0, cx)?;
    let x = need(ins, 1, cx)?;
    let y = need(ins, 2, cx)?;
    if c.dtype != DType::Bool {
        return Err(cx.err(format!("condition must be bool, got {}", c.dtype.name())));
    }
    if x.dtype != y.dtype {
        return Err(cx.err(format!(
            "X and Y differ in dtype: {} and {}",
            x.dtype.name(),
            y.dtype.name()
        )));
    }
    let xy = broadcast_shapes(x.shape, y.shape, cx)?;
    Ok((x.dtype, broadcast_shapes(c.shape, &xy, cx)?))
}

/// Where: `out` gets Y broadcast, then X wherever the broadcast condition holds.
pub(super) fn where_(ins: &Views, out: &mut Buf, out_shape: &[usize], cx: &NodeCtx) -> Result<()> {
    let c = need_view(ins, 0, cx)?;
    let x = need_view(ins, 1, cx)?;
    let y = need_view(ins, 2, cx)?;
    let Data::Bool(cond) = c.data else {
        return Err(internal(cx, "Where"));
    };
    let r = out_shape.len();
    if out.len() != numel(out_shape) || [c.shape, x.shape, y.shape].iter().any(|s| s.len() > r) {
        return Err(internal(cx, "Where"));
    }
    let sy = signed(&broadcast_strides(y.shape, r));
    let (sc, sx) = bstrides(c.shape, x.shape, out_shape);
    fn pick<T: Copy>(
        cond: &[bool],
        x: &[T],
        y: &[T],
        d: &mut [T],
        shape: &[usize],
        strides: [&[isize; MAX_RANK]; 3],
    ) -> bool {
        if !gather_strided(y, 0, strides[2], shape, d) {
            return false;
        }
        let mut ok = true;
        for_each2(shape, strides[0], 0, strides[1], 0, |o, ic, ix| {
            match (cond.get(ic as usize), x.get(ix as usize), d.get_mut(o)) {
                (Some(&true), Some(&v), Some(slot)) => *slot = v,
                (Some(_), Some(_), Some(_)) => {}
                _ => ok = false,
            }
        });
        ok
    }
    let st = [&sc, &sx, &sy];
    let ok = match (x.data, y.data, out) {
        (Data::F32(a), Data::F32(b), Buf::F32(d)) => pick(cond, a, b, d, out_shape, st),
        (Data::I64(a), Data::I64(b), Buf::I64(d)) => pick(cond, a, b, d, out_shape, st),
        (Data::I32(a), Data::I32(b), Buf::I32(d)) => pick(cond, a, b, d, out_shape, st),
        (Data::Bool(a), Data::Bool(b), Buf::Bool(d)) => pick(cond, a, b, d, out_shape, st),
        _ => false,
    };
    checked(ok, cx, "Where")
}

/// Broadcast strides of both operands for `out_shape`.
fn bstrides(
    a: &[usize],
    b: &[usize],
    out_shape: &[usize],
) -> ([isize; MAX_RANK], [isize; MAX_RANK]) {
    let r = out_shape.len();
    (
        signed(&broadcast_strides(a, r)),
        signed(&broadcast_strides(b, r)),
    )
}

pub(super) fn binary(
    k: &Kernels,
    op: BinOp,
    a: View,
    b: View,
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx,
) -> Result<()> {
    match (a.data, b.data, out) {
        (Data::F32(x), Data::F32(y), Buf::F32(o)) => {
            binary_f32(k, op, (x, a.shape), (y, b.shape), o, out_shape, cx)
        }
        (Data::I64(x), Data::I64(y), Buf::I64(o)) => {
            let f = |p, q| i64::arith(op, p, q);
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        (Data::I32(x), Data::I32(y), Buf::I32(o)) => {
            let f = |p, q| i32::arith(op, p, q);
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        // Pow with an integer exponent (checked at plan time: only Pow gets here).
        (Data::F32(x), Data::I64(y), Buf::F32(o)) => {
            generic_binary(x, a.shape, y, b.shape, o, out_shape, pow_f32_int, cx)
        }
        (Data::F32(x), Data::I32(y), Buf::F32(o)) => {
            let f = |p: f32, q: i32| pow_f32_int(p, i64::from(q));
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        // Integer base, float exponent: computed in float, truncated like NumPy's astype.
        (Data::I64(x), Data::F32(y), Buf::I64(o)) => {
            let f = |p: i64, q: f32| math::powf(p as f32, q) as i64;
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        (Data::I32(x), Data::F32(y), Buf::I32(o)) => {
            let f = |p: i32, q: f32| math::powf(p as f32, q) as i32;
            generic_binary(x, a.shape, y, b.shape, o, out_shape, f, cx)
        }
        _ => Err(internal(cx, "binary op dtypes")),
    }
}

/// The integer arithmetic of [`BinOp`], wrapping like fixed-width integers (one body for
/// every integer type, which differ only in their width).
trait IntArith: Sized {
    fn arith(op: BinOp, p: Self, q: Self) -> Self;
}

macro_rules! int_arith {
    ($($t:ty),*) => {$(
        impl IntArith for $t {
            fn arith(op: BinOp, p: $t, q: $t) -> $t {
                match op {
                    BinOp::Add => p.wrapping_add(q),
                    BinOp::Sub => p.wrapping_sub(q),
                    BinOp::Mul => p.wrapping_mul(q),
                    // Integer division by zero has no ONNX result; 0 keeps it total.
                    BinOp::Div => p.checked_div(q).unwrap_or(0),
                    // Exponents clamp to the width (the result wraps long before).
                    BinOp::Pow => p.wrapping_pow(q.clamp(0, <$t>::BITS as $t - 1) as u32),
                }
            }
        }
    )*};
}

int_arith!(i64, i32);

/// `p` to an integer power, as f32 `powf` would give it.
fn pow_f32_int(p: f32, q: i64) -> f32 {
    match q {
        2 => p * p,
        // Exact for any exponent an f32 can represent; larger ones overflow or vanish anyway.
        _ => math::powf(p, q as f32),
    }
}

#[allow(clippy::too_many_arguments)]
fn generic_binary<T: Copy, V: Copy, U: Copy>(
    x: &[T],
    xs: &[usize],
    y: &[V],
    ys: &[usize],
    o: &mut [U],
    out_shape: &[usize],
    f: impl Fn(T, V) -> U,
    cx: &NodeCtx,
) -> Result<()> {
    let (sa, sb) = bstrides(xs, ys, out_shape);
    let mut ok = o.len() == numel(out_shape);
    for_each2(out_shape, &sa, 0, &sb, 0, |i, ia, ib| {
        match (x.get(ia as usize), y.get(ib as usize), o.get_mut(i)) {
            (Some(&p), Some(&q), Some(d)) => *d = f(p, q),
            _ => ok = false,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "broadcast"))
    }
}

fn binary_f32(
    k: &Kernels,
    op: BinOp,
    (x, xs): (&[f32], &[usize]),
    (y, ys): (&[f32], &[usize]),
    o: &mut [f32],
    out_shape: &[usize],
    cx: &NodeCtx,
) -> Result<()> {
    let scalar = |p: f32, q: f32| -> f32 {
        match op {
            BinOp::Add => p + q,
            BinOp::Sub => p - q,
            BinOp::Mul => p * q,
            BinOp::Div => p / q,
            BinOp::Pow => {
                if q == 2.0 {
                    p * p
                } else {
                    math::powf(p, q)
                }
            }
        }
    };
    let vector = match op {
        BinOp::Add => Some(k.add),
        BinOp::Sub => Some(k.sub),
        BinOp::Mul => Some(k.mul),
        BinOp::Div => Some(k.div),
        BinOp::Pow => None,
    };
    let n = o.len();
    if let Some(vf) = vector {
        if x.len() == n && y.len() == n {
            vf(x, y, o);
            return Ok(());
        }
        // Row broadcast: y is one row repeated over x's leading dims.
        let row = y.len();
        if x.len() == n && row > 0 && n.is_multiple_of(row) && suffix_broadcast(ys, out_shape) {
            for (xo, oo) in x.chunks_exact(row).zip(o.chunks_exact_mut(row)) {
                vf(xo, y, oo);
            }
            return Ok(());
        }
        if x.len() == n && y.len() == 1 {
            let s = y[0];
            match op {
                BinOp::Add => (k.add_scalar)(x, s, o),
                BinOp::Sub => (k.add_scalar)(x, -s, o),
                BinOp::Mul => (k.mul_scalar)(x, s, o),
                _ => o.iter_mut().zip(x).for_each(|(d, &p)| *d = p / s),
            }
            return Ok(());
        }
    }
    generic_binary(x, xs, y, ys, o, out_shape, scalar, cx)
}

/// True when `small` broadcast to `out` is one contiguous row repeated: its dims, after
/// leading 1s, equal `out`'s trailing dims.
fn suffix_broadcast(small: &[usize], out: &[usize]) -> bool {
    let s: &[usize] = {
        let first = small.iter().position(|&d| d != 1).unwrap_or(small.len());
        &small[first..]
    };
    s.len() <= out.len() && out[out.len() - s.len()..] == *s
}

pub(super) fn compare(
    op: CmpOp,
    a: View,
    b: View,
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx,
) -> Result<()> {
    let Buf::Bool(o) = out else {
        return Err(internal(cx, "compare"));
    };
    macro_rules! cmp {
        ($x:expr, $y:expr) => {
            generic_binary(
                $x,
                a.shape,
                $y,
                b.shape,
                o,
                out_shape,
                |p, q| match op {
                    CmpOp::Equal => p == q,
                    CmpOp::Less => p < q,
                    CmpOp::Greater => p > q,
                },
                cx,
            )
        };
    }
    match (a.data, b.data) {
        (Data::F32(x), Data::F32(y)) => cmp!(x, y),
        (Data::I64(x), Data::I64(y)) => cmp!(x, y),
        (Data::I32(x), Data::I32(y)) => cmp!(x, y),
        (Data::Bool(x), Data::Bool(y)) => cmp!(x, y),
        _ => Err(internal(cx, "compare dtypes")),
    }
}

pub(super) fn unary(k: &Kernels, op: UnOp, x: View, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    match (x.data, out) {
        (Data::F32(s), Buf::F32(o)) if s.len() == o.len() => {
            match op {
                UnOp::Relu | UnOp::Sigmoid | UnOp::Tanh | UnOp::Exp => {
                    o.copy_from_slice(s);
                    let f = match op {
                        UnOp::Relu => k.relu,
                        UnOp::Sigmoid => k.sigmoid,
                        UnOp::Tanh => k.tanh,
                        _ => k.exp,
                    };
                    f(o);
                }
                UnOp::Log => o.iter_mut().zip(s).for_each(|(d, &v)| *d = math::ln(v)),
                UnOp::Sqrt => o.iter_mut().zip(s).for_each(|(d, &v)| *d = math::sqrt(v)),
                UnOp::Abs => o.iter_mut().zip(s).for_each(|(d, &v)| *d = v.abs()),
                UnOp::Neg => o.iter_mut().zip(s).for_each(|(d, &v)| *d = -v),
            }
            Ok(())
        }
        (Data::I64(s), Buf::I64(o)) if s.len() == o.len() => {
            for (d, &v) in o.iter_mut().zip(s) {
                *d = match op {
                    UnOp::Neg => v.wrapping_neg(),
                    UnOp::Abs => v.wrapping_abs(),
                    _ => v.max(0),
                };
            }
            Ok(())
        }
        _ => Err(internal(cx, "unary")),
    }
}

pub(super) fn parse_cast(a: &Attrs) -> Result<Op> {
    let to = a.int("to", 0)?;
    let code = i32::try_from(to)
        .map_err(|_| a.err(format!("attribute 'to' = {to} is not a data type")))?;
    match DType::from_onnx(code) {
        Some(to) => Ok(Op::Cast { to }),
        None => Err(Error::UnsupportedDType {
            tensor: format!("output of Cast node '{}'", a.label),
            dtype: code,
        }),
    }
}

pub(super) fn infer_cast(to: DType, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let x = need(ins, 0, cx)?;
    // f16 is a storage format: values cast to FLOAT16 stay f32 rounded to f16 precision.
    let d = if to == DType::F16 { DType::F32 } else { to };
    Ok((d, x.shape.to_vec()))
}

pub(super) fn cast(to: DType, x: View, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    // Float -> integer: NaN/inf or values outside the target range are an error (an id that
    // is not a number must not silently become row 0).
    let per_row = x.shape.iter().skip(1).product::<usize>().max(1);
    let f2i = |v: f32, pos: usize| -> Result<_> {
        let out_of_range = move || Error::CastOutOfRange {
            node: cx.node.to_string(),
            input: cx.source.to_string(),
            row: pos / per_row,
            position: pos,
            value: v,
        };
        if !v.is_finite() || !(-9.2e18..9.2e18).contains(&v) {
            return Err(out_of_range());
        }
        Ok((v as i64, out_of_range))
    };
    let n = x.data.len();
    if out.len() != n {
        return Err(internal(cx, "Cast"));
    }
    let round16 = |v: f32| {
        if to == DType::F16 {
            f16::from_f32(v).to_f32()
        } else {
            v
        }
    };
    match (x.data, out) {
        (Data::F32(s), Buf::F32(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = round16(v)),
        (Data::F16(s), Buf::F32(d)) => d.iter_mut().zip(s).for_each(|(d, v)| *d = v.to_f32()),
        (Data::F32(s), Buf::I64(d)) => {
            for (i, (d, &v)) in d.iter_mut().zip(s).enumerate() {
                *d = f2i(v, i)?.0;
            }
        }
        (Data::F32(s), Buf::I32(d)) => {
            for (i, (d, &v)) in d.iter_mut().zip(s).enumerate() {
                let (wide, out_of_range) = f2i(v, i)?;
                *d = i32::try_from(wide).map_err(|_| out_of_range())?;
            }
        }
        (Data::F32(s), Buf::Bool(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v != 0.0),
        (Data::I64(s), Buf::F32(d)) => d
            .iter_mut()
            .zip(s)
            .for_each(|(d, &v)| *d = round16(v as f32)),
        (Data::I64(s), Buf::I64(d)) => d.copy_from_slice(s),
        (Data::I64(s), Buf::I32(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as i32),
        (Data::I64(s), Buf::Bool(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v != 0),
        (Data::I32(s), Buf::F32(d)) => d
            .iter_mut()
            .zip(s)
            .for_each(|(d, &v)| *d = round16(v as f32)),
        (Data::I32(s), Buf::I64(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as i64),
        (Data::I32(s), Buf::I32(d)) => d.copy_from_slice(s),
        (Data::I32(s), Buf::Bool(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v != 0),
        (Data::Bool(s), Buf::F32(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as u8 as f32),
        (Data::Bool(s), Buf::I64(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as i64),
        (Data::Bool(s), Buf::I32(d)) => d.iter_mut().zip(s).for_each(|(d, &v)| *d = v as i32),
        (Data::Bool(s), Buf::Bool(d)) => d.copy_from_slice(s),
        _ => return Err(internal(cx, "Cast dtypes")),
    }
    Ok(())
}

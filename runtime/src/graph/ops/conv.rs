//! Conv: direct 1-D/2-D convolution, group 1; pointwise ones through the matmul kernel.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::{float_at, internal, need, need_view, Attrs, Inferred, Metas, NodeCtx, Op, Views};
use crate::error::Result;
use crate::graph::value::{numel, Buf};
use crate::kernels::{BLayout, Kernels, MatMulDims};
use crate::onnx::AttrValue;
use crate::tensor::DType;

/// Conv's attributes (checked against the shapes at plan time).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvAttrs {
    strides: Option<Vec<i64>>,
    pads: Option<Vec<i64>>,
    dilations: Option<Vec<i64>>,
    group: i64,
}

pub(super) fn parse(a: &Attrs) -> Result<Op> {
    if let Some(AttrValue::String(p)) = a.get("auto_pad") {
        if *p != b"NOTSET" && *p != b"VALID" {
            return Err(a.err("auto_pad SAME_* is not supported".to_string()));
        }
    }
    Ok(Op::Conv(ConvAttrs {
        strides: a.ints("strides")?,
        pads: a.ints("pads")?,
        dilations: a.ints("dilations")?,
        group: a.int("group", 1)?,
    }))
}

impl ConvAttrs {
    pub(super) fn infer(&self, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
        let x = need(ins, 0, cx)?;
        let w = need(ins, 1, cx)?;
        let p = self.params(x.shape, w.shape).map_err(|r| cx.err(r))?;
        if let Some(Some(b)) = ins.get(2) {
            if numel(b.shape) != p.m {
                return Err(cx.err(format!("bias has shape {:?}, expected [{}]", b.shape, p.m)));
            }
        }
        let mut s = vec![x.shape[0], p.m];
        s.extend_from_slice(&p.out[..p.nd]);
        Ok((DType::F32, s))
    }

    pub(super) fn eval(&self, k: &Kernels, ins: &Views, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
        conv(k, ins, self, out, cx)
    }
}

struct ConvParams {
    nd: usize,
    m: usize,
    cin: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
    inp: [usize; 2],
    out: [usize; 2],
}

impl ConvAttrs {
    /// The convolution's geometry for input shape `x` and weight shape `w`.
    fn params(&self, x: &[usize], w: &[usize]) -> core::result::Result<ConvParams, String> {
        let (strides, pads, dil, group) = (
            self.strides.as_deref(),
            self.pads.as_deref(),
            self.dilations.as_deref(),
            self.group,
        );
        if group != 1 {
            return Err(format!("group {group} is not supported (only 1)"));
        }
        let nd = x.len().saturating_sub(2);
        if !(1..=2).contains(&nd) || w.len() != x.len() {
            return Err(format!(
                "only 1-D and 2-D convolutions are supported (X {x:?}, W {w:?})"
            ));
        }
        if w[1] != x[1] {
            return Err(format!("W {w:?} does not match {} input channels", x[1]));
        }
        let get = |v: Option<&[i64]>, i: usize, d: i64| -> core::result::Result<usize, String> {
            let val = v.and_then(|v| v.get(i).copied()).unwrap_or(d);
            usize::try_from(val).map_err(|_| format!("negative conv attribute {val}"))
        };
        let mut p = ConvParams {
            nd,
            m: w[0],
            cin: x[1],
            kernel: [1; 2],
            stride: [1; 2],
            pad: [0; 2],
            dil: [1; 2],
            inp: [1; 2],
            out: [1; 2],
        };
        for i in 0..nd {
            p.kernel[i] = w[2 + i];
            p.stride[i] = get(strides, i, 1)?;
            p.dil[i] = get(dil, i, 1)?;
            if p.stride[i] == 0 || p.dil[i] == 0 {
                return Err(format!(
                    "strides {strides:?} and dilations {dil:?} must be at least 1"
                ));
            }
            let (pb, pe) = (get(pads, i, 0)?, get(pads, i + nd, 0)?);
            if pb != pe {
                return Err("asymmetric padding is not supported".to_string());
            }
            p.pad[i] = pb;
            p.inp[i] = x[2 + i];
            // Attributes are the model's: checked, so huge dilations or pads are an error.
            let overflow = || format!("dilations {dil:?} or pads {pads:?} overflow");
            let span = p.dil[i]
                .checked_mul(p.kernel[i].max(1) - 1)
                .and_then(|s| s.checked_add(1))
                .ok_or_else(overflow)?;
            let padded = pb
                .checked_mul(2)
                .and_then(|s| s.checked_add(p.inp[i]))
                .ok_or_else(overflow)?;
            if padded < span {
                return Err(format!(
                    "kernel {:?} larger than the padded input {x:?}",
                    &w[2..]
                ));
            }
            p.out[i] = (padded - span) / p.stride[i] + 1;
        }
        Ok(p)
    }
}

/// Direct convolution (CTR models use small 1-D kernels: xDeepFM's CIN has kernel 1).
fn conv(k: &Kernels, ins: &Views, attrs: &ConvAttrs, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    let x = need_view(ins, 0, cx)?;
    let w = need_view(ins, 1, cx)?;
    let p = attrs.params(x.shape, w.shape).map_err(|r| cx.err(r))?;
    let bias = ins.get(2).copied().flatten();
    let (Some(xs), Buf::F32(d)) = (x.f32(), out) else {
        return Err(internal(cx, "Conv"));
    };
    let n = x.shape[0];
    // A 1-D convolution runs as a 2-D one of height 1 (padding 0 along the height).
    let hw = |v: [usize; 2], one: usize| if p.nd == 2 { (v[0], v[1]) } else { (one, v[0]) };
    let ((ih, iw), (oh, ow), (kh, kw)) = (hw(p.inp, 1), hw(p.out, 1), hw(p.kernel, 1));
    let ((sh, sw), (ph, pw), (dh, dw)) = (hw(p.stride, 1), hw(p.pad, 0), hw(p.dil, 1));
    if d.len() != n * p.m * oh * ow || xs.len() != n * p.cin * ih * iw {
        return Err(internal(cx, "Conv"));
    }
    // Pointwise convolution (kernel 1, stride 1, no padding; xDeepFM's CIN): per batch row,
    // out[b] (M x L) = W (M x C) * X[b] (C x L), through the matmul kernel.
    if kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 {
        if let Some(wf) = w.f32() {
            let l = ih * iw;
            for b in 0..n {
                let xb = &xs[b * p.cin * l..(b + 1) * p.cin * l];
                let ob = &mut d[b * p.m * l..(b + 1) * p.m * l];
                match bias.map(|v| v.data) {
                    Some(bd) => {
                        for (m, row) in ob.chunks_exact_mut(l).enumerate() {
                            let bv = float_at(bd, m as isize).unwrap_or(0.0);
                            row.iter_mut().for_each(|v| *v = bv);
                        }
                    }
                    None => ob.iter_mut().for_each(|v| *v = 0.0),
                }
                let dims = MatMulDims {
                    m: p.m,
                    k: p.cin,
                    n: l,
                };
                (k.matmul_f32)(dims, wf, xb, BLayout::KxN, ob, true);
            }
            return Ok(());
        }
    }
    let wv = |i: usize| float_at(w.data, i as isize).unwrap_or(0.0);
    for b in 0..n {
        for m in 0..p.m {
            let b0 = bias
                .and_then(|v| float_at(v.data, m as isize))
                .unwrap_or(0.0);
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = b0;
                    for c in 0..p.cin {
                        for ky in 0..kh {
                            let iy = (y * sh + ky * dh) as isize - ph as isize;
                            if iy < 0 || iy >= ih as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (xo * sw + kx * dw) as isize - pw as isize;
                                if ix < 0 || ix >= iw as isize {
                                    continue;
                                }
                                let xi = ((b * p.cin + c) * ih + iy as usize) * iw + ix as usize;
                                let wi = ((m * p.cin + c) * kh + ky) * kw + kx;
                                acc += xs[xi] * wv(wi);
                            }
                        }
                    }
                    d[((b * p.m + m) * oh + y) * ow + xo] = acc;
                }
            }
        }
    }
    Ok(())
}

//! Einsum with one or two operands and an explicit `->` output.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::matmul::kernel_matmul;
use super::{internal, Attrs, Inferred, Meta, Metas, NodeCtx, Op, Views};
use crate::error::Result;
use crate::graph::strided::{for_each2, strides_of, MAX_RANK};
use crate::graph::value::{Buf, View};
use crate::kernels::{BLayout, Kernels, MatMulDims};
use crate::onnx::AttrValue;
use crate::tensor::DType;

pub(super) fn parse(a: &Attrs) -> Result<Op> {
    match a.get("equation") {
        Some(AttrValue::String(s)) => Ok(Op::Einsum {
            equation: core::str::from_utf8(s)
                .map_err(|_| a.err("equation is not UTF-8".to_string()))?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
        }),
        _ => Err(a.err("missing string attribute 'equation'".to_string())),
    }
}

pub(super) fn infer(equation: &str, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    let metas: Vec<&Meta> = ins.iter().flatten().collect();
    let shapes: Vec<&[usize]> = metas.iter().map(|m| m.shape).collect();
    if metas.iter().any(|m| m.dtype != DType::F32) {
        return Err(cx.err("Einsum needs float inputs".to_string()));
    }
    let e = parse_einsum(equation, &shapes).map_err(|r| cx.err(r))?;
    // The evaluation loops over every letter: its index space (0 sizes taken as 1) must fit.
    if crate::graph::value::checked_bytes(&e.sizes, 1).is_none() {
        return Err(cx.err(format!(
            "the index space of '{equation}' over {shapes:?} overflows"
        )));
    }
    Ok((DType::F32, e.out_shape()))
}

/// A parsed Einsum: per-letter sizes, each operand's letters, the output letters. Fixed-size
/// arrays: parsing at run time does not allocate.
struct EinsumSpec {
    sizes: [usize; 26],
    terms: [[u8; MAX_RANK]; 2],
    term_len: [usize; 2],
    nterms: usize,
    out: [u8; MAX_RANK],
    out_len: usize,
}

impl EinsumSpec {
    fn term(&self, i: usize) -> &[u8] {
        &self.terms[i][..self.term_len[i]]
    }

    fn out(&self) -> &[u8] {
        &self.out[..self.out_len]
    }

    fn out_shape(&self) -> Vec<usize> {
        self.out().iter().map(|&c| self.sizes[c as usize]).collect()
    }
}

fn letters_of(t: &str, eq: &str, dst: &mut [u8; MAX_RANK]) -> core::result::Result<usize, String> {
    if t.len() > MAX_RANK {
        return Err(format!(
            "equation '{eq}': term '{t}' has rank above {MAX_RANK}"
        ));
    }
    for (d, c) in dst.iter_mut().zip(t.bytes()) {
        if !c.is_ascii_lowercase() {
            return Err(format!(
                "equation '{eq}': only lower-case letters are supported"
            ));
        }
        *d = c - b'a';
    }
    Ok(t.len())
}

fn parse_einsum(eq: &str, shapes: &[&[usize]]) -> core::result::Result<EinsumSpec, String> {
    let (lhs, rhs) = eq
        .split_once("->")
        .ok_or_else(|| format!("equation '{eq}' needs an explicit '->' output"))?;
    if eq.contains("...") {
        return Err(format!("equation '{eq}': ellipsis is not supported"));
    }
    let mut spec = EinsumSpec {
        sizes: [0; 26],
        terms: [[0; MAX_RANK]; 2],
        term_len: [0; 2],
        nterms: 0,
        out: [0; MAX_RANK],
        out_len: 0,
    };
    for t in lhs.split(',') {
        if spec.nterms == 2 {
            return Err(format!("equation '{eq}': more than 2 operands"));
        }
        spec.term_len[spec.nterms] = letters_of(t, eq, &mut spec.terms[spec.nterms])?;
        spec.nterms += 1;
    }
    spec.out_len = letters_of(rhs, eq, &mut spec.out)?;
    if spec.nterms != shapes.len() {
        return Err(format!(
            "equation '{eq}' has {} operands, the node {}",
            spec.nterms,
            shapes.len()
        ));
    }
    let mut seen = [false; 26];
    for (ti, s) in shapes.iter().enumerate() {
        let (terms, len) = (spec.terms[ti], spec.term_len[ti]);
        let t = &terms[..len];
        if t.len() != s.len() {
            return Err(format!(
                "equation '{eq}': term of rank {} for an input of shape {s:?}",
                t.len()
            ));
        }
        for (&c, &d) in t.iter().zip(s.iter()) {
            if seen[c as usize] && spec.sizes[c as usize] != d {
                return Err(format!(
                    "equation '{eq}': letter '{}' has sizes {} and {d}",
                    (c + b'a') as char,
                    spec.sizes[c as usize]
                ));
            }
            seen[c as usize] = true;
            spec.sizes[c as usize] = d;
        }
    }
    if spec.out().iter().any(|&c| !seen[c as usize]) {
        return Err(format!("equation '{eq}': output letter not in the inputs"));
    }
    Ok(spec)
}

/// Einsum by one loop over every letter (output letters first, then the summed ones); a
/// plain 2-D matrix product goes through the matmul kernel.
pub(super) fn eval(k: &Kernels, eq: &str, ins: &Views, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    let mut views: [Option<View>; 2] = [None, None];
    let mut n = 0;
    for v in ins.iter().flatten() {
        if n < 2 {
            views[n] = Some(*v);
        }
        n += 1;
    }
    let Buf::F32(d) = out else {
        return Err(internal(cx, "Einsum"));
    };
    let (a, b) = match (views[0], views[1]) {
        (Some(a), b) => (a, b),
        _ => return Err(internal(cx, "Einsum inputs")),
    };
    // Fast path "ij,jk->ik".
    let bytes = eq.as_bytes();
    if let (Some(bv), 10) = (b, bytes.len()) {
        let (i, j, j2, kk, o1, o2) = (bytes[0], bytes[1], bytes[3], bytes[4], bytes[7], bytes[8]);
        if bytes[2] == b','
            && &bytes[5..7] == b"->"
            && j == j2
            && o1 == i
            && o2 == kk
            && i != j
            && kk != j
            && i != kk
            && a.shape.len() == 2
            && bv.shape.len() == 2
        {
            let (m, kd, nn) = (a.shape[0], a.shape[1], bv.shape[1]);
            let Some(av) = a.f32() else {
                return Err(internal(cx, "Einsum A"));
            };
            if d.len() != m * nn {
                return Err(internal(cx, "Einsum"));
            }
            return kernel_matmul(
                k,
                MatMulDims { m, k: kd, n: nn },
                av,
                bv.data,
                BLayout::KxN,
                d,
                false,
                cx,
            );
        }
    }
    let shapes: [&[usize]; 2] = [a.shape, b.map(|v| v.shape).unwrap_or(&[])];
    let spec = parse_einsum(eq, &shapes[..n.min(2)]).map_err(|r| cx.err(r))?;
    // Loop letters: output letters then summed letters.
    let mut letters = [0u8; 26];
    let mut nl = 0;
    for &c in spec
        .out()
        .iter()
        .chain(spec.term(0))
        .chain(if spec.nterms > 1 { spec.term(1) } else { &[] })
    {
        if !letters[..nl].contains(&c) {
            letters[nl] = c;
            nl += 1;
        }
    }
    if nl > MAX_RANK {
        return Err(cx.err(format!("equation '{eq}' uses more than {MAX_RANK} letters")));
    }
    let mut dims = [0usize; MAX_RANK];
    for i in 0..nl {
        dims[i] = spec.sizes[letters[i] as usize];
    }
    let stride_for = |term: &[u8], shape: &[usize]| -> [isize; MAX_RANK] {
        let own = strides_of(shape);
        let mut st = [0isize; MAX_RANK];
        for (pos, &c) in term.iter().enumerate() {
            if let Some(li) = letters[..nl].iter().position(|&l| l == c) {
                st[li] += own[pos] as isize;
            }
        }
        st
    };
    let sa = stride_for(spec.term(0), a.shape);
    let sb = match b {
        Some(bv) if spec.nterms > 1 => stride_for(spec.term(1), bv.shape),
        _ => [0isize; MAX_RANK],
    };
    let out_numel: usize = spec.out().iter().map(|&c| spec.sizes[c as usize]).product();
    if d.len() != out_numel {
        return Err(internal(cx, "Einsum"));
    }
    d.iter_mut().for_each(|v| *v = 0.0);
    let (Some(av), bvals) = (a.f32(), b.and_then(|v| v.f32())) else {
        return Err(internal(cx, "Einsum A"));
    };
    let mut ok = true;
    // Output index from the loop index: the first `spec.out.len()` letters, row-major.
    let nout = spec.out_len;
    let inner: usize = dims[nout..nl].iter().product();
    for_each2(&dims[..nl], &sa, 0, &sb, 0, |flat, ia, ib| {
        let o = flat / inner.max(1);
        let va = av.get(ia as usize).copied();
        let vb = match bvals {
            Some(bv) => bv.get(ib as usize).copied(),
            None => Some(1.0),
        };
        match (va, vb, d.get_mut(o)) {
            (Some(x), Some(y), Some(acc)) => *acc += x * y,
            _ => ok = false,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(internal(cx, "Einsum"))
    }
}

//! Index iteration over row-major shapes of rank <= [`MAX_RANK`], with per-operand strides
//! (stride 0 = broadcast). No heap allocation: the hot path of Slice, Transpose, Concat and
//! broadcasting binary ops.

/// Largest tensor rank the runtime accepts (checked at plan time).
pub(crate) const MAX_RANK: usize = 8;

/// Fixed-capacity dims/strides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub d: [usize; MAX_RANK],
    pub n: usize,
}

impl Dims {
    /// From a slice (the planner guarantees `s.len() <= MAX_RANK`; longer input is truncated).
    pub(crate) fn from(s: &[usize]) -> Dims {
        let mut d = [0usize; MAX_RANK];
        let n = s.len().min(MAX_RANK);
        d[..n].copy_from_slice(&s[..n]);
        Dims { d, n }
    }
}

/// Row-major strides of `shape` (in elements).
pub(crate) fn strides_of(shape: &[usize]) -> [usize; MAX_RANK] {
    let mut s = [0usize; MAX_RANK];
    let mut acc = 1usize;
    for i in (0..shape.len().min(MAX_RANK)).rev() {
        s[i] = acc;
        acc = acc.saturating_mul(shape[i]);
    }
    s
}

/// Strides of an operand of shape `shape` broadcast to `out_rank` dims (right-aligned; size-1
/// and missing dims get stride 0).
pub(crate) fn broadcast_strides(shape: &[usize], out_rank: usize) -> [usize; MAX_RANK] {
    let own = strides_of(shape);
    let mut s = [0usize; MAX_RANK];
    let off = out_rank.saturating_sub(shape.len());
    for (i, &dim) in shape.iter().enumerate().take(MAX_RANK) {
        if dim != 1 && off + i < MAX_RANK {
            s[off + i] = own[i];
        }
    }
    s
}

/// Calls `f(out_index, a_index, b_index)` for every element of `shape` in row-major order, where
/// the operand indices advance by `sa`/`sb` (signed element strides) from `a0`/`b0`.
#[inline]
pub(crate) fn for_each2(
    shape: &[usize],
    sa: &[isize; MAX_RANK],
    a0: isize,
    sb: &[isize; MAX_RANK],
    b0: isize,
    mut f: impl FnMut(usize, isize, isize),
) {
    let rank = shape.len().min(MAX_RANK);
    if shape.contains(&0) {
        return;
    }
    if rank == 0 {
        f(0, a0, b0);
        return;
    }
    let last = rank - 1;
    let inner = shape[last];
    let (ia, ib) = (sa[last], sb[last]);
    let mut idx = [0usize; MAX_RANK];
    let mut out = 0usize;
    let (mut pa, mut pb) = (a0, b0);
    loop {
        let (mut qa, mut qb) = (pa, pb);
        for _ in 0..inner {
            f(out, qa, qb);
            out += 1;
            qa += ia;
            qb += ib;
        }
        // Advance the outer dims (odometer).
        let mut d = last;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            pa += sa[d];
            pb += sb[d];
            if idx[d] < shape[d] {
                break;
            }
            pa -= sa[d] * shape[d] as isize;
            pb -= sb[d] * shape[d] as isize;
            idx[d] = 0;
        }
    }
}

/// Signed copy of unsigned strides.
pub(crate) fn signed(s: &[usize; MAX_RANK]) -> [isize; MAX_RANK] {
    let mut o = [0isize; MAX_RANK];
    for i in 0..MAX_RANK {
        o[i] = s[i] as isize;
    }
    o
}

/// `out[i] = src[offset + sum(idx_j * strides_j)]` over `shape`; indices outside `src` are
/// skipped and reported as `false` (the planner makes that impossible).
pub(crate) fn gather_strided<T: Copy>(
    src: &[T],
    offset: isize,
    strides: &[isize; MAX_RANK],
    shape: &[usize],
    out: &mut [T],
) -> bool {
    let mut ok = true;
    let zero = [0isize; MAX_RANK];
    for_each2(shape, strides, offset, &zero, 0, |o, a, _| {
        match (
            usize::try_from(a).ok().and_then(|a| src.get(a)),
            out.get_mut(o),
        ) {
            (Some(v), Some(slot)) => *slot = *v,
            _ => ok = false,
        }
    });
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn transpose_by_strides() {
        // 2x3 -> 3x2
        let src = [0, 1, 2, 3, 4, 5];
        let mut st = [0isize; MAX_RANK];
        st[0] = 1;
        st[1] = 3;
        let mut out = [0; 6];
        assert!(gather_strided(&src, 0, &st, &[3, 2], &mut out));
        assert_eq!(out, [0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn broadcast_row() {
        let sa = signed(&broadcast_strides(&[2, 3], 2));
        let sb = signed(&broadcast_strides(&[3], 2));
        let mut seen = Vec::new();
        for_each2(&[2, 3], &sa, 0, &sb, 0, |o, a, b| seen.push((o, a, b)));
        assert_eq!(
            seen,
            [
                (0, 0, 0),
                (1, 1, 1),
                (2, 2, 2),
                (3, 3, 0),
                (4, 4, 1),
                (5, 5, 2)
            ]
        );
    }
}

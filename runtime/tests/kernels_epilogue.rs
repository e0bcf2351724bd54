//! Property tests of the fused matrix products (`matmul_ep_f32` / `matmul_ep_f16`: product,
//! then `alpha`, bias and activation in the store): every SIMD table this CPU supports against
//! the scalar table, and the scalar table against a naive f64 product followed by the
//! epilogue. Shapes 1, 3, 7, 17, 64, 255, 1000 and random ones, unaligned slices, both
//! layouts, f32 and f16 weights, every activation, with and without bias and alpha.

mod kernel_support;

use ctr_edge_runtime::kernels::{self, Activation, BLayout, Epilogue, Kernels, MatMulDims};
use kernel_support::{
    all_tables, assert_close, layout, naive_dots, product, shapes, short_slice_cases,
    short_slice_inputs, simd_tables, values, Case, Product,
};
use proptest::prelude::*;

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Identity),
        Just(Activation::Relu),
        Just(Activation::Sigmoid),
        Just(Activation::Tanh),
    ]
}

/// One case: buffers starting at `offset` in their allocations (unaligned for 1..3), A scaled
/// so that pre-activations spread over the activations' curved parts.
fn case(dims: MatMulDims, seed: u64, offset: usize) -> Case {
    let mut case = Case::new(dims, seed, offset);
    let k = dims.k as f32;
    case.a = case.a.iter().map(|x| x * 3.0 / k.sqrt()).collect();
    case
}

/// `table`'s fused product into a C prefilled with NaN (every element must be written).
fn run(case: &Case, table: &Kernels, layout: BLayout, half: bool, ep: Ep) -> Vec<f32> {
    let o = case.offset;
    let MatMulDims { m, n, .. } = case.dims;
    let ep = Epilogue {
        alpha: ep.alpha,
        bias: ep.bias.then(|| &case.bias[o..]),
        act: ep.act,
    };
    case.run_with(
        vec![f32::NAN; o + m * n],
        half,
        |dims, a, b, c| (table.matmul_ep_f32)(dims, a, b, layout, c, ep),
        |dims, a, b, c| (table.matmul_ep_f16)(dims, a, b, layout, c, ep),
    )
}

/// Naive f64 product and epilogue, and per element the scale of the rounding error of the
/// product (`|alpha| sum |a b|` plus the bias).
fn reference(case: &Case, layout: BLayout, half: bool, ep: Ep) -> (Vec<f64>, Vec<f64>) {
    let MatMulDims { m, n, .. } = case.dims;
    let (a, b, bias) = (
        &case.a[case.offset..],
        case.weights(half),
        &case.bias[case.offset..],
    );
    let mut want = vec![0.0; m * n];
    let mut scale = vec![0.0; m * n];
    for (idx, (s, abs)) in naive_dots(case.dims, a, &b, layout).into_iter().enumerate() {
        let bj = if ep.bias { bias[idx % n] as f64 } else { 0.0 };
        let x = ep.alpha as f64 * s + bj;
        want[idx] = match ep.act {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
        };
        scale[idx] = (ep.alpha as f64).abs() * abs + bj.abs();
    }
    (want, scale)
}

/// The epilogue of a case (the bias slice is the case's).
#[derive(Debug, Clone, Copy)]
struct Ep {
    alpha: f32,
    bias: bool,
    act: Activation,
}

fn epilogue() -> impl Strategy<Value = Ep> {
    (
        prop_oneof![Just(1.0f32), Just(0.5f32), Just(-2.0f32)],
        any::<bool>(),
        activation(),
    )
        .prop_map(|(alpha, bias, act)| Ep { alpha, bias, act })
}

// Closeness: every element within `tol * (1 + scale)` of the reference (activations have
// slopes <= 1, so the product's rounding error bounds theirs; sigmoid/tanh add ~1e-6 absolute).

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(96)
}

proptest! {
    #![proptest_config(config())]

    /// Each SIMD table's fused products match the scalar table's.
    #[test]
    fn simd_matmul_ep_matches_scalar(p in product(), ep in epilogue()) {
        let Product { dims, seed, offset, layout, half } = p;
        let case = case(dims, seed, offset);
        let want = run(&case, kernels::scalar(), layout, half, ep);
        let want64: Vec<f64> = want.iter().map(|&x| x as f64).collect();
        let (_, scale) = reference(&case, layout, half, ep);
        for table in simd_tables() {
            let got = run(&case, table, layout, half, ep);
            let what = format!("{} {dims:?} {layout:?} f16={half} {ep:?}", table.variant.name());
            assert_close(&what, &got, &want64, &scale, 2e-5)?;
        }
    }

    /// The scalar fused product matches a naive f64 product and epilogue.
    #[test]
    fn scalar_matmul_ep_matches_naive_f64(p in product(), ep in epilogue()) {
        let Product { dims, seed, offset, layout, half } = p;
        let case = case(dims, seed, offset);
        let got = run(&case, kernels::scalar(), layout, half, ep);
        let (want, scale) = reference(&case, layout, half, ep);
        assert_close(&format!("scalar {dims:?} {layout:?} {ep:?}"), &got, &want, &scale, 2e-5)?;
    }

    /// A fused product equals the plain product followed by the table's own `mul_scalar`,
    /// `add` and activation kernels (the unfused plan's steps), to float rounding.
    #[test]
    fn fused_equals_product_then_elementwise_kernels(
        dims in kernel_support::dims(),
        seed in any::<u64>(),
        layout in layout(),
        half in any::<bool>(),
        ep in epilogue(),
    ) {
        let case = case(dims, seed, 0);
        let MatMulDims { m, n, .. } = dims;
        let (_, scale) = reference(&case, layout, half, ep);
        for t in all_tables() {
            let mut c = vec![0.0f32; m * n];
            if half {
                (t.matmul_f16)(dims, &case.a, &case.b16, layout, &mut c, false);
            } else {
                (t.matmul_f32)(dims, &case.a, &case.b, layout, &mut c, false);
            }
            if ep.alpha != 1.0 {
                let copy = c.clone();
                (t.mul_scalar)(&copy, ep.alpha, &mut c);
            }
            if ep.bias {
                for row in c.chunks_exact_mut(n) {
                    let copy = row.to_vec();
                    (t.add)(&copy, &case.bias[..n], row);
                }
            }
            match ep.act {
                Activation::Identity => {}
                Activation::Relu => (t.relu)(&mut c),
                Activation::Sigmoid => (t.sigmoid)(&mut c),
                Activation::Tanh => (t.tanh)(&mut c),
            }
            let want: Vec<f64> = c.iter().map(|&x| x as f64).collect();
            let got = run(&case, t, layout, half, ep);
            let what = format!("{} {dims:?} {layout:?} f16={half} {ep:?}", t.variant.name());
            assert_close(&what, &got, &want, &scale, 1e-6)?;
        }
    }
}

/// Every table at the blocking boundaries: 1..3 rows (B read in place), 4+ rows (packed 6-row
/// tiles, 16-column panels, 256-deep panels: the epilogue only after the last), columns around
/// the vector widths, both layouts, f32/f16, every activation with bias and alpha.
#[test]
fn matmul_ep_at_block_edges() {
    let acts = [
        Activation::Identity,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ];
    let (ms, ks) = ([1, 2, 3, 4, 7, 13], [1, 9, 256, 257, 600]);
    for (m, k, n) in shapes(&ms, &ks, &[1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33]) {
        let dims = MatMulDims { m, k, n };
        let case = case(dims, (m * 1_000_003 + k * 1009 + n) as u64, 1);
        for layout in [BLayout::KxN, BLayout::NxK] {
            for (i, &act) in acts.iter().enumerate() {
                let half = i % 2 == 1;
                let ep = Ep {
                    alpha: if i == 2 { 0.5 } else { 1.0 },
                    bias: i != 3,
                    act,
                };
                let (want, scale) = reference(&case, layout, half, ep);
                for t in all_tables() {
                    let got = run(&case, t, layout, half, ep);
                    let what =
                        format!("{} {dims:?} {layout:?} f16={half} {ep:?}", t.variant.name());
                    if let Err(e) = assert_close(&what, &got, &want, &scale, 2e-5) {
                        panic!("{e}");
                    }
                }
            }
        }
    }
}

/// Special values go through the epilogue as through the separate kernels: NaN stays NaN,
/// saturating sigmoid/tanh, ReLU of -0 and negatives; an empty inner dimension gives the
/// epilogue of zeros.
#[test]
fn matmul_ep_special_values_and_empty_k() {
    for t in all_tables() {
        let name = t.variant.name();
        // A = identity rows, so C = B's rows: the pre-activation values are chosen directly.
        let pre = [
            f32::NAN,
            -1e4,
            1e4,
            -0.0,
            0.25,
            -0.25,
            f32::INFINITY,
            f32::NEG_INFINITY,
            3.0,
        ];
        let n = pre.len();
        for m in [1usize, 4, 7] {
            let k = 1;
            let dims = MatMulDims { m, k, n };
            let a = vec![1.0f32; m];
            for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
                let mut c = vec![0.0f32; m * n];
                let ep = Epilogue {
                    alpha: 1.0,
                    bias: None,
                    act,
                };
                (t.matmul_ep_f32)(dims, &a, &pre, BLayout::KxN, &mut c, ep);
                let mut want = pre.to_vec();
                match act {
                    Activation::Relu => (t.relu)(&mut want),
                    Activation::Sigmoid => (t.sigmoid)(&mut want),
                    _ => (t.tanh)(&mut want),
                }
                for row in c.chunks_exact(n) {
                    for (j, (&g, &w)) in row.iter().zip(&want).enumerate() {
                        assert!(
                            (g.is_nan() && w.is_nan()) || g == w,
                            "{name} m={m} {act:?}({}) = {g}, want {w}",
                            pre[j]
                        );
                    }
                }
            }
        }
        let bias = values(3, 17);
        for layout in [BLayout::KxN, BLayout::NxK] {
            let dims = MatMulDims { m: 5, k: 0, n: 17 };
            let mut c = vec![f32::NAN; 5 * 17];
            let ep = Epilogue {
                alpha: 2.0,
                bias: Some(&bias),
                act: Activation::Relu,
            };
            (t.matmul_ep_f32)(dims, &[], &[], layout, &mut c, ep);
            for row in c.chunks_exact(17) {
                let want: Vec<f32> = bias.iter().map(|&b| b.max(0.0)).collect();
                assert_eq!(row, want.as_slice(), "{name} {layout:?} k=0");
            }
        }
    }
}

/// Too-short slices or a bias shorter than `n`: no panic, C untouched.
#[test]
fn matmul_ep_short_slices_are_safe() {
    let shapes = [(4, 9, 17), (1, 33, 1), (7, 8, 24), (3, 1, 2)];
    for (t, layout, (m, k, n)) in short_slice_cases(&shapes) {
        let name = t.variant.name();
        let (dims, a, b, b16, c) = short_slice_inputs(m, k, n);
        let bias = values(4, n);
        let ep = |bias| Epilogue {
            alpha: 1.0,
            bias,
            act: Activation::Sigmoid,
        };
        let shorts = [
            (&a[..m * k - 1], &b[..], &b16[..], m * n, Some(&bias[..])),
            (&a[..], &b[..k * n - 1], &b16[..k * n - 1], m * n, None),
            (&a[..], &b[..], &b16[..], m * n - 1, Some(&bias[..])),
            (&a[..], &b[..], &b16[..], m * n, Some(&bias[..n - 1])),
        ];
        for (sa, sb, sb16, c_len, bias) in shorts {
            let mut cc = c[..c_len].to_vec();
            (t.matmul_ep_f32)(dims, sa, sb, layout, &mut cc, ep(bias));
            assert_eq!(cc, &c[..c_len], "{name} {dims:?} {layout:?}");
            (t.matmul_ep_f16)(dims, sa, sb16, layout, &mut cc, ep(bias));
            assert_eq!(cc, &c[..c_len], "{name} {dims:?} {layout:?} f16");
        }
    }
}

//! Property tests of the kernel tables: every SIMD table this CPU supports against the scalar
//! reference (shapes with odd sizes and unaligned tails, both layouts, accumulate or not, f32
//! and f16 weights), the scalar reference against a naive f64 product, short slices, and the
//! table `best()` picks.

mod kernel_support;

use ctr_edge_runtime::kernels::{self, BLayout, KernelVariant, Kernels, MatMulDims};
use kernel_support::{
    all_tables, naive_dots, product, shapes, short_slice_inputs, simd_tables, values, Case, Product,
};
use proptest::prelude::*;

/// Naive f64 product and, per element of C, `sum_p |a_ip b_pj|` (the scale of rounding error).
fn naive_f64(
    dims: MatMulDims,
    a: &[f32],
    b: &[f32],
    layout: BLayout,
    c0: Option<&[f32]>,
) -> (Vec<f64>, Vec<f64>) {
    let dots = naive_dots(dims, a, b, layout);
    let init = |idx: usize| c0.map_or(0.0, |c0| c0[idx] as f64);
    let c = dots.iter().enumerate().map(|(i, &(s, _))| init(i) + s);
    let scale = dots
        .iter()
        .enumerate()
        .map(|(i, &(_, abs))| abs + init(i).abs());
    (c.collect(), scale.collect())
}

/// Every element within `1e-5 * (1 + scale)` of the reference.
fn assert_close(what: &str, got: &[f32], want: &[f64], scale: &[f64]) -> Result<(), TestCaseError> {
    kernel_support::assert_close(what, got, want, scale, 1e-5)
}

/// Runs `table`'s product (f16 weights when `half`) on the case at its offset; C starts as
/// `c0`.
fn run(case: &Case, table: &Kernels, layout: BLayout, accumulate: bool, half: bool) -> Vec<f32> {
    case.run_with(
        case.c0.clone(),
        half,
        |dims, a, b, c| (table.matmul_f32)(dims, a, b, layout, c, accumulate),
        |dims, a, b, c| (table.matmul_f16)(dims, a, b, layout, c, accumulate),
    )
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

proptest! {
    #![proptest_config(config())]

    /// Each SIMD table's products match the scalar table's.
    #[test]
    fn simd_matmul_matches_scalar(p in product(), accumulate in any::<bool>()) {
        let Product { dims, seed, offset, layout, half } = p;
        let case = Case::new(dims, seed, offset);
        let want = run(&case, kernels::scalar(), layout, accumulate, half);
        let want: Vec<f64> = want.iter().map(|&x| x as f64).collect();
        let c0 = accumulate.then(|| &case.c0[offset..]);
        let (_, scale) = naive_f64(dims, &case.a[offset..], &case.weights(half), layout, c0);
        for table in simd_tables() {
            let got = run(&case, table, layout, accumulate, half);
            let name = table.variant.name();
            let what = format!("{name} {dims:?} {layout:?} acc={accumulate} f16={half}");
            assert_close(&what, &got, &want, &scale)?;
        }
    }

    /// The scalar oracle itself matches a naive f64 product.
    #[test]
    fn scalar_matmul_matches_naive_f64(p in product(), accumulate in any::<bool>()) {
        let Product { dims, seed, offset, layout, half } = p;
        let case = Case::new(dims, seed, offset);
        let got = run(&case, kernels::scalar(), layout, accumulate, half);
        let c0 = accumulate.then(|| &case.c0[offset..]);
        let (want, scale) = naive_f64(dims, &case.a[offset..], &case.weights(half), layout, c0);
        assert_close(&format!("scalar {dims:?} {layout:?}"), &got, &want, &scale)?;
    }

    /// Elementwise kernels of each SIMD table against the scalar table: exact for the IEEE
    /// operations, 1e-6 absolute for sigmoid/tanh, 1e-6 relative for exp on [-88, 88].
    #[test]
    fn simd_elementwise_matches_scalar(
        len in prop_oneof![
            prop::sample::select(vec![0usize, 1, 3, 7, 8, 9, 17, 64, 255, 1000]),
            0usize..40,
        ],
        seed in any::<u64>(),
        offset in 0usize..4,
        s in -4.0f32..4.0,
    ) {
        let scalar = kernels::scalar();
        let a = values(seed, len + offset);
        // Divisors away from 0; inputs spread over [-100, 100] for sigmoid/tanh and [-88, 88]
        // for exp.
        let b: Vec<f32> = values(seed ^ 0x5eed, len + offset)
            .iter()
            .map(|x| x + x.signum() * 0.25)
            .collect();
        let wide: Vec<f32> = a.iter().map(|x| x * 100.0).collect();
        let exp_in: Vec<f32> = a.iter().map(|x| x * 88.0).collect();
        let (a, b, wide, exp_in) = (&a[offset..], &b[offset..], &wide[offset..], &exp_in[offset..]);
        for t in simd_tables() {
            let name = t.variant.name();
            let ops = [
                ("add", t.add, scalar.add),
                ("sub", t.sub, scalar.sub),
                ("mul", t.mul, scalar.mul),
                ("div", t.div, scalar.div),
            ];
            for (op, simd, reference) in ops {
                let (mut got, mut want) = (vec![0.0; len + 1], vec![0.0; len + 1]);
                simd(a, b, &mut got[1..]);
                reference(a, b, &mut want[1..]);
                prop_assert_eq!(&got, &want, "{} {}", name, op);
            }
            let ops = [
                ("add_scalar", t.add_scalar, scalar.add_scalar),
                ("mul_scalar", t.mul_scalar, scalar.mul_scalar),
            ];
            for (op, simd, reference) in ops {
                let (mut got, mut want) = (vec![0.0; len], vec![0.0; len]);
                simd(a, s, &mut got);
                reference(a, s, &mut want);
                prop_assert_eq!(&got, &want, "{} {}", name, op);
            }
            let unary = [
                ("relu", t.relu, scalar.relu, wide, 0.0f32, 0.0f32),
                ("sigmoid", t.sigmoid, scalar.sigmoid, wide, 1e-6, 0.0),
                ("tanh", t.tanh, scalar.tanh, wide, 1e-6, 0.0),
                ("exp", t.exp, scalar.exp, exp_in, 0.0, 1e-6),
            ];
            for (op, simd, reference, input, abs_tol, rel_tol) in unary {
                let (mut got, mut want) = (input.to_vec(), input.to_vec());
                simd(&mut got);
                reference(&mut want);
                for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    prop_assert!(
                        (g - w).abs() <= abs_tol + rel_tol * w.abs(),
                        "{} {}({}) at {}: {} want {}", name, op, input[idx], idx, g, w
                    );
                }
            }
            let (got, want) = ((t.sum)(wide), (scalar.sum)(wide));
            let scale: f32 = wide.iter().map(|x| x.abs()).sum();
            let tol = 1e-5 * (1.0 + scale);
            prop_assert!((got - want).abs() <= tol, "{} sum {} want {}", name, got, want);
        }
    }
}

/// `best()` is the SIMD table wherever this CPU has one: a silent fallback to scalar fails.
#[test]
fn best_is_the_simd_table_of_this_cpu() {
    let best = kernels::best().variant;
    #[cfg(target_arch = "x86_64")]
    {
        let simd = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        let want = if simd {
            KernelVariant::Avx2Fma
        } else {
            KernelVariant::Scalar
        };
        assert_eq!(best, want);
        assert_eq!(kernels::for_variant(KernelVariant::Avx2Fma).is_some(), simd);
        assert!(kernels::for_variant(KernelVariant::Neon).is_none());
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(best, KernelVariant::Neon);
        assert!(kernels::for_variant(KernelVariant::Avx2Fma).is_none());
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    assert_eq!(best, KernelVariant::Scalar);
    // Cached: the same table every time.
    assert!(std::ptr::eq(kernels::best(), kernels::best()));
}

/// Too-short slices: no panic, and products leave C untouched; elementwise kernels work on
/// the common length and leave the rest of `out` untouched.
#[test]
fn short_slices_are_safe() {
    for t in all_tables() {
        let name = t.variant.name();
        for layout in [BLayout::KxN, BLayout::NxK] {
            for (m, k, n) in [(4, 9, 17), (1, 33, 1), (5, 8, 24), (3, 1, 2)] {
                let (dims, a, b, b16, c) = short_slice_inputs(m, k, n);
                let shorts = [
                    (&a[..m * k - 1], &b[..], &b16[..], m * n),
                    (&a[..], &b[..k * n - 1], &b16[..k * n - 1], m * n),
                    (&a[..], &b[..], &b16[..], m * n - 1),
                    (&[][..], &[][..], &[][..], 0),
                ];
                for (sa, sb, sb16, c_len) in shorts {
                    for accumulate in [false, true] {
                        let mut cc = c[..c_len].to_vec();
                        (t.matmul_f32)(dims, sa, sb, layout, &mut cc, accumulate);
                        assert_eq!(cc, &c[..c_len], "{name} {dims:?} {layout:?}");
                        (t.matmul_f16)(dims, sa, sb16, layout, &mut cc, accumulate);
                        assert_eq!(cc, &c[..c_len], "{name} {dims:?} {layout:?} f16");
                    }
                }
            }
            // Dimensions whose products overflow usize.
            let huge = MatMulDims {
                m: usize::MAX / 2,
                k: 3,
                n: usize::MAX / 2,
            };
            let mut c = [1.0f32; 4];
            (t.matmul_f32)(huge, &[1.0; 4], &[1.0; 4], layout, &mut c, false);
            assert_eq!(c, [1.0; 4], "{name}");
        }
        let (a, b) = (values(4, 37), values(5, 20));
        let mut out = vec![7.0f32; 30];
        for op in [t.add, t.sub, t.mul, t.div] {
            out.fill(7.0);
            op(&a, &b, &mut out);
            assert!(
                out[20..].iter().all(|&x| x == 7.0),
                "{name}: wrote past the common length"
            );
        }
        for op in [t.add_scalar, t.mul_scalar] {
            let mut out = vec![7.0f32; 40];
            op(&a, 2.0, &mut out);
            assert!(
                out[37..].iter().all(|&x| x == 7.0),
                "{name}: wrote past the common length"
            );
            op(&a, 2.0, &mut []);
        }
        for op in [t.relu, t.sigmoid, t.tanh, t.exp] {
            op(&mut []);
        }
        assert_eq!((t.sum)(&[]), 0.0);
    }
}

/// Ad-hoc throughput of the products on CTR-MLP shapes, every table; not an assertion. Run with
/// `cargo test --release -p ctr-edge-runtime --test kernels_prop -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, run by hand in release"]
fn matmul_throughput_report() {
    use std::time::Instant;
    let tables = all_tables();
    let shapes = [
        (256, 624, 400),
        (1024, 400, 400),
        (1, 624, 400),
        (16, 624, 400),
        (32, 624, 400),
        (64, 624, 400),
        (256, 400, 1),
        (256, 16, 16),
    ];
    for (m, k, n) in shapes {
        let dims = MatMulDims { m, k, n };
        let case = Case::new(dims, 42, 0);
        let flops = 2.0 * (m * k * n) as f64;
        for layout in [BLayout::NxK, BLayout::KxN] {
            for half in [false, true] {
                let mut line = format!(
                    "m={m:5} k={k:4} n={n:4} {layout:?} {:3} GFLOP/s:",
                    if half { "f16" } else { "f32" }
                );
                for t in &tables {
                    let mut c = case.c0.clone();
                    let mut run = || {
                        if half {
                            (t.matmul_f16)(dims, &case.a, &case.b16, layout, &mut c, false);
                        } else {
                            (t.matmul_f32)(dims, &case.a, &case.b, layout, &mut c, false);
                        }
                        std::hint::black_box(&mut c);
                    };
                    // Best of 7 trials of ~30 ms: the machine may be shared.
                    let reps = ((3e7 / flops) as usize).clamp(1, 100_000);
                    let mut best = 0.0f64;
                    for _ in 0..7 {
                        let start = Instant::now();
                        for _ in 0..reps {
                            run();
                        }
                        best = best.max(flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9);
                    }
                    line += &format!("  {} {best:6.1}", t.variant.name());
                }
                println!("{line}");
            }
        }
    }
}

/// Every SIMD table against scalar on the shapes at the blocking boundaries: 1..3 rows (B read
/// in place) and 4+ rows (packed panels of 6 x 16, 256 deep), partial panels, `k` across the
/// 256 boundary, both layouts, f32/f16, accumulate or not.
#[test]
fn simd_matmul_matches_scalar_at_block_edges() {
    for (m, k, n) in shapes(&[1, 3, 4, 7], &[1, 9, 256, 257], &[1, 7, 16, 17, 33]) {
        let dims = MatMulDims { m, k, n };
        let case = Case::new(dims, (m * 1_000_003 + k * 1009 + n) as u64, 1);
        for layout in [BLayout::KxN, BLayout::NxK] {
            for (accumulate, half) in [(false, false), (true, false), (false, true), (true, true)] {
                let want = run(&case, kernels::scalar(), layout, accumulate, half);
                let want: Vec<f64> = want.iter().map(|&x| x as f64).collect();
                let c0 = accumulate.then(|| &case.c0[1..]);
                let (_, scale) = naive_f64(dims, &case.a[1..], &case.weights(half), layout, c0);
                for table in simd_tables() {
                    let got = run(&case, table, layout, accumulate, half);
                    let what = format!(
                        "{} {dims:?} {layout:?} acc={accumulate} f16={half}",
                        table.variant.name()
                    );
                    if let Err(e) = assert_close(&what, &got, &want, &scale) {
                        panic!("{e}");
                    }
                }
            }
        }
    }
}

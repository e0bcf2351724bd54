//! Unit tests of the dispatch and of hand-checked products; the property tests comparing
//! every SIMD table with the scalar one are in `runtime/tests/kernels_prop.rs`.

use super::*;

#[test]
fn matmul_fits_checks_lengths_and_overflow() {
    let d = MatMulDims { m: 2, k: 3, n: 4 };
    assert!(matmul_fits(d, 6, 12, 8));
    assert!(matmul_fits(d, 7, 13, 9));
    assert!(!matmul_fits(d, 5, 12, 8));
    assert!(!matmul_fits(d, 6, 11, 8));
    assert!(!matmul_fits(d, 6, 12, 7));
    let huge = MatMulDims {
        m: usize::MAX,
        k: 2,
        n: 1,
    };
    assert!(!matmul_fits(huge, usize::MAX, usize::MAX, usize::MAX));
    assert!(matmul_fits(MatMulDims { m: 0, k: 0, n: 0 }, 0, 0, 0));
}

#[test]
fn scalar_table_is_scalar_and_always_available() {
    assert_eq!(scalar().variant, KernelVariant::Scalar);
    assert_eq!(
        for_variant(KernelVariant::Scalar).map(|t| t.variant),
        Some(KernelVariant::Scalar)
    );
    for v in KernelVariant::ALL {
        if let Some(t) = for_variant(v) {
            assert_eq!(t.variant, v);
        }
    }
}

/// A 2x3 by 3x2 product worked by hand, in both layouts, f32 and f16, every table.
#[test]
fn hand_checked_product_on_every_table() {
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b_kxn = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
    let b_nxk = [7.0, 9.0, 11.0, 8.0, 10.0, 12.0];
    let want = [58.0, 64.0, 139.0, 154.0];
    let d = MatMulDims { m: 2, k: 3, n: 2 };
    for t in KernelVariant::ALL.into_iter().filter_map(for_variant) {
        for (b, layout) in [(&b_kxn, BLayout::KxN), (&b_nxk, BLayout::NxK)] {
            let mut c = [0.0f32; 4];
            (t.matmul_f32)(d, &a, b, layout, &mut c, false);
            assert_eq!(c, want, "{} {layout:?}", t.variant.name());
            (t.matmul_f32)(d, &a, b, layout, &mut c, true);
            assert_eq!(
                c,
                want.map(|x| 2.0 * x),
                "{} {layout:?} accumulate",
                t.variant.name()
            );
            let b16 = b.map(f16::from_f32);
            let mut c = [f32::NAN; 4];
            (t.matmul_f16)(d, &a, &b16, layout, &mut c, false);
            assert_eq!(c, want, "{} {layout:?} f16", t.variant.name());
        }
    }
}

/// k = 0: C = 0 (or unchanged when accumulating), whatever C held.
#[test]
fn empty_inner_dimension_zeroes_or_keeps_c() {
    for t in KernelVariant::ALL.into_iter().filter_map(for_variant) {
        for layout in [BLayout::KxN, BLayout::NxK] {
            let d = MatMulDims { m: 3, k: 0, n: 5 };
            let mut c = [7.0f32; 15];
            (t.matmul_f32)(d, &[], &[], layout, &mut c, true);
            assert_eq!(c, [7.0; 15]);
            (t.matmul_f32)(d, &[], &[], layout, &mut c, false);
            assert_eq!(c, [0.0; 15], "{} {layout:?}", t.variant.name());
        }
    }
}

#[test]
fn elementwise_special_values_on_every_table() {
    for t in KernelVariant::ALL.into_iter().filter_map(for_variant) {
        let name = t.variant.name();
        let mut x = [
            -1000.0f32,
            -100.0,
            -88.0,
            0.0,
            88.0,
            100.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.0,
        ];
        (t.sigmoid)(&mut x);
        assert_eq!(&x[..2], &[0.0, 0.0], "{name}");
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "{name} {x:?}");
        assert_eq!(x[6], 1.0, "{name}");
        assert_eq!(x[7], 0.0, "{name}");
        let mut x = [f32::NAN; 9];
        (t.sigmoid)(&mut x);
        (t.tanh)(&mut x);
        (t.exp)(&mut x);
        assert!(x.iter().all(|v| v.is_nan()), "{name}: NaN in gives NaN out");
        let mut x = [
            f32::NAN,
            -1.0,
            2.0,
            -0.0,
            f32::NEG_INFINITY,
            3.0,
            -4.0,
            5.0,
            -6.0,
        ];
        (t.relu)(&mut x);
        assert!(x[0].is_nan(), "{name}");
        assert_eq!(&x[1..], &[0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 5.0, 0.0], "{name}");
        let mut x = [
            100.0f32,
            -200.0,
            0.0,
            1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            89.0,
            -104.5,
            0.5,
        ];
        (t.exp)(&mut x);
        assert_eq!(x[0], f32::INFINITY, "{name}");
        assert_eq!(x[1], 0.0, "{name}");
        assert_eq!(x[2], 1.0, "{name}");
        assert_eq!(x[4], f32::INFINITY, "{name}");
        assert_eq!(x[5], 0.0, "{name}");
        assert_eq!(x[6], f32::INFINITY, "{name}");
        assert_eq!(x[7], 0.0, "{name}");
        let mut x = [
            30.0f32,
            -30.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            1e-30,
            -1e-30,
            0.3,
            -0.3,
        ];
        (t.tanh)(&mut x);
        assert_eq!(&x[..5], &[1.0, -1.0, 1.0, -1.0, 0.0], "{name}");
        assert_eq!(
            &x[5..7],
            &[1e-30, -1e-30],
            "{name}: tanh is exact for tiny x"
        );
    }
}

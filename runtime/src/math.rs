//! Scalar math that works with and without `std`.
//!
//! With the `std` feature (default) every function calls the `f32` method of `std` (libm
//! accuracy, within an ulp or so). Without `std` but with the `libm` feature (hosted targets
//! built without `std`, such as the C ABI's size-optimized library) they call the same C
//! library functions (`expf`, `logf`, `sqrtf`, `tanhf`, `powf`, `floorf`) directly, so the results
//! are those of `std`. Without either (`*-none-*` targets) they are computed from `core`
//! arithmetic and the `micromath` crate:
//!
//! | function | without `std` or `libm` | accuracy there |
//! |---|---|---|
//! | [`exp`] | Cephes polynomial (the one the SIMD kernels use) | ~2 ulp (1e-7 relative) |
//! | [`tanh`] | Cephes polynomial below 0.625, through [`exp`] above | ~1e-7 absolute |
//! | [`sqrt`] | `micromath` estimate (5 %) refined by Newton steps | ~1 ulp |
//! | [`ln`], [`powf`] | `micromath` | ~1e-3 relative |
//! | [`floor`], [`abs`] | `micromath` / `core` | exact |
//! | [`erf`] | Abramowitz–Stegun 7.1.26 (with and without `std`) | ~2e-7 absolute |
//!
//! `exp` and `sqrt` are refined beyond `micromath` because sigmoid scores and normalizations
//! depend on them; `ln` and `powf` are rare in CTR graphs, and their error there (1e-3) is the
//! price of a small binary.

/// The platform C library's math functions (feature `libm` without `std`).
#[cfg(all(feature = "libm", not(feature = "std")))]
mod c {
    #[cfg_attr(unix, link(name = "m"))]
    extern "C" {
        pub fn expf(x: f32) -> f32;
        pub fn logf(x: f32) -> f32;
        pub fn sqrtf(x: f32) -> f32;
        pub fn tanhf(x: f32) -> f32;
        pub fn powf(x: f32, y: f32) -> f32;
        pub fn floorf(x: f32) -> f32;
    }
}

/// Defines a scalar function three ways: `std`'s `f32` method (feature `std`), the platform C
/// library's function (feature `libm` without `std`), or a `core`/`micromath` fallback.
macro_rules! scalar_fn {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident),+): $std:path, $libm:ident, $core:path;) => {
        $(#[$doc])*
        #[inline]
        pub fn $name($($arg: f32),+) -> f32 {
            #[cfg(feature = "std")]
            {
                $std($($arg),+)
            }
            #[cfg(all(feature = "libm", not(feature = "std")))]
            // SAFETY: a C library function of its arguments alone (no pointers, no state).
            unsafe {
                c::$libm($($arg),+)
            }
            #[cfg(not(any(feature = "std", feature = "libm")))]
            {
                $core($($arg),+)
            }
        }
    };
}

scalar_fn! {
    /// `e^x`.
    fn exp(x): f32::exp, expf, exp_cephes;
}

scalar_fn! {
    /// Natural logarithm (`NaN` for negative `x`, `-inf` at 0).
    fn ln(x): f32::ln, logf, micromath::F32Ext::ln;
}

scalar_fn! {
    /// Square root (`NaN` for negative `x`).
    fn sqrt(x): f32::sqrt, sqrtf, sqrt_newton;
}

scalar_fn! {
    /// Hyperbolic tangent.
    fn tanh(x): f32::tanh, tanhf, tanh_from_exp;
}

scalar_fn! {
    /// `x^y`.
    fn powf(x, y): f32::powf, powf, micromath::F32Ext::powf;
}

scalar_fn! {
    /// Largest integer not greater than `x`.
    fn floor(x): f32::floor, floorf, micromath::F32Ext::floor;
}

/// `|x|`.
#[inline]
pub fn abs(x: f32) -> f32 {
    x.abs()
}

/// Error function, Abramowitz & Stegun 7.1.26 (absolute error ~2e-7 in f32; `std` has no
/// stable `erf` either).
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp(-ax * ax);
    y.copysign(x)
}

/// Logistic sigmoid `1 / (1 + e^-x)`; exactly 0 for very negative `x` (no 0/0).
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Cephes `expf` (the polynomial of the SIMD kernels), from `core` arithmetic only.
///
/// `x` is clamped to `[-104, 88.8]`; `2^n` is applied in two halves so that results between
/// the largest finite float and overflow, and subnormal results, come out right (+inf above
/// `ln(f32::MAX)`, 0 below ~-103.97). NaN stays NaN.
pub fn exp_cephes(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let x = x.clamp(EXP_LO, EXP_HI);
    // n = round(x / ln 2): x is clamped, so the cast cannot saturate.
    let t = x * core::f32::consts::LOG2_E;
    let n = if t >= 0.0 {
        (t + 0.5) as i32
    } else {
        (t - 0.5) as i32
    };
    let nf = n as f32;
    let r = (x - nf * EXP_C1) - nf * EXP_C2;
    let r2 = r * r;
    let mut p = EXP_P[0];
    for c in &EXP_P[1..] {
        p = p * r + c;
    }
    let y = p * r2 + r + 1.0;
    let n1 = n >> 1;
    let n2 = n - n1;
    y * pow2i(n1) * pow2i(n2)
}

/// `2^n` for `-126 <= n <= 127`.
#[inline]
fn pow2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// Lower clamp of the exp argument: below it `e^x` rounds to 0.
pub(crate) const EXP_LO: f32 = -104.0;
/// Upper clamp: above `ln(f32::MAX) = 88.72` `e^x` is +inf; 88.8 keeps `n <= 128`.
pub(crate) const EXP_HI: f32 = 88.8;
/// `ln 2` split in a part exact in few bits and a correction (Cephes).
pub(crate) const EXP_C1: f32 = 0.693_359_4;
/// Second part of `ln 2`.
pub(crate) const EXP_C2: f32 = -2.121_944_4e-4;
/// Cephes `expf` polynomial coefficients, highest degree first: `e^r ~ 1 + r + r^2 P(r)`.
pub(crate) const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    5e-1,
];
/// Below this `|x|` tanh uses its odd polynomial (Cephes `tanhf`).
pub(crate) const TANH_SMALL: f32 = 0.625;
/// Cephes `tanhf` polynomial, highest degree first: `tanh x ~ x + x^3 Q(x^2)`.
pub(crate) const TANH_Q: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_909e-2,
    -5.373_971_6e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];

/// `tanh` from [`exp_cephes`]: an odd polynomial for small `|x|` (no cancellation), else
/// `1 - 2 / (e^{2|x|} + 1)` with the sign of `x`.
pub fn tanh_from_exp(x: f32) -> f32 {
    let ax = x.abs();
    if ax < TANH_SMALL {
        let z = x * x;
        let mut q = TANH_Q[0];
        for c in &TANH_Q[1..] {
            q = q * z + c;
        }
        q * z * x + x
    } else {
        (1.0 - 2.0 / (exp_cephes(2.0 * ax) + 1.0)).copysign(x)
    }
}

/// Square root without `std`: the `micromath` bit-trick estimate, refined by Newton steps.
#[cfg_attr(any(feature = "std", feature = "libm"), allow(dead_code))]
fn sqrt_newton(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    // Subnormals: scale into the normal range (2^24), take the root, scale back (2^-12).
    if x < f32::MIN_POSITIVE {
        return sqrt_newton(x * 16_777_216.0) * (1.0 / 4096.0);
    }
    let mut y = micromath::F32Ext::sqrt(x); // within 5 %
    for _ in 0..3 {
        y = 0.5 * (y + x / y);
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls `f` at `from`, `from + step`, ... (summed in f32) while at most `to`.
    fn sweep(from: f32, to: f32, step: f32, f: impl Fn(f32)) {
        let mut x = from;
        while x <= to {
            f(x);
            x += step;
        }
    }

    #[test]
    fn exp_cephes_matches_std_within_2e7_relative() {
        sweep(-103.0, 88.7, 0.0137, |x| {
            let (want, got) = ((x as f64).exp(), exp_cephes(x) as f64);
            // Subnormal results carry an absolute quantum of 2^-149.
            let tol = 2e-7 * want + 1.5e-45;
            assert!((got - want).abs() <= tol, "exp({x}) = {got}, want {want}");
        });
        assert_eq!(exp_cephes(89.0), f32::INFINITY);
        assert_eq!(exp_cephes(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_cephes(-1000.0), 0.0);
        assert_eq!(exp_cephes(f32::NEG_INFINITY), 0.0);
        assert!(exp_cephes(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_from_exp_matches_f64() {
        sweep(-20.0, 20.0, 0.00731, |x| {
            let (want, got) = ((x as f64).tanh(), tanh_from_exp(x) as f64);
            let tol = 2e-7 + 2e-7 * want.abs();
            assert!((got - want).abs() <= tol, "tanh({x}) = {got}, want {want}");
        });
        assert!(tanh_from_exp(f32::NAN).is_nan());
        assert_eq!(tanh_from_exp(f32::INFINITY), 1.0);
        assert_eq!(tanh_from_exp(f32::NEG_INFINITY), -1.0);
    }

    #[test]
    fn erf_matches_known_values() {
        // erf values from tables (15 digits).
        let cases = [
            (0.0f64, 0.0f64),
            (0.1, 0.112_462_916_018_285),
            (0.5, 0.520_499_877_813_047),
            (1.0, 0.842_700_792_949_715),
            (2.0, 0.995_322_265_018_953),
            (3.5, 0.999_999_256_901_628),
        ];
        for (x, want) in cases {
            for s in [1.0, -1.0] {
                let got = erf((s * x) as f32) as f64;
                assert!((got - s * want).abs() < 5e-7, "erf({}) = {got}", s * x);
            }
        }
    }

    #[test]
    fn sqrt_newton_matches_f64() {
        for x in [
            1e-42f32, 1e-38, 1e-20, 0.01, 0.5, 1.0, 2.0, 3.0, 10.0, 12345.678, 1e20, 3e38,
        ] {
            let want = (x as f64).sqrt();
            let got = sqrt_newton(x) as f64;
            assert!(
                (got - want).abs() <= 2e-7 * want,
                "sqrt({x}) = {got}, want {want}"
            );
        }
        assert_eq!(sqrt_newton(0.0), 0.0);
        assert_eq!(sqrt_newton(f32::INFINITY), f32::INFINITY);
        assert!(sqrt_newton(-1.0).is_nan());
        assert!(sqrt_newton(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_is_finite_at_extremes() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }
}

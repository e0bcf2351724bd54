//! The math of both methods, in f64 with faer, on weights in "math" orientation:
//! a dense layer is `y = W x + b` with `W` of shape `[out, in]`; an embedding table `E` is
//! `[rows, dim]` and a lookup reads one row.
//!
//! - AFM (Atomic Feature Mimicking) keeps the top-k principal directions `U_k` of the site's
//!   output features (covariance from calibration data): a dense layer becomes
//!   `h = (U_k^T W) x + U_k^T b`, `y' = U_k h + (I - U_k U_k^T) mu`, the rank-k PCA
//!   reconstruction of `y`; a table becomes `E' = (E - 1 mu^T) U_k` read back as
//!   `E'[id] U_k^T + mu`.
//! - SVD truncates the weight itself: `W = U S V^T ~ U_k (S_k V_k^T)`; a table
//!   `E ~ (U_k S_k) V_k^T`.

use faer::{Mat, MatRef, Side};

use super::stats::AfmStats;
use crate::error::{Error, Result};

/// Principal components of a site's output features.
#[derive(Debug, Clone)]
pub struct Pca {
    /// Mean of the features, mu.
    pub mean: Vec<f64>,
    /// Eigenvalues of the covariance, non-increasing, clamped at 0.
    pub eigenvalues: Vec<f64>,
    /// Eigenvectors as columns, in the order of `eigenvalues` (d x d).
    pub eigenvectors: Mat<f64>,
}

/// Eigendecomposition of the covariance of `stats`.
pub fn pca(stats: &AfmStats) -> Result<Pca> {
    if stats.count() == 0 {
        return Err(Error::Compression {
            site: None,
            reason: "no calibration rows reached this site".into(),
        });
    }
    let cov = stats.covariance();
    let evd = cov
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::Compression {
            site: None,
            reason: format!("eigendecomposition failed: {e:?}"),
        })?;
    let d = stats.dim();
    let s = evd.S();
    let u = evd.U();
    // faer sorts eigenvalues non-decreasing; we want the largest first.
    let eigenvalues: Vec<f64> = (0..d).rev().map(|i| s[i].max(0.0)).collect();
    let eigenvectors = Mat::from_fn(d, d, |i, j| u[(i, d - 1 - j)]);
    Ok(Pca {
        mean: stats.mean(),
        eigenvalues,
        eigenvectors,
    })
}

/// Thin singular value decomposition of a weight: `W = U diag(s) V^T`.
#[derive(Debug, Clone)]
pub struct Svd {
    /// Left singular vectors as columns (m x r).
    pub u: Mat<f64>,
    /// Singular values, non-increasing (r = min(m, n)).
    pub s: Vec<f64>,
    /// Right singular vectors as columns (n x r).
    pub v: Mat<f64>,
}

/// Thin SVD of `w`.
pub fn svd(w: MatRef<'_, f64>) -> Result<Svd> {
    let svd = w.thin_svd().map_err(|e| Error::Compression {
        site: None,
        reason: format!("SVD failed: {e:?}"),
    })?;
    let r = w.nrows().min(w.ncols());
    let s = svd.S();
    Ok(Svd {
        u: svd.U().to_owned(),
        s: (0..r).map(|i| s[i]).collect(),
        v: svd.V().to_owned(),
    })
}

/// Variance captured by each component, non-increasing: the eigenvalues for AFM, the squared
/// singular values for SVD. Rank selection works on these.
pub fn spectrum_of_svd(svd: &Svd) -> Vec<f64> {
    svd.s.iter().map(|s| s * s).collect()
}

/// Fraction of the total of `spectrum` kept by the first `k` components (1 when the total is 0).
pub fn retained_fraction(spectrum: &[f64], k: usize) -> f64 {
    let total: f64 = spectrum.iter().sum();
    if total <= 0.0 {
        return 1.0;
    }
    (spectrum.iter().take(k).sum::<f64>() / total).min(1.0)
}

/// The smallest rank `k` in `1..=len` whose first `k` components keep `energy` of `spectrum`
/// (non-increasing variances); `len` when none short of it does, 1 for an empty or all-zero
/// spectrum.
pub fn rank_for_energy(spectrum: &[f64], energy: f64) -> usize {
    let d = spectrum.len().max(1);
    (1..=d)
        .find(|&k| retained_fraction(spectrum, k) >= energy - 1e-12)
        .unwrap_or(d)
}

/// A dense layer as two: `h = first x + first_bias`, `y' = second h + second_bias`.
#[derive(Debug, Clone)]
pub struct DenseFactors {
    /// k x in.
    pub first: Mat<f64>,
    /// k, when the first layer has a bias.
    pub first_bias: Option<Vec<f64>>,
    /// out x k.
    pub second: Mat<f64>,
    /// out, when the second layer has a bias.
    pub second_bias: Option<Vec<f64>>,
}

/// A table as a narrower table and a projection: `row(id) = table[id] projection + mean`.
#[derive(Debug, Clone)]
pub struct EmbeddingFactors {
    /// rows x k.
    pub table: Mat<f64>,
    /// k x dim.
    pub projection: Mat<f64>,
    /// dim, when the read-out adds a mean.
    pub mean: Option<Vec<f64>>,
}

/// The first `k` columns of `m`.
fn leading_columns(m: &Mat<f64>, k: usize) -> MatRef<'_, f64> {
    m.as_ref().subcols(0, k)
}

/// AFM on a dense layer `y = W x + b` (`w` is out x in) with the PCA of its outputs.
pub fn afm_dense(w: MatRef<'_, f64>, b: Option<&[f64]>, pca: &Pca, k: usize) -> DenseFactors {
    let u = leading_columns(&pca.eigenvectors, k);
    let first = u.transpose() * w;
    let first_bias = b.map(|b| mat_vec(u.transpose(), b));
    let second = u.to_owned();
    let second_bias = Some(residual_mean(u, &pca.mean));
    DenseFactors {
        first,
        first_bias,
        second,
        second_bias,
    }
}

/// AFM on an embedding table `e` (rows x dim) with the PCA of its looked-up rows.
pub fn afm_embedding(e: MatRef<'_, f64>, pca: &Pca, k: usize) -> EmbeddingFactors {
    let u = leading_columns(&pca.eigenvectors, k);
    let centered = Mat::from_fn(e.nrows(), e.ncols(), |i, j| e[(i, j)] - pca.mean[j]);
    EmbeddingFactors {
        table: &centered * u,
        projection: u.transpose().to_owned(),
        mean: Some(pca.mean.clone()),
    }
}

/// SVD baseline on a dense layer: `W1 = S_k V_k^T`, `W2 = U_k`, the bias on the second layer.
pub fn svd_dense(svd: &Svd, b: Option<&[f64]>, k: usize) -> DenseFactors {
    let vk = leading_columns(&svd.v, k);
    let first = Mat::from_fn(k, vk.nrows(), |i, j| svd.s[i] * vk[(j, i)]);
    DenseFactors {
        first,
        first_bias: None,
        second: leading_columns(&svd.u, k).to_owned(),
        second_bias: b.map(<[f64]>::to_vec),
    }
}

/// SVD baseline on a table: `E' = U_k S_k`, projection `V_k^T`.
pub fn svd_embedding(svd: &Svd, k: usize) -> EmbeddingFactors {
    let uk = leading_columns(&svd.u, k);
    let table = Mat::from_fn(uk.nrows(), k, |i, j| uk[(i, j)] * svd.s[j]);
    EmbeddingFactors {
        table,
        projection: leading_columns(&svd.v, k).transpose().to_owned(),
        mean: None,
    }
}

/// `(I - U U^T) mu`: the part of the mean the k directions do not carry.
fn residual_mean(u: MatRef<'_, f64>, mu: &[f64]) -> Vec<f64> {
    let coords = mat_vec(u.transpose(), mu);
    let back = mat_vec(u, &coords);
    mu.iter().zip(back).map(|(m, b)| m - b).collect()
}

/// `m v`.
fn mat_vec(m: MatRef<'_, f64>, v: &[f64]) -> Vec<f64> {
    (0..m.nrows())
        .map(|i| (0..m.ncols()).map(|j| m[(i, j)] * v[j]).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(rows: usize, cols: usize, seed: u64) -> Mat<f64> {
        let mut state = seed;
        Mat::from_fn(rows, cols, |_, _| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
    }

    #[test]
    fn svd_at_full_rank_reproduces_the_weight() {
        let w = pseudo_random(7, 5, 3);
        let f = svd_dense(&svd(w.as_ref()).unwrap(), None, 5);
        let back = &f.second * &f.first;
        for i in 0..7 {
            for j in 0..5 {
                assert!((back[(i, j)] - w[(i, j)]).abs() < 1e-12);
            }
        }
        let e = svd_embedding(&svd(w.as_ref()).unwrap(), 5);
        let back = &e.table * &e.projection;
        assert!((0..7).all(|i| (0..5).all(|j| (back[(i, j)] - w[(i, j)]).abs() < 1e-12)));
    }

    #[test]
    fn pca_sorts_components_by_variance() {
        let mut stats = AfmStats::new(3);
        // Variance 2 along x, 0.5 along z, none along y.
        let rows: Vec<f32> = [
            [2.0, 1.0, 0.0],
            [-2.0, 1.0, 0.0],
            [0.0, 1.0, 1.0],
            [0.0, 1.0, -1.0],
        ]
        .iter()
        .flatten()
        .copied()
        .collect();
        stats.add_rows(&rows);
        let p = pca(&stats).unwrap();
        assert!((p.eigenvalues[0] - 2.0).abs() < 1e-12);
        assert!((p.eigenvalues[1] - 0.5).abs() < 1e-12);
        assert!(p.eigenvalues[2].abs() < 1e-12);
        assert!((p.eigenvectors[(0, 0)].abs() - 1.0).abs() < 1e-12);
        assert!((p.eigenvectors[(2, 1)].abs() - 1.0).abs() < 1e-12);
        assert_eq!(p.mean, vec![0.0, 1.0, 0.0]);
        assert!((retained_fraction(&p.eigenvalues, 1) - 0.8).abs() < 1e-12);
    }
}

//! Streaming output statistics of one site, in f64: the count N, the sum of the output rows s
//! and the sum of their outer products S = sum(y y^T). Memory is O(d^2) whatever the number of
//! rows; batches are added as they come out of the model.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// Running sums over the output rows of a site (rows of `dim` features).
#[derive(Debug, Clone)]
pub struct AfmStats {
    dim: usize,
    count: u64,
    sum: Vec<f64>,
    /// d x d, symmetric.
    sum_outer: Mat<f64>,
}

impl AfmStats {
    /// Empty statistics for rows of `dim` features.
    pub fn new(dim: usize) -> AfmStats {
        AfmStats {
            dim,
            count: 0,
            sum: vec![0.0; dim],
            sum_outer: Mat::zeros(dim, dim),
        }
    }

    /// Feature width d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows seen, N.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds rows of `dim` values each (`values.len()` a multiple of `dim`, row-major).
    pub fn add_rows(&mut self, values: &[f32]) {
        let d = self.dim;
        if d == 0 {
            return;
        }
        let rows = values.len() / d;
        if rows == 0 {
            return;
        }
        let y = Mat::<f64>::from_fn(rows, d, |i, j| f64::from(values[i * d + j]));
        // S += Y^T Y (a GEMM in f64, which is also where the time of calibration goes).
        matmul(
            self.sum_outer.as_mut(),
            Accum::Add,
            y.transpose(),
            y.as_ref(),
            1.0,
            Par::Seq,
        );
        for i in 0..rows {
            for (s, v) in self.sum.iter_mut().zip(y.row(i).iter()) {
                *s += v;
            }
        }
        self.count += rows as u64;
    }

    /// mu = s / N.
    pub fn mean(&self) -> Vec<f64> {
        let n = self.count.max(1) as f64;
        self.sum.iter().map(|s| s / n).collect()
    }

    /// C = S / N - mu mu^T, symmetrized.
    pub fn covariance(&self) -> Mat<f64> {
        let n = self.count.max(1) as f64;
        let mu = self.mean();
        let s: MatRef<'_, f64> = self.sum_outer.as_ref();
        Mat::from_fn(self.dim, self.dim, |i, j| {
            0.5 * (s[(i, j)] + s[(j, i)]) / n - mu[i] * mu[j]
        })
    }

    /// Mean squared norm of the rows, E[|y|^2] = trace(S) / N.
    pub fn mean_square_norm(&self) -> f64 {
        let n = self.count.max(1) as f64;
        (0..self.dim).map(|i| self.sum_outer[(i, i)]).sum::<f64>() / n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_statistics_match_a_direct_computation() {
        let rows: Vec<[f32; 3]> = (0..50)
            .map(|i| {
                let t = i as f32;
                [t.sin(), 0.5 * t.cos() + 1.0, 0.1 * t - 2.0]
            })
            .collect();
        let mut stats = AfmStats::new(3);
        for chunk in rows.chunks(7) {
            let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
            stats.add_rows(&flat);
        }
        assert_eq!(stats.count(), 50);
        let n = rows.len() as f64;
        let mean: Vec<f64> = (0..3)
            .map(|j| rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n)
            .collect();
        let cov = stats.covariance();
        for i in 0..3 {
            assert!((stats.mean()[i] - mean[i]).abs() < 1e-12);
            for j in 0..3 {
                let direct = rows
                    .iter()
                    .map(|r| (f64::from(r[i]) - mean[i]) * (f64::from(r[j]) - mean[j]))
                    .sum::<f64>()
                    / n;
                assert!((cov[(i, j)] - direct).abs() < 1e-10, "{i} {j}");
            }
        }
    }
}

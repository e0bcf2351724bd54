//! Model health: whether a trained model is worth compressing and testing on. A model whose
//! layers are all close to rank 1 (as DeepCTR-Torch's default `N(0, 1e-4)` initialization and a
//! few hundred steps leave them) compresses 20x "for free" and says nothing about a method.
//!
//! Per site ([`find_sites`]): the rank that keeps 90% of the energy (sum of squared singular
//! values) of its weight, as a fraction of its width `min(m, n)`. Tables are centered first (the
//! mean row removed), since a shared offset is one direction that every row carries. Also the
//! share of the parameters that sit in embedding tables and the number of f32 weights below
//! f32's normal range (denormals), which slow x86 arithmetic down.

use faer::Mat;
use tract_onnx::pb::ModelProto;

use crate::compress::count_params;
use crate::compress::factorize::rank_for_energy;
use crate::compress::graph::{dims, f32_values, graph, is_f32};
use crate::compress::sites::{find_sites, SiteKind};
use crate::error::{Error, Result};

/// Energy fraction the health ranks are measured at.
pub const ENERGY: f64 = 0.9;

/// A dense layer of at least this width counts for [`ModelHealth::healthy`] and
/// [`ModelHealth::degenerate`].
pub const MIN_DENSE_WIDTH: usize = 64;

/// One site's spectrum summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteHealth {
    /// The weight initializer's name.
    pub name: String,
    /// True for an embedding table, false for a dense layer.
    pub table: bool,
    /// `min(m, n)`: the largest possible rank.
    pub width: usize,
    /// The smallest rank keeping [`ENERGY`] of the energy (1 for an all-zero weight).
    pub rank90: usize,
}

impl SiteHealth {
    /// `rank90 / width`.
    pub fn fraction(&self) -> f64 {
        self.rank90 as f64 / self.width.max(1) as f64
    }
}

/// The health of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelHealth {
    /// Every site of width >= 2, in graph order.
    pub sites: Vec<SiteHealth>,
    /// Values in all initializers.
    pub params: usize,
    /// Values in embedding tables (width-1 tables, such as the linear part's, included).
    pub table_params: usize,
    /// f32 initializer values.
    pub f32_weights: usize,
    /// f32 initializer values with `0 < |x| < f32::MIN_POSITIVE`.
    pub denormals: usize,
}

impl ModelHealth {
    /// Dense layers of width >= [`MIN_DENSE_WIDTH`].
    pub fn wide_dense(&self) -> impl Iterator<Item = &SiteHealth> {
        self.sites
            .iter()
            .filter(|s| !s.table && s.width >= MIN_DENSE_WIDTH)
    }

    /// Share of all parameters held by embedding tables.
    pub fn embedding_share(&self) -> f64 {
        self.table_params as f64 / self.params.max(1) as f64
    }

    /// Every wide dense layer needs at least 20% of its width for 90% of its energy.
    pub fn healthy(&self) -> bool {
        self.wide_dense().count() > 0 && self.wide_dense().all(|s| s.fraction() >= 0.2)
    }

    /// Every wide dense layer needs less than 10% of its width.
    pub fn degenerate(&self) -> bool {
        self.wide_dense().count() > 0 && self.wide_dense().all(|s| s.fraction() < 0.1)
    }
}

/// Singular values (non-increasing) of the `rows x cols` row-major matrix `values`, with the
/// mean row subtracted first when `center`.
pub fn singular_values(values: &[f32], rows: usize, cols: usize, center: bool) -> Result<Vec<f64>> {
    let mut mean = vec![0.0f64; cols];
    if center && rows > 0 {
        for r in 0..rows {
            for (c, m) in mean.iter_mut().enumerate() {
                *m += f64::from(values[r * cols + c]);
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
    }
    let w = Mat::<f64>::from_fn(rows, cols, |i, j| f64::from(values[i * cols + j]) - mean[j]);
    let s = w.singular_values().map_err(|e| Error::Compression {
        site: None,
        reason: format!("singular values failed: {e:?}"),
    })?;
    let mut s: Vec<f64> = s.into_iter().collect();
    s.sort_unstable_by(|a, b| b.total_cmp(a));
    Ok(s)
}

/// Health of `model`.
pub fn model_health(model: &ModelProto) -> Result<ModelHealth> {
    let g = graph(model)?;
    let mut sites = Vec::new();
    let mut table_params = 0;
    for site in find_sites(g).sites {
        let Some(t) = g.initializer.iter().find(|t| t.name == site.name) else {
            continue;
        };
        let d = dims(t).unwrap_or_default();
        if d.is_empty() {
            continue;
        }
        let rows = d[0];
        let cols: usize = d[1..].iter().product();
        let table = matches!(site.kind, SiteKind::Embedding { .. });
        if table {
            table_params += rows * cols;
        }
        let width = rows.min(cols);
        if width < 2 {
            continue;
        }
        let energies: Vec<f64> = singular_values(&f32_values(t)?, rows, cols, table)?
            .iter()
            .map(|s| s * s)
            .collect();
        sites.push(SiteHealth {
            name: site.name.clone(),
            table,
            width,
            rank90: rank_for_energy(&energies, ENERGY),
        });
    }
    let (mut f32_weights, mut denormals) = (0, 0);
    for t in g.initializer.iter().filter(|t| is_f32(t)) {
        let v = f32_values(t)?;
        f32_weights += v.len();
        denormals += v.iter().filter(|x| x.is_subnormal()).count();
    }
    Ok(ModelHealth {
        sites,
        params: count_params(model),
        table_params,
        f32_weights,
        denormals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_for_energy_counts_energies() {
        // Energies 9, 4, 1, 1 (total 15): 90% = 13.5 needs 9 + 4 + 1.
        assert_eq!(rank_for_energy(&[9.0, 4.0, 1.0, 1.0], 0.9), 3);
        assert_eq!(rank_for_energy(&[1.0, 0.0, 0.0], 0.9), 1);
        // Equal values: 90% of 10 equal energies is exactly 9 of them.
        assert_eq!(rank_for_energy(&[1.0; 10], 0.9), 9);
    }

    #[test]
    fn singular_values_of_a_known_matrix() {
        // Rows are multiples of two orthogonal directions with weights 3 and 4, plus a mean
        // row that centering removes.
        let (rows, cols) = (6, 4);
        let e1 = [1.0f32, 0.0, 0.0, 0.0];
        let e2 = [0.0f32, 1.0, 0.0, 0.0];
        let offset = [7.0f32, -2.0, 5.0, 1.0];
        let coef = [
            (3.0, 0.0),
            (-3.0, 0.0),
            (0.0, 4.0),
            (0.0, -4.0),
            (0.0, 0.0),
            (0.0, 0.0),
        ];
        let mut v = Vec::new();
        for &(a, b) in &coef {
            for c in 0..cols {
                v.push(a * e1[c] + b * e2[c] + offset[c]);
            }
        }
        let s = singular_values(&v, rows, cols, true).unwrap();
        // Centered columns: column 0 holds 3, -3 (norm sqrt 18), column 1 holds 4, -4 (sqrt 32).
        assert!((s[0] - 32f64.sqrt()).abs() < 1e-9, "{s:?}");
        assert!((s[1] - 18f64.sqrt()).abs() < 1e-9, "{s:?}");
        assert!(s[2].abs() < 1e-9 && s[3].abs() < 1e-9, "{s:?}");
        let energies: Vec<f64> = s.iter().map(|x| x * x).collect();
        assert_eq!(rank_for_energy(&energies, 0.9), 2);
        // Uncentered, the offset adds energy of its own.
        let raw = singular_values(&v, rows, cols, false).unwrap();
        assert!(raw[0] > s[0]);
    }
}

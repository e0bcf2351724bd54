//! Rank selection: which sites to factorize, at which rank.
//!
//! Three policies, as on the command line:
//! - [`RankPolicy::Explicit`]: `--rank SITE=K`, sites not named keep their weights;
//! - [`RankPolicy::Energy`]: per site, the smallest k keeping a fraction of the output variance
//!   (AFM) or of the weight's energy (SVD);
//! - [`RankPolicy::Ratio`]: a whole-model parameter budget (`params / R`), filled greedily: every
//!   factorizable site starts at rank 1, then the step with the most retained variance
//!   fraction per added parameter is taken while it fits. Eigenvalues do not increase, so each
//!   site's gains per parameter do not either and the greedy choice is the usual
//!   marginal-utility allocation. A site's last step is "keep the original weights" (all the
//!   variance, at the original cost), never a rank k with k (m + n) >= m n.

use serde::Serialize;

use super::factorize::{rank_for_energy, retained_fraction};
use super::sites::{Site, SiteKind};
use super::Method;
use crate::error::{Error, Result};

/// How ranks are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum RankPolicy {
    /// Given ranks by site name; other sites are kept.
    Explicit(Vec<(String, usize)>),
    /// Per site, the smallest rank keeping this fraction (0, 1] of the variance.
    Energy(f64),
    /// Whole-model parameter reduction factor (> 1).
    Ratio(f64),
}

/// The decision for one site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankChoice {
    /// The rank, or `None` when the site keeps its weights.
    pub rank: Option<usize>,
    /// Why the site is kept, or anything else worth saying.
    pub note: Option<String>,
}

impl RankChoice {
    fn keep(note: impl Into<String>) -> RankChoice {
        RankChoice {
            rank: None,
            note: Some(note.into()),
        }
    }

    fn rank(k: usize) -> RankChoice {
        RankChoice {
            rank: Some(k),
            note: None,
        }
    }
}

/// Parameters of the site as it is (weight and bias).
pub fn original_params(site: &Site, bias_len: usize) -> usize {
    site.weight_params() + bias_len
}

/// Parameters of the site factorized at rank `k` with `method`, biases and means included.
pub fn factorized_params(site: &Site, method: Method, bias_len: usize, k: usize) -> usize {
    let (m, n) = site.matrix_shape();
    let weights = k * (m + n);
    match (&site.kind, method) {
        // h gets U_k^T b when the layer had a bias; y' always adds (I - U U^T) mu.
        (SiteKind::Dense { .. }, Method::Afm) => weights + if bias_len > 0 { k } else { 0 } + m,
        (SiteKind::Dense { .. }, _) => weights + if bias_len > 0 { m } else { 0 },
        // Read-out adds mu.
        (SiteKind::Embedding { dim, .. }, Method::Afm) => weights + dim,
        (SiteKind::Embedding { .. }, _) => weights,
    }
}

/// Whether factorizing at rank `k` makes the site smaller: `k (m + n) < m n` and, biases and
/// means counted, fewer parameters than the original.
pub fn is_worth(b: &SiteBudget<'_>, method: Method, k: usize) -> bool {
    k >= 1
        && k < b.site.break_even_rank()
        && factorized_params(b.site, method, b.bias_len, k) < original_params(b.site, b.bias_len)
}

/// What rank selection needs to know about one site.
#[derive(Debug, Clone)]
pub struct SiteBudget<'a> {
    /// The site.
    pub site: &'a Site,
    /// Number of bias values the site has (0 without a bias).
    pub bias_len: usize,
    /// Variance per component, non-increasing (eigenvalues or squared singular values).
    pub spectrum: &'a [f64],
}

/// Chooses a rank (or none) for every site. `model_params` is the number of parameters of the
/// whole model (every initializer element), the base of `--ratio`.
pub fn choose_ranks(
    budgets: &[SiteBudget<'_>],
    method: Method,
    policy: &RankPolicy,
    model_params: usize,
) -> Result<Vec<RankChoice>> {
    let invalid = |reason: String| Error::InvalidArgument { reason };
    match policy {
        RankPolicy::Explicit(ranks) => {
            for (name, _) in ranks {
                if !budgets.iter().any(|b| &b.site.name == name) {
                    let known: Vec<&str> = budgets.iter().map(|b| b.site.name.as_str()).collect();
                    return Err(invalid(format!(
                        "--rank names '{name}', which is not a compressible site of this model \
                         (sites: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            }
            budgets
                .iter()
                .map(|b| {
                    let Some(&(_, k)) = ranks.iter().rev().find(|(n, _)| n == &b.site.name) else {
                        return Ok(RankChoice::keep("not named by --rank"));
                    };
                    let (m, n) = b.site.matrix_shape();
                    if k == 0 || k > m.min(n) {
                        return Err(invalid(format!(
                            "--rank {}={k}: the rank must be between 1 and {} for a {m} x {n} \
                             weight",
                            b.site.name,
                            m.min(n)
                        )));
                    }
                    Ok(cap_at_break_even(b, method, k))
                })
                .collect()
        }
        RankPolicy::Energy(energy) => {
            if !(*energy > 0.0 && *energy <= 1.0) {
                return Err(invalid(format!("--energy {energy}: must be in (0, 1]")));
            }
            Ok(budgets
                .iter()
                .map(|b| cap_at_break_even(b, method, rank_for_energy(b.spectrum, *energy)))
                .collect())
        }
        RankPolicy::Ratio(ratio) => allocate_ratio(budgets, method, *ratio, model_params),
    }
}

/// `k`, unless factorizing at `k` would not make the site smaller.
fn cap_at_break_even(b: &SiteBudget<'_>, method: Method, k: usize) -> RankChoice {
    let site = b.site;
    if !is_worth(b, method, 1) {
        return RankChoice::keep(never_smaller(site));
    }
    let (m, n) = site.matrix_shape();
    if k >= site.break_even_rank() {
        RankChoice::keep(format!(
            "kept: rank {k} is not smaller ({k} x ({m} + {n}) >= {m} x {n})"
        ))
    } else if !is_worth(b, method, k) {
        RankChoice::keep(format!(
            "kept: at rank {k} the factors with their bias and mean are not smaller"
        ))
    } else {
        RankChoice::rank(k)
    }
}

fn never_smaller(site: &Site) -> String {
    let (m, n) = site.matrix_shape();
    if site.is_factorizable() {
        format!("kept: with its bias and mean, no rank makes the {m} x {n} weight smaller")
    } else {
        format!(
            "kept: no rank makes a {m} x {n} weight smaller (k (m + n) >= m n for every k >= 1)"
        )
    }
}

/// Greedy allocation of the budget `model_params / ratio`.
fn allocate_ratio(
    budgets: &[SiteBudget<'_>],
    method: Method,
    ratio: f64,
    model_params: usize,
) -> Result<Vec<RankChoice>> {
    if !(ratio.is_finite() && ratio >= 1.0) {
        return Err(Error::InvalidArgument {
            reason: format!("--ratio {ratio}: must be at least 1"),
        });
    }
    let target = (model_params as f64 / ratio).floor() as usize;
    // Per site: Some(k) = factorized at rank k, None = kept.
    let mut state: Vec<Option<usize>> = budgets
        .iter()
        .map(|b| is_worth(b, method, 1).then_some(1))
        .collect();
    let cost_of = |b: &SiteBudget<'_>, s: Option<usize>| match s {
        Some(k) => factorized_params(b.site, method, b.bias_len, k),
        None => original_params(b.site, b.bias_len),
    };
    let fixed: usize = model_params
        - budgets
            .iter()
            .map(|b| original_params(b.site, b.bias_len))
            .sum::<usize>();
    let mut total: usize = fixed
        + budgets
            .iter()
            .zip(&state)
            .map(|(b, &s)| cost_of(b, s))
            .sum::<usize>();
    if total > target {
        // Parameters that no rank reduces: non-site initializers and sites kept whole.
        let unfactorizable = fixed
            + budgets
                .iter()
                .zip(&state)
                .filter(|(_, s)| s.is_none())
                .map(|(b, _)| original_params(b.site, b.bias_len))
                .sum::<usize>();
        return Err(Error::Compression {
            site: None,
            reason: format!(
                "--ratio {ratio} is out of reach: with every site at rank 1 the model still has \
                 {total} parameters ({unfactorizable} in layers and tables that cannot be \
                 factorized), {:.2}x fewer than its {model_params}; the budget is {target}",
                model_params as f64 / total as f64
            ),
        });
    }
    loop {
        // The best next step that fits: (site, new state, added params).
        let mut best: Option<(usize, Option<usize>, usize, f64)> = None;
        for (i, b) in budgets.iter().enumerate() {
            let Some(k) = state[i] else { continue };
            let next = is_worth(b, method, k + 1).then_some(k + 1);
            let retained = |s: Option<usize>| s.map_or(1.0, |k| retained_fraction(b.spectrum, k));
            let gain = retained(next) - retained(Some(k));
            let added = cost_of(b, next).saturating_sub(cost_of(b, Some(k))).max(1);
            if total + added > target {
                continue;
            }
            let score = gain / added as f64;
            if best.is_none_or(|(_, _, _, s)| score > s) {
                best = Some((i, next, added, score));
            }
        }
        let Some((i, next, added, _)) = best else {
            break;
        };
        state[i] = next;
        total += added;
    }
    Ok(budgets
        .iter()
        .zip(state)
        .map(|(b, s)| match s {
            Some(k) => RankChoice::rank(k),
            None if !is_worth(b, method, 1) => RankChoice::keep(never_smaller(b.site)),
            None => RankChoice::keep("kept: the budget allows the full weights"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::sites::DenseOp;

    fn dense(name: &str, inputs: usize, outputs: usize) -> Site {
        Site {
            name: name.into(),
            kind: SiteKind::Dense {
                inputs,
                outputs,
                op: DenseOp::MatMul,
                bias: None,
            },
            nodes: vec![0],
            outputs: vec![format!("{name}_out")],
            consumers: vec![],
            level: 0,
        }
    }

    #[test]
    fn break_even_is_where_factors_stop_paying() {
        let s = dense("w", 100, 100);
        assert_eq!(s.break_even_rank(), 50);
        assert!(!dense("v", 400, 1).is_factorizable());
        let b = [SiteBudget {
            site: &s,
            bias_len: 0,
            spectrum: &[1.0; 100],
        }];
        let keep = choose_ranks(
            &b,
            Method::Svd,
            &RankPolicy::Explicit(vec![("w".into(), 50)]),
            0,
        )
        .unwrap();
        assert_eq!(keep[0].rank, None);
        assert!(keep[0].note.as_deref().unwrap().contains(">="));
        let ok = choose_ranks(
            &b,
            Method::Svd,
            &RankPolicy::Explicit(vec![("w".into(), 49)]),
            0,
        )
        .unwrap();
        assert_eq!(ok[0].rank, Some(49));
        let e = choose_ranks(
            &b,
            Method::Svd,
            &RankPolicy::Explicit(vec![("x".into(), 4)]),
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'x'") && e.contains("sites: w"), "{e}");
    }

    #[test]
    fn ratio_spends_the_budget_where_variance_is() {
        let a = dense("a", 100, 100);
        let b = dense("b", 100, 100);
        // a: all variance in 2 directions; b: spread evenly.
        let mut sa = vec![0.0; 100];
        sa[0] = 1.0;
        sa[1] = 1.0;
        let sb = vec![1.0; 100];
        let budgets = [
            SiteBudget {
                site: &a,
                bias_len: 0,
                spectrum: &sa,
            },
            SiteBudget {
                site: &b,
                bias_len: 0,
                spectrum: &sb,
            },
        ];
        let model = 20_000;
        let ranks = choose_ranks(&budgets, Method::Svd, &RankPolicy::Ratio(4.0), model).unwrap();
        let (ka, kb) = (ranks[0].rank.unwrap(), ranks[1].rank.unwrap());
        assert_eq!(ka, 2, "{ranks:?}");
        let total = 200 * (ka + kb);
        assert!(total <= model / 4 && total + 200 > model / 4, "{ka} {kb}");
        let e = choose_ranks(&budgets, Method::Svd, &RankPolicy::Ratio(200.0), model);
        assert!(e.unwrap_err().to_string().contains("out of reach"));
    }

    #[test]
    fn energy_picks_the_smallest_rank() {
        let s = dense("w", 100, 100);
        let spectrum: Vec<f64> = (0..100).map(|i| if i < 3 { 10.0 } else { 0.01 }).collect();
        let b = [SiteBudget {
            site: &s,
            bias_len: 0,
            spectrum: &spectrum,
        }];
        let r = choose_ranks(&b, Method::Afm, &RankPolicy::Energy(0.95), 0).unwrap();
        assert_eq!(r[0].rank, Some(3));
    }
}

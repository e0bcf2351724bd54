//! Offline CTR metrics, defined exactly as scikit-learn computes them so numbers can be compared
//! with a Python pipeline:
//! - [`auc`]: ROC AUC through the Mann–Whitney statistic with tied scores counting one half,
//!   which equals `sklearn.metrics.roc_auc_score` (trapezoidal ROC with ties as one step). It is
//!   computed exactly: twice the statistic is an integer accumulated in `u128`, divided once.
//! - [`logloss`]: mean binary cross-entropy with probabilities clipped to
//!   `[EPS, 1 - EPS]`, `EPS = 1e-15` (scikit-learn < 1.5's default; 1.5+ clips at the dtype's
//!   machine epsilon, 2.2e-16 for f64, which differs only for predictions within 1e-15 of 0 or
//!   1).
//!
//! - [`paired_bootstrap`]: 95% percentile intervals of the AUC and LogLoss differences of two
//!   models scored on the same rows (the rows resampled with replacement, both models on each
//!   resample).
//!
//! Labels are 0 or 1 (positive = 1); anything else, a NaN or a length mismatch is an error.

use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// Probability clipping bound of [`logloss`].
pub const LOGLOSS_EPS: f64 = 1e-15;

/// How far outside [0, 1] a probability may lie and still be taken as one (then clipped).
pub const LOGLOSS_PROB_SLACK: f64 = 1e-6;

fn metric_error(metric: &'static str, reason: String) -> Error {
    Error::Metric { metric, reason }
}

/// Check lengths, emptiness, NaN and binary labels; return the number of positives.
fn check_inputs(metric: &'static str, values: &[f64], labels: &[f64]) -> Result<usize> {
    let what = if metric == "AUC" {
        "scores"
    } else {
        "probabilities"
    };
    if values.len() != labels.len() {
        return Err(metric_error(
            metric,
            format!(
                "{} {what} but {} labels (the lengths must be equal)",
                values.len(),
                labels.len()
            ),
        ));
    }
    if values.is_empty() {
        return Err(metric_error(metric, "no rows".into()));
    }
    if let Some(i) = values.iter().position(|v| v.is_nan()) {
        return Err(metric_error(metric, format!("{what} hold NaN at row {i}")));
    }
    let mut positives = 0;
    for (i, &y) in labels.iter().enumerate() {
        if y == 1.0 {
            positives += 1;
        } else if y != 0.0 {
            return Err(metric_error(
                metric,
                format!("label {y} at row {i} is not 0 or 1"),
            ));
        }
    }
    Ok(positives)
}

/// Area under the ROC curve of `scores` for binary `labels` (1 = positive), tie-aware.
///
/// Errors when the lengths differ, there are no rows, a score is NaN, a label is not 0/1, or
/// only one class is present (the AUC is then undefined).
pub fn auc(scores: &[f64], labels: &[f64]) -> Result<f64> {
    let positives = check_inputs("AUC", scores, labels)?;
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(metric_error(
            "AUC",
            format!(
                "only one class in the labels ({positives} positives, {negatives} negatives): \
                 the AUC is undefined"
            ),
        ));
    }
    let order = ascending(scores);
    let (twice_u, _, _) = mann_whitney(scores, labels, &order, |_| 1);
    let pairs = positives as f64 * negatives as f64;
    Ok(twice_u as f64 / 2.0 / pairs)
}

/// Row indices in ascending score order. No NaN may remain, so total_cmp orders like `<`,
/// with -0.0 right before 0.0: equal scores stay adjacent and [`mann_whitney`]'s `==`
/// grouping sees them as one tie group.
fn ascending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    order
}

/// Twice the Mann-Whitney statistic with row `i` counted `weight(i)` times, exactly:
/// `2 U = sum over tie groups of pos_g * (2 * negatives_below + neg_g)`; also the weighted
/// numbers of positives and negatives. `order` is [`ascending`]`(scores)`.
fn mann_whitney(
    scores: &[f64],
    labels: &[f64],
    order: &[usize],
    weight: impl Fn(usize) -> u64,
) -> (u128, u128, u128) {
    let (mut twice_u, mut negatives_below, mut positives) = (0u128, 0u128, 0u128);
    let mut start = 0;
    while start < order.len() {
        let score = scores[order[start]];
        let mut end = start;
        let (mut pos_g, mut neg_g) = (0u128, 0u128);
        while end < order.len() && scores[order[end]] == score {
            let w = u128::from(weight(order[end]));
            if labels[order[end]] == 1.0 {
                pos_g += w;
            } else {
                neg_g += w;
            }
            end += 1;
        }
        twice_u += pos_g * (2 * negatives_below + neg_g);
        negatives_below += neg_g;
        positives += pos_g;
        start = end;
    }
    (twice_u, positives, negatives_below)
}

/// The log loss of one row: probability clipped to `[LOGLOSS_EPS, 1 - LOGLOSS_EPS]`.
fn row_logloss(p: f64, y: f64) -> f64 {
    let p = p.clamp(LOGLOSS_EPS, 1.0 - LOGLOSS_EPS);
    if y == 1.0 {
        -p.ln()
    } else {
        -(1.0 - p).ln()
    }
}

/// Mean binary log loss of probabilities `probs` for `labels` (0/1), natural log, with
/// probabilities clipped to `[LOGLOSS_EPS, 1 - LOGLOSS_EPS]`.
///
/// Errors when the lengths differ, there are no rows, a probability is NaN or more than
/// [`LOGLOSS_PROB_SLACK`] outside `[0, 1]` (e.g. the model returns logits), or a label is not
/// 0/1.
pub fn logloss(probs: &[f64], labels: &[f64]) -> Result<f64> {
    check_inputs("LogLoss", probs, labels)?;
    // Sigmoids computed with a rational approximation (tract's) can land a few ulps outside
    // [0, 1]; such values are clipped like any other. Anything further out is not a
    // probability.
    let slack = LOGLOSS_PROB_SLACK;
    if let Some(i) = probs
        .iter()
        .position(|p| !(-slack..=1.0 + slack).contains(p))
    {
        return Err(metric_error(
            "LogLoss",
            format!(
                "probability {} at row {i} is outside [0, 1] (does the model output logits?)",
                probs[i]
            ),
        ));
    }
    let total: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| row_logloss(p, y))
        .sum();
    Ok(total / probs.len() as f64)
}

/// A difference of one metric, `b - a`, with its paired-bootstrap 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delta {
    /// The difference on the rows as given.
    pub value: f64,
    /// 2.5th percentile over the resamples.
    pub low: f64,
    /// 97.5th percentile over the resamples.
    pub high: f64,
}

/// AUC and LogLoss differences of model `b` against model `a` on the same rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedDeltas {
    /// AUC(b) - AUC(a).
    pub auc: Delta,
    /// LogLoss(b) - LogLoss(a).
    pub logloss: Delta,
}

/// Weighted AUC (row `i` counted `weights[i]` times, ties one half, as in [`auc`]); None when
/// a class has no weight.
fn weighted_auc(scores: &[f64], labels: &[f64], order: &[usize], weights: &[u32]) -> Option<f64> {
    let (twice_u, pos, neg) = mann_whitney(scores, labels, order, |i| u64::from(weights[i]));
    (pos > 0 && neg > 0).then(|| twice_u as f64 / 2.0 / (pos as f64 * neg as f64))
}

/// Paired bootstrap of `b` against `a` (probabilities of two models on the same rows):
/// `resamples` draws of the rows with replacement (a fixed-seed generator, so the intervals
/// are reproducible), both metrics of both models on each draw, and the 2.5th and 97.5th
/// percentiles of the differences. Draws where a class is missing are skipped.
///
/// Errors as [`auc`] and [`logloss`] do on either model, or when `resamples` is 0.
pub fn paired_bootstrap(
    a: &[f64],
    b: &[f64],
    labels: &[f64],
    resamples: usize,
    seed: u64,
) -> Result<PairedDeltas> {
    let value_auc = auc(b, labels)? - auc(a, labels)?;
    let value_ll = logloss(b, labels)? - logloss(a, labels)?;
    if resamples == 0 {
        return Err(metric_error("bootstrap", "0 resamples".into()));
    }
    let n = labels.len();
    let (order_a, order_b) = (ascending(a), ascending(b));
    let loss_diff: Vec<f64> = (0..n)
        .map(|i| row_logloss(b[i], labels[i]) - row_logloss(a[i], labels[i]))
        .collect();
    let mut rng = SplitMix64::new(seed);
    let mut weights = vec![0u32; n];
    let (mut d_auc, mut d_ll) = (Vec::with_capacity(resamples), Vec::with_capacity(resamples));
    for _ in 0..resamples {
        weights.iter_mut().for_each(|w| *w = 0);
        for _ in 0..n {
            weights[rng.below(n)] += 1;
        }
        let ll: f64 = weights
            .iter()
            .zip(&loss_diff)
            .map(|(&w, &d)| f64::from(w) * d)
            .sum::<f64>()
            / n as f64;
        d_ll.push(ll);
        if let (Some(x), Some(y)) = (
            weighted_auc(a, labels, &order_a, &weights),
            weighted_auc(b, labels, &order_b, &weights),
        ) {
            d_auc.push(y - x);
        }
    }
    let interval = |v: &mut Vec<f64>, value: f64| {
        v.sort_unstable_by(f64::total_cmp);
        let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
        if v.is_empty() {
            Delta {
                value,
                low: f64::NAN,
                high: f64::NAN,
            }
        } else {
            Delta {
                value,
                low: at(0.025),
                high: at(0.975),
            }
        }
    };
    Ok(PairedDeltas {
        auc: interval(&mut d_auc, value_auc),
        logloss: interval(&mut d_ll, value_ll),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUC by brute force over all (positive, negative) pairs: the definition.
    fn auc_by_pairs(scores: &[f64], labels: &[f64]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (i, &yi) in labels.iter().enumerate() {
            for (j, &yj) in labels.iter().enumerate() {
                if yi == 1.0 && yj == 0.0 {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        wins += 1.0;
                    } else if scores[i] == scores[j] {
                        wins += 0.5;
                    }
                }
            }
        }
        wins / pairs
    }

    /// A deterministic xorshift64 sequence from `state`.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn auc_hand_computed_cases() {
        // Perfect, inverted, and all tied.
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[0., 0., 1., 1.]).unwrap(), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[0., 0., 1., 1.]).unwrap(), 0.0);
        assert_eq!(auc(&[0.5; 4], &[0., 1., 0., 1.]).unwrap(), 0.5);
        // sklearn's docstring example: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[0., 0., 1., 1.]).unwrap(),
            0.75
        );
        // A tie between one positive and one negative: pairs (p=.5 vs n=.5) count 1/2.
        // positives {0.5, 0.9}, negatives {0.5, 0.1}: wins = (0.5 + 1) + (1 + 1) = 3.5 / 4
        assert_eq!(
            auc(&[0.5, 0.9, 0.5, 0.1], &[1., 1., 0., 0.]).unwrap(),
            0.875
        );
        // -0.0 and 0.0 are the same score.
        assert_eq!(auc(&[-0.0, 0.0], &[1., 0.]).unwrap(), 0.5);
    }

    #[test]
    fn auc_matches_pair_counting_on_tied_data() {
        // Deterministic pseudo-random scores quantized to force many ties.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        for n in [2usize, 3, 10, 57, 200] {
            let scores: Vec<f64> = (0..n).map(|_| (next() % 7) as f64 / 7.0).collect();
            let mut labels: Vec<f64> = (0..n).map(|_| (next() % 2) as f64).collect();
            labels[0] = 0.0;
            labels[n - 1] = 1.0;
            let got = auc(&scores, &labels).unwrap();
            let want = auc_by_pairs(&scores, &labels);
            assert!((got - want).abs() < 1e-12, "n={n}: {got} vs {want}");
        }
    }

    #[test]
    fn auc_errors() {
        assert!(auc(&[0.1, 0.2], &[1., 1.])
            .unwrap_err()
            .to_string()
            .contains("one class"));
        assert!(auc(&[0.1, 0.2], &[0., 0.]).is_err());
        assert!(auc(&[0.1], &[0., 1.])
            .unwrap_err()
            .to_string()
            .contains("lengths"));
        assert!(auc(&[f64::NAN, 0.2], &[0., 1.])
            .unwrap_err()
            .to_string()
            .contains("NaN"));
        assert!(auc(&[0.1, 0.2], &[0., 2.])
            .unwrap_err()
            .to_string()
            .contains("not 0 or 1"));
        assert!(auc(&[], &[]).is_err());
        assert!(auc(&[0.1, 0.2], &[f64::NAN, 1.]).is_err());
    }

    #[test]
    fn logloss_hand_computed_cases() {
        let ln2 = std::f64::consts::LN_2;
        assert!((logloss(&[0.5, 0.5], &[0., 1.]).unwrap() - ln2).abs() < 1e-15);
        let want = -(0.9f64.ln() + 0.8f64.ln() + (1.0f64 - 0.3).ln()) / 3.0;
        assert!((logloss(&[0.9, 0.8, 0.3], &[1., 1., 0.]).unwrap() - want).abs() < 1e-15);
        // Clipping: a confident mistake costs about -ln(1e-15), not infinity. (1 - 1e-15 is
        // not exact in f64, so the second row costs -ln(1 - (1 - 1e-15)), as in sklearn.)
        let clipped = logloss(&[0.0, 1.0], &[1., 0.]).unwrap();
        let want = (-(1e-15f64).ln() - (1.0 - (1.0 - 1e-15f64)).ln()) / 2.0;
        assert!((clipped - want).abs() < 1e-12, "{clipped} vs {want}");
        assert!((clipped - 34.54).abs() < 0.01);
        assert_eq!(
            logloss(&[1.0, 0.0], &[1., 0.]).unwrap(),
            -(1.0f64 - 1e-15).ln()
        );
        // One class is fine for the loss.
        assert!(logloss(&[0.2], &[0.]).is_ok());
    }

    #[test]
    fn logloss_errors() {
        assert!(logloss(&[0.5], &[0., 1.]).is_err());
        assert!(logloss(&[f64::NAN], &[1.]).is_err());
        assert!(logloss(&[1.5], &[1.])
            .unwrap_err()
            .to_string()
            .contains("outside [0, 1]"));
        assert!(logloss(&[-0.1], &[1.]).is_err());
        assert!(logloss(&[-2e-6], &[1.]).is_err());
        // A sigmoid approximation's -6e-8 is a probability of 0, clipped.
        assert_eq!(
            logloss(&[-5.96e-8], &[0.]).unwrap(),
            logloss(&[0.0], &[0.]).unwrap()
        );
        assert!(logloss(&[0.5], &[0.5]).is_err());
        assert!(logloss(&[], &[]).is_err());
    }

    #[test]
    fn weighted_auc_equals_auc_of_the_replicated_rows() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        for n in [2usize, 5, 40, 300] {
            let scores: Vec<f64> = (0..n).map(|_| (next() % 11) as f64 / 11.0).collect();
            let mut labels: Vec<f64> = (0..n).map(|_| (next() % 2) as f64).collect();
            labels[0] = 0.0;
            labels[n - 1] = 1.0;
            let weights: Vec<u32> = (0..n).map(|_| (next() % 4) as u32).collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_unstable_by(|&x, &y| scores[x].total_cmp(&scores[y]));
            let (mut s2, mut l2) = (Vec::new(), Vec::new());
            for i in 0..n {
                for _ in 0..weights[i] {
                    s2.push(scores[i]);
                    l2.push(labels[i]);
                }
            }
            let got = weighted_auc(&scores, &labels, &order, &weights);
            match auc(&s2, &l2) {
                Ok(want) => assert!((got.unwrap() - want).abs() < 1e-12, "n={n}"),
                Err(_) => assert!(got.is_none(), "n={n}: one class left"),
            }
        }
    }

    #[test]
    fn paired_bootstrap_intervals() {
        // Identical models: every difference is exactly zero.
        let labels: Vec<f64> = (0..500).map(|i| f64::from(u8::from(i % 3 == 0))).collect();
        let a: Vec<f64> = (0..500)
            .map(|i| (0.3 + 0.4 * labels[i] + 0.2 * ((i * 7919) % 101) as f64 / 101.0) * 0.9)
            .collect();
        let same = paired_bootstrap(&a, &a, &labels, 200, 1).unwrap();
        assert_eq!((same.auc.low, same.auc.high), (0.0, 0.0));
        assert_eq!((same.logloss.low, same.logloss.high), (0.0, 0.0));
        // A model that is worse on every row: the whole interval lies below zero (AUC) and
        // above zero (LogLoss), and contains the observed difference.
        let b: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, &p)| if i % 5 == 0 { 1.0 - p } else { p })
            .collect();
        let d = paired_bootstrap(&a, &b, &labels, 500, 7).unwrap();
        assert!(d.auc.value < 0.0 && d.auc.high < 0.0, "{d:?}");
        assert!(
            d.auc.low <= d.auc.value && d.auc.value <= d.auc.high,
            "{d:?}"
        );
        assert!(d.logloss.value > 0.0 && d.logloss.low > 0.0, "{d:?}");
        // The same seed gives the same interval.
        assert_eq!(d, paired_bootstrap(&a, &b, &labels, 500, 7).unwrap());
        assert!(paired_bootstrap(&a, &b, &labels, 0, 7).is_err());
    }
}

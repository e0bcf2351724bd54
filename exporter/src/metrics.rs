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
//! Labels are 0 or 1 (positive = 1); anything else, a NaN or a length mismatch is an error.

use crate::error::{Error, Result};

/// Probability clipping bound of [`logloss`].
pub const LOGLOSS_EPS: f64 = 1e-15;

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
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // No NaN remains, so total_cmp orders like `<`, with -0.0 right before 0.0: equal
    // scores stay adjacent and the `==` grouping below sees them as one tie group.
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));

    // 2 * U = sum over tie groups of pos_g * (2 * negatives_below + neg_g).
    let mut twice_u: u128 = 0;
    let mut negatives_below: u128 = 0;
    let mut start = 0;
    while start < order.len() {
        let score = scores[order[start]];
        let mut end = start;
        let (mut pos_g, mut neg_g) = (0u128, 0u128);
        while end < order.len() && scores[order[end]] == score {
            if labels[order[end]] == 1.0 {
                pos_g += 1;
            } else {
                neg_g += 1;
            }
            end += 1;
        }
        twice_u += pos_g * (2 * negatives_below + neg_g);
        negatives_below += neg_g;
        start = end;
    }
    let pairs = positives as f64 * negatives as f64;
    Ok(twice_u as f64 / 2.0 / pairs)
}

/// Mean binary log loss of probabilities `probs` for `labels` (0/1), natural log, with
/// probabilities clipped to `[LOGLOSS_EPS, 1 - LOGLOSS_EPS]`.
///
/// Errors when the lengths differ, there are no rows, a probability is NaN or outside
/// `[0, 1]` (e.g. the model returns logits), or a label is not 0/1.
pub fn logloss(probs: &[f64], labels: &[f64]) -> Result<f64> {
    check_inputs("LogLoss", probs, labels)?;
    if let Some(i) = probs.iter().position(|p| !(0.0..=1.0).contains(p)) {
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
        .map(|(&p, &y)| {
            let p = p.clamp(LOGLOSS_EPS, 1.0 - LOGLOSS_EPS);
            if y == 1.0 {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    Ok(total / probs.len() as f64)
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
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
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
        assert!(logloss(&[0.5], &[0.5]).is_err());
        assert!(logloss(&[], &[]).is_err());
    }
}

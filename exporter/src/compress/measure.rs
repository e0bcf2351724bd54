//! Running models on data for compression, with the tract engine
//! (`crate::backend::tract::PlannedModel`): calibration statistics at the sites' outputs,
//! each site's output error (original and compressed side by side), and the scores that AUC
//! and LogLoss are computed from.
//!
//! Calibration and measurement take planned models, so that the pipeline plans the original
//! once for both; the public [`calibrate`] plans the model it is given.

use std::borrow::Cow;

use tract_onnx::pb::ModelProto;

use super::graph;
use super::sites::Site;
use super::stats::AfmStats;
use super::Progress;
use crate::backend::tract::PlannedModel;
use crate::error::{Error, Result};
use crate::metrics;
use crate::npz::NpyArray;

/// The output tensors of `sites`, in order, and for each the index of the site it belongs to.
pub(super) fn site_outputs<'a>(
    sites: impl IntoIterator<Item = &'a Site>,
) -> (Vec<String>, Vec<usize>) {
    let mut names = Vec::new();
    let mut owner = Vec::new();
    for (i, site) in sites.into_iter().enumerate() {
        names.extend(site.outputs.iter().cloned());
        owner.extend(std::iter::repeat_n(i, site.outputs.len()));
    }
    (names, owner)
}

/// The output tensors of `sites` followed by the model's outputs: what the pipeline's plans
/// return, so that calibration, error measurement and evaluation share one plan per model.
pub(super) fn checked_outputs(model: &ModelProto, sites: &[Site]) -> Result<Vec<String>> {
    let (mut names, _) = site_outputs(sites);
    names.extend(model_outputs(model)?);
    Ok(names)
}

fn model_outputs(model: &ModelProto) -> Result<Vec<String>> {
    Ok(graph::graph(model)?
        .output
        .iter()
        .map(|v| v.name.clone())
        .collect())
}

/// Runs `model` on `calib` and accumulates the statistics of each site's output rows.
pub fn calibrate(
    model: &ModelProto,
    sites: &[&Site],
    calib: &[NpyArray],
    batch_size: usize,
    label: &str,
    progress: Progress<'_>,
) -> Result<Vec<AfmStats>> {
    let (outputs, _) = site_outputs(sites.iter().copied());
    let planned = PlannedModel::new(model, outputs)?;
    let batches = Batches {
        size: batch_size,
        label,
    };
    calibrate_on(&planned, sites, calib, batches, progress)
}

/// Rows per model call, and the label progress is reported under.
#[derive(Debug, Clone, Copy)]
pub(super) struct Batches<'a> {
    pub size: usize,
    pub label: &'a str,
}

/// [`calibrate`] with a planned model that returns (at least) the sites' outputs.
pub(super) fn calibrate_on(
    planned: &PlannedModel<'_>,
    sites: &[&Site],
    calib: &[NpyArray],
    Batches { size, label }: Batches<'_>,
    progress: Progress<'_>,
) -> Result<Vec<AfmStats>> {
    let (outputs, owner) = site_outputs(sites.iter().copied());
    let runner = planned.runner_of(calib, &outputs)?;
    let mut stats: Vec<AfmStats> = sites
        .iter()
        .map(|s| AfmStats::new(s.feature_dim()))
        .collect();
    runner.for_each_batch(size, &mut |d, t| progress(label, d, t), |_, _, outs| {
        for (o, (shape, values)) in outs.iter().enumerate() {
            let s = owner[o];
            let rows = feature_rows(sites[s], &outputs[o], shape, values)?;
            stats[s].add_rows(&rows);
        }
        Ok(())
    })?;
    Ok(stats)
}

/// The values of a site output tensor as rows of features (row-major `[rows, d]`): the tensor
/// itself when the features are its last axis, else (`W @ x`) its second-to-last axis moved
/// last.
fn feature_rows<'a>(
    site: &Site,
    name: &str,
    shape: &[usize],
    values: &'a [f32],
) -> Result<Cow<'a, [f32]>> {
    let d = site.feature_dim();
    let bad = || Error::Compression {
        site: Some(site.name.clone()),
        reason: format!("output '{name}' has shape {shape:?}, which does not hold {d} features"),
    };
    if !site.features_on_second_last_axis() {
        return if shape.last() == Some(&d) {
            Ok(Cow::Borrowed(values))
        } else {
            Err(bad())
        };
    }
    match shape {
        [.., f, 1] | [f] if *f == d => Ok(Cow::Borrowed(values)),
        [.., f, c] if *f == d => {
            let c = *c;
            let mut out = Vec::with_capacity(values.len());
            for block in values.chunks_exact(d * c) {
                for j in 0..c {
                    out.extend((0..d).map(|i| block[i * c + j]));
                }
            }
            Ok(Cow::Owned(out))
        }
        _ => Err(bad()),
    }
}

/// Per-site relative output errors and the largest model-output difference on `calib`.
pub(super) struct MeasuredErrors {
    pub rows: usize,
    pub site_rel_errors: Vec<f64>,
    pub output_max_abs_diff: f64,
}

/// Per-site sums of squares over the rows seen so far.
struct SiteError {
    err2: f64,
    square: f64,
    sums: Vec<f64>,
    rows: usize,
}

impl SiteError {
    fn add(&mut self, a: &[f32], b: &[f32]) {
        let d = self.sums.len().max(1);
        self.rows += a.len() / d;
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let (x, y) = (f64::from(*x), f64::from(*y));
            self.err2 += (x - y) * (x - y);
            self.square += x * x;
            self.sums[i % d] += x;
        }
    }

    /// `|y - y'| / |y - mean(y)|` (the absolute error when the output does not vary).
    fn relative(&self) -> f64 {
        let n = self.rows.max(1) as f64;
        let centered = (self.square - self.sums.iter().map(|t| t * t / n).sum::<f64>()).max(0.0);
        if centered > 0.0 {
            (self.err2 / centered).sqrt()
        } else {
            self.err2.sqrt()
        }
    }
}

/// Runs original and compressed side by side on `calib`: for each site, the error at its
/// output tensors relative to their spread, `|y - y'| / |y - mean(y)|` (Frobenius, over all
/// rows: the square root of the variance lost), and the largest absolute difference of the
/// model outputs. Both planned models return [`checked_outputs`].
pub(super) fn measure_errors(
    original: &PlannedModel<'_>,
    compressed: &PlannedModel<'_>,
    sites: &[Site],
    calib: &[NpyArray],
    batch_size: usize,
    progress: Progress<'_>,
) -> Result<MeasuredErrors> {
    let (_, owner) = site_outputs(sites);
    let names = checked_outputs(original.model(), sites)?;
    let first_model_output = owner.len();
    let a = original.runner_of(calib, &names)?;
    let b = compressed.runner_of(calib, &names)?;
    let mut errors: Vec<SiteError> = sites
        .iter()
        .map(|s| SiteError {
            err2: 0.0,
            square: 0.0,
            sums: vec![0.0; s.feature_dim()],
            rows: 0,
        })
        .collect();
    let mut max_diff = 0.0f64;
    a.for_each_batch(
        batch_size,
        &mut |d, t| progress("measuring", d, t),
        |start, end, outs_a| {
            let outs_b = b.run_rows(start, end)?;
            for (o, ((sa, va), (sb, vb))) in outs_a.iter().zip(&outs_b).enumerate() {
                if sa != sb {
                    return Err(Error::Compression {
                        site: owner.get(o).map(|&s| sites[s].name.clone()),
                        reason: format!("'{}' changed shape from {sa:?} to {sb:?}", names[o]),
                    });
                }
                if o >= first_model_output {
                    for (x, y) in va.iter().zip(vb) {
                        max_diff = max_diff.max(f64::from((x - y).abs()));
                    }
                    continue;
                }
                let s = owner[o];
                let va = feature_rows(&sites[s], &names[o], sa, va)?;
                let vb = feature_rows(&sites[s], &names[o], sb, vb)?;
                errors[s].add(&va, &vb);
            }
            Ok(())
        },
    )?;
    Ok(MeasuredErrors {
        rows: a.rows(),
        site_rel_errors: errors.iter().map(SiteError::relative).collect(),
        output_max_abs_diff: max_diff,
    })
}

/// AUC and LogLoss of `model`'s first output on `inputs` against `labels`.
pub fn evaluate(
    model: &ModelProto,
    inputs: &[NpyArray],
    labels: &[f64],
    batch_size: usize,
    label: &str,
    progress: Progress<'_>,
) -> Result<(f64, f64)> {
    let scores = predict(model, inputs, labels.len(), batch_size, label, progress)?;
    let auc = metrics::auc(&scores, labels)?;
    let logloss = metrics::logloss(&scores, labels)?;
    Ok((auc, logloss))
}

/// The first output of `model`, alone.
fn first_output(model: &ModelProto) -> Result<Vec<String>> {
    let first = model_outputs(model)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::InvalidArgument {
            reason: "the model has no outputs".into(),
        })?;
    Ok(vec![first])
}

/// `model`'s first output on `inputs` with tract, one score per row; `rows` is the number of
/// rows expected (the labels'). The model is planned for that output alone: tract fuses
/// differently when intermediate tensors are outputs, and the scores would move in their last
/// bits.
pub fn predict(
    model: &ModelProto,
    inputs: &[NpyArray],
    rows: usize,
    batch_size: usize,
    label: &str,
    progress: Progress<'_>,
) -> Result<Vec<f64>> {
    let first = first_output(model)?;
    let planned = PlannedModel::new(model, first.clone())?;
    let runner = planned.runner_of(inputs, &first)?;
    if runner.rows() != rows {
        return Err(Error::InvalidArgument {
            reason: format!(
                "the evaluation data has {} rows and {rows} labels",
                runner.rows(),
            ),
        });
    }
    let mut scores = Vec::with_capacity(rows);
    runner.for_each_batch(
        batch_size,
        &mut |d, t| progress(label, d, t),
        |start, end, outs| {
            let (_, values) = &outs[0];
            if values.len() != end - start {
                return Err(Error::InvalidArgument {
                    reason: format!("output '{}' is not one score per row", first[0]),
                });
            }
            scores.extend(values.iter().map(|&v| f64::from(v)));
            Ok(())
        },
    )?;
    Ok(scores)
}

//! [`compress_model`] as a sequence of stages over one `SitePlan` per site:
//! 1. `calibrate`: the spectrum of every site, from calibration statistics (AFM) or from
//!    the SVD of its weight;
//! 2. `allocate`: the ranks, from the policy and the spectra;
//! 3. `factorize`: the factors of every site that got a rank (with `sequential`, level by
//!    level, each level recalibrated on the partly compressed model);
//! 4. `rewrite`: the factors written into the graph, embedding projections fused, f16;
//! 5. `verify`: each site's output error on calibration data, AUC and LogLoss before and
//!    after on evaluation data;
//! 6. `report`, then the AUC gate; `compress_to_dir` writes the artifact.
//!
//! The original model is planned by tract once for its tensors (`PlannedModel`): the site
//! outputs and the model outputs, which its calibration and the error measurement share; the
//! compressed model is planned once for the same tensors. Evaluation plans each model for its
//! first output alone ([`super::measure::predict`] says why).

use faer::Mat;
use prost::Message;
use tract_onnx::pb::{ModelProto, TensorProto};

use super::factorize::{self, Pca, Svd};
use super::fuse::{self, FuseReport};
use super::graph::{self, f32_values};
use super::measure::{
    calibrate as calibrate_model, calibrate_on, checked_outputs, evaluate, measure_errors, Batches,
    MeasuredErrors,
};
use super::ranks::{
    choose_ranks, factorized_params, original_params, RankChoice, RankPolicy, SiteBudget,
};
use super::report::{
    self, CompressReport, EvalSummary, FusedProjection, FusionSummary, KeptProjection, SiteReport,
    Totals,
};
use super::rewrite::{apply_factors, flush_denormals, to_f16_weights, Factors};
use super::sites::{find_sites, DenseOp, Site, SiteKind, Sites};
use super::{
    count_params, simplify, split_labels, weight_bytes, CompressOptions, Compressed, Method,
    Progress, WeightType,
};
use crate::backend::tract::{match_data, PlannedModel};
use crate::error::{Error, Result};
use crate::npz::NpyArray;

/// Everything known about one site as the stages go.
struct SitePlan<'s> {
    site: &'s Site,
    /// Its weight in math orientation and its bias.
    weights: SiteWeights,
    /// AFM: the PCA of its output statistics (from the last calibration that saw it).
    pca: Option<Pca>,
    /// SVD: the decomposition of its weight.
    svd: Option<Svd>,
    /// The chosen rank (none: the site keeps its weights), and why.
    choice: RankChoice,
    /// The replacement, once factorized.
    factors: Option<Factors>,
}

impl<'s> SitePlan<'s> {
    fn new(model: &ModelProto, site: &'s Site) -> Result<SitePlan<'s>> {
        Ok(SitePlan {
            site,
            weights: site_weights(model, site)?,
            pca: None,
            svd: None,
            choice: RankChoice {
                rank: None,
                note: None,
            },
            factors: None,
        })
    }

    fn bias_len(&self) -> usize {
        self.weights.bias.as_ref().map_or(0, Vec::len)
    }

    /// Variance per component: the eigenvalues (AFM) or squared singular values (SVD).
    fn spectrum(&self, method: Method) -> Option<Vec<f64>> {
        match method {
            Method::Afm => self.pca.as_ref().map(|p| p.eigenvalues.clone()),
            Method::Svd => self.svd.as_ref().map(factorize::spectrum_of_svd),
            Method::None => None,
        }
    }

    /// Builds the factors for the chosen rank.
    fn factorize(&mut self, method: Method) {
        self.factors = make_factors(
            method,
            self.site,
            &self.weights,
            &self.pca,
            &self.svd,
            self.choice.rank,
        );
    }

    fn report(&self, method: Method, rel_error: Option<f64>) -> SiteReport {
        let site = self.site;
        let bias_len = self.bias_len();
        let rank = self.factors.as_ref().map(Factors::rank);
        SiteReport {
            name: site.name.clone(),
            kind: site.kind_name().to_string(),
            shape: self.weights.stored_shape.clone(),
            level: site.level,
            rank,
            params_before: original_params(site, bias_len),
            params_after: match rank {
                Some(k) => factorized_params(site, method, bias_len, k),
                None => original_params(site, bias_len),
            },
            retained_variance: self.spectrum(method).map(|s| match rank {
                Some(k) => factorize::retained_fraction(&s, k),
                None => 1.0,
            }),
            output_rel_error: rel_error,
            note: self.choice.note.clone(),
        }
    }
}

/// Compresses `model` in memory: calibration (AFM), ranks, factors, rewrite, f16, error
/// measurement on `calib`, and evaluation and gate on `test` (which holds a `label` array).
pub fn compress_model(
    input: &ModelProto,
    calib: Option<&[NpyArray]>,
    test: Option<&[NpyArray]>,
    options: &CompressOptions,
    progress: Progress<'_>,
) -> Result<Compressed> {
    // The original as tract can run it (see `simplify`); every comparison below is against
    // this equivalent graph.
    let (simplified, _) = simplify::simplify(input)?;
    let model = &simplified;
    let found = find_sites(graph::graph(model)?);
    check_request(model, &found, calib, options)?;
    let test = test.map(split_labels).transpose()?;
    let mut plans: Vec<SitePlan<'_>> = found
        .sites
        .iter()
        .map(|s| SitePlan::new(model, s))
        .collect::<Result<_>>()?;
    let model_params = count_params(model);
    let original = PlannedModel::new(model, checked_outputs(model, &found.sites)?)?;
    let data = Data {
        calib,
        test: test.as_ref().map(|(a, l)| (a.as_slice(), l.as_slice())),
    };

    if options.method != Method::None {
        calibrate(&mut plans, &original, calib, options, progress)?;
        allocate(&mut plans, options, model_params)?;
        factorize(&mut plans, model, calib, options, progress)?;
    }
    let rewritten = rewrite(model, &plans, data, options)?;
    let verified = verify(&original, &found.sites, &rewritten, data, options, progress)?;
    let report = report(input, model, &found, &plans, &rewritten, verified, options);
    if let Some(e) = &report.eval {
        if !e.passed && !options.force {
            return Err(Error::AucGate {
                before: e.auc_before,
                after: e.auc_after,
                max_drop: e.max_auc_drop,
            });
        }
    }
    Ok(Compressed {
        model: rewritten.compressed,
        report,
    })
}

/// The data the stages run on: calibration rows, and evaluation rows with their labels.
#[derive(Clone, Copy)]
struct Data<'a> {
    calib: Option<&'a [NpyArray]>,
    test: Option<(&'a [NpyArray], &'a [f64])>,
}

/// Refuses a request that cannot be done, before any work: no site to compress, AFM without
/// calibration data, calibration data that does not fit the model.
fn check_request(
    model: &ModelProto,
    found: &Sites,
    calib: Option<&[NpyArray]>,
    options: &CompressOptions,
) -> Result<()> {
    let method = options.method;
    if method != Method::None && found.sites.is_empty() {
        let rejected: Vec<String> = found
            .rejected
            .iter()
            .map(|r| format!("'{}': {}", r.name, r.reason))
            .collect();
        return Err(Error::Compression {
            site: None,
            reason: format!(
                "the model has no compressible site (no Gather on a 2-D float initializer, no \
                 MatMul/Gemm with a 2-D float initializer weight){}",
                if rejected.is_empty() {
                    String::new()
                } else {
                    format!("; candidates refused: {}", rejected.join("; "))
                }
            ),
        });
    }
    if method == Method::Afm && calib.is_none() {
        return Err(Error::InvalidArgument {
            reason: "AFM needs calibration data (--calib)".into(),
        });
    }
    if let Some(calib) = calib {
        match_data(model, calib)?;
    }
    Ok(())
}

/// Stage 1: AFM runs the original on the calibration data and decomposes each site's output
/// statistics; SVD decomposes each weight.
fn calibrate(
    plans: &mut [SitePlan<'_>],
    original: &PlannedModel<'_>,
    calib: Option<&[NpyArray]>,
    options: &CompressOptions,
    progress: Progress<'_>,
) -> Result<()> {
    if options.method == Method::Afm {
        let all: Vec<&Site> = plans.iter().map(|p| p.site).collect();
        let batches = Batches {
            size: options.batch_size,
            label: "calibrating",
        };
        let stats = calibrate_on(original, &all, calib.unwrap_or(&[]), batches, progress)?;
        for (p, s) in plans.iter_mut().zip(&stats) {
            p.pca = Some(factorize::pca(s).map_err(|e| with_site(e, p.site))?);
        }
    } else {
        for p in plans.iter_mut() {
            p.svd =
                Some(factorize::svd(p.weights.matrix.as_ref()).map_err(|e| with_site(e, p.site))?);
        }
    }
    Ok(())
}

/// Stage 2: the rank of every site, from the policy and the spectra.
fn allocate(
    plans: &mut [SitePlan<'_>],
    options: &CompressOptions,
    model_params: usize,
) -> Result<()> {
    let policy: &RankPolicy = options
        .ranks
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument {
            reason: "choose the ranks: --ratio R, --energy E or --rank SITE=K".into(),
        })?;
    let spectra: Vec<Vec<f64>> = plans
        .iter()
        .map(|p| p.spectrum(options.method).unwrap_or_default())
        .collect();
    let budgets: Vec<SiteBudget<'_>> = plans
        .iter()
        .zip(&spectra)
        .map(|(p, spectrum)| SiteBudget {
            site: p.site,
            bias_len: p.bias_len(),
            spectrum,
        })
        .collect();
    let choices = choose_ranks(&budgets, options.method, policy, model_params)?;
    for (p, choice) in plans.iter_mut().zip(choices) {
        p.choice = choice;
    }
    Ok(())
}

/// Stage 3: the factors of every site with a rank. With `sequential` (AFM), level by level:
/// the sites of a level are recalibrated on the model whose upstream levels are already
/// factorized, so that their second factor fits the inputs it will really see.
fn factorize(
    plans: &mut [SitePlan<'_>],
    model: &ModelProto,
    calib: Option<&[NpyArray]>,
    options: &CompressOptions,
    progress: Progress<'_>,
) -> Result<()> {
    let method = options.method;
    if !(method == Method::Afm && options.sequential) {
        for p in plans.iter_mut() {
            p.factorize(method);
        }
        return Ok(());
    }
    let max_level = plans.iter().map(|p| p.site.level).max().unwrap_or(0);
    for level in 0..=max_level {
        let here: Vec<usize> = (0..plans.len())
            .filter(|&i| plans[i].site.level == level && plans[i].choice.rank.is_some())
            .collect();
        if here.is_empty() {
            continue;
        }
        if level > 0 && plans.iter().any(|p| p.factors.is_some()) {
            let current = apply_all(model, plans)?;
            let these: Vec<&Site> = here.iter().map(|&i| plans[i].site).collect();
            let stats = calibrate_model(
                &current,
                &these,
                calib.unwrap_or(&[]),
                options.batch_size,
                &format!("calibrating level {level}"),
                progress,
            )?;
            for (&i, s) in here.iter().zip(&stats) {
                let p = &mut plans[i];
                p.pca = Some(factorize::pca(s).map_err(|e| with_site(e, p.site))?);
            }
        }
        for &i in &here {
            plans[i].factorize(method);
        }
    }
    Ok(())
}

/// What [`rewrite`] made.
struct Rewritten {
    /// The model to write: factorized, fused, f16 as asked.
    compressed: ModelProto,
    /// The model whose site errors are measured when it is not `compressed`: the unfused
    /// graph (f16 as asked), whose tensors keep the sites' widths.
    measured: Option<ModelProto>,
    fusion: Option<FuseReport>,
    /// Initializers left f32 by `--weights f16`.
    kept_f32: Vec<String>,
    /// Denormal f32 weights set to zero (in the factorized graph, then in fusion's products).
    denormals_flushed: usize,
}

/// Stage 4: the factors written into the graph; embedding projections fused into the dense
/// layers they feed where that checks out on calibration (else evaluation) rows; f16.
fn rewrite(
    model: &ModelProto,
    plans: &[SitePlan<'_>],
    data: Data<'_>,
    options: &CompressOptions,
) -> Result<Rewritten> {
    let mut unfused = apply_all(model, plans)?;
    let mut denormals_flushed = flush_denormals(&mut unfused)?;
    let fusable: Vec<(String, Vec<String>)> = plans
        .iter()
        .filter(|p| matches!(p.factors, Some(Factors::Embedding(_))))
        .map(|p| (p.site.name.clone(), p.site.outputs.clone()))
        .collect();
    let check_rows = data.calib.or(data.test.map(|(a, _)| a));
    let (mut compressed, fusion) = match check_rows {
        Some(rows) if options.fuse && !fusable.is_empty() => {
            let (mut m, r) = fuse::fuse_projections(&unfused, &fusable, rows)?;
            // Products of fused factors can land in the denormal range too.
            denormals_flushed += flush_denormals(&mut m)?;
            (m, Some(r))
        }
        _ => (unfused.clone(), None),
    };
    let fused_any = fusion.as_ref().is_some_and(|f| !f.fused.is_empty());
    let f16 = options.weights == WeightType::F16;
    let mut kept_f32 = Vec::new();
    if f16 {
        (compressed, kept_f32) = to_f16_weights(&compressed)?;
    }
    let measured = match (fused_any, f16) {
        (false, _) => None,
        (true, true) => Some(to_f16_weights(&unfused)?.0),
        (true, false) => Some(unfused),
    };
    Ok(Rewritten {
        compressed,
        measured,
        fusion,
        kept_f32,
        denormals_flushed,
    })
}

/// What [`verify`] found.
struct Verified {
    errors: Option<MeasuredErrors>,
    eval: Option<EvalSummary>,
}

/// Stage 5: the error at every site output (and the model outputs) on calibration data, and
/// AUC and LogLoss before and after on evaluation data.
fn verify(
    original: &PlannedModel<'_>,
    sites: &[Site],
    rewritten: &Rewritten,
    data: Data<'_>,
    options: &CompressOptions,
    progress: Progress<'_>,
) -> Result<Verified> {
    let measured = rewritten.measured.as_ref().unwrap_or(&rewritten.compressed);
    let measured = PlannedModel::new(measured, checked_outputs(original.model(), sites)?)?;
    let errors = match data.calib {
        Some(calib) => Some(measure_errors(
            original,
            &measured,
            sites,
            calib,
            options.batch_size,
            progress,
        )?),
        None => None,
    };
    let eval = match data.test {
        Some((arrays, labels)) => {
            let batch = options.batch_size;
            let before = evaluate(
                original.model(),
                arrays,
                labels,
                batch,
                "evaluating original",
                progress,
            )?;
            let after = evaluate(
                &rewritten.compressed,
                arrays,
                labels,
                batch,
                "evaluating compressed",
                progress,
            )?;
            Some(EvalSummary {
                rows: labels.len(),
                auc_before: before.0,
                auc_after: after.0,
                logloss_before: before.1,
                logloss_after: after.1,
                auc_drop: before.0 - after.0,
                max_auc_drop: options.max_auc_drop,
                passed: before.0 - after.0 <= options.max_auc_drop,
                forced: options.force,
            })
        }
        None => None,
    };
    Ok(Verified { errors, eval })
}

/// Stage 6: the report (without the artifact, which only writing knows).
fn report(
    input: &ModelProto,
    model: &ModelProto,
    found: &Sites,
    plans: &[SitePlan<'_>],
    rewritten: &Rewritten,
    verified: Verified,
    options: &CompressOptions,
) -> CompressReport {
    let method = options.method;
    let errors = verified.errors.as_ref();
    let mut sites: Vec<SiteReport> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| p.report(method, errors.map(|e| e.site_rel_errors[i])))
        .collect();
    let mut fusion = rewritten.fusion.clone();
    if let Some(f) = &mut fusion {
        adjust_for_fusion(&mut sites, f);
    }
    let model_params = count_params(model);
    let params_after = count_params(&rewritten.compressed);
    CompressReport {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        model: String::new(),
        method: method.name().to_string(),
        weights: options.weights.name().to_string(),
        sequential: options.sequential && method == Method::Afm,
        policy: options.ranks.as_ref().map(report::describe_policy),
        calibration_rows: errors.map(|e| e.rows),
        sites,
        rejected: found.rejected.clone(),
        totals: Totals {
            params_before: model_params,
            params_after,
            reduction: model_params as f64 / params_after.max(1) as f64,
            weight_bytes_before: weight_bytes(model),
            weight_bytes_after: weight_bytes(&rewritten.compressed),
            file_bytes_before: Some(input.encoded_len() as u64),
            file_bytes_after: None,
        },
        output_max_abs_diff: errors.map(|e| e.output_max_abs_diff),
        eval: verified.eval,
        f16_kept_f32: rewritten.kept_f32.clone(),
        denormal_weights_flushed: rewritten.denormals_flushed,
        fusion: fusion.map(fusion_summary),
        artifact: None,
        native_check: None,
    }
}

fn fusion_summary(f: FuseReport) -> FusionSummary {
    FusionSummary {
        fused: f
            .fused
            .iter()
            .map(|(site, into)| FusedProjection {
                projection_kept: f.projection_kept.contains(site),
                site: site.clone(),
                into: into.clone(),
            })
            .collect(),
        kept: f
            .kept
            .into_iter()
            .map(|(site, reason)| KeptProjection { site, reason })
            .collect(),
        checked_max_diff: f.checked_max_diff,
    }
}

/// The site a weight of the unfused graph belongs to: its own (kept) or its first factor
/// (`<site>/first`).
fn owner_of<'a>(reports: &'a mut [SiteReport], weight: &str) -> Option<&'a mut SiteReport> {
    reports.iter_mut().find(|r| {
        weight == r.name
            || weight
                .strip_prefix(r.name.as_str())
                .is_some_and(|rest| rest.starts_with("/first"))
    })
}

/// Parameters after fusion: a fused table keeps only its k-wide rows (no projection, no
/// mean); the dense layer it feeds changes by the rows it gained or lost. Fused weights are
/// renamed to the dense site that owns them.
fn adjust_for_fusion(reports: &mut [SiteReport], fusion: &mut FuseReport) {
    for (_, into) in &mut fusion.fused {
        if let Some(owner) = owner_of(reports, into) {
            *into = owner.name.clone();
        }
    }
    for (site, into) in &fusion.fused {
        if let Some(r) = reports.iter_mut().find(|r| &r.name == site) {
            let kept = fusion.projection_kept.contains(site);
            if let (Some(k), Some(&rows), false) = (r.rank, r.shape.first(), kept) {
                r.params_after = rows * k;
            }
            let note = if kept {
                format!("projection fused into '{into}' (and kept for the other readers)")
            } else {
                format!("projection fused into '{into}'")
            };
            r.note = Some(match r.note.take() {
                Some(n) => format!("{n}; {note}"),
                None => note,
            });
        }
    }
    for (weight, change) in &fusion.weight_change {
        if let Some(r) = owner_of(reports, weight) {
            r.params_after = (r.params_after as i64 + change).max(0) as usize;
        }
    }
}

fn with_site(e: Error, site: &Site) -> Error {
    match e {
        Error::Compression { site: None, reason } => Error::Compression {
            site: Some(site.name.clone()),
            reason,
        },
        other => other,
    }
}

/// A site's weight in math orientation (see [`factorize`]) and its bias.
#[derive(Debug, Clone)]
struct SiteWeights {
    /// Embedding: rows x dim; dense: out x in, alpha applied.
    matrix: Mat<f64>,
    /// Dense bias, beta applied and broadcast to `out` values.
    bias: Option<Vec<f64>>,
    /// The initializer's shape as stored.
    stored_shape: Vec<usize>,
}

fn initializer<'a>(model: &'a ModelProto, name: &str) -> Result<&'a TensorProto> {
    graph::graph(model)?
        .initializer
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::Compression {
            site: Some(name.to_owned()),
            reason: format!("initializer '{name}' not found"),
        })
}

fn site_weights(model: &ModelProto, site: &Site) -> Result<SiteWeights> {
    let t = initializer(model, &site.name)?;
    let values = f32_values(t)?;
    let stored_shape = graph::dims(t).unwrap_or_default();
    let (r, c) = (stored_shape[0], stored_shape[1]);
    let stored = |i: usize, j: usize| f64::from(values[i * c + j]);
    let (matrix, bias) = match &site.kind {
        SiteKind::Embedding { .. } => (Mat::from_fn(r, c, stored), None),
        SiteKind::Dense {
            op, bias, outputs, ..
        } => {
            let (alpha, beta) = match op {
                DenseOp::MatMul | DenseOp::MatMulLeft | DenseOp::Conv1x1 => (1.0, 1.0),
                DenseOp::Gemm { alpha, beta, .. } => (f64::from(*alpha), f64::from(*beta)),
            };
            // Stored [out, in] already for Gemm with transB and for W @ x.
            let out_in = matches!(
                op,
                DenseOp::Gemm { trans_b: true, .. } | DenseOp::MatMulLeft | DenseOp::Conv1x1
            );
            let matrix = if out_in {
                Mat::from_fn(r, c, |i, j| alpha * stored(i, j))
            } else {
                Mat::from_fn(c, r, |i, j| alpha * stored(j, i))
            };
            let bias = match bias {
                None => None,
                Some(name) => {
                    let b = f32_values(initializer(model, name)?)?;
                    Some(if b.len() == 1 {
                        vec![beta * f64::from(b[0]); *outputs]
                    } else {
                        b.iter().map(|&v| beta * f64::from(v)).collect()
                    })
                }
            };
            (matrix, bias)
        }
    };
    Ok(SiteWeights {
        matrix,
        bias,
        stored_shape,
    })
}

fn make_factors(
    method: Method,
    site: &Site,
    w: &SiteWeights,
    pca: &Option<Pca>,
    svd: &Option<Svd>,
    rank: Option<usize>,
) -> Option<Factors> {
    let k = rank?;
    let dense = matches!(site.kind, SiteKind::Dense { .. });
    let bias = w.bias.as_deref();
    Some(match (method, dense) {
        (Method::Afm, true) => Factors::Dense(factorize::afm_dense(
            w.matrix.as_ref(),
            bias,
            pca.as_ref()?,
            k,
        )),
        (Method::Afm, false) => Factors::Embedding(factorize::afm_embedding(
            w.matrix.as_ref(),
            pca.as_ref()?,
            k,
        )),
        (Method::Svd, true) => Factors::Dense(factorize::svd_dense(svd.as_ref()?, bias, k)),
        (Method::Svd, false) => Factors::Embedding(factorize::svd_embedding(svd.as_ref()?, k)),
        (Method::None, _) => return None,
    })
}

/// `model` with the factors decided so far written in.
fn apply_all(model: &ModelProto, plans: &[SitePlan<'_>]) -> Result<ModelProto> {
    let pairs: Vec<(&Site, &Factors)> = plans
        .iter()
        .filter_map(|p| p.factors.as_ref().map(|f| (p.site, f)))
        .collect();
    apply_factors(model, &pairs)
}

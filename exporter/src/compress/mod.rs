//! Low-rank compression of ONNX CTR models: the seed's method (Atomic Feature Mimicking, and
//! the SVD baseline) on any graph, as `ctr-edge compress` runs it.
//!
//! The pipeline, one module per step:
//! 1. [`graph`]: decode the ONNX file (prost) with every weight in memory; [`simplify`]: inline
//!    `If`s that static shapes decide (tract cannot type them);
//! 2. [`sites`]: find the embedding tables and dense layers that can be rewritten;
//! 3. [`runner`] + [`stats`]: run the model with tract on calibration data, the site outputs
//!    exposed, and stream per-site statistics (N, sum y, sum y y^T) in f64;
//! 4. [`factorize`]: eigendecompose (AFM) or SVD (baseline), build the two factors;
//! 5. [`ranks`]: choose the ranks (explicit, energy or a whole-model ratio);
//! 6. [`rewrite`]: write the factors into the graph (and the f16 variant);
//! 7. measure each site's output error and, with test data, AUC and LogLoss before and after;
//!    refuse to write when the AUC drops by more than allowed;
//! 8. write the artifact ([`crate::artifact`]) and `report.json` ([`report`]).
//!
//! With `sequential`, sites are factorized level by level (a site's level is the number of
//! sites upstream of it), each level calibrated on the model whose upstream sites are already
//! compressed, so the second factor of a layer fits the inputs it will really see.

pub mod factorize;
pub mod fuse;
pub mod graph;
pub mod inspect;
pub mod ranks;
pub mod report;
pub mod rewrite;
pub mod runner;
pub mod simplify;
pub mod sites;
pub mod stats;

use std::fmt;
use std::fs;
use std::path::Path;
use std::str::FromStr;

use faer::Mat;
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{ModelProto, TensorProto};

use self::factorize::{Pca, Svd};
use self::graph::{f32_values, numel};
use self::ranks::{
    choose_ranks, factorized_params, original_params, RankChoice, RankPolicy, SiteBudget,
};
use self::report::{
    CompressReport, EvalSummary, FusedProjection, FusionSummary, KeptProjection, SiteReport, Totals,
};
use self::rewrite::{apply_factors, to_f16_weights, Factors};
use self::runner::TractRunner;
use self::sites::{find_sites, DenseOp, Site, SiteKind};
use self::stats::AfmStats;
use crate::artifact::{write_artifact, MODEL_FILE, WEIGHTS_FILE};
use crate::error::{Error, Result};
use crate::metrics;
use crate::npz::NpyArray;

/// Name of the report written beside the artifact.
pub const REPORT_FILE: &str = "report.json";
/// Name of the label array in evaluation data.
pub const LABEL: &str = "label";
/// Default bound on the AUC drop when evaluation data is given.
pub const DEFAULT_MAX_AUC_DROP: f64 = 0.002;
/// `metadata_props` keys of the compressor, defined with the artifact contract in the runtime.
pub use ctr_edge_runtime::artifact::{META_METHOD, META_RANKS, META_WEIGHTS};

/// The compression method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Atomic Feature Mimicking: PCA of each site's output features on calibration data.
    Afm,
    /// Truncated SVD of each weight (no calibration needed).
    Svd,
    /// No factorization: only re-lay the weights as an artifact (and optionally f16).
    None,
}

impl Method {
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Afm => "afm",
            Method::Svd => "svd",
            Method::None => "none",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Method> {
        match s {
            "afm" => Ok(Method::Afm),
            "svd" => Ok(Method::Svd),
            "none" => Ok(Method::None),
            _ => Err(Error::InvalidArgument {
                reason: format!("unknown method '{s}' (expected afm, svd or none)"),
            }),
        }
    }
}

/// Precision of the written weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// 32-bit floats.
    F32,
    /// 16-bit floats, each followed by `Cast(to = FLOAT)`.
    F16,
}

impl WeightType {
    /// `f32` or `f16`.
    pub fn name(self) -> &'static str {
        match self {
            WeightType::F32 => "f32",
            WeightType::F16 => "f16",
        }
    }
}

/// Everything `compress` can be asked to do.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    /// The method.
    pub method: Method,
    /// How ranks are chosen (required for AFM and SVD).
    pub ranks: Option<RankPolicy>,
    /// Precision of the written weights.
    pub weights: WeightType,
    /// Calibrate level by level on the partly compressed model (AFM only).
    pub sequential: bool,
    /// Rows per model call.
    pub batch_size: usize,
    /// Largest AUC drop allowed when evaluation data is given.
    pub max_auc_drop: f64,
    /// Write even when the AUC drop exceeds `max_auc_drop`.
    pub force: bool,
    /// Fuse embedding projections into the dense layer they feed, where only Concat/Flatten
    /// lie between (DESIGN.md, compression step 5).
    pub fuse: bool,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            method: Method::Afm,
            ranks: None,
            weights: WeightType::F32,
            sequential: false,
            batch_size: crate::backend::DEFAULT_BATCH_SIZE,
            max_auc_drop: DEFAULT_MAX_AUC_DROP,
            force: false,
            fuse: true,
        }
    }
}

/// Progress callback: `(what, done, total)`, e.g. `("calibrating", 2048, 5000)`.
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

/// A compressed model, in memory, and what was done to it.
#[derive(Debug, Clone)]
pub struct Compressed {
    /// The compressed model, weights inline.
    pub model: ModelProto,
    /// The report (without the artifact's file sizes, which only writing knows).
    pub report: CompressReport,
}

/// Loads `model_path`, compresses it, and writes `out_dir/{model.onnx, model.weights,
/// report.json}`. Fails before writing anything when the output folder cannot be written to,
/// the inputs are bad, or (with `test` data) the AUC gate refuses the result; on any error no
/// new file is left in `out_dir` (and a folder it had to create is removed).
pub fn compress_to_dir(
    model_path: &Path,
    calib: Option<&[NpyArray]>,
    test: Option<&[NpyArray]>,
    out_dir: &Path,
    options: &CompressOptions,
    progress: Progress<'_>,
) -> Result<CompressReport> {
    let model = graph::load_model(model_path)?;
    let created = prepare_out_dir(out_dir)?;
    let result = (|| {
        let mut compressed = compress_model(&model, calib, test, options, progress)?;
        compressed.report.model = model_path.display().to_string();
        compressed.report.totals.file_bytes_before = fs::metadata(model_path).map(|m| m.len()).ok();
        write_compressed(compressed, out_dir)
    })();
    if result.is_err() && created {
        // Only an empty folder we made ourselves is removed.
        let _ = fs::remove_dir(out_dir);
    }
    result
}

/// Writes a compressed model and its report into `out_dir` (artifact first, report last).
pub fn write_compressed(compressed: Compressed, out_dir: &Path) -> Result<CompressReport> {
    let Compressed { model, mut report } = compressed;
    let meta = vec![
        (META_METHOD.to_string(), report.method.clone()),
        (META_WEIGHTS.to_string(), report.weights.clone()),
        (META_RANKS.to_string(), report.ranks_json()),
    ];
    let info = write_artifact(model, out_dir, &meta)?;
    report.totals.file_bytes_after = Some(info.model_bytes + info.weights_bytes);
    report.artifact = Some(report::ArtifactSummary {
        model: info.model_path.display().to_string(),
        weights: info.weights_path.display().to_string(),
        model_bytes: info.model_bytes,
        weights_bytes: info.weights_bytes,
        weights_checksum: info.weights_checksum,
    });
    if let Err(e) = report.write_json(&out_dir.join(REPORT_FILE)) {
        // Leave no artifact without its report.
        let _ = fs::remove_file(out_dir.join(MODEL_FILE));
        let _ = fs::remove_file(out_dir.join(WEIGHTS_FILE));
        return Err(e);
    }
    Ok(report)
}

/// Creates `dir` if needed and checks that a file can be created in it. Returns whether the
/// folder was created.
fn prepare_out_dir(dir: &Path) -> Result<bool> {
    let existed = dir.is_dir();
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !existed {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let probe = dir.join(format!(".ctr-edge-probe-{}", std::process::id()));
    let check = fs::write(&probe, b"").and_then(|()| fs::remove_file(&probe));
    if let Err(e) = check {
        if !existed {
            let _ = fs::remove_dir(dir);
        }
        return Err(io(e));
    }
    Ok(!existed)
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
    let g = graph::graph(model)?;
    let found = find_sites(g);
    let sites = &found.sites;
    let method = options.method;
    if method != Method::None && sites.is_empty() {
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
        // Refuse bad calibration data before any work.
        runner::match_data(model, calib)?;
    }
    let test = test.map(split_labels).transpose()?;
    let weights: Vec<SiteWeights> = sites
        .iter()
        .map(|s| site_weights(model, s))
        .collect::<Result<_>>()?;
    let model_params = count_params(model);

    // Spectra and the decompositions they come from.
    let mut pcas: Vec<Option<Pca>> = vec![None; sites.len()];
    let mut svds: Vec<Option<Svd>> = vec![None; sites.len()];
    let mut choices: Vec<RankChoice> = sites
        .iter()
        .map(|_| RankChoice {
            rank: None,
            note: None,
        })
        .collect();
    let mut factors: Vec<Option<Factors>> = vec![None; sites.len()];
    if method != Method::None {
        let spectra: Vec<Vec<f64>> = match method {
            Method::Afm => {
                let all: Vec<&Site> = sites.iter().collect();
                let stats = calibrate(
                    model,
                    &all,
                    calib.unwrap_or(&[]),
                    options.batch_size,
                    "calibrating",
                    progress,
                )?;
                for (i, s) in stats.iter().enumerate() {
                    pcas[i] = Some(factorize::pca(s).map_err(|e| with_site(e, &sites[i]))?);
                }
                pcas.iter()
                    .flatten()
                    .map(|p| p.eigenvalues.clone())
                    .collect()
            }
            _ => {
                for (i, w) in weights.iter().enumerate() {
                    svds[i] = Some(
                        factorize::svd(w.matrix.as_ref()).map_err(|e| with_site(e, &sites[i]))?,
                    );
                }
                svds.iter()
                    .flatten()
                    .map(factorize::spectrum_of_svd)
                    .collect()
            }
        };
        let policy = options
            .ranks
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument {
                reason: "choose the ranks: --ratio R, --energy E or --rank SITE=K".into(),
            })?;
        let budgets: Vec<SiteBudget<'_>> = sites
            .iter()
            .zip(&weights)
            .zip(&spectra)
            .map(|((site, w), spectrum)| SiteBudget {
                site,
                bias_len: w.bias.as_ref().map_or(0, Vec::len),
                spectrum,
            })
            .collect();
        choices = choose_ranks(&budgets, method, policy, model_params)?;

        if method == Method::Afm && options.sequential {
            let max_level = sites.iter().map(|s| s.level).max().unwrap_or(0);
            for level in 0..=max_level {
                let here: Vec<usize> = (0..sites.len())
                    .filter(|&i| sites[i].level == level && choices[i].rank.is_some())
                    .collect();
                if here.is_empty() {
                    continue;
                }
                if level > 0 && factors.iter().any(Option::is_some) {
                    let current = apply_all(model, sites, &factors)?;
                    let these: Vec<&Site> = here.iter().map(|&i| &sites[i]).collect();
                    let label = format!("calibrating level {level}");
                    let stats = calibrate(
                        &current,
                        &these,
                        calib.unwrap_or(&[]),
                        options.batch_size,
                        &label,
                        progress,
                    )?;
                    for (&i, s) in here.iter().zip(&stats) {
                        pcas[i] = Some(factorize::pca(s).map_err(|e| with_site(e, &sites[i]))?);
                    }
                }
                for &i in &here {
                    factors[i] = make_factors(
                        method,
                        &sites[i],
                        &weights[i],
                        &pcas[i],
                        &svds[i],
                        choices[i].rank,
                    );
                }
            }
        } else {
            for i in 0..sites.len() {
                factors[i] = make_factors(
                    method,
                    &sites[i],
                    &weights[i],
                    &pcas[i],
                    &svds[i],
                    choices[i].rank,
                );
            }
        }
    }

    let unfused = apply_all(model, sites, &factors)?;
    // Fusion of embedding projections, checked on calibration (else evaluation) rows.
    let fusable: Vec<(String, Vec<String>)> = sites
        .iter()
        .zip(&factors)
        .filter(|(_, f)| matches!(f, Some(Factors::Embedding(_))))
        .map(|(s, _)| (s.name.clone(), s.outputs.clone()))
        .collect();
    let check_rows: Option<&[NpyArray]> = calib.or(test.as_ref().map(|(a, _)| a.as_slice()));
    let (mut compressed, mut fusion) = match check_rows {
        Some(rows) if options.fuse && !fusable.is_empty() => {
            let (m, r) = fuse::fuse_projections(&unfused, &fusable, rows)?;
            (m, Some(r))
        }
        _ => (unfused.clone(), None),
    };
    let fused_any = fusion.as_ref().is_some_and(|f| !f.fused.is_empty());
    let mut kept_f32 = Vec::new();
    if options.weights == WeightType::F16 {
        (compressed, kept_f32) = to_f16_weights(&compressed)?;
    }
    // Site errors are measured on the unfused graph, whose tensors keep the sites' widths (the
    // fused one was checked against it above).
    let measured = if fused_any {
        if options.weights == WeightType::F16 {
            to_f16_weights(&unfused)?.0
        } else {
            unfused
        }
    } else {
        compressed.clone()
    };

    // Measured errors at every site output (and the model outputs) on calibration data.
    let errors = match calib {
        Some(calib) => Some(measure_errors(
            model,
            &measured,
            sites,
            calib,
            options.batch_size,
            progress,
        )?),
        None => None,
    };

    let site_reports: Vec<SiteReport> = sites
        .iter()
        .enumerate()
        .map(|(i, site)| {
            let bias_len = weights[i].bias.as_ref().map_or(0, Vec::len);
            let rank = factors[i].as_ref().map(Factors::rank);
            let spectrum: Option<Vec<f64>> = match method {
                Method::Afm => pcas[i].as_ref().map(|p| p.eigenvalues.clone()),
                Method::Svd => svds[i].as_ref().map(factorize::spectrum_of_svd),
                Method::None => None,
            };
            SiteReport {
                name: site.name.clone(),
                kind: site.kind_name().to_string(),
                shape: weights[i].stored_shape.clone(),
                level: site.level,
                rank,
                params_before: original_params(site, bias_len),
                params_after: match rank {
                    Some(k) => factorized_params(site, method, bias_len, k),
                    None => original_params(site, bias_len),
                },
                retained_variance: spectrum.map(|s| match rank {
                    Some(k) => factorize::retained_fraction(&s, k),
                    None => 1.0,
                }),
                output_rel_error: errors.as_ref().map(|e| e.site_rel_errors[i]),
                note: choices[i].note.clone(),
            }
        })
        .collect();
    let mut site_reports = site_reports;
    if let Some(f) = &mut fusion {
        adjust_for_fusion(&mut site_reports, f);
    }

    let eval = match &test {
        Some((arrays, labels)) => {
            let before = evaluate(
                model,
                arrays,
                labels,
                options.batch_size,
                "evaluating original",
                progress,
            )?;
            let after = evaluate(
                &compressed,
                arrays,
                labels,
                options.batch_size,
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

    let params_after = count_params(&compressed);
    let report = CompressReport {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        model: String::new(),
        method: method.name().to_string(),
        weights: options.weights.name().to_string(),
        sequential: options.sequential && method == Method::Afm,
        policy: options.ranks.as_ref().map(report::describe_policy),
        calibration_rows: errors.as_ref().map(|e| e.rows),
        sites: site_reports,
        rejected: found.rejected.clone(),
        totals: Totals {
            params_before: model_params,
            params_after,
            reduction: model_params as f64 / params_after.max(1) as f64,
            weight_bytes_before: weight_bytes(model),
            weight_bytes_after: weight_bytes(&compressed),
            file_bytes_before: Some(input.encoded_len() as u64),
            file_bytes_after: None,
        },
        output_max_abs_diff: errors.as_ref().map(|e| e.output_max_abs_diff),
        eval,
        f16_kept_f32: kept_f32,
        fusion: fusion.map(|f| FusionSummary {
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
        }),
        artifact: None,
    };
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
        model: compressed,
        report,
    })
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
fn adjust_for_fusion(reports: &mut [SiteReport], fusion: &mut fuse::FuseReport) {
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

fn apply_all(
    model: &ModelProto,
    sites: &[Site],
    factors: &[Option<Factors>],
) -> Result<ModelProto> {
    let pairs: Vec<(&Site, &Factors)> = sites
        .iter()
        .zip(factors)
        .filter_map(|(s, f)| f.as_ref().map(|f| (s, f)))
        .collect();
    apply_factors(model, &pairs)
}

/// The output tensors of `sites`, in order, and for each the index of the site it belongs to.
fn site_outputs<'a>(sites: impl IntoIterator<Item = &'a Site>) -> (Vec<String>, Vec<usize>) {
    let mut names = Vec::new();
    let mut owner = Vec::new();
    for (i, site) in sites.into_iter().enumerate() {
        names.extend(site.outputs.iter().cloned());
        owner.extend(std::iter::repeat_n(i, site.outputs.len()));
    }
    (names, owner)
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
    let (outputs, owner) = site_outputs(sites.iter().copied());
    let runner = TractRunner::new(model, calib, &outputs)?;
    let mut stats: Vec<AfmStats> = sites
        .iter()
        .map(|s| AfmStats::new(s.feature_dim()))
        .collect();
    runner.for_each_batch(
        batch_size,
        &mut |d, t| progress(label, d, t),
        |_, _, outs| {
            for (o, (shape, values)) in outs.iter().enumerate() {
                let s = owner[o];
                let rows = feature_rows(sites[s], &outputs[o], shape, values)?;
                stats[s].add_rows(&rows);
            }
            Ok(())
        },
    )?;
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
) -> Result<std::borrow::Cow<'a, [f32]>> {
    let d = site.feature_dim();
    let bad = || Error::Compression {
        site: Some(site.name.clone()),
        reason: format!("output '{name}' has shape {shape:?}, which does not hold {d} features"),
    };
    if !site.features_on_second_last_axis() {
        return if shape.last() == Some(&d) {
            Ok(std::borrow::Cow::Borrowed(values))
        } else {
            Err(bad())
        };
    }
    match shape {
        [.., f, 1] | [f] if *f == d => Ok(std::borrow::Cow::Borrowed(values)),
        [.., f, c] if *f == d => {
            let c = *c;
            let mut out = Vec::with_capacity(values.len());
            for block in values.chunks_exact(d * c) {
                for j in 0..c {
                    out.extend((0..d).map(|i| block[i * c + j]));
                }
            }
            Ok(std::borrow::Cow::Owned(out))
        }
        _ => Err(bad()),
    }
}

/// Per-site relative output errors and the largest model-output difference on `calib`.
struct MeasuredErrors {
    rows: usize,
    site_rel_errors: Vec<f64>,
    output_max_abs_diff: f64,
}

/// Runs original and compressed side by side on `calib`: for each site, the error at its
/// output tensors relative to their spread, `|y - y'| / |y - mean(y)|` (Frobenius, over all
/// rows: the square root of the variance lost), and the largest absolute difference of the
/// model outputs.
fn measure_errors(
    original: &ModelProto,
    compressed: &ModelProto,
    sites: &[Site],
    calib: &[NpyArray],
    batch_size: usize,
    progress: Progress<'_>,
) -> Result<MeasuredErrors> {
    let (mut names, owner) = site_outputs(sites);
    let model_outputs: Vec<String> = graph::graph(original)?
        .output
        .iter()
        .map(|v| v.name.clone())
        .collect();
    let first_model_output = names.len();
    names.extend(model_outputs);
    let a = TractRunner::new(original, calib, &names)?;
    let b = TractRunner::new(compressed, calib, &names)?;
    let mut err2 = vec![0.0f64; sites.len()];
    let mut square = vec![0.0f64; sites.len()];
    let mut sums: Vec<Vec<f64>> = sites.iter().map(|s| vec![0.0; s.feature_dim()]).collect();
    let mut rows = vec![0usize; sites.len()];
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
                let d = sums[s].len().max(1);
                let va = feature_rows(&sites[s], &names[o], sa, va)?;
                let vb = feature_rows(&sites[s], &names[o], sb, vb)?;
                rows[s] += va.len() / d;
                for (i, (x, y)) in va.iter().zip(vb.iter()).enumerate() {
                    let (x, y) = (f64::from(*x), f64::from(*y));
                    err2[s] += (x - y) * (x - y);
                    square[s] += x * x;
                    sums[s][i % d] += x;
                }
            }
            Ok(())
        },
    )?;
    let site_rel_errors = (0..sites.len())
        .map(|s| {
            let n = rows[s].max(1) as f64;
            let centered = (square[s] - sums[s].iter().map(|t| t * t / n).sum::<f64>()).max(0.0);
            if centered > 0.0 {
                (err2[s] / centered).sqrt()
            } else {
                err2[s].sqrt()
            }
        })
        .collect();
    Ok(MeasuredErrors {
        rows: a.rows(),
        site_rel_errors,
        output_max_abs_diff: max_diff,
    })
}

/// Separates the `label` array (0/1, `[N]` or `[N, 1]`) from the model inputs.
pub fn split_labels(data: &[NpyArray]) -> Result<(Vec<NpyArray>, Vec<f64>)> {
    let Some(label) = data.iter().find(|a| a.name == LABEL) else {
        let names: Vec<&str> = data.iter().map(|a| a.name.as_str()).collect();
        return Err(Error::InvalidArgument {
            reason: format!(
                "the evaluation data has no '{LABEL}' array (arrays: {}); it needs 0/1 labels, one \
                 per row",
                names.join(", ")
            ),
        });
    };
    if !matches!(label.shape.as_slice(), [_] | [_, 1]) {
        return Err(Error::InvalidArgument {
            reason: format!("'{LABEL}' is {}: expected [N] or [N, 1]", label.describe()),
        });
    }
    let inputs = data.iter().filter(|a| a.name != LABEL).cloned().collect();
    Ok((inputs, label.data.to_f64()))
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

/// `model`'s first output on `inputs` with tract, one score per row; `rows` is the number of
/// rows expected (the labels').
pub fn predict(
    model: &ModelProto,
    inputs: &[NpyArray],
    rows: usize,
    batch_size: usize,
    label: &str,
    progress: Progress<'_>,
) -> Result<Vec<f64>> {
    let first_output = graph::graph(model)?
        .output
        .first()
        .map(|o| o.name.clone())
        .ok_or_else(|| Error::InvalidArgument {
            reason: "the model has no outputs".into(),
        })?;
    let runner = TractRunner::new(model, inputs, std::slice::from_ref(&first_output))?;
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
                    reason: format!("output '{first_output}' is not one score per row"),
                });
            }
            scores.extend(values.iter().map(|&v| f64::from(v)));
            Ok(())
        },
    )?;
    Ok(scores)
}

/// Number of values in all initializers.
pub fn count_params(model: &ModelProto) -> usize {
    model
        .graph
        .as_ref()
        .map_or(0, |g| g.initializer.iter().filter_map(numel).sum())
}

/// Bytes of all initializer values (4 per f32, 2 per f16...), padding excluded.
pub fn weight_bytes(model: &ModelProto) -> u64 {
    model.graph.as_ref().map_or(0, |g| {
        g.initializer
            .iter()
            .map(|t| {
                let size = match DataType::try_from(t.data_type) {
                    Ok(
                        DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16,
                    ) => 2,
                    Ok(DataType::Double | DataType::Int64 | DataType::Uint64) => 8,
                    Ok(DataType::Int8 | DataType::Uint8 | DataType::Bool) => 1,
                    _ => 4,
                };
                numel(t).unwrap_or(0) as u64 * size
            })
            .sum()
    })
}

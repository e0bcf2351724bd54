//! What `compress` did, as `report.json` and as the table printed on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use super::ranks::RankPolicy;
use super::sites::Rejected;
use crate::error::{Error, Result};

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct CompressReport {
    /// Version of the exporter.
    pub tool_version: String,
    /// The input model's path (empty when compressed from memory).
    pub model: String,
    /// `afm`, `svd` or `none`.
    pub method: String,
    /// `f32` or `f16`.
    pub weights: String,
    /// Whether calibration was sequential.
    pub sequential: bool,
    /// The rank policy, e.g. `ratio 4`.
    pub policy: Option<String>,
    /// Calibration rows used to measure the errors (and, for AFM, the statistics).
    pub calibration_rows: Option<usize>,
    /// One entry per site, in topological order.
    pub sites: Vec<SiteReport>,
    /// Candidates that are not sites, and why.
    pub rejected: Vec<Rejected>,
    /// Whole-model totals.
    pub totals: Totals,
    /// Largest absolute difference of the model outputs on calibration data.
    pub output_max_abs_diff: Option<f64>,
    /// AUC and LogLoss before and after, with `--eval`.
    pub eval: Option<EvalSummary>,
    /// Initializers left f32 by `--weights f16` (values beyond the f16 range).
    pub f16_kept_f32: Vec<String>,
    /// Denormal f32 weights written as zero (values below 1.2e-38 in magnitude, which slow
    /// x86 arithmetic down).
    pub denormal_weights_flushed: usize,
    /// Embedding projections fused into dense layers (absent with `--no-fusion` or when no
    /// table was factorized).
    pub fusion: Option<FusionSummary>,
    /// The written files.
    pub artifact: Option<ArtifactSummary>,
    /// The native runtime's run of the written artifact before it was kept.
    pub native_check: Option<NativeCheckSummary>,
}

/// What the native runtime did with the written artifact (`compress` keeps only an artifact it
/// loads and scores, unless `--force`).
#[derive(Debug, Clone, Serialize)]
pub struct NativeCheckSummary {
    /// Rows scored: the calibration rows, else the evaluation rows, else one row of zeros.
    pub rows: usize,
    /// Whether the runtime loaded the artifact and scored every row (finite scores).
    pub passed: bool,
    /// The runtime's error, when it failed (the artifact was written because of `--force`).
    pub error: Option<String>,
}

/// What the fusion of embedding projections did.
#[derive(Debug, Clone, Serialize)]
pub struct FusionSummary {
    /// `(embedding site, dense weight it now feeds)`.
    pub fused: Vec<FusedProjection>,
    /// `(embedding site, why its projection stays explicit)`.
    pub kept: Vec<KeptProjection>,
    /// Largest model-output difference, fused vs unfused graph, on calibration rows.
    pub checked_max_diff: Option<f64>,
}

/// A fused projection.
#[derive(Debug, Clone, Serialize)]
pub struct FusedProjection {
    /// The embedding site.
    pub site: String,
    /// The dense weight that now reads its k-wide lookups.
    pub into: String,
    /// Whether the projection also stays, for readers other than the dense layer (an
    /// interaction layer).
    pub projection_kept: bool,
}

/// A projection left explicit.
#[derive(Debug, Clone, Serialize)]
pub struct KeptProjection {
    /// The embedding site.
    pub site: String,
    /// Why.
    pub reason: String,
}

/// One site.
#[derive(Debug, Clone, Serialize)]
pub struct SiteReport {
    /// Weight initializer name.
    pub name: String,
    /// `embedding` or `dense`.
    pub kind: String,
    /// Stored shape of the weight.
    pub shape: Vec<usize>,
    /// Sequential calibration level.
    pub level: usize,
    /// Rank, when factorized.
    pub rank: Option<usize>,
    /// Parameters (weight and bias) before.
    pub params_before: usize,
    /// Parameters after (factors, biases, means).
    pub params_after: usize,
    /// Fraction of the output variance (AFM) or weight energy (SVD) kept by the rank.
    pub retained_variance: Option<f64>,
    /// `|y - y'| / |y - mean(y)|` at the site's output on calibration data (the square root
    /// of the fraction of output variance lost), end to end: upstream compression and f16
    /// included.
    pub output_rel_error: Option<f64>,
    /// Why the site was kept, or another remark.
    pub note: Option<String>,
}

/// Totals.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Initializer values before.
    pub params_before: usize,
    /// Initializer values after.
    pub params_after: usize,
    /// `params_before / params_after`.
    pub reduction: f64,
    /// Bytes of initializer values before.
    pub weight_bytes_before: u64,
    /// Bytes of initializer values after (f16 counts 2 per value).
    pub weight_bytes_after: u64,
    /// Size of the input model file(s).
    pub file_bytes_before: Option<u64>,
    /// Size of `model.onnx` + `model.weights` as written.
    pub file_bytes_after: Option<u64>,
}

/// Evaluation before and after.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    /// Evaluation rows.
    pub rows: usize,
    /// AUC of the original.
    pub auc_before: f64,
    /// AUC of the compressed model.
    pub auc_after: f64,
    /// LogLoss of the original.
    pub logloss_before: f64,
    /// LogLoss of the compressed model.
    pub logloss_after: f64,
    /// `auc_before - auc_after`.
    pub auc_drop: f64,
    /// The gate's bound.
    pub max_auc_drop: f64,
    /// Whether the drop is within the bound.
    pub passed: bool,
    /// Whether `--force` was given.
    pub forced: bool,
}

/// The written artifact.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactSummary {
    /// Path of `model.onnx`.
    pub model: String,
    /// Path of `model.weights`.
    pub weights: String,
    /// Size of `model.onnx`.
    pub model_bytes: u64,
    /// Size of `model.weights`.
    pub weights_bytes: u64,
    /// Checksum recorded in the metadata.
    pub weights_checksum: String,
    /// Sampled identity recorded in the metadata.
    pub weights_identity: String,
}

/// `ratio 4`, `energy 0.95`, `rank a=4 b=8`.
pub fn describe_policy(policy: &RankPolicy) -> String {
    match policy {
        RankPolicy::Ratio(r) => format!("ratio {r}"),
        RankPolicy::Energy(e) => format!("energy {e}"),
        RankPolicy::Explicit(ranks) => {
            let parts: Vec<String> = ranks.iter().map(|(s, k)| format!("{s}={k}")).collect();
            format!("rank {}", parts.join(" "))
        }
    }
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

impl CompressReport {
    /// The factorized sites' ranks as a JSON object (the `ctr_edge.ranks` metadata).
    pub fn ranks_json(&self) -> String {
        let ranks: BTreeMap<&str, usize> = self
            .sites
            .iter()
            .filter_map(|s| s.rank.map(|k| (s.name.as_str(), k)))
            .collect();
        serde_json::to_string(&ranks).unwrap_or_else(|_| "{}".into())
    }

    /// Writes the report as pretty JSON, atomically (temporary file, then rename). `compress`
    /// writes it into the staged output folder, so that it is published with the artifact it
    /// describes ([`crate::fsutil::StagedDir`]).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::InvalidArgument {
            reason: format!("cannot encode the report: {e}"),
        })?;
        crate::fsutil::write_atomic(path, |w| {
            w.write_all(text.as_bytes())?;
            w.write_all(b"\n")
        })
    }

    /// The readable table: one line per site, totals, evaluation.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let policy = self.policy.as_deref().unwrap_or("-");
        let _ = writeln!(
            out,
            "method {}  ranks {}  weights {}{}",
            self.method,
            policy,
            self.weights,
            if self.sequential { "  sequential" } else { "" }
        );
        let name_w = self
            .sites
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(4)
            .clamp(4, 48);
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<9}  {:>11}  {:>5}  {:>9}  {:>9}  {:>9}  {:>9}",
            "site", "kind", "shape", "rank", "params", "after", "retained", "rel. err"
        );
        for s in &self.sites {
            let shape = s
                .shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("x");
            let name = if s.name.len() > name_w {
                format!("...{}", &s.name[s.name.len() - (name_w - 3)..])
            } else {
                s.name.clone()
            };
            let _ = writeln!(
                out,
                "{:<name_w$}  {:<9}  {:>11}  {:>5}  {:>9}  {:>9}  {:>9}  {:>9}",
                name,
                s.kind,
                shape,
                s.rank.map_or("-".into(), |k| k.to_string()),
                s.params_before,
                s.params_after,
                s.retained_variance
                    .map_or("-".into(), |v| format!("{:.3}%", 100.0 * v)),
                s.output_rel_error
                    .map_or("-".into(), |e| format!("{e:.2e}")),
            );
        }
        let notes: Vec<String> = self
            .sites
            .iter()
            .filter_map(|s| s.note.as_ref().map(|n| format!("  {}: {n}", s.name)))
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "notes:");
            for n in notes {
                let _ = writeln!(out, "{n}");
            }
        }
        let t = &self.totals;
        let _ = writeln!(
            out,
            "params       {} -> {}  ({:.2}x fewer)",
            t.params_before, t.params_after, t.reduction
        );
        let _ = writeln!(
            out,
            "weight bytes {} -> {}  ({:.2}x smaller)",
            human_bytes(t.weight_bytes_before),
            human_bytes(t.weight_bytes_after),
            t.weight_bytes_before as f64 / t.weight_bytes_after.max(1) as f64
        );
        if let (Some(b), Some(a)) = (t.file_bytes_before, t.file_bytes_after) {
            let _ = writeln!(
                out,
                "on disk      {} -> {}  (model.onnx + model.weights)",
                human_bytes(b),
                human_bytes(a)
            );
        }
        if let Some(d) = self.output_max_abs_diff {
            let _ = writeln!(
                out,
                "max |output difference| on {} calibration rows: {d:.3e}",
                self.calibration_rows.unwrap_or(0)
            );
        }
        if let Some(e) = &self.eval {
            let _ = writeln!(
                out,
                "AUC          {:.6} -> {:.6}  (drop {:+.6}, allowed {}){}",
                e.auc_before,
                e.auc_after,
                e.auc_drop,
                e.max_auc_drop,
                match (e.passed, e.forced) {
                    (true, _) => "",
                    (false, true) => "  EXCEEDED, written because of --force",
                    (false, false) => "  EXCEEDED",
                }
            );
            let _ = writeln!(
                out,
                "LogLoss      {:.6} -> {:.6}  ({} rows)",
                e.logloss_before, e.logloss_after, e.rows
            );
        }
        if let Some(f) = &self.fusion {
            let mut into: Vec<&str> = f.fused.iter().map(|p| p.into.as_str()).collect();
            into.sort_unstable();
            into.dedup();
            let _ = write!(out, "fusion       {} projection(s) fused", f.fused.len());
            if !into.is_empty() {
                let _ = write!(out, " into {}", into.join(", "));
            }
            let shared = f.fused.iter().filter(|p| p.projection_kept).count();
            if shared > 0 {
                let _ = write!(out, " ({shared} also kept for interaction layers)");
            }
            let _ = write!(out, "; {} kept explicit", f.kept.len());
            if let Some(k) = f.kept.first() {
                let _ = write!(out, " (e.g. {}: {})", k.site, k.reason);
            }
            let _ = writeln!(out);
        }
        if !self.f16_kept_f32.is_empty() {
            let _ = writeln!(
                out,
                "kept f32 (values beyond f16 range): {}",
                self.f16_kept_f32.join(", ")
            );
        }
        if self.denormal_weights_flushed > 0 {
            let _ = writeln!(
                out,
                "denormals    {} weight(s) below f32's normal range written as 0 (they slow x86 down)",
                self.denormal_weights_flushed
            );
        }
        if let Some(c) = &self.native_check {
            match &c.error {
                None => {
                    let _ = writeln!(
                        out,
                        "native check scored {} row(s) with the runtime",
                        c.rows
                    );
                }
                Some(e) => {
                    let _ = writeln!(
                        out,
                        "native check FAILED, written because of --force (it will fail the same \
                         way on the device): {e}"
                    );
                }
            }
        }
        if let Some(a) = &self.artifact {
            let _ = writeln!(out, "wrote        {} + {}", a.model, a.weights);
        }
        out
    }
}

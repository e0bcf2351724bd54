//! Low-rank compression of ONNX CTR models: the seed's method (Atomic Feature Mimicking, and
//! the SVD baseline) on any graph, as `ctr-edge compress` runs it.
//!
//! [`pipeline`] runs the stages over one plan per site; the modules, in the order they serve:
//! 1. [`graph`]: decode the ONNX file (prost) with every weight in memory; [`simplify`]: inline
//!    `If`s that static shapes decide (tract cannot type them);
//! 2. [`sites`]: find the embedding tables and dense layers that can be rewritten;
//! 3. [`measure`] + [`stats`]: run the model with tract (`crate::backend::tract`) on
//!    calibration data, the site outputs exposed, and stream per-site statistics (N, sum y,
//!    sum y y^T) in f64;
//! 4. [`factorize`]: eigendecompose (AFM) or SVD (baseline), build the two factors;
//! 5. [`ranks`]: choose the ranks (explicit, energy or a whole-model ratio);
//! 6. [`rewrite`]: write the factors into the graph (and the f16 variant); [`fuse`]: fold
//!    embedding projections into the dense layer they feed;
//! 7. [`measure`]: each site's output error and, with test data, AUC and LogLoss before and
//!    after; the pipeline refuses to write when the AUC drops by more than allowed;
//! 8. write the artifact ([`crate::artifact`]) and `report.json` ([`report`]).
//!
//! With `sequential`, sites are factorized level by level (a site's level is the number of
//! sites upstream of it), each level calibrated on the model whose upstream sites are already
//! compressed, so the second factor of a layer fits the inputs it will really see.

pub mod factorize;
pub mod fuse;
pub mod graph;
pub mod inspect;
pub mod measure;
pub mod pipeline;
pub mod ranks;
pub mod report;
pub mod rewrite;
pub mod simplify;
pub mod sites;
pub mod stats;

use std::fs;
use std::path::Path;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::ModelProto;

use self::graph::numel;
pub use self::measure::{calibrate, evaluate, predict};
pub use self::pipeline::compress_model;
use self::ranks::RankPolicy;
use self::report::CompressReport;
use crate::artifact::{stage_output, write_artifact_into};
use crate::error::{Error, Result};
use crate::fsutil::StagedDir;
use crate::npz::NpyArray;

/// Name of the report written beside the artifact.
pub use crate::artifact::REPORT_FILE;
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

crate::backend::by_name!(Method, "method", [Afm, Svd, None]);

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
/// report.json}` as a unit (the folder is replaced, see [`crate::artifact`]). Fails before
/// compressing when the output folder cannot be written (its parent is not writable, it holds
/// files that are not an artifact's, or it holds the input model); on any error `out_dir` is
/// left as it was.
pub fn compress_to_dir(
    model_path: &Path,
    calib: Option<&[NpyArray]>,
    test: Option<&[NpyArray]>,
    out_dir: &Path,
    options: &CompressOptions,
    progress: Progress<'_>,
) -> Result<CompressReport> {
    check_not_inside(out_dir, &[model_path])?;
    let model = graph::load_model(model_path)?;
    let staged = stage_output(out_dir)?;
    let mut compressed = compress_model(&model, calib, test, options, progress)?;
    compressed.report.model = model_path.display().to_string();
    compressed.report.totals.file_bytes_before = fs::metadata(model_path).map(|m| m.len()).ok();
    let check = NativeCheck {
        rows: calib.or(test),
        batch_size: options.batch_size,
        force: options.force,
    };
    write_compressed_into(compressed, staged, &check)
}

/// The data [`write_compressed_into`] scores the written artifact on with the native runtime
/// (its first `batch_size` rows, one batch; none: two rows of zeros), and whether a failure is
/// kept (`--force`).
struct NativeCheck<'d> {
    rows: Option<&'d [NpyArray]>,
    batch_size: usize,
    force: bool,
}

impl NativeCheck<'_> {
    /// Loads the artifact at `model_path` with the native runtime and scores the rows (the
    /// runtime refuses NaN scores): the rows scored, or the runtime's error.
    fn run(&self, model_path: &Path) -> std::result::Result<usize, String> {
        let Some(rows) = self.rows else {
            return crate::backend::run_on_zeros(model_path)
                .map(|()| crate::backend::ZERO_ROWS)
                .map_err(|e| e.to_string());
        };
        // One batch of the first rows (a last partial batch of 1 row would fail on models
        // whose `Squeeze` without axes drops the batch axis at batch 1, as onnxruntime does);
        // the evaluation data's labels are not a model input.
        let n = rows
            .iter()
            .filter_map(NpyArray::rows)
            .min()
            .unwrap_or(0)
            .min(self.batch_size);
        let inputs: Vec<NpyArray> = rows
            .iter()
            .filter(|a| a.name != LABEL)
            .filter_map(|a| a.rows_slice(0, n))
            .collect();
        let outputs = crate::backend::run_model(
            model_path,
            crate::backend::Backend::Native,
            &inputs,
            self.batch_size,
        )
        .map_err(|e| match e {
            Error::Runtime { source, .. } => source.to_string(),
            other => other.to_string(),
        })?;
        Ok(outputs
            .first()
            .and_then(|o| o.shape.first().copied())
            .unwrap_or(0))
    }
}

/// Refuses an output folder that is, or holds, one of `inputs`: replacing the folder would
/// delete it. (Paths are compared canonicalized; an output folder that does not exist yet
/// holds nothing.)
pub fn check_not_inside(out_dir: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(out) = fs::canonicalize(out_dir) else {
        return Ok(());
    };
    for input in inputs {
        let Ok(canonical) = fs::canonicalize(input) else {
            continue;
        };
        if canonical.starts_with(&out) {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "the output folder {} holds the input {}: writing there would replace it; \
                     choose another output folder",
                    out_dir.display(),
                    input.display()
                ),
            });
        }
    }
    Ok(())
}

/// Writes a compressed model and its report into `out_dir`, as a unit (artifact and report
/// together, or `out_dir` unchanged).
/// The artifact is kept only if the native runtime loads it and scores rows of zeros
/// (`ZERO_ROWS` of them: no calibration rows are at hand here).
pub fn write_compressed(compressed: Compressed, out_dir: &Path) -> Result<CompressReport> {
    let check = NativeCheck {
        rows: None,
        batch_size: 1,
        force: false,
    };
    write_compressed_into(compressed, stage_output(out_dir)?, &check)
}

/// [`write_compressed`] into a staged folder, committed once the report is in it and the
/// native runtime has scored the staged artifact (`check`; a failure leaves the output folder
/// as it was, unless forced).
fn write_compressed_into(
    compressed: Compressed,
    staged: StagedDir,
    check: &NativeCheck<'_>,
) -> Result<CompressReport> {
    let Compressed { model, mut report } = compressed;
    let meta = vec![
        (META_METHOD.to_string(), report.method.clone()),
        (META_WEIGHTS.to_string(), report.weights.clone()),
        (META_RANKS.to_string(), report.ranks_json()),
    ];
    let info = write_artifact_into(model, &staged, &meta)?;
    report.totals.file_bytes_after = Some(info.model_bytes + info.weights_bytes);
    report.artifact = Some(report::ArtifactSummary {
        model: info.model_path.display().to_string(),
        weights: info.weights_path.display().to_string(),
        model_bytes: info.model_bytes,
        weights_bytes: info.weights_bytes,
        weights_checksum: info.weights_checksum,
        weights_identity: info.weights_identity,
    });
    // The staged copy: what the commit below publishes.
    let staged_model = staged
        .path()
        .join(info.model_path.file_name().unwrap_or_default());
    let checked = check.run(&staged_model);
    if let (Err(reason), false) = (&checked, check.force) {
        return Err(Error::NativeCheck {
            reason: reason.clone(),
        });
    }
    if let Err(reason) = &checked {
        log::warn!("the native runtime cannot run the compressed model (written because of --force): {reason}");
    }
    report.native_check = Some(report::NativeCheckSummary {
        rows: *checked.as_ref().unwrap_or(&0),
        passed: checked.is_ok(),
        error: checked.err(),
    });
    report.write_json(&staged.path().join(REPORT_FILE))?;
    staged.commit()?;
    Ok(report)
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

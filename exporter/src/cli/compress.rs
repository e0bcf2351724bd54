//! `ctr-edge compress`: factorize a model's embedding tables and dense layers (AFM or SVD),
//! validate it, and write the artifact with its report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ctr_edge_exporter::artifact::output_folder_state;
use ctr_edge_exporter::backend::DEFAULT_BATCH_SIZE;
use ctr_edge_exporter::compress::ranks::RankPolicy;
use ctr_edge_exporter::compress::report::CompressReport;
use ctr_edge_exporter::compress::{
    check_not_inside, compress_to_dir, CompressOptions, Method, WeightType, DEFAULT_MAX_AUC_DROP,
    REPORT_FILE,
};
use ctr_edge_exporter::fsutil::FolderState;
use ctr_edge_exporter::npz::{self, NpyArray};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Args)]
pub struct CompressArgs {
    /// The ONNX model to compress.
    #[arg(value_name = "MODEL.onnx")]
    model: PathBuf,
    /// Calibration inputs (.npz, one array per model input); required for AFM.
    #[arg(long, value_name = "CALIB.npz")]
    calib: Option<PathBuf>,
    /// Output folder: model.onnx, model.weights, report.json (written as a unit; it must be new,
    /// empty, or hold an artifact and --overwrite be given).
    #[arg(short = 'o', long = "out", value_name = "OUT_DIR")]
    out: PathBuf,
    /// Replace the artifact the output folder already holds.
    #[arg(long)]
    overwrite: bool,
    /// Compression method.
    #[arg(long, value_enum, default_value_t = MethodArg::Afm)]
    method: MethodArg,
    /// Whole-model parameter reduction factor (ranks allocated across sites).
    #[arg(long, value_name = "R", group = "ranks")]
    ratio: Option<f64>,
    /// Per site, keep this fraction (0, 1] of the output variance.
    #[arg(long, value_name = "E", group = "ranks")]
    energy: Option<f64>,
    /// Rank of one site (its weight initializer's name, as `inspect` shows); repeatable.
    #[arg(long = "rank", value_name = "SITE=K", group = "ranks", value_parser = parse_rank)]
    rank: Vec<(String, usize)>,
    /// Precision of the written weights.
    #[arg(long, value_enum, default_value_t = WeightsArg::F32)]
    weights: WeightsArg,
    /// Calibrate each level of sites on the model whose upstream sites are already compressed.
    #[arg(long)]
    sequential: bool,
    /// Labelled validation data (.npz with a `label` array): AUC and LogLoss before and after,
    /// and the AUC gate. Use a validation split, not the test split: the gate is a selection
    /// step, and the test split is for one final reading (`ctr-edge eval`).
    #[arg(long = "eval", value_name = "VALID.npz")]
    eval: Option<PathBuf>,
    /// Refuse to write when the AUC drops by more than this (with --eval).
    #[arg(long, value_name = "D", default_value_t = DEFAULT_MAX_AUC_DROP, requires = "eval",
          value_parser = parse_auc_drop)]
    max_auc_drop: f64,
    /// Write even when the AUC gate fails or when the native runtime cannot load or score the
    /// result (the output and report.json say what will fail).
    #[arg(long)]
    force: bool,
    /// Keep every embedding projection explicit (by default a projection that feeds a dense
    /// layer through Concat/Flatten only is folded into that layer's weight and bias).
    #[arg(long)]
    no_fusion: bool,
    /// Rows per model call.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MethodArg {
    /// Atomic Feature Mimicking (PCA of each site's outputs).
    Afm,
    /// Truncated SVD of each weight.
    Svd,
    /// No factorization: re-lay the weights as the artifact.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WeightsArg {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (+ Cast to float).
    F16,
}

/// An AUC drop: a finite number (negative asks for a gain).
fn parse_auc_drop(s: &str) -> Result<f64, String> {
    let d = s.parse::<f64>().map_err(|e| format!("'{s}': {e}"))?;
    if !d.is_finite() {
        return Err(format!("'{s}': the AUC drop must be a finite number"));
    }
    Ok(d)
}

fn parse_rank(s: &str) -> Result<(String, usize), String> {
    let (site, k) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("'{s}': expected SITE=K"))?;
    let k = k
        .parse::<usize>()
        .map_err(|e| format!("'{s}': rank '{k}': {e}"))?;
    if site.is_empty() {
        return Err(format!("'{s}': empty site name"));
    }
    Ok((site.to_owned(), k))
}

impl CompressArgs {
    fn options(&self) -> Result<CompressOptions> {
        let ranks = match (self.ratio, self.energy, self.rank.is_empty()) {
            (Some(r), _, _) => Some(RankPolicy::Ratio(r)),
            (_, Some(e), _) => Some(RankPolicy::Energy(e)),
            (_, _, false) => Some(RankPolicy::Explicit(self.rank.clone())),
            _ => None,
        };
        let method = match self.method {
            MethodArg::Afm => Method::Afm,
            MethodArg::Svd => Method::Svd,
            MethodArg::None => Method::None,
        };
        if method != Method::None && ranks.is_none() {
            bail!(
                "choose the ranks: --ratio R, --energy E or --rank SITE=K (see `ctr-edge inspect`)"
            );
        }
        if method == Method::Afm && self.calib.is_none() {
            bail!("AFM needs calibration data: --calib CALIB.npz");
        }
        if self.batch_size == 0 {
            bail!("the batch size must be at least 1");
        }
        Ok(CompressOptions {
            method,
            ranks,
            weights: match self.weights {
                WeightsArg::F32 => WeightType::F32,
                WeightsArg::F16 => WeightType::F16,
            },
            sequential: self.sequential,
            batch_size: self.batch_size,
            max_auc_drop: self.max_auc_drop,
            force: self.force,
            fuse: !self.no_fusion,
        })
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<NpyArray>> {
    npz::read_npz(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// Refuses, before any work, an output folder that holds one of the inputs, or an artifact
/// without `--overwrite`. (The library refuses a folder with files that are not an
/// artifact's: it never replaces those, with or without `--overwrite`.)
fn check_output(args: &CompressArgs) -> Result<()> {
    let inputs: Vec<&Path> = [
        Some(args.model.as_path()),
        args.calib.as_deref(),
        args.eval.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    check_not_inside(&args.out, &inputs)?;
    if let FolderState::Holds(files) = output_folder_state(&args.out)? {
        if !args.overwrite {
            bail!(
                "{} already holds an artifact ({}); pass --overwrite to replace it",
                args.out.display(),
                files.join(", ")
            );
        }
    }
    Ok(())
}

pub fn execute(args: &CompressArgs) -> Result<()> {
    let options = args.options()?;
    check_output(args)?;
    let calib = args
        .calib
        .as_deref()
        .map(|p| read(p, "calibration data"))
        .transpose()?;
    let test = args
        .eval
        .as_deref()
        .map(|p| read(p, "evaluation data"))
        .transpose()?;
    let mut bar = StageProgress::new();
    let report = compress_to_dir(
        &args.model,
        calib.as_deref(),
        test.as_deref(),
        &args.out,
        &options,
        &mut |stage, done, total| bar.update(stage, done, total),
    );
    bar.finish();
    let report = report.with_context(|| format!("compressing {}", args.model.display()))?;
    print_report(&report, args.json, &args.out)
}

/// Prints the report as a table (with where the report file went) or as JSON.
pub fn print_report(report: &CompressReport, json: bool, out: &Path) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.to_table());
        println!("report       {}", out.join(REPORT_FILE).display());
    }
    Ok(())
}

/// One progress bar per named stage (calibrating, measuring, evaluating...) on stderr, drawn
/// only on a terminal.
pub struct StageProgress {
    bar: Option<ProgressBar>,
    stage: String,
    visible: bool,
}

impl StageProgress {
    /// A progress display, hidden when stderr is not a terminal.
    pub fn new() -> StageProgress {
        StageProgress {
            bar: None,
            stage: String::new(),
            visible: std::io::stderr().is_terminal(),
        }
    }

    /// `done` of `total` rows of `stage`.
    pub fn update(&mut self, stage: &str, done: usize, total: usize) {
        if !self.visible {
            return;
        }
        if self.bar.is_none() || self.stage != stage {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:>22} [{elapsed_precise}] {wide_bar} {pos}/{len} rows",
            ) {
                bar.set_style(style);
            }
            bar.set_message(stage.to_owned());
            self.bar = Some(bar);
            self.stage = stage.to_owned();
        }
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    /// Removes the bar.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

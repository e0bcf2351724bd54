//! `ctr-edge demo`: the bundled MovieLens DeepFM example end to end. Compresses it with AFM at
//! a 4x parameter reduction (f32 and f16 weights), reads the AUC gate on the validation split,
//! evaluates original and compressed models on the test split with tract and with the native
//! runtime, and prints one summary table.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use ctr_edge_exporter::backend::{run_model, Backend, DEFAULT_BATCH_SIZE};
use ctr_edge_exporter::compress::ranks::RankPolicy;
use ctr_edge_exporter::compress::{
    compress_to_dir, split_labels, CompressOptions, Method, WeightType,
};
use ctr_edge_exporter::metrics;
use ctr_edge_exporter::npz::{self, NpyArray};

use super::compress::StageProgress;

/// The bundled example, relative to the exporter crate.
const FIXTURE: &str = "../tests/fixtures/movielens_deepfm";
/// The parameter reduction of the demo.
const RATIO: f64 = 4.0;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder of the example (model.onnx, calib.npz, valid.npz, test.npz).
    #[arg(long, value_name = "DIR")]
    fixture: Option<PathBuf>,
    /// Where the compressed models go (default: a `ctr-edge-demo` folder in the system's
    /// temporary folder).
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    out: Option<PathBuf>,
}

/// One row of the summary.
struct Row {
    name: String,
    params: usize,
    bytes: u64,
    tract: Scores,
    native: std::result::Result<Scores, String>,
    max_diff: Option<f64>,
}

#[derive(Clone)]
struct Scores {
    auc: f64,
    logloss: f64,
    probs: Vec<f64>,
}

fn score(model: &Path, backend: Backend, inputs: &[NpyArray], labels: &[f64]) -> Result<Scores> {
    let outputs = run_model(model, backend, inputs, DEFAULT_BATCH_SIZE)?;
    let Some(first) = outputs.first() else {
        bail!("{} has no outputs", model.display());
    };
    let probs = first.data.to_f64();
    Ok(Scores {
        auc: metrics::auc(&probs, labels)?,
        logloss: metrics::logloss(&probs, labels)?,
        probs,
    })
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

pub fn execute(args: &DemoArgs) -> Result<()> {
    let fixture = args
        .fixture
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE));
    let fixture = fixture.canonicalize().unwrap_or(fixture);
    let model = fixture.join("model.onnx");
    for file in ["model.onnx", "calib.npz", "valid.npz", "test.npz"] {
        if !fixture.join(file).is_file() {
            bail!(
                "the demo needs {} (the bundled example; run from a full checkout of the \
                 repository, or give --fixture DIR with model.onnx, calib.npz, valid.npz and \
                 test.npz)",
                fixture.join(file).display()
            );
        }
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("ctr-edge-demo"));
    let calib = npz::read_npz(&fixture.join("calib.npz")).context("reading calib.npz")?;
    let valid = npz::read_npz(&fixture.join("valid.npz")).context("reading valid.npz")?;
    let test = npz::read_npz(&fixture.join("test.npz")).context("reading test.npz")?;
    let (inputs, labels) = split_labels(&test)?;
    let calib_rows = calib.iter().find_map(NpyArray::rows).unwrap_or(0);
    println!(
        "ctr-edge demo: DeepFM on MovieLens-100k ({}), {calib_rows} calibration rows, {} test \
         rows",
        fixture.display(),
        labels.len()
    );

    let mut rows = Vec::new();
    let original_params = {
        let m = ctr_edge_exporter::compress::graph::load_model(&model)?;
        ctr_edge_exporter::compress::count_params(&m)
    };
    rows.push(evaluate_row(
        "original".into(),
        &model,
        original_params,
        std::fs::metadata(&model)?.len(),
        &inputs,
        &labels,
    )?);

    for weights in [WeightType::F32, WeightType::F16] {
        let dir = out.join(format!("afm-ratio{RATIO}-{}", weights.name()));
        let options = CompressOptions {
            method: Method::Afm,
            ranks: Some(RankPolicy::Ratio(RATIO)),
            weights,
            // The gate's verdict is printed below; the demo shows the result either way.
            force: true,
            ..CompressOptions::default()
        };
        let mut bar = StageProgress::new();
        let report = compress_to_dir(
            &model,
            Some(&calib),
            Some(&valid),
            &dir,
            &options,
            &mut |stage, done, total| bar.update(stage, done, total),
        );
        bar.finish();
        let report = report.with_context(|| format!("compressing into {}", dir.display()))?;
        if let Some(e) = &report.eval {
            println!(
                "AFM ratio {RATIO}, {}: AUC gate on the validation split: {:.6} -> {:.6}, {} \
                 (largest drop allowed {})",
                weights.name(),
                e.auc_before,
                e.auc_after,
                if e.passed {
                    "passed"
                } else {
                    "REFUSED (written anyway: demo)"
                },
                e.max_auc_drop
            );
        }
        rows.push(evaluate_row(
            format!("AFM ratio {RATIO}, {}", weights.name()),
            &dir.join("model.onnx"),
            report.totals.params_after,
            report.totals.file_bytes_after.unwrap_or(0),
            &inputs,
            &labels,
        )?);
    }

    println!();
    println!(
        "{:<18}  {:>9}  {:>10}  {:>10}  {:>11}  {:>10}  {:>10}",
        "model", "params", "on disk", "AUC tract", "AUC native", "LogLoss", "|nat-tr|"
    );
    for r in &rows {
        let auc_native = match &r.native {
            Ok(s) => format!("{:.6}", s.auc),
            Err(_) => "n/a".into(),
        };
        println!(
            "{:<18}  {:>9}  {:>10}  {:>10.6}  {:>11}  {:>10.6}  {:>10}",
            r.name,
            r.params,
            human_bytes(r.bytes),
            r.tract.auc,
            auc_native,
            r.tract.logloss,
            r.max_diff.map_or("-".into(), |d| format!("{d:.1e}")),
        );
    }
    for r in &rows {
        if let Err(e) = &r.native {
            println!("native runtime on {}: {e}", r.name);
        }
    }
    let base = &rows[0];
    for r in &rows[1..] {
        println!(
            "{}: {:.2}x fewer parameters, {:.2}x smaller on disk, AUC {:+.6} (tract)",
            r.name,
            base.params as f64 / r.params.max(1) as f64,
            base.bytes as f64 / r.bytes.max(1) as f64,
            r.tract.auc - base.tract.auc
        );
    }
    println!("compressed models and reports in {}", out.display());
    println!(
        "|nat-tr| is the largest difference between the native runtime's and tract's \
         probabilities on the test rows."
    );
    Ok(())
}

fn evaluate_row(
    name: String,
    model: &Path,
    params: usize,
    bytes: u64,
    inputs: &[NpyArray],
    labels: &[f64],
) -> Result<Row> {
    let tract = score(model, Backend::Tract, inputs, labels)
        .with_context(|| format!("evaluating {} with tract", model.display()))?;
    let native = score(model, Backend::Native, inputs, labels).map_err(|e| format!("{e:#}"));
    let max_diff = native.as_ref().ok().map(|n| {
        n.probs
            .iter()
            .zip(&tract.probs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    });
    Ok(Row {
        name,
        params,
        bytes,
        tract,
        native,
        max_diff,
    })
}

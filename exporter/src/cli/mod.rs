//! Command-line definitions (clap derive) and the dispatch to one module per subcommand.

mod bench;
mod compress;
mod demo;
mod eval;
mod inspect;
mod progress;
mod run;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ctr_edge_exporter::backend::{Backend, DEFAULT_BATCH_SIZE};
use ctr_edge_exporter::npz::{self, NpyArray};

/// ctr-edge: run and evaluate (compressed) ONNX CTR models.
#[derive(Debug, Parser)]
#[command(name = "ctr-edge", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a model on the arrays of an .npz file and summarize (or save) its outputs.
    Run(run::RunArgs),
    /// Evaluate a model on labelled data: AUC, LogLoss, positives rate.
    Eval(eval::EvalArgs),
    /// List a model's inputs, outputs and compressible sites (embedding tables, dense layers).
    Inspect(inspect::InspectArgs),
    /// Compress a model (AFM or SVD), validate it and write model.onnx + model.weights.
    Compress(compress::CompressArgs),
    /// Compress the bundled MovieLens DeepFM example (AFM, 4x) and compare it with the original.
    Demo(demo::DemoArgs),
    /// Benchmark a model: open time, memory, latency percentiles and throughput per batch size
    /// (the on-device harness `ctr-edge-bench`, here with `--vs tract`).
    Bench(bench::BenchArgs),
}

/// Run the parsed command.
pub fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run::execute(&args),
        Command::Eval(args) => eval::execute(&args),
        Command::Inspect(args) => inspect::execute(&args),
        Command::Compress(args) => compress::execute(&args),
        Command::Demo(args) => demo::execute(&args),
        Command::Bench(args) => bench::execute(&args),
    }
}

/// Engine choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// The ctr-edge native runtime.
    Native,
    /// tract-onnx (reference).
    Tract,
}

impl From<BackendArg> for Backend {
    fn from(arg: BackendArg) -> Backend {
        match arg {
            BackendArg::Native => Backend::Native,
            BackendArg::Tract => Backend::Tract,
        }
    }
}

/// Arguments shared by the commands that run a model on data.
#[derive(Debug, Args)]
struct ModelDataArgs {
    /// The ONNX model.
    #[arg(value_name = "MODEL.onnx")]
    model: PathBuf,
    /// Input arrays (.npz), one per model input, named as the inputs; first axis = batch.
    #[arg(long, value_name = "FILE.npz")]
    data: PathBuf,
    /// Engine that runs the model.
    #[arg(long, value_enum, default_value_t = BackendArg::Native)]
    backend: BackendArg,
    /// Rows per model call.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH_SIZE, value_parser = parse_batch_size)]
    batch_size: usize,
}

fn parse_batch_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("the batch size must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl ModelDataArgs {
    /// Read the data file, with its name in any error.
    fn read_data(&self) -> Result<Vec<NpyArray>> {
        npz::read_npz(&self.data).with_context(|| format!("reading data {}", self.data.display()))
    }

    /// Run the model on `inputs`, with a progress bar on a terminal; returns the outputs and
    /// the wall time (load + run) in seconds. An artifact's weights file is checked against
    /// its model first, every byte, whatever the backend.
    fn run_model(&self, inputs: &[NpyArray], rows: usize) -> Result<(Vec<NpyArray>, f64)> {
        ctr_edge_exporter::artifact::verify_artifact(&self.model)?;
        let backend = Backend::from(self.backend);
        let mut bar = progress::RowsProgress::new(rows, self.batch_size);
        let start = std::time::Instant::now();
        let outputs = ctr_edge_exporter::backend::run_model_with_progress(
            &self.model,
            backend,
            inputs,
            self.batch_size,
            &mut |done, total| bar.update(done, total),
        )
        .with_context(|| {
            format!(
                "running {} on {} with the {backend} backend",
                self.model.display(),
                self.data.display()
            )
        })?;
        let seconds = start.elapsed().as_secs_f64();
        bar.finish();
        Ok((outputs, seconds))
    }
}

/// Rows of the data: the first axis of the first array that has one.
fn data_rows(arrays: &[NpyArray]) -> usize {
    arrays.iter().find_map(NpyArray::rows).unwrap_or(0)
}

/// `12.3 ms` / `1.52 s`.
fn format_seconds(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

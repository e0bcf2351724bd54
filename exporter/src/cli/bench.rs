//! `ctr-edge bench`: the on-device benchmark harness (`ctr-edge-bench`) on the host, with
//! tract built in for `--vs tract`. Parsing is clap's; everything else is the harness library
//! (`ctr-edge-harness`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use ctr_edge_harness::options::{parse_batches, DEFAULT_ITERS, DEFAULT_OPEN_REPS, DEFAULT_WARMUP};
use ctr_edge_harness::{Options, Reference};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The ONNX model (usually the compressed one).
    #[arg(value_name = "MODEL.onnx")]
    model: PathBuf,
    /// Its uncompressed original, measured the same way (ratios original / model).
    #[arg(long, value_name = "ORIG.onnx")]
    original: Option<PathBuf>,
    /// Comma-separated batch sizes.
    #[arg(long, value_name = "LIST", default_value = "1,32,256,1024", value_parser = parse_batch_list)]
    batch: BatchList,
    /// Timed runs per batch size.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ITERS)]
    iters: usize,
    /// Untimed runs per batch size before the timed ones.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WARMUP)]
    warmup: usize,
    /// Opens whose median is the open time.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_OPEN_REPS)]
    open_reps: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also measure another engine on the same files, with ratios.
    #[arg(long, value_enum, value_name = "ENGINE")]
    vs: Option<VsArg>,
}

/// Engines to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum VsArg {
    /// tract-onnx.
    Tract,
}

/// Parsed `--batch` (a newtype: clap treats a bare `Vec` as a repeated argument).
#[derive(Debug, Clone)]
struct BatchList(Vec<usize>);

fn parse_batch_list(s: &str) -> Result<BatchList, String> {
    parse_batches(s).map(BatchList).map_err(|e| e.to_string())
}

pub fn execute(args: &BenchArgs) -> Result<()> {
    // Every byte of an artifact's weights checked once, before the timed opens.
    for model in std::iter::once(&args.model).chain(&args.original) {
        ctr_edge_exporter::artifact::verify_artifact(model)?;
    }
    let opts = Options {
        model: args.model.clone(),
        original: args.original.clone(),
        batches: args.batch.0.clone(),
        iters: args.iters,
        warmup: args.warmup,
        open_reps: args.open_reps,
        json: args.json,
        vs: args.vs.map(|VsArg::Tract| Reference::Tract),
        no_fusion: false,
    };
    let report = ctr_edge_harness::run(&opts)?;
    if opts.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

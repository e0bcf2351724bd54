//! `ctr-edge inspect`: a model's inputs, outputs and compressible sites.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ctr_edge_exporter::compress::graph::load_model;
use ctr_edge_exporter::compress::inspect::inspect;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ONNX model.
    #[arg(value_name = "MODEL.onnx")]
    model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: &InspectArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let report = inspect(&model).with_context(|| format!("inspecting {}", args.model.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

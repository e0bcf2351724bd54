//! `ctr-edge run`: run a model on data, print a short summary of every output and optionally
//! save the outputs (`.npz`: all of them; `.npy`: the single output).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use ctr_edge_exporter::npz::{self, NpyArray};

use super::{data_rows, format_seconds, ModelDataArgs};

/// Values shown per output in the summary.
const FIRST_VALUES: usize = 5;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: ModelDataArgs,
    /// Write the outputs: .npz (every output, named as in the model) or .npy (single output).
    #[arg(short = 'o', long = "output", value_name = "OUT.npz|OUT.npy")]
    output: Option<PathBuf>,
}

pub fn execute(args: &RunArgs) -> Result<()> {
    let common = &args.common;
    // Check the output path before spending time on the model.
    let format = args.output.as_deref().map(OutputFormat::of).transpose()?;
    let inputs = common.read_data()?;
    let rows = data_rows(&inputs);
    let (outputs, seconds) = common.run_model(&inputs, rows)?;

    println!(
        "{} on {}: {rows} rows, {} backend, {} (load + run)",
        common.model.display(),
        common.data.display(),
        ctr_edge_exporter::backend::Backend::from(common.backend),
        format_seconds(seconds)
    );
    for output in &outputs {
        println!("{}", summarize(output));
    }

    if let (Some(path), Some(format)) = (&args.output, format) {
        match format {
            OutputFormat::Npz => npz::write_npz(path, &outputs),
            OutputFormat::Npy => match outputs.as_slice() {
                [single] => npz::write_npy(path, single),
                _ => bail!(
                    "the model has {} outputs; a .npy file holds one: write a .npz instead",
                    outputs.len()
                ),
            },
        }
        .with_context(|| format!("writing outputs to {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum OutputFormat {
    Npz,
    Npy,
}

impl OutputFormat {
    fn of(path: &std::path::Path) -> Result<OutputFormat> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("npz") => Ok(OutputFormat::Npz),
            Some("npy") => Ok(OutputFormat::Npy),
            _ => bail!("output file {} must end in .npz or .npy", path.display()),
        }
    }
}

/// `name  f32 [200, 1]  min .. mean .. max ..  first: a, b, c, ...`
fn summarize(output: &NpyArray) -> String {
    let values = output.data.to_f64();
    let mut line = format!("{}  {}", output.name, output.describe());
    let finite: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if finite.is_empty() {
        line.push_str(if values.is_empty() {
            "  (empty)"
        } else {
            "  (all NaN)"
        });
        return line;
    }
    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = finite.iter().sum::<f64>() / finite.len() as f64;
    line.push_str(&format!("  min {min:.6}  mean {mean:.6}  max {max:.6}"));
    let nans = values.len() - finite.len();
    if nans > 0 {
        line.push_str(&format!("  ({nans} NaN)"));
    }
    let first: Vec<String> = values
        .iter()
        .take(FIRST_VALUES)
        .map(|v| format!("{v:.6}"))
        .collect();
    let more = if values.len() > FIRST_VALUES {
        ", ..."
    } else {
        ""
    };
    line.push_str(&format!("\n    first: {}{more}", first.join(", ")));
    line
}

//! `ctr-edge eval`: score labelled data and report AUC, LogLoss and the positives rate.
//!
//! The data holds the model inputs plus a `label` array (0/1, shape `[N]` or `[N, 1]`); the
//! model's first output is the click probability, one per row.

use anyhow::{bail, Context, Result};
use clap::Args;
use ctr_edge_exporter::backend::Backend;
use ctr_edge_exporter::metrics;
use ctr_edge_exporter::npz::NpyArray;
use serde::Serialize;

use super::{data_rows, format_seconds, ModelDataArgs};

/// Name of the array holding the labels.
const LABEL: &str = "label";

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    common: ModelDataArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The report, as printed by `--json`.
#[derive(Debug, Serialize)]
struct EvalReport {
    model: String,
    data: String,
    backend: String,
    /// The model output used as the score.
    output: String,
    rows: usize,
    auc: f64,
    /// `null` when the scores are not probabilities (outside [0, 1]).
    logloss: Option<f64>,
    positives_rate: f64,
    /// Wall time of loading and running the model.
    seconds: f64,
}

pub fn execute(args: &EvalArgs) -> Result<()> {
    let common = &args.common;
    let mut arrays = common.read_data()?;
    let Some(label_ix) = arrays.iter().position(|a| a.name == LABEL) else {
        let names: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
        bail!(
            "{} has no '{LABEL}' array (arrays: {}); eval needs 0/1 labels, one per row",
            common.data.display(),
            names.join(", ")
        );
    };
    let label = arrays.remove(label_ix);
    let labels = labels_of(&label).with_context(|| format!("in {}", common.data.display()))?;
    let rows = labels.len();
    let input_rows = data_rows(&arrays);
    if input_rows != rows {
        bail!(
            "{}: '{LABEL}' has {rows} rows, the inputs {input_rows}",
            common.data.display()
        );
    }

    let (outputs, seconds) = common.run_model(&arrays, rows)?;
    let Some(output) = outputs.first() else {
        bail!("{} has no outputs", common.model.display());
    };
    if outputs.len() > 1 {
        log::info!(
            "the model has {} outputs; evaluating the first, '{}'",
            outputs.len(),
            output.name
        );
    }
    if output.rows() != Some(rows) || output.data.len() != rows {
        bail!(
            "output '{}' is {}, not one score per row for the {rows} labels ([{rows}] or \
             [{rows}, 1])",
            output.name,
            output.describe()
        );
    }
    let scores = output.data.to_f64();

    let auc = metrics::auc(&scores, &labels).context("computing the AUC")?;
    let logloss = if scores.iter().all(|p| (0.0..=1.0).contains(p)) {
        Some(metrics::logloss(&scores, &labels).context("computing the LogLoss")?)
    } else {
        None
    };
    let positives_rate = labels.iter().sum::<f64>() / rows as f64;
    let report = EvalReport {
        model: common.model.display().to_string(),
        data: common.data.display().to_string(),
        backend: Backend::from(common.backend).to_string(),
        output: output.name.clone(),
        rows,
        auc,
        logloss,
        positives_rate,
        seconds,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn print_text(r: &EvalReport) {
    println!("model      {}", r.model);
    println!("data       {}", r.data);
    println!("rows       {}", r.rows);
    println!("AUC        {:.6}", r.auc);
    match r.logloss {
        Some(l) => println!("LogLoss    {l:.6}"),
        None => println!(
            "LogLoss    n/a (output '{}' is not in [0, 1]: logits?)",
            r.output
        ),
    }
    println!(
        "positives  {:.6} ({:.2}%)",
        r.positives_rate,
        100.0 * r.positives_rate
    );
    println!("backend    {}", r.backend);
    println!("time       {} (load + run)", format_seconds(r.seconds));
}

/// The labels as f64, one per row; shape `[N]` or `[N, 1]`.
fn labels_of(label: &NpyArray) -> Result<Vec<f64>> {
    match label.shape.as_slice() {
        [_] | [_, 1] => Ok(label.data.to_f64()),
        _ => bail!(
            "'{LABEL}' is {}: expected one label per row, shape [N] or [N, 1]",
            label.describe()
        ),
    }
}

//! `denormals`: what denormal weights cost, and what ctr-edge does about them, side by side in
//! one run on the fixtures trained with weight decay (whose unused weights decay below f32's
//! normal range) and on one without denormals as a control.
//!
//! For each fixture, four ctr-edge sessions run interleaved (one call of each per round, so
//! that the machine's slow phases hit all alike) at each batch size, on the fixture's test
//! rows (real ids and values; the first `batch` rows):
//! - `orig/ieee`: the original model, the run's flush off (`Session::set_flush_denormals`):
//!   IEEE denormals, as before;
//! - `orig/ftz`: the original model with the default flush-to-zero run mode;
//! - `relaid/ieee`: the model re-laid by `ctr-edge compress --method none` (denormal weights
//!   written as zero), flush off: the compress-time fix alone;
//! - `relaid/ftz`: both (what `compress` + the default session give).
//!
//! Usage: `cargo run --release -p ctr-edge-bench --example denormals -- [--batch 1,32,256]
//! [--iters N] [FIXTURE ...]` (defaults: batches 1,32,256, 30 iterations, movielens_nfm,
//! talkingdata_deepfm, movielens_deepfm).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ctr_edge_exporter::compress::{compress_to_dir, CompressOptions, Method};
use ctr_edge_exporter::npz::{read_npz, ArrayData, NpyArray};
use ctr_edge_harness::timing::{time_runs_interleaved, Run};
use ctr_edge_harness::BenchError;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Input, Model};
use ctr_edge_tests::onnx_build::TempDir;

const LABEL: &str = "label";

fn main() -> Result<()> {
    let mut batches = vec![1usize, 32, 256];
    let mut iters = 30usize;
    let mut fixtures = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--batch" => {
                let list = args.next().context("--batch needs a list")?;
                batches = list
                    .split(',')
                    .map(|b| b.trim().parse().context("--batch: not a number"))
                    .collect::<Result<_>>()?;
            }
            "--iters" => iters = args.next().context("--iters needs N")?.parse()?,
            flag if flag.starts_with('-') => {
                bail!("unknown option {flag} (usage: denormals [--batch LIST] [--iters N] [FIXTURE ...])")
            }
            name => fixtures.push(name.to_owned()),
        }
    }
    if fixtures.is_empty() {
        fixtures = ["movielens_nfm", "talkingdata_deepfm", "movielens_deepfm"]
            .map(String::from)
            .to_vec();
    }
    println!(
        "denormals: p50 us per batch, {iters} interleaved rounds after 3 warm-up rounds; {}",
        machine_line()
    );
    println!(
        "{:<20} {:>10} {:>6} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9}",
        "fixture",
        "denormals",
        "batch",
        "orig/ieee",
        "orig/ftz",
        "relaid/ieee",
        "relaid/ftz",
        "ieee/ftz",
        "ieee/both"
    );
    for name in &fixtures {
        measure(name, &batches, iters)?;
    }
    Ok(())
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn measure(name: &str, batches: &[usize], iters: usize) -> Result<()> {
    let dir = fixture_dir(name);
    let original = dir.join("model.onnx");
    let rows = read_npz(&dir.join("test.npz")).with_context(|| format!("{name}: test.npz"))?;
    let tmp = TempDir::new("denormals");
    let relaid = tmp.path().join("relaid");
    let options = CompressOptions {
        method: Method::None,
        ..CompressOptions::default()
    };
    let report = compress_to_dir(&original, None, None, &relaid, &options, &mut |_, _, _| {})
        .with_context(|| format!("{name}: compress --method none"))?;
    let orig = Model::open(&original)?;
    let lay = Model::open(relaid.join("model.onnx"))?;
    let mut sessions = [orig.session(), orig.session(), lay.session(), lay.session()];
    sessions[0].set_flush_denormals(false);
    sessions[2].set_flush_denormals(false);
    for &batch in batches {
        let inputs: Vec<NpyArray> = rows
            .iter()
            .filter(|a| a.name != LABEL)
            .map(|a| {
                a.rows_slice(0, batch)
                    .context("fewer test rows than the batch")
            })
            .collect::<Result<_>>()?;
        let given: Vec<Input<'_>> = inputs.iter().map(as_input).collect::<Result<_>>()?;
        let [s0, s1, s2, s3] = &mut sessions;
        let mut r0 = || s0.run(&given).map_err(runtime);
        let mut r1 = || s1.run(&given).map_err(runtime);
        let mut r2 = || s2.run(&given).map_err(runtime);
        let mut r3 = || s3.run(&given).map_err(runtime);
        let mut runs: [Run<'_>; 4] = [&mut r0, &mut r1, &mut r2, &mut r3];
        let lat = time_runs_interleaved(3, iters, &mut runs)?;
        let p: Vec<f64> = lat.iter().map(|l| l.p50_us).collect();
        println!(
            "{:<20} {:>10} {:>6} {:>11.1} {:>11.1} {:>11.1} {:>11.1} {:>8.2}x {:>8.2}x",
            name,
            report.denormal_weights_flushed,
            batch,
            p[0],
            p[1],
            p[2],
            p[3],
            p[0] / p[1],
            p[0] / p[3]
        );
    }
    Ok(())
}

fn runtime(e: ctr_edge_runtime::Error) -> BenchError {
    BenchError::Usage(e.to_string())
}

fn as_input(a: &NpyArray) -> Result<Input<'_>> {
    let data = match &a.data {
        ArrayData::F32(v) => InputData::F32(v),
        ArrayData::I64(v) => InputData::I64(v),
        ArrayData::I32(v) => InputData::I32(v),
        _ => bail!("input {}: dtype not fed by this benchmark", a.name),
    };
    Ok(Input {
        name: &a.name,
        shape: &a.shape,
        data,
    })
}

/// CPU model and core count, from /proc/cpuinfo where there is one.
fn machine_line() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores, one thread")
}

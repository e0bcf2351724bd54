//! `open-time`: how long opening a 256 MiB model takes, and how much resident memory it adds,
//! in ctr-edge and in tract, side by side in one run.
//!
//! The example writes a synthetic artifact (an embedding table of 2^20 x 64 f32 = 256 MiB, a
//! 64 x 64 dense layer, a sigmoid) with the exporter, then re-executes itself once per
//! measurement (`open-time child ENGINE MODEL`), so that every open starts in a fresh process
//! with nothing cached in the heap: the child reads `VmRSS`/`RssAnon` from `/proc/self/status`,
//! opens the model, reads them again, and prints one line of figures. The parent reports
//! medians.
//!
//! The page cache cannot be dropped without privileges, and the file has just been written:
//! figures are warm-cache figures (the cost of a model the OS already holds, the common case
//! of an app opening its model again).
//!
//! Usage: `cargo run --release -p ctr-edge-bench --example open_time -- [--rows R] [--reps N]
//! [--json]` (defaults: 1048576 rows, 10 reps).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use ctr_edge_exporter::artifact::{write_artifact, MODEL_FILE};
use ctr_edge_tests::onnx_build::{model, node, tensor_f32, value_info, values, TempDir};
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::TensorProto;
use tract_onnx::prelude::{DatumExt, Framework, InferenceModelExt, IntoRunnable};

/// Embedding width.
const DIM: usize = 64;
/// Batch size given to tract's input fact (ctr-edge plans lazily, per batch size).
const TRACT_BATCH: usize = 32;
/// Targets from the design, printed next to the figures.
const TARGET_OPEN_MS: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 8.0;

/// What one child measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    open_ms: f64,
    rss_kib: i64,
    anon_kib: i64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        let [_, engine, path] = args.as_slice() else {
            bail!("usage: open-time child ctr-edge|ctr-edge-none|ctr-edge-full|tract MODEL");
        };
        use ctr_edge_runtime::options::Verify;
        let s = match engine.as_str() {
            "ctr-edge" => open_ctr_edge(Path::new(path), Verify::Identity)?,
            "ctr-edge-none" => open_ctr_edge(Path::new(path), Verify::None)?,
            "ctr-edge-full" => open_ctr_edge(Path::new(path), Verify::Full)?,
            "tract" => open_tract(Path::new(path))?,
            other => bail!("unknown engine {other}"),
        };
        println!("{} {} {}", s.open_ms, s.rss_kib, s.anon_kib);
        return Ok(());
    }

    let mut rows: usize = 1 << 20;
    let mut reps: usize = 10;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rows" => rows = it.next().context("--rows needs a value")?.parse()?,
            "--reps" => reps = it.next().context("--reps needs a value")?.parse()?,
            "--json" => json = true,
            other => {
                bail!("unknown argument {other} (usage: open-time [--rows R] [--reps N] [--json])")
            }
        }
    }
    ensure!(rows > 0 && reps > 0, "--rows and --reps must be positive");

    let dir = TempDir::new("open-time");
    let info = write_synthetic(dir.path(), rows)?;
    let model_path = dir.path().join(MODEL_FILE);
    let exe = std::env::current_exe()?;

    let mut results = Vec::new();
    // "ctr-edge" opens with the default weights check (identity: size and sampled blocks);
    // the last two show what the check costs: none at all, and a hash of every byte.
    for engine in ["ctr-edge", "tract", "ctr-edge-none", "ctr-edge-full"] {
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            samples.push(run_child(&exe, engine, &model_path)?);
        }
        results.push((engine, summarize(&samples)));
    }
    let (ours, tract) = (results[0].1, results[1].1);
    let mib = |kib: i64| kib as f64 / 1024.0;

    if json {
        println!(
            "{{\"weights_bytes\":{},\"reps\":{reps},\"page_cache\":\"warm\",\"engines\":{{{}}}}}",
            info.weights_bytes,
            results
                .iter()
                .map(|(e, s)| format!(
                    "\"{e}\":{{\"open_ms_median\":{:.3},\"open_ms_min\":{:.3},\"rss_growth_mib\":{:.2},\"anon_growth_mib\":{:.2}}}",
                    s.open_ms, s.open_ms_min, mib(s.rss_kib), mib(s.anon_kib)
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        return Ok(());
    }
    println!(
        "open-time: model.weights = {:.1} MiB ({rows} x {DIM} f32 table + {DIM}x{DIM} dense), \
         model.onnx = {} bytes; {reps} opens per engine, each in a fresh process; warm page cache",
        info.weights_bytes as f64 / (1 << 20) as f64,
        info.model_bytes
    );
    println!(
        "{:<14} {:>14} {:>12} {:>16} {:>16}",
        "engine", "open ms (med)", "open ms min", "RSS growth MiB", "anon growth MiB"
    );
    for (engine, s) in &results {
        println!(
            "{:<14} {:>14.3} {:>12.3} {:>16.2} {:>16.2}",
            engine,
            s.open_ms,
            s.open_ms_min,
            mib(s.rss_kib),
            mib(s.anon_kib)
        );
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "ratio ctr-edge / tract: open time {:.3e} (tract takes {:.0}x as long), RSS growth {:.3e} \
         ({:.0}x less)",
        ours.open_ms / tract.open_ms,
        tract.open_ms / ours.open_ms,
        mib(ours.rss_kib) / mib(tract.rss_kib).max(1e-9),
        mib(tract.rss_kib) / mib(ours.rss_kib).max(1e-9)
    );
    println!(
        "targets: ctr-edge open < {TARGET_OPEN_MS} ms: {:.3} ms ({}); RSS growth < {TARGET_RSS_MIB} MiB: {:.2} MiB ({})",
        ours.open_ms,
        verdict(ours.open_ms < TARGET_OPEN_MS),
        mib(ours.rss_kib),
        verdict(mib(ours.rss_kib) < TARGET_RSS_MIB)
    );
    Ok(())
}

/// Medians over the samples (and the fastest open).
#[derive(Debug, Clone, Copy)]
struct Summary {
    open_ms: f64,
    open_ms_min: f64,
    rss_kib: i64,
    anon_kib: i64,
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn summarize(samples: &[Sample]) -> Summary {
    Summary {
        open_ms: median(samples.iter().map(|s| s.open_ms).collect()),
        open_ms_min: samples
            .iter()
            .map(|s| s.open_ms)
            .fold(f64::INFINITY, f64::min),
        rss_kib: median(samples.iter().map(|s| s.rss_kib).collect()),
        anon_kib: median(samples.iter().map(|s| s.anon_kib).collect()),
    }
}

fn run_child(exe: &Path, engine: &str, model: &Path) -> Result<Sample> {
    let out = Command::new(exe)
        .arg("child")
        .arg(engine)
        .arg(model)
        .output()
        .with_context(|| format!("running {} child {engine}", exe.display()))?;
    ensure!(
        out.status.success(),
        "child {engine} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let f: Vec<&str> = text.split_whitespace().collect();
    let [t, r, a] = f.as_slice() else {
        bail!("child {engine} printed '{text}'");
    };
    Ok(Sample {
        open_ms: t.parse()?,
        rss_kib: r.parse()?,
        anon_kib: a.parse()?,
    })
}

/// `Y = Sigmoid(Gather(E, ids) W)`: ids i64 [N], E f32 [rows, 64], W f32 [64, 64].
fn write_synthetic(dir: &Path, rows: usize) -> Result<ctr_edge_exporter::artifact::ArtifactInfo> {
    // The table's bytes directly (no intermediate f32 vector): a cheap pattern, not zeros, so
    // that no layer of the system can treat the file as sparse.
    let mut table = TensorProto {
        name: "E".into(),
        data_type: DataType::Float as i32,
        dims: vec![rows as i64, DIM as i64],
        ..Default::default()
    };
    table.raw_data = (0..rows * DIM)
        .flat_map(|i| (((i % 1021) as f32) / 1021.0 - 0.5).to_le_bytes())
        .collect();
    let proto = model(
        vec![
            node("Gather", &["E", "ids"], &["emb"], vec![]),
            node("MatMul", &["emb", "W"], &["z"], vec![]),
            node("Sigmoid", &["z"], &["Y"], vec![]),
        ],
        vec![table, tensor_f32("W", &[DIM, DIM], &values(DIM * DIM, 1))],
        vec![value_info("ids", DataType::Int64, &[None])],
        vec![value_info("Y", DataType::Float, &[None, Some(DIM as i64)])],
    );
    Ok(write_artifact(proto, dir, &[])?)
}

/// `(VmRSS, RssAnon)` of this process in KiB.
fn rss_kib() -> Result<(i64, i64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<i64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing from /proc/self/status"))?;
        Ok(line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("RssAnon:")?))
}

fn sample(start: Instant, before: (i64, i64)) -> Result<Sample> {
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    let after = rss_kib()?;
    Ok(Sample {
        open_ms,
        rss_kib: after.0 - before.0,
        anon_kib: after.1 - before.1,
    })
}

fn open_ctr_edge(path: &Path, verify: ctr_edge_runtime::options::Verify) -> Result<Sample> {
    let before = rss_kib()?;
    let start = Instant::now();
    let options = ctr_edge_runtime::options::OpenOptions::new().verify(verify);
    let model = ctr_edge_runtime::Model::open_options(path, &options)?;
    let s = sample(start, before)?;
    // Check that what was opened is usable (outside the measurement).
    let mut session = model.session();
    let rows = model.initializer_f32("E").context("no table E")?.len() / DIM;
    let ids = [0i64, rows as i64 - 1];
    session.run(&[ctr_edge_runtime::Input {
        name: "ids",
        shape: &[2],
        data: ctr_edge_runtime::session::InputData::I64(&ids),
    }])?;
    let y = session.output(0).context("no output")?;
    ensure!(y.data.iter().all(|v| v.is_finite()), "non-finite output");
    Ok(s)
}

fn open_tract(path: &Path) -> Result<Sample> {
    let before = rss_kib()?;
    let start = Instant::now();
    let plan = tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, i64::fact([TRACT_BATCH]).into())?
        .into_optimized()?
        .into_runnable()?;
    let s = sample(start, before)?;
    drop(plan);
    Ok(s)
}

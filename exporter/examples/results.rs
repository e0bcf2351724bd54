//! The results table of the README: every fixture compressed with AFM and SVD at several
//! whole-model parameter reductions (f32 and f16 weights, AFM also sequential), evaluated on
//! the fixture's whole test split with tract. Prints Markdown on stdout.
//!
//! ```sh
//! cargo run --release -p ctr-edge-exporter --example results > exporter/RESULTS.md
//! ```
//! (`exporter/scripts/results.sh` does exactly this.) Arguments: fixture folder names to
//! restrict the run; `--ratios 3,5,10,20` to change the reductions.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ctr_edge_exporter::compress::graph::load_model;
use ctr_edge_exporter::compress::ranks::RankPolicy;
use ctr_edge_exporter::compress::simplify::simplify;
use ctr_edge_exporter::compress::{
    compress_to_dir, count_params, evaluate, split_labels, CompressOptions, Method, WeightType,
};
use ctr_edge_exporter::npz::read_npz;

/// One compression setting.
struct Setting {
    method: Method,
    ratio: f64,
    weights: WeightType,
    sequential: bool,
}

impl Setting {
    fn label(&self) -> String {
        format!(
            "{}{}",
            self.method.name().to_uppercase(),
            if self.sequential { " seq." } else { "" }
        )
    }
}

fn settings(ratios: &[f64]) -> Vec<Setting> {
    let mut out = Vec::new();
    for &ratio in ratios {
        for (method, weights, sequential) in [
            (Method::Afm, WeightType::F32, false),
            (Method::Afm, WeightType::F16, false),
            (Method::Afm, WeightType::F32, true),
            (Method::Svd, WeightType::F32, false),
        ] {
            out.push(Setting {
                method,
                ratio,
                weights,
                sequential,
            });
        }
    }
    out
}

fn bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}

/// Per fixture and setting, for the summary: (fixture, setting label, ratio, weights, AUC drop).
type Outcome = (String, String, f64, &'static str, f64);

/// Per fixture: its table rows and outcomes (filled in by the workers).
type FixtureResult = Option<(String, Vec<Outcome>)>;

/// The table rows of one fixture (original, then every setting) and its outcomes.
fn fixture_rows(dir: &Path, work: &Path, ratios: &[f64]) -> (String, Vec<Outcome>) {
    let mut table = String::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    eprintln!("{name}");
    let model_path = dir.join("model.onnx");
    let model = load_model(&model_path).expect("model loads");
    // As compress sees it (statically decided `If`s inlined, which tract needs).
    let (model, _) = simplify(&model).expect("simplifies");
    let calib = read_npz(&dir.join("calib.npz")).expect("calib.npz");
    let test = read_npz(&dir.join("test.npz")).expect("test.npz");
    let (inputs, labels) = split_labels(&test).expect("labels");
    let (auc0, logloss0) = evaluate(&model, &inputs, &labels, 1024, "", &mut |_, _, _| {})
        .expect("the original evaluates");
    let _ = writeln!(
        table,
        "| {name} | original | 1 | f32 | {} | {} | {auc0:.4} | | {logloss0:.4} | |",
        count_params(&model),
        bytes(std::fs::metadata(&model_path).map(|m| m.len()).unwrap_or(0)),
    );
    for s in settings(ratios) {
        let out = work.join(&name).join(format!(
            "{}-{}-{}{}",
            s.method.name(),
            s.ratio,
            s.weights.name(),
            if s.sequential { "-seq" } else { "" }
        ));
        let options = CompressOptions {
            method: s.method,
            ranks: Some(RankPolicy::Ratio(s.ratio)),
            weights: s.weights,
            sequential: s.sequential,
            force: true,
            ..CompressOptions::default()
        };
        let cells = match compress_to_dir(
            &model_path,
            Some(&calib),
            Some(&test),
            &out,
            &options,
            &mut |_, _, _| {},
        ) {
            Ok(report) => {
                let e = report.eval.as_ref().expect("evaluated");
                outcomes.push((
                    name.clone(),
                    s.label(),
                    s.ratio,
                    s.weights.name(),
                    e.auc_drop,
                ));
                format!(
                    "{} | {} | {:.4} | {:+.5} | {:.4} | {:+.5}",
                    report.totals.params_after,
                    bytes(report.totals.file_bytes_after.unwrap_or(0)),
                    e.auc_after,
                    e.auc_after - e.auc_before,
                    e.logloss_after,
                    e.logloss_after - e.logloss_before
                )
            }
            Err(e) => {
                let msg = e.to_string();
                let short = if msg.contains("out of reach") {
                    "unreachable: the layers that cannot be factorized exceed the budget".into()
                } else {
                    msg.replace('|', "/")
                };
                format!("{short} | | | | | ")
            }
        };
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} | {cells} |",
            s.label(),
            s.ratio,
            s.weights.name()
        );
    }
    (table, outcomes)
}

fn main() {
    let mut ratios = vec![3.0, 5.0, 10.0, 20.0];
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--ratios" {
            let list = args.next().expect("--ratios takes a list, e.g. 3,5");
            ratios = list
                .split(',')
                .map(|r| r.trim().parse().expect("a ratio is a number"))
                .collect();
        } else {
            only.push(a);
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/fixtures exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file() && p.join("test.npz").is_file())
        .filter(|p| {
            only.is_empty()
                || only
                    .iter()
                    .any(|o| p.file_name().is_some_and(|n| n.to_string_lossy() == *o))
        })
        .collect();
    fixtures.sort();
    let work = std::env::temp_dir().join(format!("ctr-edge-results-{}", std::process::id()));
    let started = Instant::now();

    // Fixtures are independent: workers take them in turn; rows are printed in fixture order.
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<FixtureResult>> = Mutex::new(vec![None; fixtures.len()]);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(fixtures.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(dir) = fixtures.get(i) else { break };
                let result = fixture_rows(dir, &work, &ratios);
                done.lock().unwrap()[i] = Some(result);
            });
        }
    });
    let mut table = String::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let _ = writeln!(
        table,
        "| fixture | method | ratio | weights | params | on disk | AUC | ΔAUC | LogLoss | ΔLogLoss |"
    );
    let _ = writeln!(table, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for (rows, mut o) in done.into_inner().unwrap().into_iter().flatten() {
        table.push_str(&rows);
        outcomes.append(&mut o);
    }
    let _ = std::fs::remove_dir_all(&work);

    println!("# Compression results\n");
    println!(
        "Generated by `exporter/scripts/results.sh` (`cargo run --release -p ctr-edge-exporter \
         --example results`); do not edit by hand. Every fixture of `tests/fixtures/` is \
         compressed with `ctr-edge compress --ratio R` (ranks allocated across sites by retained \
         variance per parameter), calibrated on its `calib.npz`, and evaluated with tract on its \
         whole `test.npz`. *params* counts every initializer value; *on disk* is \
         `model.onnx` + `model.weights` (the original: its single `model.onnx`). ΔAUC and \
         ΔLogLoss are compressed minus original (a negative ΔAUC is a loss). *seq.* is \
         `--sequential`. The AUC gate is off here (`--force`) so that every setting is \
         reported.\n"
    );
    println!("{table}");
    println!("## Summary\n");
    for &ratio in &ratios {
        for label in ["AFM", "AFM seq.", "SVD"] {
            let drops: Vec<f64> = outcomes
                .iter()
                .filter(|o| o.1 == label && o.2 == ratio && o.3 == "f32")
                .map(|o| o.4)
                .collect();
            if drops.is_empty() {
                continue;
            }
            let within = drops.iter().filter(|d| d.abs() <= 0.001).count();
            let worst = drops.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            println!(
                "- ratio {ratio}, {label} (f32): |ΔAUC| <= 0.001 on {within} of {} fixtures; \
                 largest AUC loss {:.4}",
                drops.len(),
                worst.max(0.0)
            );
        }
        let mut afm_better = 0;
        let mut svd_better = 0;
        let mut ties = 0;
        for o in outcomes
            .iter()
            .filter(|o| o.1 == "AFM" && o.2 == ratio && o.3 == "f32")
        {
            if let Some(svd) = outcomes
                .iter()
                .find(|p| p.0 == o.0 && p.1 == "SVD" && p.2 == ratio)
            {
                if (o.4 - svd.4).abs() < 1e-4 {
                    ties += 1;
                } else if o.4 < svd.4 {
                    afm_better += 1;
                } else {
                    svd_better += 1;
                }
            }
        }
        println!(
            "- ratio {ratio}, AFM vs SVD at equal size: AFM loses less AUC on {afm_better}, SVD \
             on {svd_better}, within 0.0001 on {ties}"
        );
    }
    eprintln!(
        "{} fixtures, {:.0} s",
        fixtures.len(),
        started.elapsed().as_secs_f64()
    );
}

//! The results table of the README: every fixture compressed with AFM and SVD at several
//! whole-model parameter reductions (f32 and f16 weights, AFM also sequential), the AUC gate
//! read on the fixture's validation split, the result scored once on its whole test split with
//! tract, with paired-bootstrap 95% intervals of the differences; and a fixture-health section
//! (spectra, embedding share, denormals). Prints Markdown on stdout.
//!
//! ```sh
//! cargo run --release -p ctr-edge-exporter --example results > exporter/RESULTS.md
//! ```
//! (`exporter/scripts/results.sh` does exactly this.) Arguments: fixture folder names to
//! restrict the run; `--ratios 3,4,5,10,20` (the default) to change the reductions.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ctr_edge_exporter::compress::graph::load_model;
use ctr_edge_exporter::compress::ranks::RankPolicy;
use ctr_edge_exporter::compress::simplify::simplify;
use ctr_edge_exporter::compress::{
    compress_to_dir, count_params, predict, split_labels, CompressOptions, Method, WeightType,
    DEFAULT_MAX_AUC_DROP,
};
use ctr_edge_exporter::health::{model_health, ModelHealth, ENERGY, MIN_DENSE_WIDTH};
use ctr_edge_exporter::metrics::{auc, logloss, paired_bootstrap, Delta, PairedDeltas};
use ctr_edge_exporter::npz::read_npz;

/// Bootstrap resamples per interval, and the generator's seed (fixed: reproducible tables).
const RESAMPLES: usize = 1000;
const SEED: u64 = 0x5eed_2026;

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

/// Per fixture and setting, for the summary.
struct Outcome {
    fixture: String,
    label: String,
    ratio: f64,
    weights: &'static str,
    /// Compressed minus original on the test split.
    test: PairedDeltas,
    /// The default AUC gate, read on the validation split, passed.
    gate_passed: bool,
}

/// One fixture's rows of both tables and its outcomes.
struct FixtureResult {
    rows: String,
    health: String,
    status: Health,
    outcomes: Vec<Outcome>,
}

/// What the health section says of a fixture.
#[derive(Clone, Copy, PartialEq)]
struct Health {
    healthy: bool,
    degenerate: bool,
    embedding_heavy: bool,
    denormals: bool,
}

/// Test AUC of well-trained models of the same data family in the literature, on the full
/// datasets (ours are samples of 8k-100k rows, so lower figures are expected).
fn published_reference(fixture: &str) -> &'static str {
    match fixture.split('_').next().unwrap_or("") {
        "movielens" => "≈0.84-0.85 (MovieLens-1M, AutoInt paper)",
        "criteo" => "≈0.80-0.81 (full Criteo, BARS benchmark)",
        "avazu" => "≈0.76-0.79 (full Avazu, BARS benchmark)",
        "kdd" => "≈0.78-0.79 (full KDD Cup 2012, AutoInt paper)",
        "talkingdata" => "≈0.98 (full TalkingData, Kaggle leaderboard)",
        _ => "-",
    }
}

fn delta_cell(d: &Delta) -> String {
    format!("{:+.4} [{:+.4}, {:+.4}]", d.value, d.low, d.high)
}

fn health_row(name: &str, h: &ModelHealth, auc0: f64, logloss0: f64) -> (String, Health) {
    let dense: Vec<String> = h
        .sites
        .iter()
        .filter(|s| !s.table)
        .map(|s| {
            format!(
                "{}/{}{}",
                s.rank90,
                s.width,
                if s.width >= MIN_DENSE_WIDTH { "" } else { "*" }
            )
        })
        .collect();
    let tables: Vec<f64> = h
        .sites
        .iter()
        .filter(|s| s.table)
        .map(|s| s.fraction())
        .collect();
    let table_cell = if tables.is_empty() {
        "-".to_string()
    } else {
        let lo = tables.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = tables.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{} tables, {lo:.2}-{hi:.2}", tables.len())
    };
    let min_dense = h
        .wide_dense()
        .map(|s| s.fraction())
        .fold(f64::INFINITY, f64::min);
    let status = Health {
        healthy: h.healthy(),
        degenerate: h.degenerate(),
        embedding_heavy: h.embedding_share() >= 0.6,
        denormals: h.denormals > 0,
    };
    let verdict = if status.degenerate {
        "**degenerate**"
    } else if status.healthy {
        "ok"
    } else if h.wide_dense().count() == 0 {
        "no dense layer >= 64"
    } else {
        "some layers < 20%"
    };
    let row = format!(
        "| {name} | {} | {} | {table_cell} | {:.0}% | {} ({:.2}%) | {auc0:.4} | {logloss0:.4} | {} | {verdict} |",
        dense.join(" "),
        if min_dense.is_finite() {
            format!("{min_dense:.2}")
        } else {
            "-".into()
        },
        100.0 * h.embedding_share(),
        h.denormals,
        100.0 * h.denormals as f64 / h.f32_weights.max(1) as f64,
        published_reference(name),
    );
    (row, status)
}

/// The table rows of one fixture (original, then every setting), its health row and its
/// outcomes.
fn fixture_rows(dir: &Path, work: &Path, ratios: &[f64]) -> FixtureResult {
    let mut table = String::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    eprintln!("{name}");
    let model_path = dir.join("model.onnx");
    let model = load_model(&model_path).expect("model loads");
    // As compress sees it (statically decided `If`s inlined, which tract needs).
    let (model, _) = simplify(&model).expect("simplifies");
    let calib = read_npz(&dir.join("calib.npz")).expect("calib.npz");
    let valid = read_npz(&dir.join("valid.npz")).expect("valid.npz (the gate's split)");
    let test = read_npz(&dir.join("test.npz")).expect("test.npz");
    let (inputs, labels) = split_labels(&test).expect("labels");
    let noop = &mut |_: &str, _: usize, _: usize| {};
    let scores0 =
        predict(&model, &inputs, labels.len(), 1024, "", noop).expect("the original runs");
    let auc0 = auc(&scores0, &labels).expect("AUC");
    let logloss0 = logloss(&scores0, &labels).expect("LogLoss");
    let health = model_health(&model).expect("health");
    let (health_row, status) = health_row(&name, &health, auc0, logloss0);
    let _ = writeln!(
        table,
        "| {name} | original | 1 | f32 | {} | {} | | {auc0:.4} | | {logloss0:.4} | |",
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
        let result = compress_to_dir(
            &model_path,
            Some(&calib),
            Some(&valid),
            &out,
            &options,
            &mut |_, _, _| {},
        )
        .and_then(|report| {
            let compressed = load_model(&out.join("model.onnx"))?;
            let scores = predict(&compressed, &inputs, labels.len(), 1024, "", noop)?;
            let deltas = paired_bootstrap(&scores0, &scores, &labels, RESAMPLES, SEED)?;
            Ok((report, scores, deltas))
        });
        let cells = match result {
            Ok((report, scores, deltas)) => {
                let gate = report.eval.as_ref().expect("evaluated on valid");
                let gate_passed = gate.auc_drop <= DEFAULT_MAX_AUC_DROP;
                outcomes.push(Outcome {
                    fixture: name.clone(),
                    label: s.label(),
                    ratio: s.ratio,
                    weights: s.weights.name(),
                    test: deltas,
                    gate_passed,
                });
                format!(
                    "{} | {} | {:+.4} {} | {:.4} | {} | {:.4} | {}",
                    report.totals.params_after,
                    bytes(report.totals.file_bytes_after.unwrap_or(0)),
                    -gate.auc_drop,
                    if gate_passed { "pass" } else { "**fail**" },
                    auc(&scores, &labels).expect("AUC"),
                    delta_cell(&deltas.auc),
                    logloss(&scores, &labels).expect("LogLoss"),
                    delta_cell(&deltas.logloss),
                )
            }
            Err(e) => {
                let msg = e.to_string();
                let short = if msg.contains("out of reach") {
                    "unreachable: the layers that cannot be factorized exceed the budget".into()
                } else {
                    msg.replace('|', "/")
                };
                format!("{short} | | | | | | ")
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
    FixtureResult {
        rows: table,
        health: health_row,
        status,
        outcomes,
    }
}

fn main() {
    let mut ratios = vec![3.0, 4.0, 5.0, 10.0, 20.0];
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
    let done: Mutex<Vec<Option<FixtureResult>>> =
        Mutex::new((0..fixtures.len()).map(|_| None).collect());
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
    let results: Vec<FixtureResult> = done.into_inner().unwrap().into_iter().flatten().collect();
    let _ = std::fs::remove_dir_all(&work);

    println!("# Compression results\n");
    println!(
        "Generated by `exporter/scripts/results.sh` (`cargo run --release -p ctr-edge-exporter \
         --example results`); do not edit by hand.\n"
    );
    println!("## Fixture health\n");
    println!(
        "Whether each fixture is a model worth testing compression on. *dense layers*: for \
         every dense site, the rank that keeps {:.0}% of the energy (sum of squared singular \
         values) of its weight / its width min(m, n); `*` marks layers narrower than \
         {MIN_DENSE_WIDTH}, which the verdict ignores. *min*: the smallest fraction among the \
         wide layers. *tables*: the same fraction for every embedding table of width >= 2 \
         (rows centered first), smallest-largest. *embedding share*: parameters in embedding \
         tables / all parameters. *denormal*: f32 weights with 0 < |x| < 2^-126. AUC and \
         LogLoss: the original on the test split (tract). The published figures are for \
         well-trained models on the full datasets, rounded from the literature; the fixtures \
         are trained on samples of them. Verdict: *ok* when every dense layer of width >= \
         {MIN_DENSE_WIDTH} needs >= 20% of its width, **degenerate** when every one needs \
         < 10%.\n",
        100.0 * ENERGY
    );
    println!(
        "| fixture | dense layers (rank for {:.0}% / width) | min | tables | embedding share | \
         denormal | test AUC | test LogLoss | published AUC | verdict |",
        100.0 * ENERGY
    );
    println!("|---|---|---:|---|---:|---:|---:|---:|---|---|");
    for r in &results {
        println!("{}", r.health);
    }
    let count = |f: &dyn Fn(&Health) -> bool| results.iter().filter(|r| f(&r.status)).count();
    println!(
        "\n{} of {} fixtures are *ok*, {} degenerate; {} have >= 60% of their parameters in \
         embedding tables; {} carry denormal weights.\n",
        count(&|h| h.healthy),
        results.len(),
        count(&|h| h.degenerate),
        count(&|h| h.embedding_heavy),
        count(&|h| h.denormals)
    );

    println!("## Compression\n");
    println!(
        "Every fixture is compressed with `ctr-edge compress --ratio R` (ranks allocated across \
         sites by retained variance per parameter), calibrated on its `calib.npz` (training \
         rows). The AUC gate reads the validation split (`valid.npz`): *valid ΔAUC* and whether \
         the default gate (a drop of at most {DEFAULT_MAX_AUC_DROP}) passes; every setting is \
         written anyway (`--force`) so that it can be reported. The test split (`test.npz`) is \
         read once, by tract, for the columns after it: ΔAUC and ΔLogLoss are compressed minus \
         original on the same rows (a negative ΔAUC and a positive ΔLogLoss are losses), with \
         a paired-bootstrap 95% interval ({RESAMPLES} resamples of the test rows, both models \
         scored on each). *params* counts every initializer value; *on disk* is `model.onnx` + \
         `model.weights` (the original: its single `model.onnx`). *seq.* is `--sequential`.\n"
    );
    println!(
        "| fixture | method | ratio | weights | params | on disk | valid ΔAUC, gate | test AUC \
         | ΔAUC [95% CI] | LogLoss | ΔLogLoss [95% CI] |"
    );
    println!("|---|---|---:|---|---:|---:|---|---:|---|---:|---|");
    for r in &results {
        print!("{}", r.rows);
    }
    let outcomes: Vec<&Outcome> = results.iter().flat_map(|r| &r.outcomes).collect();
    println!("\n## Summary\n");
    println!(
        "Test split, f32 weights. *Significant loss*: the whole 95% interval of ΔAUC lies \
         below 0. *Within 0.001*: its lower end is above -0.001.\n"
    );
    for &ratio in &ratios {
        for label in ["AFM", "AFM seq.", "SVD"] {
            let sel: Vec<&&Outcome> = outcomes
                .iter()
                .filter(|o| o.label == label && o.ratio == ratio && o.weights == "f32")
                .collect();
            if sel.is_empty() {
                continue;
            }
            let within = sel.iter().filter(|o| o.test.auc.low > -0.001).count();
            let significant = sel.iter().filter(|o| o.test.auc.high < 0.0).count();
            let gate = sel.iter().filter(|o| o.gate_passed).count();
            let worst = sel
                .iter()
                .min_by(|a, b| a.test.auc.value.total_cmp(&b.test.auc.value))
                .unwrap();
            let worst_ll = sel
                .iter()
                .max_by(|a, b| a.test.logloss.value.total_cmp(&b.test.logloss.value))
                .unwrap();
            println!(
                "- ratio {ratio}, {label}: the gate passes on {gate} of {n} fixtures; ΔAUC \
                 within 0.001 on {within}, a significant loss on {significant}; largest AUC \
                 loss {:.4} ({}), largest LogLoss rise {:+.4} ({})",
                (-worst.test.auc.value).max(0.0),
                worst.fixture,
                worst_ll.test.logloss.value,
                worst_ll.fixture,
                n = sel.len(),
            );
        }
        let (mut afm_better, mut svd_better, mut ties) = (0, 0, 0);
        for o in outcomes
            .iter()
            .filter(|o| o.label == "AFM" && o.ratio == ratio && o.weights == "f32")
        {
            if let Some(svd) = outcomes
                .iter()
                .find(|p| p.fixture == o.fixture && p.label == "SVD" && p.ratio == ratio)
            {
                let (a, b) = (o.test.auc.value, svd.test.auc.value);
                if (a - b).abs() < 1e-4 {
                    ties += 1;
                } else if a > b {
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
        results.len(),
        started.elapsed().as_secs_f64()
    );
}

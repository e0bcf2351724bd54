//! The `ctr-edge-bench` binary end to end on the bundled MovieLens DeepFM fixture: its JSON
//! parses and holds consistent figures, and bad arguments fail with a message naming them.

use std::path::PathBuf;
use std::process::{Command, Output};

use ctr_edge_runtime::Model;
use serde_json::Value;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/movielens_deepfm/model.onnx")
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctr-edge-bench"))
        .args(args)
        .output()
        .expect("ctr-edge-bench starts")
}

#[test]
fn json_report_on_the_fixture() {
    let model = fixture();
    let batches = [1usize, 3, 64];
    let out = bench(&[
        model.to_str().unwrap(),
        "--batch",
        "1,3,64",
        "--iters",
        "7",
        "--warmup",
        "1",
        "--open-reps",
        "2",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let report: Value = serde_json::from_slice(&out.stdout).expect("the output is JSON");
    assert_eq!(report["iters"], 7);
    assert_eq!(report["warmup"], 1);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "ctr-edge on the model only");
    let run = &runs[0];
    assert_eq!(run["engine"], "ctr-edge");
    assert_eq!(run["role"], "model");

    // The kernel variant is the one the runtime picks for this model.
    let expected = Model::open(&model).unwrap().kernel_variant().name();
    assert_eq!(run["kernel_variant"], expected);
    assert!(run["open_ms"].as_f64().unwrap() > 0.0);
    if cfg!(target_os = "linux") {
        for key in ["rss_after_open_kib", "rss_after_first_run_kib"] {
            assert!(run[key].as_u64().unwrap() > 0, "{key}");
        }
    }

    let figures = run["batches"].as_array().unwrap();
    let seen: Vec<u64> = figures
        .iter()
        .map(|b| b["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(seen, batches.map(|b| b as u64));
    for b in figures {
        let f = |k: &str| b[k].as_f64().unwrap_or_else(|| panic!("{k} in {b}"));
        let (p50, p90, p99) = (f("p50_us"), f("p90_us"), f("p99_us"));
        assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{b}");
        // Throughput is the batch at the median latency.
        let batch = f("batch");
        let expected = batch * 1e6 / p50;
        assert!(
            (f("throughput_per_s") - expected).abs() <= 1e-6 * expected,
            "{b}"
        );
    }
    assert_eq!(report["ratios"].as_array().unwrap().len(), 0);
}

#[test]
fn table_report_and_original() {
    let model = fixture();
    let model = model.to_str().unwrap();
    let out = bench(&[
        model,
        "--original",
        model,
        "--batch",
        "2",
        "--iters",
        "3",
        "--warmup",
        "0",
        "--open-reps",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "p50 us",
        "candidates/s",
        "original / model (ctr-edge)",
        "RSS open MiB",
    ] {
        assert!(stdout.contains(needle), "no '{needle}' in:\n{stdout}");
    }
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let model = fixture();
    let model = model.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["/nonexistent/model.onnx"],
            "/nonexistent/model.onnx not found",
        ),
        (vec![model, "--batch", "1,zz"], "'zz' is not a batch size"),
        (vec![model, "--batch", "1,,2"], "is not a batch size"),
        (vec![model, "--iters", "many"], "--iters"),
        (
            vec![model, "--original", "/nonexistent/orig.onnx"],
            "orig.onnx not found",
        ),
        (vec![], "no model given"),
    ] {
        let out = bench(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(needle),
            "{args:?}: no '{needle}' in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// The device build has no tract: `--vs tract` must say so rather than silently skip it.
/// (Whether the binary has tract is the harness library's `tract` feature, which the
/// exporter's dependency on it turns on whenever both are built together: `HAS_TRACT` of the
/// library this test links is the binary's.)
#[test]
fn vs_tract_without_the_feature_is_an_error() {
    if ctr_edge_harness::HAS_TRACT {
        println!("this build of the harness has tract: see vs_tract_gives_ratios");
        return;
    }
    let model = fixture();
    let out = bench(&[model.to_str().unwrap(), "--vs", "tract", "--iters", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("lacks the `tract` feature"), "{stderr}");
}

/// Runs the harness on the fixture with `extra` arguments, batches 1 and 16, a few iterations
/// and JSON output; returns the report and the engines of its runs, in order.
fn quick_json_run(extra: &[&str]) -> (Value, Vec<String>) {
    let model = fixture();
    let mut args = vec![model.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--batch",
        "1,16",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--open-reps",
        "1",
        "--json",
    ]);
    let out = bench(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the output is JSON");
    let engines = report["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["engine"].as_str().expect("engine").to_owned())
        .collect();
    (report, engines)
}

#[test]
fn vs_tract_gives_ratios() {
    if !ctr_edge_harness::HAS_TRACT {
        println!(
            "this build of the harness lacks tract: see vs_tract_without_the_feature_is_an_error"
        );
        return;
    }
    let (report, engines) = quick_json_run(&["--vs", "tract"]);
    assert_eq!(engines, ["ctr-edge", "tract"]);
    let ratio = &report["ratios"][0];
    assert_eq!(ratio["label"], "tract / ctr-edge (model)");
    assert_eq!(ratio["p50"].as_array().unwrap().len(), 2);
}

/// `--no-fusion` measures the model a second time with the runtime's fusions off, right after
/// the fused run, and gives the no-fusion / fusion ratio per batch size.
#[test]
fn no_fusion_adds_an_unfused_run_and_its_ratio() {
    let (report, engines) = quick_json_run(&["--no-fusion"]);
    assert_eq!(engines, ["ctr-edge", "ctr-edge-nofuse"]);
    let ratios = report["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 1, "{ratios:?}");
    assert_eq!(ratios[0]["label"], "no fusion / fusion (model)");
    assert_eq!(ratios[0]["p50"].as_array().unwrap().len(), 2);
}

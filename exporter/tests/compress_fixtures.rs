//! Every fixture model (`tests/fixtures/<name>/`, real DeepCTR-Torch exports) compressed with
//! AFM at a 4x parameter reduction, within the default AUC gate; the written artifact must run
//! in tract and in the native runtime with matching outputs, and (when `CTR_EDGE_PYTHON` names
//! a Python with onnx and onnxruntime) pass `onnx.checker` and match onnxruntime within 1e-4
//! (`ort_check.py`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ctr_edge_exporter::backend::{run_model, Backend};
use ctr_edge_exporter::compress::ranks::RankPolicy;
use ctr_edge_exporter::compress::{compress_to_dir, split_labels, CompressOptions, Method};
use ctr_edge_exporter::npz::{read_npz, write_npz, NpyArray};

/// Test rows used for the gate and the comparisons (the whole split takes longer in debug
/// builds and adds nothing to the checks).
const TEST_ROWS: usize = 3000;

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("model.onnx").is_file() && p.join("calib.npz").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn head(arrays: &[NpyArray], rows: usize) -> Vec<NpyArray> {
    arrays
        .iter()
        .map(|a| {
            let n = a.rows().unwrap_or(0).min(rows);
            a.rows_slice(0, n).unwrap()
        })
        .collect()
}

fn probs(outputs: &[NpyArray]) -> Vec<f64> {
    outputs[0].data.to_f64()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn every_fixture_compresses_with_afm_at_ratio_4() {
    let fixtures = fixtures();
    assert!(
        fixtures.iter().any(|f| f.ends_with("movielens_deepfm")),
        "tests/fixtures/movielens_deepfm is missing"
    );
    let python = std::env::var_os("CTR_EDGE_PYTHON");
    if python.is_none() {
        eprintln!("CTR_EDGE_PYTHON is not set: skipping the onnx.checker / onnxruntime checks");
    }
    // Fixtures are independent: a few workers take them in turn.
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(dir) = fixtures.get(i) else { break };
                let mut found = check_fixture(dir, python.as_deref());
                failures.lock().unwrap().append(&mut found);
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Compresses one fixture and checks the artifact; returns the failures found.
fn check_fixture(dir: &Path, python: Option<&std::ffi::OsStr>) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ort_check.py");
    let mut failures = Vec::new();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("compress-fixtures")
        .join(&name);
    let _ = std::fs::remove_dir_all(&out);
    let calib = read_npz(&dir.join("calib.npz")).unwrap();
    let test = head(&read_npz(&dir.join("test.npz")).unwrap(), TEST_ROWS);
    let options = CompressOptions {
        method: Method::Afm,
        ranks: Some(RankPolicy::Ratio(4.0)),
        ..CompressOptions::default()
    };
    let report = match compress_to_dir(
        &dir.join("model.onnx"),
        Some(&calib),
        Some(&test),
        &out,
        &options,
        &mut |_, _, _| {},
    ) {
        Ok(r) => r,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let eval = report.eval.as_ref().unwrap();
    if !eval.passed {
        failures.push(format!("{name}: the AUC gate refused the result"));
    }
    if report.totals.reduction < 3.99 {
        failures.push(format!("{name}: reduction {}", report.totals.reduction));
    }
    eprintln!(
        "{name}: params {} -> {}, AUC {:.6} -> {:.6}",
        report.totals.params_before, report.totals.params_after, eval.auc_before, eval.auc_after
    );

    let model = out.join("model.onnx");
    let (inputs, _) = split_labels(&test).unwrap();
    let tract = run_model(&model, Backend::Tract, &inputs, 1024).unwrap();
    match run_model(&model, Backend::Native, &inputs, 1024) {
        Ok(native) => {
            let d = max_abs_diff(&probs(&native), &probs(&tract));
            if d > 1e-4 {
                failures.push(format!("{name}: max |native - tract| = {d}"));
            }
        }
        Err(e) => failures.push(format!("{name}: native runtime: {e}")),
    }
    if let Some(python) = python {
        let expected = out.join("tract_outputs.npz");
        let data = out.join("inputs.npz");
        write_npz(&expected, &tract).unwrap();
        write_npz(&data, &inputs).unwrap();
        let status = Command::new(python)
            .arg(&script)
            .arg(&model)
            .arg(&data)
            .arg(&expected)
            .status()
            .expect("CTR_EDGE_PYTHON runs");
        if !status.success() {
            failures.push(format!("{name}: ort_check.py failed ({status})"));
        }
    }
    failures
}

/// WDL (embeddings read by the DNN only) and DeepFM (also read by the FM interaction) at a
/// high compression: the fused artifact computes what the explicit one does (tract and native
/// runtime), is smaller, and passes onnx.checker + onnxruntime.
#[test]
fn dnn_projections_fuse_on_wdl_and_deepfm() {
    let python = std::env::var_os("CTR_EDGE_PYTHON");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ort_check.py");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    for (name, shared) in [("movielens_wdl", false), ("movielens_deepfm", true)] {
        let dir = root.join(name);
        let calib = read_npz(&dir.join("calib.npz")).unwrap();
        let test = head(&read_npz(&dir.join("test.npz")).unwrap(), 2000);
        let (inputs, _) = split_labels(&test).unwrap();
        let run = |fuse: bool| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("fusion-fixtures")
                .join(format!("{name}-{fuse}"));
            let _ = std::fs::remove_dir_all(&out);
            let options = CompressOptions {
                method: Method::Afm,
                ranks: Some(RankPolicy::Energy(0.99)),
                fuse,
                ..CompressOptions::default()
            };
            let report = compress_to_dir(
                &dir.join("model.onnx"),
                Some(&calib),
                None,
                &out,
                &options,
                &mut |_, _, _| {},
            )
            .unwrap();
            (out.join("model.onnx"), report)
        };
        let (fused, fused_report) = run(true);
        let (explicit, explicit_report) = run(false);
        let summary = fused_report.fusion.as_ref().unwrap();
        assert!(
            summary.fused.len() >= 7,
            "{name}: {} projections fused: {summary:?}",
            summary.fused.len()
        );
        assert!(summary
            .fused
            .iter()
            .all(|f| f.into == "dnn.linears.0.weight" && f.projection_kept == shared));
        assert!(
            fused_report.totals.params_after < explicit_report.totals.params_after,
            "{name}: fusion saves parameters"
        );
        let e = probs(&run_model(&explicit, Backend::Tract, &inputs, 1024).unwrap());
        for backend in [Backend::Tract, Backend::Native] {
            let f = probs(&run_model(&fused, backend, &inputs, 1024).unwrap());
            let d = max_abs_diff(&f, &e);
            assert!(d < 1e-5, "{name}: {backend:?} fused vs explicit: {d}");
        }
        if let Some(python) = &python {
            let dir = fused.parent().unwrap();
            let expected = dir.join("explicit_outputs.npz");
            let data = dir.join("inputs.npz");
            write_npz(
                &expected,
                &run_model(&explicit, Backend::Tract, &inputs, 1024).unwrap(),
            )
            .unwrap();
            write_npz(&data, &inputs).unwrap();
            let status = Command::new(python)
                .arg(&script)
                .arg(&fused)
                .arg(&data)
                .arg(&expected)
                .status()
                .expect("CTR_EDGE_PYTHON runs");
            assert!(status.success(), "{name}: ort_check.py failed ({status})");
        }
    }
}

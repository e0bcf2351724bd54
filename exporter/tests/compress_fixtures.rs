//! Every fixture model (`tests/fixtures/<name>/`, real DeepCTR-Torch exports) compressed three
//! ways: AFM at a 4x parameter reduction (the AUC gate read on the validation split and
//! printed; realistic models may lose more than the gate allows at 4x, and the artifact is
//! checked either way), SVD at 4x, and the AFM artifact re-written with f16 weights. Each artifact must run in the native runtime and, when
//! `CTR_EDGE_PYTHON` names a Python with onnx and onnxruntime, pass `onnx.checker` and match
//! onnxruntime's outputs (`ort_check.py`): within 1e-5 absolute for f32 weights and 2e-3 for
//! f16, with the same AUC to 1e-4. The AFM artifact is also compared with tract.
//!
//! With `CTR_EDGE_GOLDEN_OUT` set, the artifacts, their first rows and onnxruntime's outputs on
//! them are copied there (one folder per artifact, listed in `manifest.txt`), so that CI can
//! run the runtime's `fixtures_golden` test on them under qemu (NEON kernels).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ctr_edge_exporter::backend::{run_model, Backend};
use ctr_edge_exporter::compress::graph::{graph, load_model};
use ctr_edge_exporter::compress::ranks::RankPolicy;
use ctr_edge_exporter::compress::sites::{find_sites, SiteKind};
use ctr_edge_exporter::compress::{
    compress_to_dir, split_labels, CompressOptions, Method, WeightType,
};
use ctr_edge_exporter::metrics::auc;
use ctr_edge_exporter::npz::{read_npz, write_npz, NpyArray};

mod common;

use common::max_abs_diff;

/// Test rows used for the comparisons, and validation rows for the gate (whole splits take
/// longer in debug builds and add nothing to the checks).
const TEST_ROWS: usize = 3000;

/// Rows copied to `CTR_EDGE_GOLDEN_OUT` for the run under qemu.
const GOLDEN_ROWS: usize = 256;

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

/// The compressed forms every fixture is checked in.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    Afm,
    Svd,
    AfmF16,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Afm, Variant::Svd, Variant::AfmF16];

    fn name(self) -> &'static str {
        match self {
            Variant::Afm => "afm4",
            Variant::Svd => "svd4",
            Variant::AfmF16 => "afm4-f16",
        }
    }

    /// Largest |native - onnxruntime| allowed on a probability.
    fn tolerance(self) -> f64 {
        match self {
            Variant::AfmF16 => 2e-3,
            Variant::Afm | Variant::Svd => 1e-5,
        }
    }
}

/// One written artifact with the native runtime's scores on the test rows.
struct Artifact {
    fixture: String,
    variant: Variant,
    dir: PathBuf,
    /// The test rows' inputs, written as .npz for onnxruntime.
    inputs: PathBuf,
    /// tract's outputs (AFM only), for ort_check.py to compare with.
    tract: Option<PathBuf>,
    native: Vec<f64>,
    labels: Vec<f64>,
}

impl Artifact {
    fn label(&self) -> String {
        format!("{} {}", self.fixture, self.variant.name())
    }

    fn ort_outputs(&self) -> PathBuf {
        self.dir.join("ort_outputs.npz")
    }
}

#[test]
fn every_fixture_compressed_matches_onnxruntime() {
    let fixtures = fixtures();
    assert!(
        fixtures.iter().any(|f| f.ends_with("movielens_deepfm")),
        "tests/fixtures/movielens_deepfm is missing"
    );
    let python = std::env::var_os("CTR_EDGE_PYTHON");
    let golden = std::env::var_os("CTR_EDGE_GOLDEN_OUT").map(PathBuf::from);
    if python.is_none() {
        assert!(
            golden.is_none(),
            "CTR_EDGE_GOLDEN_OUT needs CTR_EDGE_PYTHON (onnxruntime writes the references)"
        );
        eprintln!("CTR_EDGE_PYTHON is not set: skipping the onnx.checker / onnxruntime checks");
    }
    // Fixtures are independent: a few workers take them in turn.
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let artifacts = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(dir) = fixtures.get(i) else { break };
                let (mut written, mut found) = compress_fixture(dir);
                artifacts.lock().unwrap().append(&mut written);
                failures.lock().unwrap().append(&mut found);
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    let mut artifacts = artifacts.into_inner().unwrap();
    artifacts.sort_by_key(|a| a.label());
    for fixture in &fixtures {
        let name = fixture.file_name().unwrap().to_string_lossy();
        for variant in Variant::ALL {
            if !artifacts
                .iter()
                .any(|a| a.fixture == name && a.variant == variant)
            {
                failures.push(format!("{name} {}: no artifact", variant.name()));
            }
        }
    }
    if let Some(python) = &python {
        failures.extend(compare_with_onnxruntime(python, &artifacts));
        if let Some(golden) = &golden {
            if let Err(e) = copy_goldens(golden, &artifacts) {
                failures.push(format!("copying the goldens to {}: {e}", golden.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Compresses one fixture in every variant, runs each artifact natively; returns the artifacts
/// written and the failures found.
fn compress_fixture(dir: &Path) -> (Vec<Artifact>, Vec<String>) {
    let mut failures = Vec::new();
    let mut artifacts = Vec::new();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("compress-fixtures")
        .join(&name);
    let _ = std::fs::remove_dir_all(&root);
    let calib = read_npz(&dir.join("calib.npz")).unwrap();
    let test = head(&read_npz(&dir.join("test.npz")).unwrap(), TEST_ROWS);
    let valid = head(&read_npz(&dir.join("valid.npz")).unwrap(), TEST_ROWS);
    let (inputs, labels) = split_labels(&test).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let inputs_path = root.join("inputs.npz");
    write_npz(&inputs_path, &inputs).unwrap();

    for variant in Variant::ALL {
        let out = root.join(variant.name());
        let (source, calib, gate, options) = match variant {
            Variant::Afm => (
                dir.join("model.onnx"),
                Some(&calib[..]),
                Some(&valid[..]),
                CompressOptions {
                    method: Method::Afm,
                    ranks: Some(RankPolicy::Ratio(4.0)),
                    force: true,
                    ..CompressOptions::default()
                },
            ),
            Variant::Svd => (
                dir.join("model.onnx"),
                None,
                None,
                CompressOptions {
                    method: Method::Svd,
                    ranks: Some(RankPolicy::Ratio(4.0)),
                    ..CompressOptions::default()
                },
            ),
            // The AFM artifact itself, re-laid with f16 weights.
            Variant::AfmF16 => (
                root.join(Variant::Afm.name()).join("model.onnx"),
                None,
                None,
                CompressOptions {
                    method: Method::None,
                    weights: WeightType::F16,
                    ..CompressOptions::default()
                },
            ),
        };
        let label = format!("{name} {}", variant.name());
        let report = match compress_to_dir(&source, calib, gate, &out, &options, &mut |_, _, _| {})
        {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        if variant == Variant::AfmF16 {
            if report.weights != "f16" {
                failures.push(format!("{label}: weights {}", report.weights));
            }
        } else if report.totals.reduction < 3.99 {
            failures.push(format!("{label}: reduction {}", report.totals.reduction));
        }
        if let Some(eval) = &report.eval {
            eprintln!(
                "{label}: params {} -> {}, valid AUC {:.6} -> {:.6} (gate {})",
                report.totals.params_before,
                report.totals.params_after,
                eval.auc_before,
                eval.auc_after,
                if eval.passed {
                    "passed"
                } else {
                    "refused; forced"
                }
            );
        }
        let model = out.join("model.onnx");
        let native = match run_model(&model, Backend::Native, &inputs, 1024) {
            Ok(native) => probs(&native),
            Err(e) => {
                failures.push(format!("{label}: native runtime: {e}"));
                continue;
            }
        };
        let mut tract_path = None;
        if variant == Variant::Afm {
            let tract = run_model(&model, Backend::Tract, &inputs, 1024).unwrap();
            let d = max_abs_diff(&native, &probs(&tract));
            if d > 1e-4 {
                failures.push(format!("{label}: max |native - tract| = {d}"));
            }
            let path = out.join("tract_outputs.npz");
            write_npz(&path, &tract).unwrap();
            tract_path = Some(path);
        }
        artifacts.push(Artifact {
            fixture: name.clone(),
            variant,
            dir: out,
            inputs: inputs_path.clone(),
            tract: tract_path,
            native,
            labels: labels.clone(),
        });
    }
    (artifacts, failures)
}

/// Runs every artifact through onnx.checker and onnxruntime (one `ort_check.py` process), then
/// compares the native scores with onnxruntime's: values and AUC.
fn compare_with_onnxruntime(python: &std::ffi::OsStr, artifacts: &[Artifact]) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ort_check.py");
    let jobs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compress-fixtures/ort_jobs.tsv");
    let mut list = String::new();
    for a in artifacts {
        let _ = std::fs::remove_file(a.ort_outputs());
        let tract = a
            .tract
            .as_ref()
            .map_or("-".into(), |p| p.display().to_string());
        list += &format!(
            "{}\t{}\t{tract}\t1e-4\t{}\n",
            a.dir.join("model.onnx").display(),
            a.inputs.display(),
            a.ort_outputs().display()
        );
    }
    std::fs::write(&jobs, list).unwrap();
    let status = Command::new(python)
        .arg(&script)
        .arg("--jobs")
        .arg(&jobs)
        .status()
        .expect("CTR_EDGE_PYTHON runs");
    let mut failures = Vec::new();
    if !status.success() {
        failures.push(format!(
            "ort_check.py failed ({status}); its output says which model"
        ));
    }
    for a in artifacts {
        let label = a.label();
        let ort = match read_npz(&a.ort_outputs()) {
            Ok(o) => probs(&o),
            Err(e) => {
                failures.push(format!("{label}: no onnxruntime outputs: {e}"));
                continue;
            }
        };
        let d = max_abs_diff(&a.native, &ort);
        let auc_native = auc(&a.native, &a.labels).unwrap();
        let auc_ort = auc(&ort, &a.labels).unwrap();
        eprintln!(
            "{label:<36} max |native - onnxruntime| {d:.2e}, AUC {auc_native:.6} vs {auc_ort:.6}"
        );
        if d > a.variant.tolerance() {
            failures.push(format!(
                "{label}: max |native - onnxruntime| = {d:e} > {:e}",
                a.variant.tolerance()
            ));
        }
        if (auc_native - auc_ort).abs() >= 1e-4 {
            failures.push(format!(
                "{label}: AUC native {auc_native} vs onnxruntime {auc_ort}"
            ));
        }
    }
    failures
}

/// Copies each artifact with its first rows and onnxruntime's outputs on them into
/// `golden/<fixture>-<variant>/`, and lists the folders in `golden/manifest.txt`.
fn copy_goldens(golden: &Path, artifacts: &[Artifact]) -> ctr_edge_exporter::Result<()> {
    let io = |e| ctr_edge_exporter::Error::Io {
        path: golden.to_path_buf(),
        source: e,
    };
    let _ = std::fs::remove_dir_all(golden);
    std::fs::create_dir_all(golden).map_err(io)?;
    let mut manifest = std::fs::File::create(golden.join("manifest.txt")).map_err(io)?;
    for a in artifacts {
        let folder = format!("{}-{}", a.fixture, a.variant.name());
        let dest = golden.join(&folder);
        std::fs::create_dir_all(&dest).map_err(io)?;
        for file in ["model.onnx", "model.weights"] {
            std::fs::copy(a.dir.join(file), dest.join(file)).map_err(io)?;
        }
        write_npz(
            &dest.join("inputs.npz"),
            &head(&read_npz(&a.inputs)?, GOLDEN_ROWS),
        )?;
        write_npz(
            &dest.join("ort_outputs.npz"),
            &head(&read_npz(&a.ort_outputs())?, GOLDEN_ROWS),
        )?;
        writeln!(manifest, "{folder}\t{:e}", a.variant.tolerance()).map_err(io)?;
    }
    Ok(())
}

/// WDL (embeddings read by the DNN only) and DeepFM (also read by the FM interaction) with
/// every table factorized: the fused artifact computes what the explicit one does (tract and native
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
            // Every table that rank 8 makes smaller, at rank 8 of 16, dense layers kept: the trained tables
            // are near full rank, so a variance rule might keep some of them whole.
            let model = load_model(&dir.join("model.onnx")).unwrap();
            let tables = find_sites(graph(&model).unwrap())
                .sites
                .into_iter()
                .filter(|s| matches!(s.kind, SiteKind::Embedding { .. }) && s.break_even_rank() > 8)
                .map(|s| (s.name, 8))
                .collect();
            let options = CompressOptions {
                method: Method::Afm,
                ranks: Some(RankPolicy::Explicit(tables)),
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

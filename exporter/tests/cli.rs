//! The `ctr-edge` binary end to end on a tiny two-input CTR model (`data/make_tiny_model.py`):
//! outputs against onnxruntime, AUC/LogLoss against scikit-learn, and the messages of every
//! kind of bad input.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use ctr_edge_exporter::npz::{read_npy, read_npz, write_npz, ArrayData, NpyArray};
use serde_json::Value;

mod common;

use common::{ctr_edge, data, path_str, stderr, stdout};

fn scratch(name: &str) -> PathBuf {
    common::scratch_in("cli-tests", name)
}

/// Run expecting failure; return stderr.
fn fails(args: &[&str]) -> String {
    let out = ctr_edge(args);
    assert!(
        !out.status.success(),
        "expected failure for {args:?}, got stdout:\n{}",
        stdout(&out)
    );
    stderr(&out)
}

/// `ctr-edge CMD data/MODEL --data DATA --backend BACKEND EXTRA...`.
fn on_data(cmd: &str, model: &str, data_file: &Path, backend: &str, extra: &[&str]) -> Output {
    let model = data(model);
    let mut args = vec![
        cmd,
        path_str(&model),
        "--data",
        path_str(data_file),
        "--backend",
        backend,
    ];
    args.extend_from_slice(extra);
    ctr_edge(&args)
}

/// `ctr-edge CMD tiny.onnx --data DATA --backend tract`, expecting failure; returns stderr.
fn tiny_fails(cmd: &str, data_file: &Path) -> String {
    let model = data("tiny.onnx");
    fails(&[
        cmd,
        path_str(&model),
        "--data",
        path_str(data_file),
        "--backend",
        "tract",
    ])
}

/// [`tiny_fails`] on the tiny model's data with `edit` applied (written to `name`).
/// `ctr-edge CMD` on the tiny model fails on the test data edited by `edit` (saved as `name`),
/// with a message holding every one of `expected`.
fn assert_refuses_edited(
    cmd: &str,
    name: &str,
    expected: &[&str],
    edit: impl FnOnce(&mut Vec<NpyArray>),
) {
    let e = tiny_fails(cmd, &edited_data(name, edit));
    common::assert_contains_all(&e, expected);
}

/// A run's only output (`prob`) against onnxruntime's, within 1e-5 per row.
fn assert_prob_matches_onnxruntime(got: NpyArray, engine: &str) {
    assert_eq!(got.shape, vec![200, 1]);
    let ArrayData::F32(got) = got.data else {
        panic!("prob is not f32")
    };
    for (i, (g, w)) in got.iter().zip(&reference_prob()).enumerate() {
        assert!(
            (g - w).abs() < 1e-5,
            "row {i}: {engine} {g} vs onnxruntime {w}"
        );
    }
}

fn expected() -> Value {
    serde_json::from_str(&fs::read_to_string(data("tiny_expected.json")).unwrap()).unwrap()
}

fn reference_prob() -> Vec<f32> {
    let arrays = read_npz(&data("tiny_expected.npz")).unwrap();
    assert_eq!(arrays[0].name, "prob");
    assert_eq!(arrays[0].shape, vec![200, 1]);
    match &arrays[0].data {
        ArrayData::F32(v) => v.clone(),
        other => panic!("prob is {:?}", other.dtype()),
    }
}

/// The tiny model's data with `edit` applied, written to a scratch .npz.
fn edited_data(name: &str, edit: impl FnOnce(&mut Vec<NpyArray>)) -> PathBuf {
    let mut arrays = read_npz(&data("tiny_data.npz")).unwrap();
    edit(&mut arrays);
    let path = scratch(name);
    write_npz(&path, &arrays).unwrap();
    path
}

fn array_mut<'a>(arrays: &'a mut [NpyArray], name: &str) -> &'a mut NpyArray {
    arrays.iter_mut().find(|a| a.name == name).unwrap()
}

#[test]
fn eval_with_tract_equals_sklearn() {
    let want = expected();
    // A batch size that does not divide 200 exercises the last, partial batch.
    for batch in ["7", "1024"] {
        let test = data("tiny_data.npz");
        let out = on_data(
            "eval",
            "tiny.onnx",
            &test,
            "tract",
            &["--json", "--batch-size", batch],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let got: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(got["rows"], 200);
        assert_eq!(got["backend"], "tract");
        assert_eq!(got["output"], "prob");
        let auc = got["auc"].as_f64().unwrap();
        assert!(
            (auc - want["auc"].as_f64().unwrap()).abs() < 1e-6,
            "AUC {auc}"
        );
        let logloss = got["logloss"].as_f64().unwrap();
        assert!(
            (logloss - want["logloss"].as_f64().unwrap()).abs() < 1e-4,
            "LogLoss {logloss}"
        );
        let rate = got["positives_rate"].as_f64().unwrap();
        assert!((rate - want["positives_rate"].as_f64().unwrap()).abs() < 1e-12);
    }
}

#[test]
fn eval_text_report_shows_auc_with_six_decimals() {
    let out = on_data("eval", "tiny.onnx", &data("tiny_data.npz"), "tract", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let auc = format!("{:.6}", expected()["auc"].as_f64().unwrap());
    let auc_line = format!("AUC        {auc}");
    common::assert_contains_all(
        &text,
        &[
            auc_line.as_str(),
            "rows       200",
            "LogLoss",
            "positives",
            "backend    tract",
            "time",
        ],
    );
}

#[test]
fn run_with_tract_equals_onnxruntime() {
    for (file, batch) in [("run_out.npz", "16"), ("run_out.npy", "1024")] {
        let out_path = scratch(file);
        let _ = fs::remove_file(&out_path);
        let extra = ["--batch-size", batch, "-o", path_str(&out_path)];
        let out = on_data("run", "tiny.onnx", &data("tiny_data.npz"), "tract", &extra);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("prob  f32 [200, 1]"), "{text}");
        assert!(text.contains("min ") && text.contains("mean ") && text.contains("first: "));
        let got = if file.ends_with(".npz") {
            read_npz(&out_path).unwrap().remove(0)
        } else {
            read_npy(&out_path).unwrap()
        };
        assert_prob_matches_onnxruntime(got, "tract");
    }
}

#[test]
fn tract_runs_any_batch_of_a_model_exported_with_batch_1() {
    let out_path = scratch("fixed_batch_out.npz");
    let extra = ["--batch-size", "64", "-o", path_str(&out_path)];
    let test = data("tiny_data.npz");
    let out = on_data("run", "tiny_fixed_batch.onnx", &test, "tract", &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_prob_matches_onnxruntime(read_npz(&out_path).unwrap().remove(0), "tract");
}

#[test]
fn native_backend_matches_onnxruntime_or_reports_a_runtime_error() {
    // The native runtime is written in parallel: until it runs this model, the command must
    // fail cleanly, naming the runtime and the model; once it does, it must agree.
    let out_path = scratch("native_out.npz");
    let _ = fs::remove_file(&out_path);
    let extra = ["-o", path_str(&out_path)];
    let out = on_data("run", "tiny.onnx", &data("tiny_data.npz"), "native", &extra);
    if out.status.success() {
        assert_prob_matches_onnxruntime(read_npz(&out_path).unwrap().remove(0), "native");
    } else {
        let e = stderr(&out);
        common::assert_contains_all(&e, &["native runtime", "tiny.onnx"]);
    }
}

#[test]
fn wrong_input_name_is_named_with_the_expected_shape() {
    assert_refuses_edited(
        "run",
        "renamed.npz",
        &["input 'dense': model expects f32 [N, 4]", "features"],
        |a| array_mut(a, "dense").name = "features".into(),
    );
}

#[test]
fn wrong_input_shape_shows_both_shapes() {
    assert_refuses_edited(
        "eval",
        "wide.npz",
        &["input 'dense': model expects f32 [N, 4], file has f32 [200, 5]"],
        |a| {
            let dense = array_mut(a, "dense");
            dense.shape = vec![200, 5];
            dense.data = ArrayData::F32(vec![0.5; 1000]);
        },
    );
}

#[test]
fn wrong_input_dtype_shows_both_dtypes() {
    assert_refuses_edited(
        "run",
        "ids_i32.npz",
        &["input 'ids': model expects i64 [N, 2], file has i32 [200, 2]"],
        |a| {
            let ids = array_mut(a, "ids");
            let ArrayData::I64(v) = &ids.data else {
                panic!("ids is not i64")
            };
            ids.data = ArrayData::I32(v.iter().map(|&x| x as i32).collect());
        },
    );
}

#[test]
fn inputs_with_different_row_counts_are_refused() {
    assert_refuses_edited(
        "run",
        "short_ids.npz",
        &["'dense' has 200", "'ids' has 150"],
        |a| {
            let ids = array_mut(a, "ids");
            *ids = ids.rows_slice(0, 150).unwrap();
        },
    );
}

#[test]
fn eval_without_label_says_so() {
    assert_refuses_edited("eval", "no_label.npz", &["no_label.npz", "'label'"], |a| {
        a.retain(|x| x.name != "label")
    });
}

#[test]
fn labels_must_be_binary_and_one_per_row() {
    assert_refuses_edited(
        "eval",
        "short_label.npz",
        &["'label' has 199 rows, the inputs 200"],
        |a| {
            let label = array_mut(a, "label");
            *label = label.rows_slice(0, 199).unwrap();
        },
    );
    assert_refuses_edited("eval", "soft_label.npz", &["not 0 or 1"], |a| {
        array_mut(a, "label").data = ArrayData::F32(vec![0.5; 200]);
    });
}

#[test]
fn missing_files_are_named() {
    let e = tiny_fails("eval", Path::new("does_not_exist.npz"));
    common::assert_contains_all(&e, &["does_not_exist.npz"]);
    let e = fails(&[
        "run",
        "no_model_here.onnx",
        "--data",
        path_str(&data("tiny_data.npz")),
        "--backend",
        "tract",
    ]);
    common::assert_contains_all(&e, &["no_model_here.onnx"]);
}

#[test]
fn truncated_data_file_is_named() {
    let bytes = fs::read(data("tiny_data.npz")).unwrap();
    let bad = scratch("truncated_data.npz");
    fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let e = tiny_fails("eval", &bad);
    common::assert_contains_all(&e, &["truncated_data.npz"]);
}

#[test]
fn bad_arguments_are_refused() {
    let model = data("tiny.onnx");
    let test = data("tiny_data.npz");
    let cases: [(&[&str], &[&str]); 3] = [
        (&["--batch-size", "0"], &["batch size"]),
        (&["--backend", "onnxruntime"], &["onnxruntime"]),
        (
            &["--backend", "tract", "-o", "out.csv"],
            &["out.csv", ".npz"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["run", path_str(&model), "--data", path_str(&test)];
        args.extend_from_slice(extra);
        common::assert_contains_all(&fails(&args), needles);
    }
}

#[test]
fn help_lists_run_and_eval_and_no_placeholders() {
    let out = ctr_edge(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(
        help.contains("  run ") && help.contains("  eval "),
        "{help}"
    );
    // Only implemented subcommands appear: none is announced as coming later.
    let lower = help.to_lowercase();
    for placeholder in ["not implemented", "todo", "coming soon", "placeholder"] {
        assert!(
            !lower.contains(placeholder),
            "help mentions {placeholder:?}:\n{help}"
        );
    }
}

#[test]
fn a_non_finite_auc_drop_is_refused() {
    for bad in ["NaN", "inf", "-inf"] {
        let flag = format!("--max-auc-drop={bad}");
        let e = fails(&["compress", "model.onnx", "--eval", "valid.npz", &flag]);
        common::assert_contains_all(&e, &["--max-auc-drop", "finite"]);
    }
}

/// A batch whose scratch memory is over the runtime's limit (xDeepFM's CIN at 10,000 rows:
/// 1.56 GB, over the 1 GiB default) names the limit and the knob that lowers it; the same data
/// in batches of 1,024 rows runs.
#[test]
fn a_batch_over_the_scratch_limit_suggests_a_smaller_batch_size() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/movielens_xdeepfm");
    let (model, test) = (fx.join("model.onnx"), fx.join("test.npz"));
    let out = scratch("xdeepfm-scores.npy");
    let _ = fs::remove_file(&out);
    let args = |batch: &'static str| {
        [
            "run",
            path_str(&model),
            "--data",
            path_str(&test),
            "--batch-size",
            batch,
            "-o",
            path_str(&out),
        ]
    };
    let err = fails(&args("10000"));
    common::assert_contains_all(
        &err,
        &[
            "max_scratch_bytes",
            "10000 rows per batch",
            "smaller --batch-size",
        ],
    );
    let ok = ctr_edge(&args("1024"));
    assert!(ok.status.success(), "{}", stderr(&ok));
}

//! The `ctr-edge` binary end to end on a tiny two-input CTR model (`data/make_tiny_model.py`):
//! outputs against onnxruntime, AUC/LogLoss against scikit-learn, and the messages of every
//! kind of bad input.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ctr_edge_exporter::npz::{read_npy, read_npz, write_npz, ArrayData, NpyArray};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-tests");
    fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn ctr_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctr-edge"))
        .args(args)
        .output()
        .expect("the ctr-edge binary runs")
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
    let model = data("tiny.onnx");
    let test = data("tiny_data.npz");
    let want = expected();
    // A batch size that does not divide 200 exercises the last, partial batch.
    for batch in ["7", "1024"] {
        let out = ctr_edge(&[
            "eval",
            path_str(&model),
            "--data",
            path_str(&test),
            "--backend",
            "tract",
            "--json",
            "--batch-size",
            batch,
        ]);
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
    let out = ctr_edge(&[
        "eval",
        path_str(&data("tiny.onnx")),
        "--data",
        path_str(&data("tiny_data.npz")),
        "--backend",
        "tract",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let auc = format!("{:.6}", expected()["auc"].as_f64().unwrap());
    assert!(text.contains(&format!("AUC        {auc}")), "{text}");
    for key in [
        "rows       200",
        "LogLoss",
        "positives",
        "backend    tract",
        "time",
    ] {
        assert!(text.contains(key), "missing {key:?} in\n{text}");
    }
}

#[test]
fn run_with_tract_equals_onnxruntime() {
    let want = reference_prob();
    for (file, batch) in [("run_out.npz", "16"), ("run_out.npy", "1024")] {
        let out_path = scratch(file);
        let _ = fs::remove_file(&out_path);
        let out = ctr_edge(&[
            "run",
            path_str(&data("tiny.onnx")),
            "--data",
            path_str(&data("tiny_data.npz")),
            "--backend",
            "tract",
            "--batch-size",
            batch,
            "-o",
            path_str(&out_path),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("prob  f32 [200, 1]"), "{text}");
        assert!(text.contains("min ") && text.contains("mean ") && text.contains("first: "));
        let got = if file.ends_with(".npz") {
            read_npz(&out_path).unwrap().remove(0)
        } else {
            read_npy(&out_path).unwrap()
        };
        assert_eq!(got.shape, vec![200, 1]);
        let ArrayData::F32(got) = got.data else {
            panic!("prob is not f32")
        };
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() < 1e-5,
                "row {i}: tract {g} vs onnxruntime {w}"
            );
        }
    }
}

#[test]
fn tract_runs_any_batch_of_a_model_exported_with_batch_1() {
    let out_path = scratch("fixed_batch_out.npz");
    let out = ctr_edge(&[
        "run",
        path_str(&data("tiny_fixed_batch.onnx")),
        "--data",
        path_str(&data("tiny_data.npz")),
        "--backend",
        "tract",
        "--batch-size",
        "64",
        "-o",
        path_str(&out_path),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = read_npz(&out_path).unwrap().remove(0);
    assert_eq!(got.shape, vec![200, 1]);
    let ArrayData::F32(got) = got.data else {
        panic!("prob is not f32")
    };
    for (g, w) in got.iter().zip(&reference_prob()) {
        assert!((g - w).abs() < 1e-5, "tract {g} vs onnxruntime {w}");
    }
}

#[test]
fn native_backend_matches_onnxruntime_or_reports_a_runtime_error() {
    // The native runtime is written in parallel: until it runs this model, the command must
    // fail cleanly, naming the runtime and the model; once it does, it must agree.
    let out_path = scratch("native_out.npz");
    let _ = fs::remove_file(&out_path);
    let out = ctr_edge(&[
        "run",
        path_str(&data("tiny.onnx")),
        "--data",
        path_str(&data("tiny_data.npz")),
        "--backend",
        "native",
        "-o",
        path_str(&out_path),
    ]);
    if out.status.success() {
        let got = read_npz(&out_path).unwrap().remove(0);
        let ArrayData::F32(got) = got.data else {
            panic!("prob is not f32")
        };
        for (g, w) in got.iter().zip(&reference_prob()) {
            assert!((g - w).abs() < 1e-5, "native {g} vs onnxruntime {w}");
        }
    } else {
        let e = stderr(&out);
        assert!(
            e.contains("native runtime") && e.contains("tiny.onnx"),
            "{e}"
        );
    }
}

#[test]
fn wrong_input_name_is_named_with_the_expected_shape() {
    let bad = edited_data("renamed.npz", |a| {
        array_mut(a, "dense").name = "features".into()
    });
    let e = fails(&[
        "run",
        path_str(&data("tiny.onnx")),
        "--data",
        path_str(&bad),
        "--backend",
        "tract",
    ]);
    assert!(
        e.contains("input 'dense': model expects f32 [N, 4]") && e.contains("features"),
        "{e}"
    );
}

#[test]
fn wrong_input_shape_shows_both_shapes() {
    let bad = edited_data("wide.npz", |a| {
        let dense = array_mut(a, "dense");
        dense.shape = vec![200, 5];
        dense.data = ArrayData::F32(vec![0.5; 1000]);
    });
    let e = fails(&[
        "eval",
        path_str(&data("tiny.onnx")),
        "--data",
        path_str(&bad),
        "--backend",
        "tract",
    ]);
    assert!(
        e.contains("input 'dense': model expects f32 [N, 4], file has f32 [200, 5]"),
        "{e}"
    );
}

#[test]
fn wrong_input_dtype_shows_both_dtypes() {
    let bad = edited_data("ids_i32.npz", |a| {
        let ids = array_mut(a, "ids");
        let ArrayData::I64(v) = &ids.data else {
            panic!("ids is not i64")
        };
        ids.data = ArrayData::I32(v.iter().map(|&x| x as i32).collect());
    });
    let e = fails(&[
        "run",
        path_str(&data("tiny.onnx")),
        "--data",
        path_str(&bad),
        "--backend",
        "tract",
    ]);
    assert!(
        e.contains("input 'ids': model expects i64 [N, 2], file has i32 [200, 2]"),
        "{e}"
    );
}

#[test]
fn inputs_with_different_row_counts_are_refused() {
    let bad = edited_data("short_ids.npz", |a| {
        let ids = array_mut(a, "ids");
        *ids = ids.rows_slice(0, 150).unwrap();
    });
    let e = fails(&[
        "run",
        path_str(&data("tiny.onnx")),
        "--data",
        path_str(&bad),
        "--backend",
        "tract",
    ]);
    assert!(
        e.contains("'dense' has 200") && e.contains("'ids' has 150"),
        "{e}"
    );
}

#[test]
fn eval_without_label_says_so() {
    let bad = edited_data("no_label.npz", |a| a.retain(|x| x.name != "label"));
    let e = fails(&[
        "eval",
        path_str(&data("tiny.onnx")),
        "--data",
        path_str(&bad),
        "--backend",
        "tract",
    ]);
    assert!(e.contains("no_label.npz") && e.contains("'label'"), "{e}");
}

#[test]
fn labels_must_be_binary_and_one_per_row() {
    let model = data("tiny.onnx");
    let short = edited_data("short_label.npz", |a| {
        let label = array_mut(a, "label");
        *label = label.rows_slice(0, 199).unwrap();
    });
    let e = fails(&[
        "eval",
        path_str(&model),
        "--data",
        path_str(&short),
        "--backend",
        "tract",
    ]);
    assert!(e.contains("'label' has 199 rows, the inputs 200"), "{e}");
    let soft = edited_data("soft_label.npz", |a| {
        array_mut(a, "label").data = ArrayData::F32(vec![0.5; 200]);
    });
    let e = fails(&[
        "eval",
        path_str(&model),
        "--data",
        path_str(&soft),
        "--backend",
        "tract",
    ]);
    assert!(e.contains("not 0 or 1"), "{e}");
}

#[test]
fn missing_files_are_named() {
    let e = fails(&[
        "eval",
        path_str(&data("tiny.onnx")),
        "--data",
        "does_not_exist.npz",
        "--backend",
        "tract",
    ]);
    assert!(e.contains("does_not_exist.npz"), "{e}");
    let e = fails(&[
        "run",
        "no_model_here.onnx",
        "--data",
        path_str(&data("tiny_data.npz")),
        "--backend",
        "tract",
    ]);
    assert!(e.contains("no_model_here.onnx"), "{e}");
}

#[test]
fn truncated_data_file_is_named() {
    let bytes = fs::read(data("tiny_data.npz")).unwrap();
    let bad = scratch("truncated_data.npz");
    fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&[
        "eval",
        path_str(&data("tiny.onnx")),
        "--data",
        path_str(&bad),
        "--backend",
        "tract",
    ]);
    assert!(e.contains("truncated_data.npz"), "{e}");
}

#[test]
fn bad_arguments_are_refused() {
    let model = data("tiny.onnx");
    let test = data("tiny_data.npz");
    let e = fails(&[
        "run",
        path_str(&model),
        "--data",
        path_str(&test),
        "--batch-size",
        "0",
    ]);
    assert!(e.contains("batch size"), "{e}");
    let e = fails(&[
        "run",
        path_str(&model),
        "--data",
        path_str(&test),
        "--backend",
        "onnxruntime",
    ]);
    assert!(e.contains("onnxruntime"), "{e}");
    let e = fails(&[
        "run",
        path_str(&model),
        "--data",
        path_str(&test),
        "--backend",
        "tract",
        "-o",
        "out.csv",
    ]);
    assert!(e.contains("out.csv") && e.contains(".npz"), "{e}");
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

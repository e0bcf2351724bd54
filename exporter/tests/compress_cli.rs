//! `ctr-edge inspect` and `ctr-edge compress` from the command line on the bundled MovieLens
//! DeepFM fixture: the happy path, the AUC gate, and every kind of bad input, each a clear
//! message, a non-zero exit and no output folder left behind.

use std::fs;
use std::path::{Path, PathBuf};

use ctr_edge_exporter::npz::{read_npz, write_npz, ArrayData, NpyArray};
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};

mod common;

use common::{ctr_edge, path_str as s, stderr, stdout};
use tract_onnx::pb::{
    type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/movielens_deepfm")
        .join(file)
}

/// The fixture's `meta.json` (written by make_fixtures.py: the architecture and PyTorch's
/// metrics, independent of ctr-edge).
fn meta() -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(fixture("meta.json")).unwrap()).unwrap()
}

/// The DNN's hidden sizes, from meta.json.
fn dnn_units() -> Vec<usize> {
    meta()["architecture"]["hyper_parameters"]["dnn_hidden_units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

/// Name of the DNN's last layer (`[last hidden] -> 1`), from `inspect --json`.
fn output_layer() -> String {
    let o = ctr_edge(&["inspect", s(&fixture("model.onnx")), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "dense" && s["outputs"] == 1)
        .expect("a dense site with one output")["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A fresh scratch path (whatever was there is removed).
fn scratch(name: &str) -> PathBuf {
    let p = common::scratch_in("compress-cli", name);
    let _ = fs::remove_dir_all(&p);
    let _ = fs::remove_file(&p);
    p
}

/// `compress MODEL [--calib CALIB] -o OUT EXTRA...`.
fn compress_args<'a>(
    model: &'a Path,
    calib: Option<&'a Path>,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["compress", s(model)];
    if let Some(calib) = calib {
        args.extend(["--calib", s(calib)]);
    }
    args.extend(["-o", s(out)]);
    args.extend_from_slice(extra);
    args
}

/// Runs `compress` expecting a failure whose message contains every one of `words`, and
/// checks that `out` was not created.
fn refused(args: &[&str], out: &Path, words: &[&str]) {
    let o = ctr_edge(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded:\n{}", stdout(&o));
    for w in words {
        assert!(err.contains(w), "{args:?}: '{w}' not in:\n{err}");
    }
    assert!(!out.exists(), "{args:?} left {}", out.display());
}

/// [`refused`] on [`compress_args`].
fn compress_refused(
    model: &Path,
    calib: Option<&Path>,
    out: &Path,
    extra: &[&str],
    words: &[&str],
) {
    refused(&compress_args(model, calib, out, extra), out, words);
}

fn calib_with(name: &str, arrays: Vec<NpyArray>) -> PathBuf {
    let p = scratch(name);
    write_npz(&p, &arrays).unwrap();
    p
}

#[test]
fn inspect_lists_the_sites() {
    let o = ctr_edge(&["inspect", s(&fixture("model.onnx"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let dnn = dnn_units();
    let fields = meta()["data"]["features"].as_array().unwrap().len();
    let second = format!("{}->{}", dnn[0], dnn[1]);
    common::assert_contains_all(
        &text,
        &[
            "X FLOAT [batch, 8]",
            "embedding_dict.item_id.weight",
            "1682x16",
            "dnn.linears.1.weight",
            second.as_str(),
        ],
    );
    let o = ctr_edge(&["inspect", s(&fixture("model.onnx")), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sites = json["sites"].as_array().unwrap();
    // Per field an embedding and a linear-part table, every DNN layer, the output layer.
    assert_eq!(sites.len(), 2 * fields + dnn.len() + 1);
    let dense = sites
        .iter()
        .find(|s| s["name"] == "dnn.linears.0.weight")
        .unwrap();
    let inputs = 16 * fields;
    assert_eq!(dense["kind"], "dense");
    assert_eq!(dense["inputs"], inputs);
    assert_eq!(dense["outputs"], dnn[0]);
    // k (m + n) >= m n from rank ceil(m n / (m + n)) on.
    assert_eq!(
        dense["break_even_rank"],
        (inputs * dnn[0]).div_ceil(inputs + dnn[0])
    );
}

#[test]
fn compress_writes_the_artifact_and_report() {
    let out = scratch("ok");
    let last = output_layer();
    let last_rank = format!("{last}=1");
    let (model, calib) = (fixture("model.onnx"), fixture("calib.npz"));
    let extra = [
        "--method",
        "svd",
        "--rank",
        "dnn.linears.1.weight=20",
        "--rank",
        &last_rank,
        "--json",
    ];
    let o = ctr_edge(&compress_args(&model, Some(&calib), &out, &extra));
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let site = |n: &str| {
        json["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(site("dnn.linears.1.weight")["rank"], 20);
    // k (m + n) >= m n: kept, and the report says why.
    assert!(site(&last)["rank"].is_null());
    assert!(site(&last)["note"].as_str().unwrap().contains(">="));
    for f in ["model.onnx", "model.weights", "report.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let leftovers: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["model.onnx", "model.weights", "report.json"].contains(&n.as_str()))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_auc_gate_refuses_and_force_overrides() {
    let out = scratch("gate");
    let (model, calib, valid) = (
        fixture("model.onnx"),
        fixture("calib.npz"),
        fixture("valid.npz"),
    );
    let extra = [
        "--energy",
        "0.05",
        "--eval",
        s(&valid),
        "--max-auc-drop",
        "0.0005",
    ];
    let args = compress_args(&model, Some(&calib), &out, &extra);
    let o = ctr_edge(&args);
    let err = stderr(&o);
    assert!(!o.status.success());
    // The original's AUC on the validation split, as tract computes it, is PyTorch's
    // (meta.json) to float rounding.
    let original: f64 = err
        .split("the original's ")
        .nth(1)
        .and_then(|t| t.split(|c: char| c != '.' && !c.is_ascii_digit()).next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no original AUC in: {err}"));
    let torch = meta()["metrics"]["valid_torch"]["auc"].as_f64().unwrap();
    assert!(err.contains("AUC is 0."), "{err}");
    assert!(
        (original - torch).abs() < 1e-5,
        "{original} vs PyTorch {torch}: {err}"
    );
    assert!(err.contains("nothing written"), "{err}");
    assert!(!out.exists());

    let mut forced = args.clone();
    forced.push("--force");
    let o = ctr_edge(&forced);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("EXCEEDED, written because of --force"),
        "{}",
        stdout(&o)
    );
    assert!(out.join("model.onnx").is_file());
}

#[test]
fn bad_calibration_data_is_refused_without_output() {
    let good = read_npz(&fixture("calib.npz")).unwrap();
    let x = good.iter().find(|a| a.name == "X").unwrap();
    let rows = x.rows().unwrap();
    let model = fixture("model.onnx");

    let missing = calib_with(
        "missing.npz",
        vec![NpyArray::new("Y", x.shape.clone(), x.data.clone()).unwrap()],
    );
    let f64_data = ArrayData::F64(x.data.to_f64());
    let wrong_dtype = calib_with(
        "dtype.npz",
        vec![NpyArray::new("X", x.shape.clone(), f64_data).unwrap()],
    );
    let wrong_shape = calib_with(
        "shape.npz",
        vec![NpyArray::new("X", vec![rows, 7], ArrayData::F32(vec![0.0; rows * 7])).unwrap()],
    );
    let empty = calib_with(
        "empty.npz",
        vec![NpyArray::new("X", vec![0, 8], ArrayData::F32(vec![])).unwrap()],
    );
    let cases: [(&Path, &[&str]); 4] = [
        (&missing, &["input 'X'", "no such array", "Y"]),
        (
            &wrong_dtype,
            &["input 'X'", "f32 [batch, 8]", "f64 [5000, 8]"],
        ),
        (
            &wrong_shape,
            &["input 'X'", "f32 [batch, 8]", "f32 [5000, 7]"],
        ),
        (&empty, &["no rows"]),
    ];
    for (i, (calib, words)) in cases.iter().enumerate() {
        let out = scratch(&format!("bad-calib-{i}"));
        compress_refused(&model, Some(calib), &out, &["--ratio", "4"], words);
    }
}

#[test]
fn bad_arguments_are_refused_without_output() {
    let model = fixture("model.onnx");
    let calib = fixture("calib.npz");
    let out = scratch("bad-args");
    let cases: [(bool, &[&str], &[&str]); 6] = [
        (
            true,
            &["--rank", "no.such.weight=3"],
            &[
                "no.such.weight",
                "not a compressible site",
                "dnn.linears.0.weight",
            ],
        ),
        (
            true,
            &["--rank", "dnn.linears.0.weight=0"],
            &["between 1 and 128"],
        ),
        (true, &[], &["--ratio", "--energy", "--rank"]),
        (false, &["--ratio", "4"], &["--calib"]),
        (true, &["--ratio", "400"], &["out of reach"]),
        (
            true,
            &["--ratio", "4", "--energy", "0.9"],
            &["cannot be used with"],
        ),
    ];
    for (with_calib, extra, words) in cases {
        let calib = with_calib.then_some(calib.as_path());
        compress_refused(&model, calib, &out, extra, words);
    }
}

#[test]
fn unwritable_output_folder_is_refused() {
    let file = scratch("a-file");
    fs::write(&file, b"not a folder").unwrap();
    let out = file.join("out");
    let (model, calib) = (fixture("model.onnx"), fixture("calib.npz"));
    compress_refused(&model, Some(&calib), &out, &["--ratio", "4"], &[s(&out)]);
    assert_eq!(fs::read(&file).unwrap(), b"not a folder");
}

#[test]
fn a_model_without_sites_is_refused() {
    let vi = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        Dimension {
                            denotation: String::new(),
                            value: Some(dimension::Value::DimParam("N".into())),
                        },
                        Dimension {
                            denotation: String::new(),
                            value: Some(dimension::Value::DimValue(8)),
                        },
                    ],
                }),
            })),
        }),
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            name: "relu".into(),
            node: vec![NodeProto {
                op_type: "Relu".into(),
                name: "relu".into(),
                input: vec!["X".into()],
                output: vec!["Y".into()],
                ..Default::default()
            }],
            input: vec![vi("X")],
            output: vec![vi("Y")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = scratch("relu.onnx");
    fs::write(&path, m.encode_to_vec()).unwrap();
    let out = scratch("no-sites");
    let calib = fixture("calib.npz");
    let ratio = ["--ratio", "2"];
    compress_refused(&path, Some(&calib), &out, &ratio, &["no compressible site"]);
    let not_onnx = scratch("garbage.onnx");
    fs::write(&not_onnx, b"\xff\xff\xff garbage").unwrap();
    compress_refused(
        &not_onnx,
        Some(&calib),
        &out,
        &ratio,
        &["not an ONNX model"],
    );
}

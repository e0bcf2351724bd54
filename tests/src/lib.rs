//! Shared helpers for the end-to-end tests: finding the committed fixture models
//! (`tests/fixtures/<data>_<arch>/`) and reading their data.

/// The ONNX graph builders (one copy, in the exporter).
pub use ctr_edge_exporter::onnx_build;

use std::path::{Path, PathBuf};

use ctr_edge_exporter::npz::{read_npz, NpyArray};
use onnx_build::{model, node, tensor_f32, value_info};
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::ModelProto;

/// `tests/fixtures` of this checkout.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One fixture folder.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Folder name, e.g. `movielens_deepfm`.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// `meta.json`.
    pub meta: serde_json::Value,
}

impl Fixture {
    /// `model.onnx`.
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }

    /// The model inputs of `test.npz` (every array but `label`) and the labels.
    pub fn test_data(&self) -> (Vec<NpyArray>, Vec<f64>) {
        split_label(read_npz(&self.dir.join("test.npz")).expect("test.npz reads"))
    }

    /// The model inputs of `valid.npz` (the validation split) and the labels.
    pub fn valid_data(&self) -> (Vec<NpyArray>, Vec<f64>) {
        split_label(read_npz(&self.dir.join("valid.npz")).expect("valid.npz reads"))
    }

    /// The arrays of `ref.npz` (onnxruntime's outputs on `test.npz`).
    pub fn reference(&self) -> Vec<NpyArray> {
        read_npz(&self.dir.join("ref.npz")).expect("ref.npz reads")
    }

    /// Test AUC that onnxruntime's outputs gave in the training script (sklearn).
    pub fn ort_auc(&self) -> Option<f64> {
        self.meta["metrics"]["test_onnxruntime"]["auc"].as_f64()
    }

    /// Test LogLoss of onnxruntime's outputs (sklearn).
    pub fn ort_logloss(&self) -> Option<f64> {
        self.meta["metrics"]["test_onnxruntime"]["logloss"].as_f64()
    }

    /// True when the model (and so its export) cannot score a batch of one (DCNMix).
    pub fn batch1_broken(&self) -> bool {
        self.meta["batch1_broken"].as_bool().unwrap_or(false)
    }
}

/// Splits `label` off a list of arrays.
pub fn split_label(arrays: Vec<NpyArray>) -> (Vec<NpyArray>, Vec<f64>) {
    let mut labels = Vec::new();
    let mut inputs = Vec::new();
    for a in arrays {
        if a.name == "label" {
            labels = a.data.to_f64();
        } else {
            inputs.push(a);
        }
    }
    (inputs, labels)
}

/// Every fixture folder holding a `model.onnx`, sorted by name. Panics when the folder is
/// missing: the fixtures are committed, so their absence is a broken checkout.
pub fn fixtures() -> Vec<Fixture> {
    let dir = fixtures_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("readable entry").path();
        if !path.join("model.onnx").is_file() {
            continue;
        }
        let meta_text = std::fs::read_to_string(path.join("meta.json")).expect("meta.json");
        out.push(Fixture {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            meta: serde_json::from_str(&meta_text).expect("meta.json parses"),
            dir: path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Largest absolute difference between two f32 arrays of one shape.
pub fn max_abs_diff(a: &NpyArray, b: &NpyArray) -> f64 {
    assert_eq!(a.shape, b.shape, "shapes of '{}' and '{}'", a.name, b.name);
    a.data
        .to_f64()
        .iter()
        .zip(b.data.to_f64())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Asserts that `outputs` (of `engine` on the fixture's `test.npz`) are onnxruntime's
/// (`ref.npz`): the same outputs by name, each within 1e-5; prints the differences.
pub fn assert_matches_onnxruntime(f: &Fixture, outputs: &[NpyArray], engine: &str) {
    let reference = f.reference();
    assert_eq!(outputs.len(), reference.len(), "{}", f.name);
    for (o, r) in outputs.iter().zip(&reference) {
        assert_eq!(o.name, r.name, "{}: output names", f.name);
        let d = max_abs_diff(o, r);
        assert!(
            d <= 1e-5,
            "{}: {engine} vs onnxruntime max |diff| {d:e}",
            f.name
        );
        println!("{:<28} {engine} vs onnxruntime max |diff| {d:.2e}", f.name);
    }
}

/// A two-layer MLP, `Y = Sigmoid(Relu(X W + b) W2)`, for X f32 `[N, inputs]` with
/// `[inputs, hidden, outputs] = sizes`: W `[inputs, hidden]`, b `[hidden]`, W2
/// `[hidden, outputs]`, all initializers.
pub fn mlp_model(sizes: [usize; 3], w: &[f32], b: &[f32], w2: &[f32]) -> ModelProto {
    let [inputs, hidden, outputs] = sizes;
    model(
        vec![
            node("MatMul", &["X", "W"], &["h"], vec![]),
            node("Add", &["h", "b"], &["hb"], vec![]),
            node("Relu", &["hb"], &["r"], vec![]),
            node("MatMul", &["r", "W2"], &["z"], vec![]),
            node("Sigmoid", &["z"], &["Y"], vec![]),
        ],
        vec![
            tensor_f32("W", &[inputs, hidden], w),
            tensor_f32("b", &[hidden], b),
            tensor_f32("W2", &[hidden, outputs], w2),
        ],
        vec![value_info(
            "X",
            DataType::Float,
            &[None, Some(inputs as i64)],
        )],
        vec![value_info(
            "Y",
            DataType::Float,
            &[None, Some(outputs as i64)],
        )],
    )
}

/// The fixture set the issue asks for; a missing one fails the tests.
pub const EXPECTED_FIXTURES: &[&str] = &[
    "avazu_deepfm",
    "criteo_dcnv2",
    "criteo_deepfm",
    "kdd_dcnv2",
    "kdd_deepfm",
    "movielens_afn",
    "movielens_autoint",
    "movielens_dcn",
    "movielens_dcnmix",
    "movielens_dcnv2",
    "movielens_deepfm",
    "movielens_deepfm_dynamo",
    "movielens_fibinet",
    "movielens_nfm",
    "movielens_wdl",
    "movielens_xdeepfm",
    "talkingdata_deepfm",
];

//! Artifact layout checked with readers independent of the writer: the runtime's ONNX decoder
//! for offsets and lengths, the raw file bytes for values, the runtime and tract for running.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use half::f16;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{GraphProto, ModelProto, OperatorSetIdProto, TensorProto};
use tract_onnx::prelude::{
    tvec, DatumExt, Framework, InferenceModelExt, IntoRunnable, IntoTValue, Tensor,
};

use super::*;
use crate::onnx_build::{attr_int as int_attr, node, value_info, values};
use ctr_edge_runtime::onnx::TensorData;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Input, Model};

const K: usize = 17; // input features
const H: usize = 5; // hidden
const O: usize = 9; // outputs
const ROWS: usize = 20; // embedding rows
const IDS: usize = 12; // gathered ids

fn tensor(name: &str, dt: DataType, dims: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: dt as i32,
        dims: dims.to_vec(),
        ..Default::default()
    }
}

/// The values the test model holds, kept apart to build the reference.
struct Weights {
    w1: Vec<f32>,
    b1: Vec<f32>,
    e: Vec<f32>,
    idx: Vec<i64>,
    w2: Vec<f16>,
}

fn weights() -> Weights {
    let [w1, b1, e] = [(K * H, 1), (H, 2), (ROWS * H, 3)].map(|(n, seed)| values(n, seed));
    Weights {
        w1,
        b1,
        e,
        idx: (0..IDS as i64).map(|i| (i * 7 + 3) % ROWS as i64).collect(),
        w2: values(H * O, 4).into_iter().map(f16::from_f32).collect(),
    }
}

/// `Y = Reshape(MatMul(Relu(X W1 + b1) + ReduceSum(Gather(E, idx), 0), Cast(W2h)), [-1, O])`,
/// its initializers stored in every field kind: raw_data (W1), float_data (b1, E), int64_data
/// (idx, axes, shape), int32_data carrying f16 bits (W2h).
fn test_model(w: &Weights) -> ModelProto {
    let mut w1 = tensor("W1", DataType::Float, &[K as i64, H as i64]);
    w1.raw_data = w.w1.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut b1 = tensor("b1", DataType::Float, &[H as i64]);
    b1.float_data = w.b1.clone();
    let mut e = tensor("E", DataType::Float, &[ROWS as i64, H as i64]);
    e.float_data = w.e.clone();
    let mut idx = tensor("idx", DataType::Int64, &[IDS as i64]);
    idx.int64_data = w.idx.clone();
    let mut axes = tensor("axes", DataType::Int64, &[1]);
    axes.int64_data = vec![0];
    let mut w2h = tensor("W2h", DataType::Float16, &[H as i64, O as i64]);
    w2h.int32_data = w.w2.iter().map(|v| i32::from(v.to_bits())).collect();
    let mut shape = tensor("shape", DataType::Int64, &[2]);
    shape.int64_data = vec![-1, O as i64];
    let keepdims = vec![int_attr("keepdims", 1)];
    let to_f32 = vec![int_attr("to", DataType::Float as i64)];
    let graph = GraphProto {
        name: "artifact_test".into(),
        node: vec![
            node("MatMul", &["X", "W1"], &["h"], vec![]),
            node("Add", &["h", "b1"], &["hb"], vec![]),
            node("Relu", &["hb"], &["r"], vec![]),
            node("Gather", &["E", "idx"], &["g"], vec![]),
            node("ReduceSum", &["g", "axes"], &["bias2"], keepdims),
            node("Add", &["r", "bias2"], &["r2"], vec![]),
            node("Cast", &["W2h"], &["W2"], to_f32),
            node("MatMul", &["r2", "W2"], &["z"], vec![]),
            node("Reshape", &["z", "shape"], &["Y"], vec![]),
        ],
        initializer: vec![w1, b1, e, idx, axes, w2h, shape],
        input: vec![value_info("X", DataType::Float, &[None, Some(K as i64)])],
        output: vec![value_info("Y", DataType::Float, &[None, Some(O as i64)])],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "ctr-edge-test".into(),
        graph: Some(graph),
        ..Default::default()
    }
}

/// Naive f64 reference of the test model.
fn reference(w: &Weights, x: &[f32], n: usize) -> Vec<f64> {
    let mut bias2 = [0f64; H];
    for &id in &w.idx {
        for (j, b) in bias2.iter_mut().enumerate() {
            *b += f64::from(w.e[id as usize * H + j]);
        }
    }
    let mut y = vec![0f64; n * O];
    for r in 0..n {
        let mut hid = [0f64; H];
        for (j, hj) in hid.iter_mut().enumerate() {
            let mut s = f64::from(w.b1[j]);
            for k in 0..K {
                s += f64::from(x[r * K + k]) * f64::from(w.w1[k * H + j]);
            }
            *hj = s.max(0.0) + bias2[j];
        }
        for o in 0..O {
            y[r * O + o] = (0..H)
                .map(|j| hid[j] * f64::from(w.w2[j * O + o].to_f32()))
                .sum();
        }
    }
    y
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let far = |(&g, &w): (&f32, &f64)| (f64::from(g) - w).abs() > 1e-4 * (1.0 + w.abs());
    if let Some(i) = got.iter().zip(want).position(far) {
        panic!("{what}[{i}]: got {}, want {}", got[i], want[i]);
    }
}

fn tempdir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "ctr-edge-artifact-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    d
}

/// Entries beside `dir` named after it (`.NAME.tmp-...`, `.NAME.old-...`).
fn temporaries_of(dir: &Path) -> Vec<String> {
    let prefix = format!(".{}.", dir.file_name().unwrap().to_string_lossy());
    fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn meta() -> Vec<(String, String)> {
    vec![
        ("ctr_edge.method".into(), "afm".into()),
        ("ctr_edge.ranks".into(), "W1=3".into()),
    ]
}

#[test]
fn layout_offsets_lengths_values_and_checksum() {
    let w = weights();
    let dir = tempdir("layout");
    let info = write_artifact(test_model(&w), &dir, &meta()).unwrap();
    assert_eq!(file_names(&dir), [MODEL_FILE, WEIGHTS_FILE]);
    let onnx = fs::read(dir.join(MODEL_FILE)).unwrap();
    let bytes = fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    assert_eq!(info.model_bytes, onnx.len() as u64);
    assert_eq!(info.weights_bytes, bytes.len() as u64);
    assert_eq!((info.external_tensors, info.inline_tensors), (4, 3));

    // Independent reader: the runtime's protobuf decoder.
    let decoded = ctr_edge_runtime::onnx::decode_model(&onnx).unwrap();
    let le_f32 = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let expected: Vec<(&str, Vec<u8>)> = vec![
        ("W1", le_f32(&w.w1)),
        ("E", le_f32(&w.e)),
        ("idx", w.idx.iter().flat_map(|x| x.to_le_bytes()).collect()),
        (
            "W2h",
            w.w2.iter()
                .flat_map(|x| x.to_bits().to_le_bytes())
                .collect(),
        ),
    ];
    let mut ranges = Vec::new();
    for t in &decoded.graph.initializers {
        let want = expected.iter().find(|(n, _)| *n == t.name);
        match (&t.data, want) {
            (
                TensorData::External {
                    location,
                    offset,
                    length,
                },
                Some((name, want)),
            ) => {
                assert_eq!(*location, WEIGHTS_FILE, "{name}");
                assert_eq!(offset % 64, 0, "{name}: offset {offset} not 64-aligned");
                assert_eq!(*length, Some(want.len() as u64), "{name}: length");
                let (start, end) = (*offset as usize, *offset as usize + want.len());
                assert_eq!(&bytes[start..end], &want[..], "{name}: bytes at offset");
                ranges.push((start, end));
            }
            (TensorData::External { .. }, None) => panic!("{} should be inline", t.name),
            (_, Some((name, _))) => panic!("{name} should be external"),
            (_, None) => {}
        }
    }
    assert_eq!(ranges.len(), 4);
    ranges.sort();
    for pair in ranges.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlapping tensors {pair:?}");
    }
    // Padding is zeros, and the file ends with the last tensor.
    let mut covered = vec![false; bytes.len()];
    for &(s, e) in &ranges {
        covered[s..e].iter_mut().for_each(|c| *c = true);
    }
    assert!(bytes.iter().zip(&covered).all(|(&b, &c)| c || b == 0));
    assert_eq!(ranges.last().unwrap().1, bytes.len());

    let meta_of = |k: &str| {
        decoded
            .metadata
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| *v)
    };
    assert_eq!(meta_of(META_VERSION), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(
        meta_of(META_WEIGHTS_CHECKSUM),
        Some(info.weights_checksum.as_str())
    );
    assert_eq!(info.weights_checksum, weights_checksum(&bytes));
    // Size in decimal, and the runtime's sampled identity of the file as written.
    let size = bytes.len().to_string();
    assert_eq!(meta_of(META_WEIGHTS_BYTES), Some(size.as_str()));
    assert_eq!(
        meta_of(META_WEIGHTS_IDENTITY),
        Some(weights_identity(&bytes).as_str())
    );
    assert_eq!(info.weights_identity, weights_identity(&bytes));
    assert_eq!(meta_of("ctr_edge.method"), Some("afm"));
    assert_eq!(meta_of("ctr_edge.ranks"), Some("W1=3"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn runtime_and_tract_agree_with_the_reference() {
    let w = weights();
    let dir = tempdir("run");
    write_artifact(test_model(&w), &dir, &[]).unwrap();
    let path = dir.join(MODEL_FILE);
    let model = Model::open(&path).unwrap();
    let mut session = model.session();
    for n in [1usize, 3, 32] {
        let x = values(n * K, 10 + n as u32);
        let want = reference(&w, &x, n);

        session
            .run(&[Input {
                name: "X",
                shape: &[n, K],
                data: InputData::F32(&x),
            }])
            .unwrap();
        let out = session.output(0).unwrap();
        assert_eq!(out.shape, [n, O]);
        assert_close(out.data, &want, &format!("runtime, batch {n}"));

        let plan = tract_onnx::onnx()
            .model_for_path(&path)
            .unwrap()
            .with_input_fact(0, f32::fact([n, K]).into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let xt = Tensor::from_shape(&[n, K], &x).unwrap();
        let got = plan.run(tvec!(xt.into_tvalue())).unwrap();
        let view = got[0].try_as_plain().unwrap();
        assert_close(
            view.as_slice::<f32>().unwrap(),
            &want,
            &format!("tract, batch {n}"),
        );
    }
    drop(session);
    drop(model);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rewriting_replaces_both_files_and_leaves_no_temporaries() {
    let w = weights();
    let dir = tempdir("rewrite");
    let first = write_artifact(test_model(&w), &dir, &[]).unwrap();
    let mut changed = test_model(&w);
    changed.graph.as_mut().unwrap().initializer[0].raw_data[0] ^= 1;
    let second = write_artifact(changed, &dir, &[]).unwrap();
    assert_ne!(first.weights_checksum, second.weights_checksum);
    assert_eq!(file_names(&dir), [MODEL_FILE, WEIGHTS_FILE]);
    let bytes = fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    assert_eq!(weights_checksum(&bytes), second.weights_checksum);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_tensor_fails_and_leaves_nothing() {
    let w = weights();
    let dir = tempdir("bad");
    let mut m = test_model(&w);
    // Drop one value of E: 99 values for dims [20, 5].
    m.graph.as_mut().unwrap().initializer[2].float_data.pop();
    let err = write_artifact(m, &dir, &[]).unwrap_err().to_string();
    assert!(
        err.contains("'E'") && err.contains("100") && err.contains("99"),
        "{err}"
    );
    assert!(!dir.exists());
    assert!(
        temporaries_of(&dir).is_empty(),
        "{:?}",
        temporaries_of(&dir)
    );

    // Over an existing artifact: the old one stays as it was.
    write_artifact(test_model(&w), &dir, &[]).unwrap();
    let before = fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    let mut m = test_model(&w);
    m.graph.as_mut().unwrap().initializer[0].raw_data.pop();
    let err = write_artifact(m, &dir, &[]).unwrap_err().to_string();
    assert!(err.contains("'W1'") && err.contains("339"), "{err}");
    assert_eq!(file_names(&dir), [MODEL_FILE, WEIGHTS_FILE]);
    assert_eq!(fs::read(dir.join(WEIGHTS_FILE)).unwrap(), before);
    assert!(temporaries_of(&dir).is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reserved_metadata_keys_are_refused() {
    let w = weights();
    let dir = tempdir("reserved");
    for key in [
        META_VERSION,
        META_WEIGHTS_CHECKSUM,
        META_WEIGHTS_BYTES,
        META_WEIGHTS_IDENTITY,
    ] {
        let meta = [(key.to_string(), "x".to_string())];
        let err = write_artifact(test_model(&w), &dir, &meta).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
        assert!(!dir.exists());
    }
}

#[test]
fn unwritable_output_folder_is_a_clear_error() {
    let w = weights();
    let dir = tempdir("unwritable");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    fs::write(&file, b"x").unwrap();
    // A folder below a regular file cannot be created (even as root).
    let err = write_artifact(test_model(&w), &file.join("out"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a-file") && err.contains("cannot create the output folder"),
        "{err}"
    );
    assert_eq!(file_names(&dir), ["a-file"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn small_and_string_tensors_stay_inline() {
    let mut m = test_model(&weights());
    let g = m.graph.as_mut().unwrap();
    let mut s = tensor("names", DataType::String, &[40]);
    s.string_data = (0..40).map(|i| format!("name-{i}").into_bytes()).collect();
    g.initializer.push(s);
    // Exactly 64 bytes: inline.
    let mut t = tensor("sixteen", DataType::Float, &[16]);
    t.float_data = vec![1.0; 16];
    g.initializer.push(t);
    let dir = tempdir("inline");
    let info = write_artifact(m, &dir, &[]).unwrap();
    assert_eq!((info.external_tensors, info.inline_tensors), (4, 5));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_folder_with_other_files_is_not_replaced() {
    let w = weights();
    let dir = tempdir("foreign");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let err = write_artifact(test_model(&w), &dir, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("notes.txt") && err.contains("another folder"),
        "{err}"
    );
    assert_eq!(file_names(&dir), ["notes.txt"]);
    assert!(temporaries_of(&dir).is_empty());
    // A report beside an artifact is the artifact's: replaced with it.
    fs::remove_file(dir.join("notes.txt")).unwrap();
    write_artifact(test_model(&w), &dir, &[]).unwrap();
    fs::write(dir.join(REPORT_FILE), b"{}").unwrap();
    write_artifact(test_model(&w), &dir, &[]).unwrap();
    assert_eq!(file_names(&dir), [MODEL_FILE, WEIGHTS_FILE]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loading_checks_every_byte_of_the_weights() {
    let w = weights();
    let dir = tempdir("verify");
    write_artifact(test_model(&w), &dir, &[]).unwrap();
    let model_path = dir.join(MODEL_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    let original = fs::read(&weights_path).unwrap();
    verify_artifact(&model_path).unwrap();
    let props = ModelProto::decode(fs::read(&model_path).unwrap().as_slice())
        .unwrap()
        .metadata_props;
    let read = read_verified_weights(&model_path, &props).unwrap();
    assert_eq!(read.as_deref(), Some(&original[..]));

    // One flipped bit in a tensor: same size, so only the checksum sees it.
    let mut flipped = original.clone();
    flipped[original.len() - 3] ^= 0x10;
    fs::write(&weights_path, &flipped).unwrap();
    match verify_artifact(&model_path).unwrap_err() {
        Error::WeightsMismatch {
            model,
            weights,
            check,
            expected,
            found,
        } => {
            assert_eq!(
                (model, weights, check),
                (model_path.clone(), weights_path.clone(), "checksum")
            );
            assert_eq!(expected, weights_checksum(&original));
            assert_eq!(found, weights_checksum(&flipped));
        }
        e => panic!("{e}"),
    }
    let err = crate::compress::graph::load_model(&model_path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WeightsMismatch {
                check: "checksum",
                ..
            }
        ),
        "{err}"
    );

    // Truncated: the size check, naming both files.
    fs::write(&weights_path, &original[..original.len() - 1]).unwrap();
    let err = verify_artifact(&model_path).unwrap_err().to_string();
    let want = [
        weights_path.display().to_string(),
        model_path.display().to_string(),
        format!("{} bytes", original.len()),
        format!("{} bytes", original.len() - 1),
    ];
    assert!(
        want.iter().all(|w| err.contains(w.as_str())) && err.contains("size"),
        "{err}"
    );

    // Missing, or not a regular file: an I/O error naming it.
    fs::remove_file(&weights_path).unwrap();
    let err = verify_artifact(&model_path).unwrap_err().to_string();
    assert!(
        err.contains(WEIGHTS_FILE) && err.contains("missing"),
        "{err}"
    );
    fs::create_dir(&weights_path).unwrap();
    let err = verify_artifact(&model_path).unwrap_err().to_string();
    assert!(
        err.contains(WEIGHTS_FILE) && err.contains("not a file"),
        "{err}"
    );

    // A model that records no check (not written by ctr-edge) is not checked.
    assert_eq!(read_verified_weights(&model_path, &[]).unwrap(), None);
    fs::remove_dir_all(&dir).unwrap();
}

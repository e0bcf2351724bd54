//! The runtime on artifacts written by the exporter, through real files: zero-copy views into
//! the mapped weights, misaligned external data, Gather index checks, input validation, and
//! one model shared by several threads.

use std::fs;
use std::sync::Arc;

use ctr_edge_exporter::artifact::{write_artifact, MODEL_FILE, WEIGHTS_FILE};
use ctr_edge_exporter::npz::ArrayData;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Error, Input, Model};
use ctr_edge_tests::onnx_build::{
    attr_int, cast, model, node, tensor_f32, tensor_i64, value_info, values, TempDir,
};
use prost::Message;
use tract_onnx::pb::tensor_proto::{DataLocation, DataType};
use tract_onnx::pb::{ModelProto, NodeProto, StringStringEntryProto};

use ctr_edge_tests::{fixtures, Fixture};

const IN: usize = 16;
const HID: usize = 8;
const OUT: usize = 3;

/// The MLP's weights, kept to build the reference.
struct Mlp {
    w: Vec<f32>,
    b: Vec<f32>,
    w2: Vec<f32>,
}

fn mlp() -> Mlp {
    Mlp {
        w: values(IN * HID, 1),
        b: values(HID, 2),
        w2: values(HID * OUT, 3),
    }
}

/// `Y = Sigmoid(Relu(X W + b) W2)`, X f32 [N, 16]. W (512 bytes) and W2 (96 bytes) become
/// external, b (32 bytes) stays inline.
fn mlp_model(m: &Mlp) -> ModelProto {
    ctr_edge_tests::mlp_model([IN, HID, OUT], &m.w, &m.b, &m.w2)
}

fn mlp_reference(m: &Mlp, x: &[f32]) -> Vec<f64> {
    let n = x.len() / IN;
    let mut y = Vec::with_capacity(n * OUT);
    for r in 0..n {
        let h: Vec<f64> = (0..HID)
            .map(|j| {
                let s: f64 = (0..IN)
                    .map(|k| f64::from(x[r * IN + k]) * f64::from(m.w[k * HID + j]))
                    .sum();
                (s + f64::from(m.b[j])).max(0.0)
            })
            .collect();
        for o in 0..OUT {
            let z: f64 = (0..HID).map(|j| h[j] * f64::from(m.w2[j * OUT + o])).sum();
            y.push(1.0 / (1.0 + (-z).exp()));
        }
    }
    y
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

fn run_x(model: &Model<'_>, x: &[f32], cols: usize) -> Result<Vec<f32>, Error> {
    let mut s = model.session();
    s.run(&[Input {
        name: "X",
        shape: &[x.len() / cols, cols],
        data: InputData::F32(x),
    }])?;
    Ok(s.output(0).expect("output 0").data.to_vec())
}

/// True when `inner` lies entirely inside `outer` (by address).
fn inside(outer: &[u8], inner: &[f32]) -> bool {
    let (o0, o1) = (
        outer.as_ptr() as usize,
        outer.as_ptr() as usize + outer.len(),
    );
    let i0 = inner.as_ptr() as usize;
    let i1 = i0 + std::mem::size_of_val(inner);
    o0 <= i0 && i1 <= o1
}

#[test]
fn initializers_are_views_into_the_mapped_weights() {
    let m = mlp();
    let dir = TempDir::new("zero-copy");
    write_artifact(mlp_model(&m), dir.path(), &[]).unwrap();
    let model = Model::open(dir.path().join(MODEL_FILE)).unwrap();
    let file_len = fs::metadata(dir.path().join(WEIGHTS_FILE)).unwrap().len();
    let weights = model.weights();
    assert_eq!(weights.len() as u64, file_len);
    for (name, want) in [("W", &m.w), ("W2", &m.w2)] {
        let v = model.initializer_f32(name).unwrap();
        assert_eq!(v, &want[..], "{name}");
        assert!(
            inside(weights, v),
            "{name} is not viewed in the mapped weights"
        );
        assert_eq!(
            v.as_ptr() as usize % 64,
            0,
            "{name} is not 64-byte aligned in memory"
        );
    }
    // The small bias stays inline, hence outside the weights.
    let b = model.initializer_f32("b").unwrap();
    assert_eq!(b, &m.b[..]);
    assert!(!inside(weights, b));
    let x = values(5 * IN, 9);
    assert_close(
        &run_x(&model, &x, IN).unwrap(),
        &mlp_reference(&m, &x),
        "run",
    );
}

#[test]
fn unaligned_external_offsets_still_load() {
    let m = mlp();
    let dir = TempDir::new("misaligned");
    // Written by hand, not by the exporter: W at offset 4 (not 64-aligned, but aligned for
    // f32: the runtime may view it in place), then 2 bytes of padding and W2 at offset 518
    // (misaligned for f32: the runtime must copy it).
    let mut proto = mlp_model(&m);
    let mut weights = vec![0u8; 4];
    for t in &mut proto.graph.as_mut().unwrap().initializer {
        if t.name == "b" {
            continue;
        }
        if t.name == "W2" {
            weights.extend_from_slice(&[0, 0]);
        }
        let offset = weights.len();
        weights.extend_from_slice(&std::mem::take(&mut t.raw_data));
        t.data_location = Some(DataLocation::External as i32);
        t.external_data = [
            ("location", WEIGHTS_FILE.to_string()),
            ("offset", offset.to_string()),
            ("length", (weights.len() - offset).to_string()),
        ]
        .into_iter()
        .map(|(k, v)| StringStringEntryProto {
            key: k.into(),
            value: v,
        })
        .collect();
    }
    fs::write(dir.path().join(WEIGHTS_FILE), &weights).unwrap();
    fs::write(dir.path().join(MODEL_FILE), proto.encode_to_vec()).unwrap();

    let model = Model::open(dir.path().join(MODEL_FILE)).unwrap();
    assert_eq!(model.weights().len(), weights.len());
    let w = model.initializer_f32("W").unwrap();
    assert_eq!(w, &m.w[..]);
    assert_eq!(w.as_ptr() as usize - model.weights().as_ptr() as usize, 4);
    let w2 = model.initializer_f32("W2").unwrap();
    assert_eq!(w2, &m.w2[..]);
    assert!(!inside(model.weights(), w2), "W2: a misaligned f32 view");
    let x = values(7 * IN, 4);
    assert_close(
        &run_x(&model, &x, IN).unwrap(),
        &mlp_reference(&m, &x),
        "run",
    );
}

const TABLE_ROWS: usize = 10;
const DIM: usize = 4;

/// `Y = ReduceSum(Gather(E, ids), axis 1)`, ids i64 [N, 3], E f32 [10, 4] (external).
fn gather_ids_model(e: &[f32]) -> ModelProto {
    model(
        gather_sum().to_vec(),
        vec![
            tensor_f32("E", &[TABLE_ROWS, DIM], e),
            tensor_i64("axes", &[1], &[1]),
        ],
        vec![value_info("ids", DataType::Int64, &[None, Some(3)])],
        vec![value_info("Y", DataType::Float, &[None, Some(DIM as i64)])],
    )
}

/// `Y = ReduceSum(Gather(E, ids), axis 1)` with `axes` = [1].
fn gather_sum() -> [NodeProto; 2] {
    [
        node("Gather", &["E", "ids"], &["g"], vec![]),
        node(
            "ReduceSum",
            &["g", "axes"],
            &["Y"],
            vec![attr_int("keepdims", 0)],
        ),
    ]
}

/// Ids stored as floats, as the exported DeepCTR models do: `X [N, 2]`, column 1 is the id:
/// `Y = ReduceSum(Gather(E, Cast<int64>(Slice(X, col 1))), axis 1)`.
fn gather_float_model(e: &[f32]) -> ModelProto {
    model(
        [
            node("Slice", &["X", "starts", "ends", "axes"], &["col"], vec![]),
            cast("col", "ids", DataType::Int64),
        ]
        .into_iter()
        .chain(gather_sum())
        .collect(),
        vec![
            tensor_f32("E", &[TABLE_ROWS, DIM], e),
            tensor_i64("starts", &[1], &[1]),
            tensor_i64("ends", &[1], &[2]),
            tensor_i64("axes", &[1], &[1]),
        ],
        vec![value_info("X", DataType::Float, &[None, Some(2)])],
        vec![value_info("Y", DataType::Float, &[None, Some(DIM as i64)])],
    )
}

/// Sum of the table rows named by each row of ids (negative ids count from the end).
fn gather_reference(e: &[f32], ids: &[i64], per_row: usize) -> Vec<f64> {
    ids.chunks(per_row)
        .flat_map(|row| {
            (0..DIM).map(move |j| {
                row.iter()
                    .map(|&id| {
                        let r = if id < 0 { id + TABLE_ROWS as i64 } else { id };
                        f64::from(e[r as usize * DIM + j])
                    })
                    .sum::<f64>()
            })
        })
        .collect()
}

fn open_written(proto: ModelProto, dir: &TempDir) -> Model<'static> {
    write_artifact(proto, dir.path(), &[]).unwrap();
    Model::open(dir.path().join(MODEL_FILE)).unwrap()
}

fn run_ids(model: &Model<'_>, ids: &[i64]) -> Result<Vec<f32>, Error> {
    let mut s = model.session();
    s.run(&[Input {
        name: "ids",
        shape: &[ids.len() / 3, 3],
        data: InputData::I64(ids),
    }])?;
    Ok(s.output(0).unwrap().data.to_vec())
}

/// `ids` through `gather_ids_model(e)` give the rows of `e` they name, summed in threes.
fn assert_gathers(model: &Model<'_>, e: &[f32], ids: &[i64], what: &str) {
    let want = gather_reference(e, ids, 3);
    assert_close(&run_ids(model, ids).unwrap(), &want, what);
}

#[test]
fn gather_ids_in_range_negative_ids_included() {
    let e = values(TABLE_ROWS * DIM, 5);
    let dir = TempDir::new("gather-ok");
    let model = open_written(gather_ids_model(&e), &dir);
    assert_gathers(&model, &e, &[0, -1, 5, 9, -10, 3, 2, 2, -3], "gather");
}

#[test]
fn gather_ids_out_of_range_name_input_row_and_table() {
    let e = values(TABLE_ROWS * DIM, 5);
    let dir = TempDir::new("gather-oob");
    let model = open_written(gather_ids_model(&e), &dir);
    for (ids, row, index) in [
        (vec![0, 1, 2, 3, 10, 4], 1, 10),
        (vec![0, 1, 2, 3, 4, 5, -11, 0, 0], 2, -11),
        (vec![i64::MAX, 0, 0], 0, i64::MAX),
        (vec![i64::MIN, 0, 0], 0, i64::MIN),
    ] {
        let err = run_ids(&model, &ids).unwrap_err();
        assert_eq!(
            err,
            Error::IndexOutOfRange {
                input: "ids".into(),
                row,
                index,
                table_rows: TABLE_ROWS,
            },
            "{ids:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("'ids'") && msg.contains(&index.to_string()) && msg.contains("10 rows"),
            "{msg}"
        );
    }
    // The session still works after an error.
    assert_gathers(&model, &e, &[1, 2, 3], "after error");
}

#[test]
fn gather_float_ids_traced_to_the_model_input() {
    let e = values(TABLE_ROWS * DIM, 6);
    let dir = TempDir::new("gather-float");
    let model = open_written(gather_float_model(&e), &dir);
    // Any non-finite input value is refused at the boundary, even in a column the model
    // does not read (one rule, checked before anything runs).
    let err = run_x(&model, &[f32::NAN, 3.0, 0.5, -2.0, 7.0, 9.0], 2).unwrap_err();
    assert!(
        matches!(&err, Error::NotFinite { input, position: 0 } if input == "X"),
        "{err:?}"
    );
    let x = [0.25, 3.0, 0.5, -2.0, 7.0, 9.0];
    let got = run_x(&model, &x, 2).unwrap();
    let ids: Vec<i64> = x.chunks(2).map(|r| r[1] as i64).collect();
    assert_close(&got, &gather_reference(&e, &ids, 1), "float ids");

    let err = run_x(&model, &[0.0, 1.0, 0.0, 12.0], 2).unwrap_err();
    assert_eq!(
        err,
        Error::IndexOutOfRange {
            input: "X".into(),
            row: 1,
            index: 12,
            table_rows: TABLE_ROWS,
        }
    );
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let err = run_x(&model, &[0.0, 1.0, 0.0, 2.0, 0.0, bad], 2).unwrap_err();
        match &err {
            Error::NotFinite { input, .. } => assert_eq!(input, "X", "{err}"),
            other => panic!("{bad}: expected NotFinite, got {other:?}"),
        }
        assert!(err.to_string().contains("'X'"), "{err}");
    }
}

#[test]
fn not_finite_position_locates_the_value_in_the_named_input() {
    let e = values(TABLE_ROWS * DIM, 6);
    let dir = TempDir::new("not-finite-position");
    let model = open_written(gather_float_model(&e), &dir);
    let err = run_x(&model, &[0.0, 1.0, 0.0, 2.0, 0.0, f32::NAN], 2).unwrap_err();
    assert_eq!(
        err,
        Error::NotFinite {
            input: "X".into(),
            position: 5,
        }
    );
}

/// A finite float id outside every integer range (1e30, row 2 of `X`'s id column): its own
/// error naming the Cast, the row and the value, not a "non-finite" one at a wrong position.
#[test]
fn float_id_beyond_the_integer_range_names_the_cast_row_and_value() {
    let e = values(TABLE_ROWS * DIM, 6);
    let dir = TempDir::new("float-id-range");
    let model = open_written(gather_float_model(&e), &dir);
    let err = run_x(&model, &[0.0, 1.0, 0.0, 2.0, 0.0, 1e30], 2).unwrap_err();
    match &err {
        Error::CastOutOfRange {
            input,
            row,
            position,
            value,
            ..
        } => {
            assert_eq!((input.as_str(), *row, *position), ("X", 2, 2), "{err}");
            assert_eq!(*value, 1e30);
        }
        other => panic!("expected CastOutOfRange, got {other:?}"),
    }
    let msg = err.to_string();
    for piece in ["Cast", "'X'", "row 2", "1e30", "outside the integer range"] {
        assert!(msg.contains(piece), "lacks {piece:?}: {msg}");
    }
    assert!(!msg.contains("non-finite"), "{msg}");
}

fn expect_mismatch(r: Result<(), Error>, must_contain: &[&str]) {
    let err = r.expect_err("the run should fail");
    assert!(matches!(err, Error::InputMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    for s in must_contain {
        assert!(msg.contains(s), "'{msg}' should mention {s}");
    }
}

/// The mistakes every caller can make, each checked on a fresh session (the shape is
/// validated against the model) and on a session holding a plan for the right shape.
fn check_input_mismatches(fresh: bool) {
    let m = mlp();
    let dir = TempDir::new("mismatch");
    let model = open_written(mlp_model(&m), &dir);
    let mut s = model.session();
    let x = values(2 * IN, 1);
    let xi = vec![0i64; 2 * IN];
    let input = |name, shape, data| Input { name, shape, data };
    if !fresh {
        s.run(&[input("X", &[2, IN], InputData::F32(&x))]).unwrap();
    }
    // Wrong name.
    expect_mismatch(s.run(&[input("Z", &[2, IN], InputData::F32(&x))]), &["'Z'"]);
    // Wrong dtype.
    expect_mismatch(
        s.run(&[input("X", &[2, IN], InputData::I64(&xi))]),
        &["'X'", "f32 [N, 16]", "i64 [2, 16]"],
    );
    // Wrong shape (same number of values).
    expect_mismatch(
        s.run(&[input("X", &[4, IN / 2], InputData::F32(&x))]),
        &["'X'", "[N, 16]", "[4, 8]"],
    );
    // Wrong rank.
    expect_mismatch(
        s.run(&[input("X", &[2 * IN], InputData::F32(&x))]),
        &["'X'", "[N, 16]", "[32]"],
    );
    // Shape and data disagree.
    expect_mismatch(
        s.run(&[input("X", &[2, IN], InputData::F32(&x[1..]))]),
        &["'X'", "[2, 16]", "31"],
    );
    // Missing input.
    expect_mismatch(s.run(&[]), &["'X'", "[N, 16]", "missing"]);
    // A failed run leaves no stale output behind, and the session still works.
    assert!(s.output(0).is_none());
    s.run(&[input("X", &[2, IN], InputData::F32(&x))]).unwrap();
    assert_close(
        s.output(0).unwrap().data,
        &mlp_reference(&m, &x),
        "after errors",
    );
}

#[test]
fn input_mismatches_name_the_input_and_both_shapes() {
    check_input_mismatches(true);
}

#[test]
fn input_mismatches_after_a_cached_plan_name_both_shapes() {
    check_input_mismatches(false);
}

#[test]
fn one_model_shared_by_four_threads() {
    let m = mlp();
    let dir = TempDir::new("threads");
    let model = Arc::new(open_written(mlp_model(&m), &dir));
    let batches: Vec<Vec<f32>> = (0..4)
        .map(|t| values((t + 1) * 9 * IN, 20 + t as u32))
        .collect();
    let single: Vec<Vec<f32>> = batches
        .iter()
        .map(|x| run_x(&model, x, IN).unwrap())
        .collect();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let model = Arc::clone(&model);
            let batches = batches.clone();
            std::thread::spawn(move || {
                let mut s = model.session();
                let mut outs = Vec::new();
                for round in 0..50 {
                    let x = &batches[(t + round) % 4];
                    s.run(&[Input {
                        name: "X",
                        shape: &[x.len() / IN, IN],
                        data: InputData::F32(x),
                    }])
                    .unwrap();
                    outs.push(((t + round) % 4, s.output(0).unwrap().data.to_vec()));
                }
                outs
            })
        })
        .collect();
    for h in handles {
        for (b, out) in h.join().unwrap() {
            assert_eq!(out, single[b], "batch {b}");
        }
    }
    for (x, out) in batches.iter().zip(&single) {
        assert_close(out, &mlp_reference(&m, x), "single thread");
    }
}

/// A real exported model, rewritten as an artifact, scores exactly like the original file.
#[test]
fn fixture_as_artifact_matches_the_original() {
    let fx = deepfm_fixture();
    let original_path = fx.model();
    let proto = ModelProto::decode(fs::read(&original_path).unwrap().as_slice()).unwrap();
    let dir = TempDir::new("fixture");
    let info = write_artifact(proto, dir.path(), &[]).unwrap();
    assert!(info.external_tensors > 0);
    let original = Model::open(&original_path).unwrap();
    let artifact = Model::open(dir.path().join(MODEL_FILE)).unwrap();
    let x = fixture_rows(&fx, 64);
    assert_eq!(original.inputs()[0].name, "X");
    let a = run_x(&original, &x, 8).unwrap();
    let b = run_x(&artifact, &x, 8).unwrap();
    assert_eq!(a, b);
}

fn deepfm_fixture() -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.name == "movielens_deepfm")
        .expect("fixture movielens_deepfm")
}

/// The first `n` rows of the fixture's test split (`X`, 8 columns).
fn fixture_rows(fx: &Fixture, n: usize) -> Vec<f32> {
    let (inputs, _) = fx.test_data();
    let x = inputs
        .iter()
        .find(|a| a.name == "X")
        .expect("X in test.npz");
    assert_eq!(x.shape[1], 8);
    match &x.data {
        ArrayData::F32(v) => v[..n * 8].to_vec(),
        other => panic!("X is {:?}", other.dtype()),
    }
}

//! After the first run at a batch size, `Session::run` (and reading the output) does not
//! allocate. A counting global allocator counts the allocations of the test's own thread only,
//! so the test harness's threads cannot disturb the count.

#[path = "../../runtime/tests/support/alloc_counter.rs"]
mod alloc_counter;

use alloc_counter::allocations_in;
use ctr_edge_exporter::artifact::{write_artifact, MODEL_FILE};
use ctr_edge_exporter::npz::ArrayData;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Input, Model};
use ctr_edge_tests::fixtures;
use ctr_edge_tests::onnx_build::{values, TempDir};
use prost::Message;
use tract_onnx::pb::ModelProto;

/// Runs one batch of `X` (`cols` columns) and reads the output; panics on error.
fn score(session: &mut ctr_edge_runtime::Session<'_, '_>, x: &[f32], cols: usize) -> f32 {
    session
        .run(&[Input {
            name: "X",
            shape: &[x.len() / cols, cols],
            data: InputData::F32(x),
        }])
        .expect("run");
    let out = session.output(0).expect("output");
    out.data.iter().sum()
}

/// The allocation pattern the design promises, on one model: `x1` and `x32` are batches of 1
/// and 32 rows.
fn check_no_alloc(model: &Model<'_>, x1: &[f32], x32: &[f32], cols: usize, what: &str) {
    let mut s = model.session();
    let first = allocations_in(|| {
        score(&mut s, x32, cols);
    });
    assert!(first > 0, "{what}: the first run plans and allocates");
    for i in 2..=3 {
        let n = allocations_in(|| {
            score(&mut s, x32, cols);
        });
        assert_eq!(n, 0, "{what}: run {i} at batch 32 allocated {n} times");
    }
    let n = allocations_in(|| {
        score(&mut s, x1, cols);
    });
    assert!(n > 0, "{what}: the first run at batch 1 plans");
    let n = allocations_in(|| {
        score(&mut s, x32, cols);
    });
    assert_eq!(n, 0, "{what}: back to batch 32 allocated {n} times");
    let n = allocations_in(|| {
        score(&mut s, x1, cols);
    });
    assert_eq!(n, 0, "{what}: back to batch 1 allocated {n} times");
}

fn mlp_artifact(dir: &TempDir) -> Model<'static> {
    let (w, b, w2) = (values(24 * 40, 1), values(40, 2), values(40, 3));
    let proto = ctr_edge_tests::mlp_model([24, 40, 1], &w, &b, &w2);
    write_artifact(proto, dir.path(), &[]).unwrap();
    Model::open(dir.path().join(MODEL_FILE)).unwrap()
}

// One test per binary: the counter is global, and the harness runs tests on several threads.
#[test]
fn runs_after_the_first_at_a_batch_size_do_not_allocate() {
    let dir = TempDir::new("no-alloc-mlp");
    let model = mlp_artifact(&dir);
    let x32 = values(32 * 24, 7);
    check_no_alloc(&model, &x32[..24], &x32, 24, "artifact MLP");

    // The real DeepFM fixture, rewritten as an artifact.
    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "movielens_deepfm")
        .expect("fixture movielens_deepfm");
    let proto = ModelProto::decode(std::fs::read(fx.model()).unwrap().as_slice()).unwrap();
    let dir = TempDir::new("no-alloc-deepfm");
    write_artifact(proto, dir.path(), &[]).unwrap();
    let model = Model::open(dir.path().join(MODEL_FILE)).unwrap();
    let (inputs, _) = fx.test_data();
    let x = inputs.into_iter().find(|a| a.name == "X").expect("X");
    let x32 = match x.data {
        ArrayData::F32(v) => v[..32 * 8].to_vec(),
        other => panic!("X is {:?}", other.dtype()),
    };
    check_no_alloc(&model, &x32[..8], &x32, 8, "movielens_deepfm");
}

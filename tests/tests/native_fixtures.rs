//! The native runtime on every fixture: outputs match onnxruntime's (`ref.npz`) within 1e-5
//! and give the same AUC to 1e-4.

use ctr_edge_exporter::backend::{run_model, Backend};
use ctr_edge_exporter::metrics::auc;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Error, Input, Model, Session};
use ctr_edge_tests::{assert_matches_onnxruntime, fixtures};

#[test]
fn native_runtime_matches_onnxruntime_on_every_fixture() {
    let all = fixtures();
    assert!(!all.is_empty(), "no fixtures found");
    for f in all {
        let (inputs, labels) = f.test_data();
        let outputs = run_model(&f.model(), Backend::Native, &inputs, 1024)
            .unwrap_or_else(|e| panic!("{}: native runtime failed: {e}", f.name));
        assert_matches_onnxruntime(&f, &outputs, "native");
        let ours = auc(&outputs[0].data.to_f64(), &labels).unwrap();
        let want = f.ort_auc().unwrap();
        assert!(
            (ours - want).abs() < 1e-4,
            "{}: AUC {ours} vs {want}",
            f.name
        );
    }
}

/// Runs the first `batch` rows (`row` values each) of `values` as input `name`.
fn run_rows(
    session: &mut Session<'_, '_>,
    name: &str,
    values: &[f32],
    row: usize,
    batch: usize,
) -> ctr_edge_runtime::Result<()> {
    let shape = [batch, row];
    session.run(&[Input {
        name,
        shape: &shape,
        data: InputData::F32(&values[..batch * row]),
    }])
}

#[test]
fn small_batches_work_except_where_the_model_itself_breaks() {
    for f in fixtures() {
        let model = Model::open(f.model()).unwrap();
        let (inputs, _) = f.test_data();
        let x = &inputs[0];
        let row = x.row_len();
        let values = match &x.data {
            ctr_edge_exporter::npz::ArrayData::F32(v) => v,
            other => panic!("{}: unexpected input dtype {:?}", f.name, other.dtype()),
        };
        let reference = f.reference();
        let want = reference[0].data.to_f64();
        let mut session = model.session();
        for batch in [1usize, 2, 7] {
            let result = run_rows(&mut session, &x.name, values, row, batch);
            if batch == 1 && f.batch1_broken() {
                // DCNMix squeezes the batch axis away in PyTorch itself; the export inherits it.
                assert!(
                    matches!(result, Err(Error::InvalidNode { .. })),
                    "{}: {result:?}",
                    f.name
                );
                continue;
            }
            result.unwrap_or_else(|e| panic!("{} batch {batch}: {e}", f.name));
            let out = session.output(0).unwrap();
            for (i, (&g, &w)) in out.data.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-5,
                    "{} batch {batch} row {i}: {g} vs {w}",
                    f.name
                );
            }
        }
    }
}

/// A batch of 0 rows is valid: every fixture gives empty outputs whose other dims are those of
/// onnxruntime's reference outputs (`ref.npz`), through the same session before and after a
/// non-empty batch.
#[test]
fn batch_zero_gives_empty_outputs_on_every_fixture() {
    let mut failures = Vec::new();
    for f in fixtures() {
        let model = Model::open(f.model()).unwrap();
        let (inputs, _) = f.test_data();
        let x = &inputs[0];
        let row = x.row_len();
        let ctr_edge_exporter::npz::ArrayData::F32(values) = &x.data else {
            panic!("{}: unexpected input dtype {:?}", f.name, x.data.dtype())
        };
        let reference = f.reference();
        let mut session = model.session();
        for batch in [0usize, 3, 0] {
            let result = run_rows(&mut session, &x.name, values, row, batch);
            if let Err(e) = result {
                failures.push(format!("{} batch {batch}: {e}", f.name));
                break;
            }
            for (i, want) in reference.iter().enumerate() {
                let out = session.output(i).unwrap();
                let mut want_shape = want.shape.clone();
                want_shape[0] = batch;
                assert_eq!(out.shape, &want_shape[..], "{} output {i}", f.name);
                assert_eq!(out.data.len(), want_shape.iter().product::<usize>());
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

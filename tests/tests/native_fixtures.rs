//! The native runtime on every fixture: outputs match onnxruntime's (`ref.npz`) within 1e-5
//! and give the same AUC to 1e-4.

use ctr_edge_exporter::backend::{run_model, Backend};
use ctr_edge_exporter::metrics::auc;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Error, Input, Model, Session};
use ctr_edge_tests::{assert_matches_onnxruntime, fixtures, Fixture};

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

/// The fixture's model and the test rows of its (one, f32) input: name, values, values per row.
fn model_and_rows(f: &Fixture) -> (Model<'static>, String, Vec<f32>, usize) {
    let model = Model::open(f.model()).unwrap();
    let (mut inputs, _) = f.test_data();
    let x = inputs.swap_remove(0);
    let row = x.row_len();
    let ctr_edge_exporter::npz::ArrayData::F32(values) = x.data else {
        panic!("{}: unexpected input dtype {:?}", f.name, x.data.dtype())
    };
    (model, x.name, values, row)
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
        let (model, name, values, row) = model_and_rows(&f);
        let values = &values[..];
        let reference = f.reference();
        let want = reference[0].data.to_f64();
        let mut session = model.session();
        for batch in [1usize, 2, 7] {
            let result = run_rows(&mut session, &name, values, row, batch);
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
        let (model, name, values, row) = model_and_rows(&f);
        let values = &values[..];
        let reference = f.reference();
        let mut session = model.session();
        for batch in [0usize, 3, 0] {
            let result = run_rows(&mut session, &name, values, row, batch);
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

/// How far a row's score may move with the batch it is scored in. Batches of 1-3 rows take the
/// matrix-vector path (B read in place) and 4+ rows the packed 6 x 16 tiles, which sum a dot
/// product in another order; the runtime's README states this bound.
const BATCH_INVARIANCE_BOUND: f32 = 1e-6;

/// The first 64 test rows of every fixture scored as one batch and again split into batches of
/// 1, 2, 3, 4, 5, 7 and 42 rows: each row's score stays within [`BATCH_INVARIANCE_BOUND`] of
/// its score in the batch of 64 (prints the largest difference per fixture).
#[test]
fn a_rows_score_barely_depends_on_its_batch() {
    const ROWS: usize = 64;
    let mut failures = Vec::new();
    for f in fixtures() {
        let (model, name, values, row) = model_and_rows(&f);
        let values = &values[..];
        let mut session = model.session();
        run_rows(&mut session, &name, values, row, ROWS).unwrap();
        let whole = session.output(0).unwrap().data.to_vec();
        let per_row = whole.len() / ROWS;
        let mut worst = 0f32;
        for size in [1usize, 2, 3, 4, 5, 7, 42] {
            if size == 1 && f.batch1_broken() {
                continue;
            }
            let mut start = 0;
            while start < ROWS {
                let n = size.min(ROWS - start);
                if n == 1 && f.batch1_broken() {
                    break;
                }
                let part = &values[start * row..];
                run_rows(&mut session, &name, part, row, n)
                    .unwrap_or_else(|e| panic!("{} batch {n}: {e}", f.name));
                let got = session.output(0).unwrap().data;
                let want = &whole[start * per_row..(start + n) * per_row];
                for (g, w) in got.iter().zip(want) {
                    worst = worst.max((g - w).abs());
                }
                start += n;
            }
        }
        eprintln!("{:<28} largest change with the batch: {worst:.2e}", f.name);
        if worst > BATCH_INVARIANCE_BOUND {
            failures.push(format!("{}: {worst:e}", f.name));
        }
    }
    assert!(
        failures.is_empty(),
        "over {BATCH_INVARIANCE_BOUND:e}: {}",
        failures.join(", ")
    );
}

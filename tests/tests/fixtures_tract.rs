//! The fixtures checked independently of ctr-edge's runtime: every model loads in tract with a
//! symbolic batch dimension and reproduces onnxruntime's outputs (`ref.npz`); the AUC computed
//! by our metric code on onnxruntime's outputs equals sklearn's (stored in `meta.json`).

use ctr_edge_exporter::backend::{run_model, Backend};
use ctr_edge_exporter::metrics::{auc, logloss};
use ctr_edge_tests::{fixtures, max_abs_diff, EXPECTED_FIXTURES};

#[test]
fn every_expected_fixture_is_present() {
    let names: Vec<String> = fixtures().into_iter().map(|f| f.name).collect();
    for want in EXPECTED_FIXTURES {
        assert!(names.iter().any(|n| n == want), "fixture {want} missing (have {names:?})");
    }
}

#[test]
fn rust_auc_and_logloss_match_sklearn_on_onnxruntime_outputs() {
    for f in fixtures() {
        let (_, labels) = f.test_data();
        let reference = f.reference();
        let scores = reference[0].data.to_f64();
        let ours = auc(&scores, &labels).unwrap();
        let want = f.ort_auc().unwrap_or_else(|| panic!("{}: meta has no onnxruntime AUC", f.name));
        assert!((ours - want).abs() < 1e-6, "{}: AUC {ours} vs sklearn {want}", f.name);
        let ll = logloss(&scores, &labels).unwrap();
        let want_ll = f.ort_logloss().unwrap();
        assert!((ll - want_ll).abs() < 1e-4, "{}: LogLoss {ll} vs sklearn {want_ll}", f.name);
    }
}

#[test]
fn tract_reproduces_onnxruntime_outputs() {
    for f in fixtures() {
        let (inputs, _) = f.test_data();
        let outputs = run_model(&f.model(), Backend::Tract, &inputs, 1024)
            .unwrap_or_else(|e| panic!("{}: tract failed: {e}", f.name));
        let reference = f.reference();
        assert_eq!(outputs.len(), reference.len(), "{}", f.name);
        for (o, r) in outputs.iter().zip(&reference) {
            assert_eq!(o.name, r.name, "{}: output names", f.name);
            let d = max_abs_diff(o, r);
            assert!(d <= 1e-5, "{}: tract vs onnxruntime max |diff| {d:e}", f.name);
            println!("{:<28} tract vs onnxruntime max |diff| {d:.2e}", f.name);
        }
    }
}

//! AUC and LogLoss against scikit-learn's numbers (`data/make_npz.py` wrote the cases and
//! `roc_auc_score` / `log_loss` of each into `data/metrics_expected.json`).

use std::fs;
use std::path::Path;

use ctr_edge_exporter::metrics::{auc, logloss};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn auc_and_logloss_equal_sklearn() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/metrics_expected.json");
    let expected: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let scores = floats(&case["scores"]);
        let labels = floats(&case["labels"]);
        let want_auc = case["auc"].as_f64().unwrap();
        let want_logloss = case["logloss"].as_f64().unwrap();
        let got_auc = auc(&scores, &labels).unwrap();
        let got_logloss = logloss(&scores, &labels).unwrap();
        assert!(
            (got_auc - want_auc).abs() < 1e-12,
            "{name}: AUC {got_auc} vs sklearn {want_auc}"
        );
        assert!(
            (got_logloss - want_logloss).abs() < 1e-12 * want_logloss.max(1.0),
            "{name}: LogLoss {got_logloss} vs sklearn {want_logloss}"
        );
    }
}

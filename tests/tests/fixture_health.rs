//! The fixtures look like the models users bring (issue 11): trained layers far from rank 1,
//! embedding-heavy models, weight decay's denormals. Spectra and counts come from the Rust
//! health code; the denormal counts are compared with numpy's (`meta.json`, written by
//! make_fixtures.py), an independent count of the same initializers.

use ctr_edge_exporter::compress::graph::load_model;
use ctr_edge_exporter::health::model_health;
use ctr_edge_tests::fixtures;

#[test]
fn fixtures_are_trained_models_not_degenerate_ones() {
    let mut healthy = Vec::new();
    let mut embedding_heavy = Vec::new();
    let mut with_denormals = Vec::new();
    for f in fixtures() {
        let model = load_model(&f.model()).unwrap();
        let h = model_health(&model).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert!(
            !h.degenerate(),
            "{}: every wide dense layer is < 10% rank",
            f.name
        );
        let numpy = f.meta["weights"]["denormal"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: meta.json has no weights.denormal", f.name));
        assert_eq!(
            h.denormals as u64, numpy,
            "{}: denormals, Rust vs numpy",
            f.name
        );
        let numpy_total = f.meta["weights"]["f32_weights"].as_u64().unwrap();
        assert_eq!(h.f32_weights as u64, numpy_total, "{}: f32 weights", f.name);
        if h.healthy() {
            healthy.push(f.name.clone());
        }
        if h.embedding_share() >= 0.6 {
            embedding_heavy.push(f.name.clone());
        }
        if h.denormals > 0 {
            with_denormals.push(f.name.clone());
        }
        println!(
            "{:<26} healthy {:<5} embedding share {:>5.1}%  denormal {:>6}  dense {}",
            f.name,
            h.healthy(),
            100.0 * h.embedding_share(),
            h.denormals,
            h.wide_dense()
                .map(|s| format!("{}/{}", s.rank90, s.width))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    assert!(healthy.len() >= 10, "healthy fixtures: {healthy:?}");
    assert!(
        embedding_heavy.len() >= 2,
        "embedding-heavy: {embedding_heavy:?}"
    );
    assert!(
        with_denormals.len() >= 2,
        "with denormals: {with_denormals:?}"
    );
}

#[test]
fn every_fixture_has_train_valid_and_test_splits() {
    for f in fixtures() {
        let split = &f.meta["data"]["split"];
        let (train, valid, test) = (
            split["train"].as_u64().unwrap(),
            split["valid"].as_u64().unwrap(),
            split["test"].as_u64().unwrap(),
        );
        let (_, vy) = f.valid_data();
        let (_, ty) = f.test_data();
        assert_eq!(vy.len() as u64, valid, "{}: valid.npz rows", f.name);
        assert_eq!(ty.len() as u64, test, "{}: test.npz rows", f.name);
        assert!(train > valid + test, "{}: split sizes", f.name);
    }
}

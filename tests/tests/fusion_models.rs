//! The runtime's plan-time fusions on real models: every original fixture (Gemm + Relu
//! chains) and AFM-compressed artifacts written by the exporter here (factorized pairs,
//! embedding projections; f32 and f16 weights). On each, the fused plan is compared with the
//! unfused plan (`Session::set_fusion(false)`) of the same model on the fixture's test rows at
//! batch sizes 1, 7, 33 and 1000, within 1e-5, and `Session::plan_stats` must show the fused
//! steps (so a silent non-fusion fails). The unfused runtime itself is checked against
//! onnxruntime by `native_fixtures.rs`.

use std::path::Path;

use ctr_edge_exporter::compress::ranks::RankPolicy;
use ctr_edge_exporter::compress::{compress_to_dir, CompressOptions, Method, WeightType};
use ctr_edge_exporter::npz::{read_npz, ArrayData, NpyArray};
use ctr_edge_runtime::graph::{FusionKind, PlanStats};
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Input, Model};
use ctr_edge_tests::onnx_build::TempDir;
use ctr_edge_tests::{fixtures, Fixture};

/// Batch sizes compared (capped at the test rows available).
const BATCHES: [usize; 4] = [1, 7, 33, 1000];

/// Rows `start..start + batch` of every input, as runtime inputs.
fn slice_inputs(
    inputs: &[NpyArray],
    start: usize,
    batch: usize,
) -> Vec<(String, Vec<usize>, ArrayData)> {
    inputs
        .iter()
        .map(|a| {
            let row = a.row_len();
            let (from, to) = (start * row, (start + batch) * row);
            let data = match &a.data {
                ArrayData::F32(v) => ArrayData::F32(v[from..to].to_vec()),
                ArrayData::I64(v) => ArrayData::I64(v[from..to].to_vec()),
                ArrayData::I32(v) => ArrayData::I32(v[from..to].to_vec()),
                other => panic!("input '{}' of dtype {:?}", a.name, other.dtype()),
            };
            let mut shape = a.shape.clone();
            shape[0] = batch;
            (a.name.clone(), shape, data)
        })
        .collect()
}

/// Output 0 and the plan statistics of one run with fusions on or off.
fn run(
    model: &Model<'_>,
    inputs: &[(String, Vec<usize>, ArrayData)],
    fusion: bool,
) -> (Vec<f32>, PlanStats) {
    let mut s = model.session();
    s.set_fusion(fusion);
    let ins: Vec<Input<'_>> = inputs
        .iter()
        .map(|(name, shape, data)| Input {
            name,
            shape,
            data: match data {
                ArrayData::F32(v) => InputData::F32(v),
                ArrayData::I64(v) => InputData::I64(v),
                ArrayData::I32(v) => InputData::I32(v),
                _ => unreachable!("sliced above"),
            },
        })
        .collect();
    s.run(&ins)
        .unwrap_or_else(|e| panic!("run (fusion {fusion}): {e}"));
    (
        s.output(0).expect("output 0").data.to_vec(),
        s.plan_stats().expect("stats"),
    )
}

/// Compares fused and unfused on `model` at every batch size; returns the fused plan's
/// statistics at the largest batch.
fn compare(what: &str, model: &Model<'_>, inputs: &[NpyArray], skip_batch1: bool) -> PlanStats {
    let rows = inputs[0].shape[0];
    let mut last = None;
    for batch in BATCHES {
        if batch == 1 && skip_batch1 {
            continue;
        }
        let batch = batch.min(rows);
        // An odd start, so the batches differ from each other.
        let start = (rows - batch).min(3);
        let feed = slice_inputs(inputs, start, batch);
        let (fused, stats) = run(model, &feed, true);
        let (plain, plain_stats) = run(model, &feed, false);
        assert!(plain_stats.fused.is_empty(), "{what}: unfused plan fused");
        assert_eq!(fused.len(), plain.len(), "{what} batch {batch}");
        let mut worst = 0.0f64;
        for (i, (&g, &w)) in fused.iter().zip(&plain).enumerate() {
            let d = (g as f64 - w as f64).abs();
            assert!(
                d <= 1e-5 * (1.0 + (w as f64).abs()),
                "{what} batch {batch} element {i}: fused {g} vs unfused {w}"
            );
            worst = worst.max(d);
        }
        assert!(
            stats.steps < plain_stats.steps,
            "{what} batch {batch}: {} fused steps vs {} unfused",
            stats.steps,
            plain_stats.steps
        );
        println!(
            "{what:<36} batch {batch:4}: max |fused - unfused| {worst:.1e}, steps {} -> {}, \
             buffers {} -> {} KiB, fused: dense {} pair {} gather {}",
            plain_stats.steps,
            stats.steps,
            plain_stats.buffer_bytes / 1024,
            stats.buffer_bytes / 1024,
            stats.count(FusionKind::DenseEpilogue),
            stats.count(FusionKind::FactorizedPair),
            stats.count(FusionKind::GatherProjection),
        );
        last = Some(stats);
    }
    last.expect("at least one batch")
}

#[test]
fn fusions_on_the_original_fixtures_match_the_unfused_plan() {
    let all = fixtures();
    assert!(!all.is_empty(), "no fixtures");
    for f in &all {
        let model = Model::open(f.model()).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let (inputs, _) = f.test_data();
        let stats = compare(&f.name, &model, &inputs, f.batch1_broken());
        // Every fixture has an MLP of Gemm (or MatMul + Add) + Relu layers.
        assert!(
            stats.count(FusionKind::DenseEpilogue) > 0,
            "{}: no dense epilogue fused: {stats:?}",
            f.name
        );
    }
}

/// How an artifact is made.
struct Recipe {
    ranks: RankPolicy,
    /// Re-lay the AFM artifact with f16 weights.
    half: bool,
    /// The exporter's folding of embedding projections into the first dense layer.
    fold_projections: bool,
}

/// Compresses `f` with AFM as `recipe` says.
fn afm_artifact(f: &Fixture, dir: &TempDir, recipe: Recipe) -> std::path::PathBuf {
    let calib = read_npz(&f.dir.join("calib.npz")).expect("calib.npz");
    let afm = dir.path().join("afm");
    let options = CompressOptions {
        method: Method::Afm,
        ranks: Some(recipe.ranks),
        fuse: recipe.fold_projections,
        ..CompressOptions::default()
    };
    compress_to_dir(
        &f.model(),
        Some(&calib),
        None,
        &afm,
        &options,
        &mut |_, _, _| {},
    )
    .unwrap_or_else(|e| panic!("{}: compress: {e}", f.name));
    if !recipe.half {
        return afm.join("model.onnx");
    }
    let f16 = dir.path().join("afm-f16");
    let options = CompressOptions {
        method: Method::None,
        weights: WeightType::F16,
        ..CompressOptions::default()
    };
    compress_to_dir(
        &afm.join("model.onnx"),
        None,
        None,
        &f16,
        &options,
        &mut |_, _, _| {},
    )
    .unwrap_or_else(|e| panic!("{}: f16: {e}", f.name));
    f16.join("model.onnx")
}

fn fixture(name: &str) -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("fixture {name}"))
}

fn check_artifact(f: &Fixture, path: &Path, what: &str) -> PlanStats {
    let model = Model::open(path).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (inputs, _) = f.test_data();
    let stats = compare(what, &model, &inputs, f.batch1_broken());
    assert!(
        stats.count(FusionKind::FactorizedPair) > 0,
        "{what}: no factorized pair fused: {stats:?}"
    );
    stats
}

/// `--ratio 4` compresses DeepFM's dense layers (factorized pairs, Gemm form) and keeps its
/// tables; the same artifact with f16 weights.
#[test]
fn fusions_on_afm_compressed_deepfm_match_the_unfused_plan() {
    let f = fixture("movielens_deepfm");
    for half in [false, true] {
        let dir = TempDir::new("fusion-afm-deepfm");
        let recipe = Recipe {
            ranks: RankPolicy::Ratio(4.0),
            half,
            fold_projections: true,
        };
        let what = format!("movielens_deepfm afm r4{}", if half { " f16" } else { "" });
        check_artifact(&f, &afm_artifact(&f, &dir, recipe), &what);
    }
}

/// `--energy 0.9` also compresses the embedding tables (to `Gather(E') -> MatMul(P) ->
/// Add(mu)`). Where the exporter folds a projection into the first dense layer (DeepFM), the
/// gathered rows are read twice (by the dense path and by the projection the FM part needs):
/// they must be materialized, and only the projection's bias is fused (dense epilogue). Where
/// it does not (DCNv2's cross network reads the full embeddings), or with its folding off, each
/// projection is the gathered rows' only reader: gather + projection runs fused. DeepFM
/// (MovieLens, 8 tables) and DCNv2 (Criteo, 26 tables).
#[test]
fn fusions_on_afm_compressed_embeddings_match_the_unfused_plan() {
    for name in ["movielens_deepfm", "criteo_dcnv2"] {
        let f = fixture(name);
        for fold in [true, false] {
            let dir = TempDir::new("fusion-afm-energy");
            let recipe = Recipe {
                ranks: RankPolicy::Energy(0.9),
                half: false,
                fold_projections: fold,
            };
            let what = format!("{name} afm e0.9 fold={fold}");
            let stats = check_artifact(&f, &afm_artifact(&f, &dir, recipe), &what);
            if fold {
                let projections = stats.count(FusionKind::DenseEpilogue)
                    + stats.count(FusionKind::GatherProjection);
                assert!(projections > 0, "{what}: no projection fused: {stats:?}");
            } else {
                assert!(
                    stats.count(FusionKind::GatherProjection) > 0,
                    "{what}: no gather + projection fused: {stats:?}"
                );
            }
        }
    }
}

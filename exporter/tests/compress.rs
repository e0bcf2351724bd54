//! Compression on small hand-made graphs, against references computed here, independently of
//! the library's math: the site outputs of the compressed model must equal the rank-k PCA
//! reconstruction of the original outputs (mean and covariance computed in this file, eigen-
//! vectors by a plain cyclic Jacobi routine, all in f64); at full rank the compressed model must
//! reproduce the original; the SVD factors at full rank must reproduce the weight.
//!
//! Every model is run by tract through the written artifact (`backend::run_model`), the same
//! path users take.

use std::fs;
use std::path::{Path, PathBuf};

use ctr_edge_exporter::backend::{run_model, Backend};
use ctr_edge_exporter::compress::factorize::{afm_dense, afm_embedding, pca, svd, svd_dense};
use ctr_edge_exporter::compress::ranks::RankPolicy;
use ctr_edge_exporter::compress::rewrite::{apply_factors, Factors};
use ctr_edge_exporter::compress::sites::find_sites;
use ctr_edge_exporter::compress::{
    calibrate, compress_model, write_compressed, CompressOptions, Compressed, Method, WeightType,
};
use ctr_edge_exporter::npz::{ArrayData, NpyArray};
use ctr_edge_exporter::onnx_build::{
    attr_int as int_attr, cast, ints_attr, model, node, tensor_f32 as tensor, value_info,
};
use faer::Mat;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{AttributeProto, ModelProto, TensorProto};

mod common;

use common::max_abs_diff;

// ---------------------------------------------------------------------------------------------
// Model building

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `rows` x `dim` inputs with a strongly unequal spectrum (a few directions dominate), so that
/// truncation is visible but well conditioned.
fn correlated_inputs(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let latent = values(rows * dim, seed);
    let mix = values(dim * dim, seed + 1);
    let mut out = vec![0.0f32; rows * dim];
    for r in 0..rows {
        for j in 0..dim {
            let mut acc = 0.3;
            for l in 0..dim {
                // Latent component l has scale 2^-l.
                acc += latent[r * dim + l] * mix[l * dim + j] * 0.5f32.powi(l as i32);
            }
            out[r * dim + j] = acc;
        }
    }
    out
}

fn array(name: &str, shape: Vec<usize>, data: Vec<f32>) -> NpyArray {
    NpyArray::new(name, shape, ArrayData::F32(data)).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("compress-tests")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// Writes `m` as an artifact in a fresh folder and runs it with tract; returns every output.
fn run_artifact(m: &ModelProto, tag: &str, inputs: &[NpyArray]) -> Vec<NpyArray> {
    let dir = scratch(tag);
    ctr_edge_exporter::artifact::write_artifact(m.clone(), &dir, &[]).unwrap();
    run_model(&dir.join("model.onnx"), Backend::Tract, inputs, 64).unwrap()
}

/// Max |first output of `m`, run as an artifact - `expected`|.
fn artifact_error(m: &ModelProto, tag: &str, inputs: &[NpyArray], expected: &[f32]) -> f64 {
    max_abs_diff(&f32s(&run_artifact(m, tag, inputs)[0]), expected)
}

/// `compress_model` calibrated on `data`, without evaluation or progress.
fn compress_calibrated(m: &ModelProto, data: &[NpyArray], options: &CompressOptions) -> Compressed {
    compress_model(m, Some(data), None, options, &mut |_, _, _| {}).unwrap()
}

fn f32s(a: &NpyArray) -> Vec<f32> {
    match &a.data {
        ArrayData::F32(v) => v.clone(),
        other => panic!("{}: expected f32, got {:?}", a.name, other.dtype()),
    }
}

// ---------------------------------------------------------------------------------------------
// Independent reference: PCA with a cyclic Jacobi eigen routine

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of the symmetric
/// `a` (n x n, row-major), by cyclic Jacobi rotations, sorted by decreasing eigenvalue.
fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let vals = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vecs = vec![0.0; n * n];
    for (col, &i) in order.iter().enumerate() {
        for k in 0..n {
            vecs[k * n + col] = v[k * n + i];
        }
    }
    (vals, vecs)
}

/// The rank-k PCA reconstruction of `rows` (row-major, `d` features):
/// `y' = U_k U_k^T (y - mu) + mu`, everything in f64.
fn pca_reconstruction(rows: &[f32], d: usize, k: usize) -> Vec<f32> {
    let n = rows.len() / d;
    let y: Vec<f64> = rows.iter().map(|&v| f64::from(v)).collect();
    let mu: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| y[i * d + j]).sum::<f64>() / n as f64)
        .collect();
    let mut cov = vec![0.0; d * d];
    for i in 0..n {
        for a in 0..d {
            for b in 0..d {
                cov[a * d + b] += (y[i * d + a] - mu[a]) * (y[i * d + b] - mu[b]) / n as f64;
            }
        }
    }
    let (_, u) = jacobi_eigen(cov, d);
    let mut out = Vec::with_capacity(rows.len());
    for i in 0..n {
        let centered: Vec<f64> = (0..d).map(|j| y[i * d + j] - mu[j]).collect();
        let coords: Vec<f64> = (0..k)
            .map(|c| (0..d).map(|j| u[j * d + c] * centered[j]).sum())
            .collect();
        for j in 0..d {
            let back: f64 = (0..k).map(|c| u[j * d + c] * coords[c]).sum();
            out.push((back + mu[j]) as f32);
        }
    }
    out
}

#[test]
fn jacobi_reference_diagonalizes() {
    let a = vec![4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1.0];
    let (vals, vecs) = jacobi_eigen(a.clone(), 3);
    for c in 0..3 {
        for i in 0..3 {
            let av: f64 = (0..3).map(|j| a[i * 3 + j] * vecs[j * 3 + c]).sum();
            assert!((av - vals[c] * vecs[i * 3 + c]).abs() < 1e-12);
        }
    }
    assert!(vals[0] >= vals[1] && vals[1] >= vals[2]);
}

// ---------------------------------------------------------------------------------------------
// The models: one dense site of each layout, output = site output

const IN: usize = 10;
const OUT: usize = 12;
const ROWS: usize = 300;

/// The math weight W (OUT x IN, row-major) and bias of every dense model.
fn dense_weight() -> (Vec<f32>, Vec<f32>) {
    (values(OUT * IN, 11), values(OUT, 12))
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|j| (0..rows).map(move |i| (i, j)))
        .map(|(i, j)| w[i * cols + j])
        .collect()
}

/// The layouts of a dense layer.
#[derive(Debug, Clone, Copy)]
enum Layout {
    GemmTransB,
    Gemm,
    MatMul,
    MatMulLeft,
    Conv,
}

/// A model computing `y = W x + b` in `layout`, `x` in `X` [N, IN] and `y` in `Y` [N, OUT].
fn dense_model(layout: Layout) -> ModelProto {
    let (w, b) = dense_weight();
    let x_in = value_info("X", DataType::Float, &[None, Some(IN as i64)]);
    let y_out = value_info("Y", DataType::Float, &[None, Some(OUT as i64)]);
    match layout {
        Layout::GemmTransB => model(
            vec![node(
                "Gemm",
                &["X", "W", "B"],
                &["Y"],
                vec![int_attr("transB", 1)],
            )],
            vec![tensor("W", &[OUT, IN], &w), tensor("B", &[OUT], &b)],
            vec![x_in],
            vec![y_out],
        ),
        Layout::Gemm => {
            // alpha and beta are folded into the factors.
            let half_w: Vec<f32> = transpose(&w, OUT, IN).iter().map(|v| v * 0.5).collect();
            let quarter_b: Vec<f32> = b.iter().map(|v| v * 4.0).collect();
            let alpha = AttributeProto {
                name: "alpha".into(),
                r#type: AttributeType::Float as i32,
                f: 2.0,
                ..Default::default()
            };
            let beta = AttributeProto {
                name: "beta".into(),
                r#type: AttributeType::Float as i32,
                f: 0.25,
                ..Default::default()
            };
            model(
                vec![node("Gemm", &["X", "W", "B"], &["Y"], vec![alpha, beta])],
                vec![
                    tensor("W", &[IN, OUT], &half_w),
                    tensor("B", &[1, OUT], &quarter_b),
                ],
                vec![x_in],
                vec![y_out],
            )
        }
        Layout::MatMul => model(
            vec![
                node("MatMul", &["X", "W"], &["Y0"], vec![]),
                node("Add", &["Y0", "B"], &["Y"], vec![]),
            ],
            vec![
                tensor("W", &[IN, OUT], &transpose(&w, OUT, IN)),
                tensor("B", &[OUT], &b),
            ],
            vec![x_in],
            vec![y_out],
        ),
        Layout::MatMulLeft | Layout::Conv => {
            // X [N, IN] -> [N, IN, 1] -> W x -> [N, OUT, 1] -> + b -> [N, OUT].
            let axes = TensorProto {
                name: "axes".into(),
                data_type: DataType::Int64 as i32,
                dims: vec![1],
                int64_data: vec![2],
                ..Default::default()
            };
            let (op, inputs, w_shape): (&str, Vec<&str>, Vec<usize>) = match layout {
                Layout::MatMulLeft => ("MatMul", vec!["W", "X3"], vec![OUT, IN]),
                _ => ("Conv", vec!["X3", "W"], vec![OUT, IN, 1]),
            };
            let attrs = match layout {
                Layout::Conv => vec![ints_attr("kernel_shape", &[1])],
                _ => vec![],
            };
            model(
                vec![
                    node("Unsqueeze", &["X", "axes"], &["X3"], vec![]),
                    node(op, &inputs, &["Y3"], attrs),
                    node("Squeeze", &["Y3", "axes"], &["Y0"], vec![]),
                    node("Add", &["Y0", "B"], &["Y"], vec![]),
                ],
                vec![tensor("W", &w_shape, &w), tensor("B", &[OUT], &b), axes],
                vec![x_in],
                vec![y_out],
            )
        }
    }
}

fn x_data() -> Vec<NpyArray> {
    vec![array("X", vec![ROWS, IN], correlated_inputs(ROWS, IN, 5))]
}

/// `y = W x + b` computed here.
/// [`x_data`] and the dense site's output on it.
fn x_data_and_reference() -> (Vec<NpyArray>, Vec<f32>) {
    let data = x_data();
    let reference = dense_reference(&f32s(&data[0]));
    (data, reference)
}

fn dense_reference(x: &[f32]) -> Vec<f32> {
    let (w, b) = dense_weight();
    x.chunks(IN)
        .flat_map(|row| {
            (0..OUT)
                .map(|o| {
                    (0..IN)
                        .map(|i| f64::from(w[o * IN + i]) * f64::from(row[i]))
                        .sum::<f64>() as f32
                        + b[o]
                })
                .collect::<Vec<f32>>()
        })
        .collect()
}

fn options(method: Method, ranks: RankPolicy) -> CompressOptions {
    CompressOptions {
        method,
        ranks: Some(ranks),
        ..CompressOptions::default()
    }
}

const ALL_LAYOUTS: [Layout; 5] = [
    Layout::GemmTransB,
    Layout::Gemm,
    Layout::MatMul,
    Layout::MatMulLeft,
    Layout::Conv,
];

#[test]
fn original_models_compute_the_reference() {
    let (data, reference) = x_data_and_reference();
    for layout in ALL_LAYOUTS {
        let tag = format!("orig-{layout:?}");
        let d = artifact_error(&dense_model(layout), &tag, &data, &reference);
        assert!(d < 1e-5, "{layout:?}: {d}");
    }
}

#[test]
fn afm_dense_output_is_the_pca_reconstruction() {
    let (data, y) = x_data_and_reference();
    for k in [2, 3] {
        let expected = pca_reconstruction(&y, OUT, k);
        // The truncation must matter, or the comparison proves little.
        assert!(max_abs_diff(&expected, &y) > 1e-3, "k = {k}");
        for layout in ALL_LAYOUTS {
            let m = dense_model(layout);
            let ranks = RankPolicy::Explicit(vec![("W".into(), k)]);
            let out = compress_calibrated(&m, &data, &options(Method::Afm, ranks));
            let site = &out.report.sites[0];
            assert_eq!(site.rank, Some(k), "{layout:?}");
            let d = artifact_error(&out.model, &format!("afm-{layout:?}-{k}"), &data, &expected);
            assert!(
                d < 1e-4,
                "{layout:?} k = {k}: max |AFM - PCA reconstruction| = {d}"
            );
        }
    }
}

/// `Y = Gather(E, Cast<int64>(ids))`: ids stored as floats (as the exported models do), of
/// shape `ids_dims`; E is `table`, `[rows, dim]`.
fn float_ids_embedding_model(
    table: &[f32],
    [rows, dim]: [usize; 2],
    ids_dims: &[Option<i64>],
) -> ModelProto {
    let mut y_dims = ids_dims.to_vec();
    y_dims.push(Some(dim as i64));
    model(
        vec![
            cast("ids", "ids64", DataType::Int64),
            node("Gather", &["E", "ids64"], &["Y"], vec![]),
        ],
        vec![tensor("E", &[rows, dim], table)],
        vec![value_info("ids", DataType::Float, ids_dims)],
        vec![value_info("Y", DataType::Float, &y_dims)],
    )
}

#[test]
fn afm_embedding_output_is_the_pca_of_looked_up_rows() {
    const N_IDS: usize = 40;
    const DIM: usize = 6;
    let table: Vec<f32> = correlated_inputs(N_IDS, DIM, 21);
    // ids skewed towards small values: frequent rows must weigh more.
    let ids: Vec<f32> = values(ROWS, 3)
        .iter()
        .map(|v| ((v * v) * (N_IDS as f32 - 1.0)).floor())
        .collect();
    let m = float_ids_embedding_model(&table, [N_IDS, DIM], &[None, Some(1)]);
    let data = vec![array("ids", vec![ROWS, 1], ids.clone())];
    let looked_up: Vec<f32> = ids
        .iter()
        .flat_map(|&id| table[id as usize * DIM..(id as usize + 1) * DIM].to_vec())
        .collect();
    let k = 2;
    let expected = pca_reconstruction(&looked_up, DIM, k);
    assert!(max_abs_diff(&expected, &looked_up) > 1e-3);
    let ranks = RankPolicy::Explicit(vec![("E".into(), k)]);
    let out = compress_calibrated(&m, &data, &options(Method::Afm, ranks));
    assert_eq!(out.report.sites[0].rank, Some(k));
    let d = artifact_error(&out.model, "afm-embedding", &data, &expected);
    assert!(d < 1e-4, "max |AFM - PCA reconstruction| = {d}");
}

#[test]
fn full_rank_factors_reproduce_the_original() {
    let (data, reference) = x_data_and_reference();
    let (w, b) = dense_weight();
    let w_math = Mat::from_fn(OUT, IN, |i, j| f64::from(w[i * IN + j]));
    let b_math: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    for layout in ALL_LAYOUTS {
        let m = dense_model(layout);
        let found = find_sites(m.graph.as_ref().unwrap());
        let site = &found.sites[0];
        // The Gemm layouts carry the bias in the site; the others add it after.
        let bias = match layout {
            Layout::GemmTransB | Layout::Gemm => Some(b_math.as_slice()),
            _ => None,
        };
        let stats = calibrate(&m, &[site], &data, 64, "calibrating", &mut |_, _, _| {}).unwrap();
        let p = pca(&stats[0]).unwrap();
        // Full rank is never chosen by rank selection (it does not pay), so build it directly.
        for factors in [
            Factors::Dense(afm_dense(w_math.as_ref(), bias, &p, OUT)),
            Factors::Dense(svd_dense(&svd(w_math.as_ref()).unwrap(), bias, IN)),
        ] {
            let compressed = apply_factors(&m, &[(site, &factors)]).unwrap();
            let d = artifact_error(&compressed, &format!("full-{layout:?}"), &data, &reference);
            assert!(d < 1e-4, "{layout:?} rank {}: {d}", factors.rank());
        }
    }
}

#[test]
fn full_rank_embedding_reproduces_the_table() {
    let table = values(12 * 5, 9);
    let m = float_ids_embedding_model(&table, [12, 5], &[None]);
    let ids: Vec<f32> = (0..48).map(|i| (i % 12) as f32).collect();
    let data = vec![array("ids", vec![48], ids.clone())];
    let found = find_sites(m.graph.as_ref().unwrap());
    let site = &found.sites[0];
    let e = Mat::from_fn(12, 5, |i, j| f64::from(table[i * 5 + j]));
    let stats = calibrate(&m, &[site], &data, 16, "calibrating", &mut |_, _, _| {}).unwrap();
    let afm = Factors::Embedding(afm_embedding(e.as_ref(), &pca(&stats[0]).unwrap(), 5));
    let svd_f = Factors::Embedding(ctr_edge_exporter::compress::factorize::svd_embedding(
        &svd(e.as_ref()).unwrap(),
        5,
    ));
    let expected: Vec<f32> = ids
        .iter()
        .flat_map(|&id| table[id as usize * 5..(id as usize + 1) * 5].to_vec())
        .collect();
    for (tag, f) in [("afm", afm), ("svd", svd_f)] {
        let compressed = apply_factors(&m, &[(site, &f)]).unwrap();
        let d = artifact_error(&compressed, &format!("full-emb-{tag}"), &data, &expected);
        assert!(d < 1e-5, "{tag}: {d}");
    }
}

#[test]
fn svd_factors_at_full_rank_multiply_back_to_the_weight() {
    let (w, _) = dense_weight();
    let w_math = Mat::from_fn(OUT, IN, |i, j| f64::from(w[i * IN + j]));
    let f = svd_dense(&svd(w_math.as_ref()).unwrap(), None, IN);
    // W2 W1 computed here, element by element.
    for i in 0..OUT {
        for j in 0..IN {
            let v: f64 = (0..IN).map(|c| f.second[(i, c)] * f.first[(c, j)]).sum();
            assert!((v - w_math[(i, j)]).abs() < 1e-10, "{i} {j}");
        }
    }
}

#[test]
fn f16_weights_are_half_floats_followed_by_casts_and_stay_close() {
    let data = x_data();
    let m = dense_model(Layout::GemmTransB);
    let mut opts = options(Method::Svd, RankPolicy::Explicit(vec![("W".into(), 2)]));
    opts.weights = WeightType::F16;
    let out = compress_calibrated(&m, &data, &opts);
    let g = out.model.graph.as_ref().unwrap();
    let halves: Vec<&TensorProto> = g
        .initializer
        .iter()
        .filter(|t| t.data_type == DataType::Float16 as i32)
        .collect();
    assert!(!halves.is_empty());
    for t in halves {
        let cast = g
            .node
            .iter()
            .find(|n| n.input.first() == Some(&t.name))
            .expect("a node reads the f16 initializer");
        assert_eq!(cast.op_type, "Cast");
        assert_eq!(cast.attribute[0].i, DataType::Float as i64);
    }
    let f32_out = compress_calibrated(
        &m,
        &data,
        &options(Method::Svd, RankPolicy::Explicit(vec![("W".into(), 2)])),
    );
    let a = run_artifact(&out.model, "f16", &data);
    let b = run_artifact(&f32_out.model, "f16-ref", &data);
    let d = max_abs_diff(&f32s(&a[0]), &f32s(&b[0]));
    assert!(d > 0.0 && d < 1e-2, "{d}");
}

#[test]
fn written_artifact_records_method_ranks_and_report() {
    let data = x_data();
    let m = dense_model(Layout::MatMul);
    let out = compress_calibrated(
        &m,
        &data,
        &options(Method::Afm, RankPolicy::Explicit(vec![("W".into(), 2)])),
    );
    let dir = scratch("artifact-meta");
    let report = write_compressed(out, &dir).unwrap();
    assert!(report.artifact.is_some());
    let text = fs::read_to_string(dir.join("report.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["method"], "afm");
    assert_eq!(json["sites"][0]["rank"], 2);
    let bytes = fs::read(dir.join("model.onnx")).unwrap();
    let written = <ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap();
    let meta = |k: &str| {
        written
            .metadata_props
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.clone())
    };
    assert_eq!(meta("ctr_edge.method").as_deref(), Some("afm"));
    assert_eq!(meta("ctr_edge.ranks").as_deref(), Some("{\"W\":2}"));
    assert_eq!(meta("ctr_edge.weights").as_deref(), Some("f32"));
    assert!(meta("ctr_edge.weights_checksum").is_some());
}

// ---------------------------------------------------------------------------------------------
// Fusion of embedding projections into the first dense layer

/// The dense layer of the fusion model: its op and how it stores its weight and bias.
#[derive(Debug, Clone, Copy)]
enum FusionDense {
    /// `Gemm(z, W[out, in], b)` with `transB = 1`.
    GemmTransB,
    /// `Gemm(z, W[in, out])`, no bias, `alpha = 0.5`.
    GemmNoBias,
    /// `MatMul(z, W[in, out])`.
    MatMul,
}

const FUSION_IDS: usize = 40;
const FUSION_DIM: usize = 6;
const FUSION_OUT: usize = 4;

/// Two tables looked up, concatenated along the features with a dense input, flattened and fed
/// to a dense layer; table B's lookups are also read by an "interaction" (B * B), which is a
/// second model output.
fn fusion_model(dense: FusionDense) -> ModelProto {
    let n_in = 2 * FUSION_DIM + 3;
    let w = values(n_in * FUSION_OUT, 31);
    let (dense_node, mut inits) = match dense {
        FusionDense::GemmTransB => (
            node(
                "Gemm",
                &["Z", "W", "bias"],
                &["D"],
                vec![int_attr("transB", 1)],
            ),
            vec![
                tensor("W", &[FUSION_OUT, n_in], &w),
                tensor("bias", &[FUSION_OUT], &values(FUSION_OUT, 32)),
            ],
        ),
        FusionDense::GemmNoBias => (
            node(
                "Gemm",
                &["Z", "W"],
                &["D"],
                vec![AttributeProto {
                    name: "alpha".into(),
                    r#type: AttributeType::Float as i32,
                    f: 0.5,
                    ..Default::default()
                }],
            ),
            vec![tensor("W", &[n_in, FUSION_OUT], &w)],
        ),
        FusionDense::MatMul => (
            node("MatMul", &["Z", "W"], &["D"], vec![]),
            vec![tensor("W", &[n_in, FUSION_OUT], &w)],
        ),
    };
    inits.push(tensor(
        "EA",
        &[FUSION_IDS, FUSION_DIM],
        &correlated_inputs(FUSION_IDS, FUSION_DIM, 33),
    ));
    inits.push(tensor(
        "EB",
        &[FUSION_IDS, FUSION_DIM],
        &correlated_inputs(FUSION_IDS, FUSION_DIM, 34),
    ));
    let cast = |from: &str, to: &str| cast(from, to, DataType::Int64);
    model(
        vec![
            cast("a", "a64"),
            cast("b", "b64"),
            node("Gather", &["EA", "a64"], &["YA"], vec![]),
            node("Gather", &["EB", "b64"], &["YB"], vec![]),
            node("Concat", &["YA", "YB"], &["C"], vec![int_attr("axis", -1)]),
            node("Flatten", &["C"], &["F"], vec![int_attr("axis", 1)]),
            node("Concat", &["F", "x"], &["Z"], vec![int_attr("axis", 1)]),
            dense_node,
            node("Mul", &["YB", "YB"], &["I"], vec![]),
        ],
        inits,
        vec![
            value_info("a", DataType::Float, &[None, Some(1)]),
            value_info("b", DataType::Float, &[None, Some(1)]),
            value_info("x", DataType::Float, &[None, Some(3)]),
        ],
        vec![
            value_info("D", DataType::Float, &[None, Some(FUSION_OUT as i64)]),
            value_info(
                "I",
                DataType::Float,
                &[None, Some(1), Some(FUSION_DIM as i64)],
            ),
        ],
    )
}

fn fusion_data() -> Vec<NpyArray> {
    let ids = |seed| {
        values(ROWS, seed)
            .iter()
            .map(|v| ((v * v) * (FUSION_IDS as f32 - 1.0)).floor())
            .collect::<Vec<f32>>()
    };
    vec![
        array("a", vec![ROWS, 1], ids(35)),
        array("b", vec![ROWS, 1], ids(36)),
        array("x", vec![ROWS, 3], values(ROWS * 3, 37)),
    ]
}

#[test]
fn fused_projections_compute_what_the_explicit_ones_do() {
    let data = fusion_data();
    for dense in [
        FusionDense::GemmTransB,
        FusionDense::GemmNoBias,
        FusionDense::MatMul,
    ] {
        let m = fusion_model(dense);
        let ranks = RankPolicy::Explicit(vec![("EA".into(), 2), ("EB".into(), 3)]);
        let compress = |fuse: bool| {
            let options = CompressOptions {
                fuse,
                ..options(Method::Afm, ranks.clone())
            };
            compress_calibrated(&m, &data, &options)
        };
        let explicit = compress(false);
        let fused = compress(true);
        assert!(
            explicit.report.fusion.is_none(),
            "--no-fusion reports no fusion"
        );
        let summary = fused.report.fusion.as_ref().expect("fusion summary");
        let mut fused_sites: Vec<&str> = summary.fused.iter().map(|f| f.site.as_str()).collect();
        fused_sites.sort_unstable();
        assert_eq!(fused_sites, ["EA", "EB"], "{dense:?}: {summary:?}");
        assert!(summary.fused.iter().all(|f| f.into == "W"), "{summary:?}");

        // The dense layer now reads 2 + 3 features of the tables and the 3 dense ones, and
        // only table B (read by the interaction too) keeps a projection.
        let g = fused.model.graph.as_ref().unwrap();
        let dense_node = g
            .node
            .iter()
            .find(|n| matches!(n.op_type.as_str(), "Gemm" | "MatMul") && n.input[0] == "Z")
            .unwrap();
        let weight = g
            .initializer
            .iter()
            .find(|t| t.name == dense_node.input[1])
            .unwrap();
        assert!(
            weight.dims.contains(&8) && weight.dims.contains(&(FUSION_OUT as i64)),
            "{dense:?}: fused weight dims {:?}",
            weight.dims
        );
        let projections = g
            .node
            .iter()
            .filter(|n| n.op_type == "MatMul" && n.input[0] != "Z")
            .count();
        assert_eq!(projections, 1, "{dense:?}: only B's projection stays");

        // Same function, through two different graphs, run by tract.
        let a = run_artifact(&fused.model, &format!("fused-{dense:?}"), &data);
        let b = run_artifact(&explicit.model, &format!("explicit-{dense:?}"), &data);
        for (x, y) in a.iter().zip(&b) {
            let d = max_abs_diff(&f32s(x), &f32s(y));
            assert!(
                d < 1e-5,
                "{dense:?}: output {}: fused vs explicit {d}",
                x.name
            );
        }
        assert!(
            fused.report.totals.params_after < explicit.report.totals.params_after,
            "{dense:?}: fusion saves parameters"
        );
    }
}

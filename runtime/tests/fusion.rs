//! Plan-time fusions on small synthetic graphs: every fused plan is compared with the unfused
//! plan of the same model (`Session::set_fusion(false)`) and with a plain-loop f64 reference
//! written here, and `Session::plan_stats` must list the fused steps expected (a silent
//! non-fusion fails), or none where a fusion would change the result or is not allowed.
//!
//! Variants: MatMul + Add (bias on either side, shapes `[n]`, `[1, n]`, one value) + Relu /
//! Sigmoid / Tanh; Gemm with transB, alpha, beta and its C; factorized pairs (MatMul and Gemm
//! forms, with and without a bias or an activation in between) of ranks 1, 3, 5 and 9;
//! Gather + projection (+ mu) with int64 and int32 ids, negative ids, f16 tables, and out-of-range ids
//! giving the same error as the unfused Gather; batch sizes 1, 7, 33 and 1000.

mod onnx_support;

use ctr_edge_runtime::graph::{FusionKind, PlanStats};
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Error, Input, KernelVariant, Model};
use onnx_support::*;

/// Batch sizes every synthetic model runs at.
const BATCHES: [usize; 4] = [1, 7, 33, 1000];

/// The kernel family this CPU should run: the fused kernels under test are the SIMD ones
/// wherever the CPU has them (a silent fallback to scalar fails here).
fn expected_variant() -> KernelVariant {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            return KernelVariant::Avx2Fma;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return KernelVariant::Neon;
    }
    #[allow(unreachable_code)]
    KernelVariant::Scalar
}

/// One model input.
enum Feed {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
}

/// Runs `model` on `inputs` (name, shape, values) with fusions on or off; output 0 and the
/// plan's statistics, or the error.
fn run(
    model: &Model<'_>,
    inputs: &[(&str, Vec<usize>, &Feed)],
    fusion: bool,
) -> Result<(Vec<f32>, PlanStats), Error> {
    let mut s = model.session();
    s.set_fusion(fusion);
    assert_eq!(s.fusion(), fusion);
    let ins: Vec<Input<'_>> = inputs
        .iter()
        .map(|(n, sh, d)| Input {
            name: n,
            shape: sh,
            data: match d {
                Feed::F32(v) => InputData::F32(v),
                Feed::I64(v) => InputData::I64(v),
                Feed::I32(v) => InputData::I32(v),
            },
        })
        .collect();
    s.run(&ins)?;
    // Twice: the second run reuses the plan and its scratch.
    s.run(&ins)?;
    let out = s.output(0).expect("output 0").data.to_vec();
    Ok((out, s.plan_stats().expect("stats after a run")))
}

/// `got` within `tol * (1 + |want|)` of `want`, element by element.
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what}: element {i} is {g}, want {w}"
        );
    }
}

/// Runs fused and unfused, checks both against `reference` and each other (1e-5), and that
/// the fused plan has exactly `expect` fused steps of each kind and the unfused none.
fn check(
    what: &str,
    model: &Model<'_>,
    inputs: &[(&str, Vec<usize>, &Feed)],
    reference: &[f64],
    expect: &[(FusionKind, usize)],
) -> PlanStats {
    assert_eq!(model.kernel_variant(), expected_variant(), "{what}");
    let (fused, stats) = run(model, inputs, true).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (plain, plain_stats) = run(model, inputs, false).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(stats.fusion && !plain_stats.fusion, "{what}");
    assert!(plain_stats.fused.is_empty(), "{what}: unfused plan fused");
    for kind in [
        FusionKind::DenseEpilogue,
        FusionKind::FactorizedPair,
        FusionKind::GatherProjection,
    ] {
        let want = expect.iter().find(|(k, _)| *k == kind).map_or(0, |e| e.1);
        assert_eq!(
            stats.count(kind),
            want,
            "{what}: {} steps in {stats:?}",
            kind.name()
        );
    }
    if !expect.is_empty() {
        assert!(stats.steps < plain_stats.steps, "{what}: {stats:?}");
    }
    let plain64: Vec<f64> = plain.iter().map(|&x| x as f64).collect();
    assert_close(&format!("{what}: fused vs unfused"), &fused, &plain64, 1e-5);
    assert_close(
        &format!("{what}: fused vs reference"),
        &fused,
        reference,
        1e-4,
    );
    assert_close(
        &format!("{what}: unfused vs reference"),
        &plain,
        reference,
        1e-4,
    );
    stats
}

// ---- plain-loop reference ----

/// A dense layer of the reference: `act(alpha * x W + bias)`, W given as logical `k x n`.
struct Dense {
    w: Vec<f64>,
    k: usize,
    n: usize,
    alpha: f64,
    bias: Vec<f64>,
    act: &'static str,
}

impl Dense {
    fn new(w_kxn: &[f32], k: usize, n: usize) -> Dense {
        Dense {
            w: w_kxn.iter().map(|&x| x as f64).collect(),
            k,
            n,
            alpha: 1.0,
            bias: vec![0.0; n],
            act: "",
        }
    }

    fn bias(mut self, b: &[f32]) -> Dense {
        self.bias = (0..self.n)
            .map(|j| b[if b.len() == 1 { 0 } else { j }] as f64)
            .collect();
        self
    }

    fn act(mut self, act: &'static str) -> Dense {
        self.act = act;
        self
    }

    fn apply(&self, x: &[f64]) -> Vec<f64> {
        let rows = x.len() / self.k;
        let mut y = vec![0.0; rows * self.n];
        for i in 0..rows {
            for j in 0..self.n {
                let mut s = 0.0;
                for p in 0..self.k {
                    s += x[i * self.k + p] * self.w[p * self.n + j];
                }
                let v = self.alpha * s + self.bias[j];
                y[i * self.n + j] = match self.act {
                    "Relu" => v.max(0.0),
                    "Sigmoid" => 1.0 / (1.0 + (-v).exp()),
                    "Tanh" => v.tanh(),
                    _ => v,
                };
            }
        }
        y
    }
}

/// `w` stored `n x k` transposed to logical `k x n`.
fn transposed(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    let mut t = vec![0.0; k * n];
    for j in 0..n {
        for p in 0..k {
            t[p * n + j] = w[j * k + p];
        }
    }
    t
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// A model with one f32 input `X [N, k]` and one output `Y`.
fn dense_model(nodes: &[Msg], inits: &[Msg], k: usize) -> Vec<u8> {
    model_bytes(&graph(
        "g",
        nodes,
        inits,
        &[value_info("X", FLOAT, &[D::P("N"), D::V(k as i64)])],
        &[value_info("Y", FLOAT, &[])],
    ))
}

fn x_input(batch: usize, k: usize, seed: u64) -> Feed {
    Feed::F32(vals(batch * k, seed))
}

fn feed_f64(f: &Feed) -> Vec<f64> {
    match f {
        Feed::F32(v) => f64s(v),
        _ => unreachable!("f32 feed"),
    }
}

// ---- dense + epilogue ----

#[test]
fn matmul_add_activation_fuses_into_one_step() {
    let (k, n) = (13usize, 17usize);
    let w = vals(k * n, 1);
    let b = vals(n, 2);
    // (bias operand order, bias shape, activation)
    let variants: [(bool, &[i64], Option<&'static str>); 7] = [
        (false, &[17], Some("Relu")),
        (true, &[17], Some("Relu")),
        (false, &[1, 17], Some("Sigmoid")),
        (true, &[1, 17], Some("Tanh")),
        (false, &[], Some("Relu")),
        (false, &[1], None),
        (false, &[17], None),
    ];
    for (bias_first, bias_shape, act) in variants {
        let bias_vals: Vec<f32> = if bias_shape.iter().product::<i64>() == 1 {
            b[..1].to_vec()
        } else {
            b.clone()
        };
        let add_in: [&str; 2] = if bias_first { ["b", "h"] } else { ["h", "b"] };
        let mut nodes = vec![
            op("MatMul mm: X W -> h", &[]),
            node(
                "Add",
                "add",
                &add_in,
                &[if act.is_some() { "z" } else { "Y" }],
                &[],
            ),
        ];
        if let Some(a) = act {
            nodes.push(node(a, "act", &["z"], &["Y"], &[]));
        }
        let bytes = dense_model(
            &nodes,
            &[
                tensor_floats("W", &[k as i64, n as i64], &w),
                tensor_floats("b", bias_shape, &bias_vals),
            ],
            k,
        );
        let m = Model::from_bytes(&bytes, &[]).expect("loads");
        let layer = Dense::new(&w, k, n).bias(&bias_vals).act(act.unwrap_or(""));
        for batch in BATCHES {
            let x = x_input(batch, k, 3 + batch as u64);
            let want = layer.apply(&feed_f64(&x));
            let what = format!("bias_first={bias_first} {bias_shape:?} {act:?} batch {batch}");
            let stats = check(
                &what,
                &m,
                &[("X", vec![batch, k], &x)],
                &want,
                &[(FusionKind::DenseEpilogue, 1)],
            );
            let want_nodes = if act.is_some() { 3 } else { 2 };
            assert_eq!(stats.fused[0].nodes.len(), want_nodes, "{what}");
            assert_eq!(stats.fused[0].nodes[0], "mm", "{what}");
        }
    }
}

#[test]
fn matmul_activation_without_bias_fuses() {
    let (k, n) = (33usize, 9usize);
    let w = vals(k * n, 4);
    for act in ["Relu", "Sigmoid", "Tanh"] {
        let bytes = dense_model(
            &[
                op("MatMul mm: X W -> h", &[]),
                node(act, "act", &["h"], &["Y"], &[]),
            ],
            &[tensor_floats("W", &[k as i64, n as i64], &w)],
            k,
        );
        let m = Model::from_bytes(&bytes, &[]).expect("loads");
        let layer = Dense::new(&w, k, n).act(act);
        for batch in BATCHES {
            let x = x_input(batch, k, 5);
            let want = layer.apply(&feed_f64(&x));
            check(
                &format!("{act} batch {batch}"),
                &m,
                &[("X", vec![batch, k], &x)],
                &want,
                &[(FusionKind::DenseEpilogue, 1)],
            );
        }
    }
}

#[test]
fn gemm_attributes_and_bias_fuse() {
    let (k, n) = (19usize, 11usize);
    let w_nk = vals(n * k, 6);
    let w_kn = transposed(&w_nk, n, k);
    let c = vals(n, 7);
    // (transB, alpha, beta, C shape or none, activation)
    type Variant = (bool, f32, f32, Option<&'static [i64]>, Option<&'static str>);
    let variants: [Variant; 6] = [
        (true, 1.0, 1.0, Some(&[11]), Some("Relu")),
        (false, 1.0, 1.0, Some(&[1, 11]), Some("Sigmoid")),
        (true, 0.5, 2.0, Some(&[11]), Some("Tanh")),
        (true, 1.0, 1.0, None, Some("Relu")),
        (true, 1.0, 0.0, Some(&[11]), Some("Relu")),
        (false, -1.5, 1.0, Some(&[1]), None),
    ];
    for (trans_b, alpha, beta, c_shape, act) in variants {
        let (w, w_shape) = if trans_b {
            (&w_nk, [n as i64, k as i64])
        } else {
            (&w_kn, [k as i64, n as i64])
        };
        let c_vals: Vec<f32> = match c_shape {
            Some(s) if s.iter().product::<i64>() == 1 => c[..1].to_vec(),
            _ => c.clone(),
        };
        let mut inits = vec![tensor_floats("W", &w_shape, w)];
        let mut gemm_in = vec!["X", "W"];
        if let Some(s) = c_shape {
            inits.push(tensor_floats("C", s, &c_vals));
            gemm_in.push("C");
        }
        let gemm_out = if act.is_some() { "z" } else { "Y" };
        let mut nodes = vec![node(
            "Gemm",
            "gemm",
            &gemm_in,
            &[gemm_out],
            &[
                attr_int("transB", trans_b as i64),
                attr_float("alpha", alpha),
                attr_float("beta", beta),
            ],
        )];
        if let Some(a) = act {
            nodes.push(node(a, "act", &["z"], &["Y"], &[]));
        }
        let bytes = dense_model(&nodes, &inits, k);
        let m = Model::from_bytes(&bytes, &[]).expect("loads");
        let mut layer = Dense::new(&w_kn, k, n).act(act.unwrap_or(""));
        layer.alpha = alpha as f64;
        if c_shape.is_some() {
            let scaled: Vec<f32> = c_vals.iter().map(|v| v * beta).collect();
            layer = layer.bias(&scaled);
        }
        // A Gemm with nothing after it and a plain C is one node: nothing to fuse.
        let expect: &[(FusionKind, usize)] = if act.is_some() {
            &[(FusionKind::DenseEpilogue, 1)]
        } else {
            &[]
        };
        for batch in BATCHES {
            let x = x_input(batch, k, 8);
            let want = layer.apply(&feed_f64(&x));
            let what = format!(
                "transB={trans_b} alpha={alpha} beta={beta} C={c_shape:?} {act:?} batch {batch}"
            );
            check(&what, &m, &[("X", vec![batch, k], &x)], &want, expect);
        }
    }
}

/// Where fusing would read a value someone else reads too, or the bias is not a row vector,
/// the plan must not fuse (and still computes the same).
#[test]
fn shared_intermediates_and_full_biases_are_not_fused() {
    let (k, n) = (6usize, 5usize);
    let w = vals(k * n, 9);
    let b_full = vals(2 * n, 10); // [2, n]: varies along the batch axis
    let b = vals(n, 11);
    // h is read by the Add and is also a graph output.
    let shared = model_bytes(&graph(
        "g",
        &[
            op("MatMul mm: X W -> h", &[]),
            op("Add add: h b -> z", &[]),
            op("Relu act: z -> Y", &[]),
        ],
        &[
            tensor_floats("W", &[k as i64, n as i64], &w),
            tensor_floats("b", &[n as i64], &b),
        ],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(k as i64)])],
        &[value_info("Y", FLOAT, &[]), value_info("h", FLOAT, &[])],
    ));
    let m = Model::from_bytes(&shared, &[]).expect("loads");
    let x = x_input(7, k, 12);
    let want = Dense::new(&w, k, n)
        .bias(&b)
        .act("Relu")
        .apply(&feed_f64(&x));
    // The Add may not absorb h; the Relu may still absorb z... into nothing: Add + Relu are not
    // a product, so no fusion at all.
    check(
        "h is a graph output",
        &m,
        &[("X", vec![7, k], &x)],
        &want,
        &[],
    );

    // A bias that differs per row ([2, n] at batch 2) is not a bias over the last axis.
    let full = dense_model(
        &[
            op("MatMul mm: X W -> h", &[]),
            op("Add add: h b -> z", &[]),
            op("Relu act: z -> Y", &[]),
        ],
        &[
            tensor_floats("W", &[k as i64, n as i64], &w),
            tensor_floats("b", &[2, n as i64], &b_full),
        ],
        k,
    );
    let m = Model::from_bytes(&full, &[]).expect("loads");
    let x = x_input(2, k, 13);
    let xs = feed_f64(&x);
    let mut want = Dense::new(&w, k, n).apply(&xs);
    for (i, v) in want.iter_mut().enumerate() {
        *v = (*v + b_full[i] as f64).max(0.0);
    }
    check("per-row bias", &m, &[("X", vec![2, k], &x)], &want, &[]);

    // The product's output read twice (by the Relu and by an Add of itself).
    let twice = dense_model(
        &[op("MatMul mm: X W -> h", &[]), op("Add add: h h -> Y", &[])],
        &[tensor_floats("W", &[k as i64, n as i64], &w)],
        k,
    );
    let m = Model::from_bytes(&twice, &[]).expect("loads");
    let x = x_input(3, k, 14);
    let want: Vec<f64> = Dense::new(&w, k, n)
        .apply(&feed_f64(&x))
        .iter()
        .map(|v| 2.0 * v)
        .collect();
    check("h + h", &m, &[("X", vec![3, k], &x)], &want, &[]);
}

// ---- factorized pairs ----

#[test]
fn factorized_pairs_fuse_at_every_rank_and_batch() {
    let (k, n) = (24usize, 20usize);
    for rank in [1usize, 3, 5, 9] {
        let a = vals(k * rank, 20 + rank as u64);
        let bm = vals(rank * n, 30 + rank as u64);
        let c = vals(n, 40);
        // MatMul, MatMul, Add (the exporter's form) + Relu.
        let bytes = dense_model(
            &[
                op("MatMul mm1: X A -> h", &[]),
                op("MatMul mm2: h B -> z", &[]),
                op("Add add: z c -> r", &[]),
                op("Relu act: r -> Y", &[]),
            ],
            &[
                tensor_floats("A", &[k as i64, rank as i64], &a),
                tensor_floats("B", &[rank as i64, n as i64], &bm),
                tensor_floats("c", &[n as i64], &c),
            ],
            k,
        );
        let m = Model::from_bytes(&bytes, &[]).expect("loads");
        let first = Dense::new(&a, k, rank);
        let second = Dense::new(&bm, rank, n).bias(&c).act("Relu");
        for batch in BATCHES {
            let x = x_input(batch, k, 50 + batch as u64);
            let want = second.apply(&first.apply(&feed_f64(&x)));
            let what = format!("MatMul pair rank {rank} batch {batch}");
            let stats = check(
                &what,
                &m,
                &[("X", vec![batch, k], &x)],
                &want,
                &[(FusionKind::FactorizedPair, 1)],
            );
            assert_eq!(stats.fused[0].nodes, ["mm1", "mm2", "add", "act"], "{what}");
            let tile = stats.fused[0].tile_rows;
            assert!(tile >= 1 && tile <= batch.max(6), "{what}: tile {tile}");
            if batch == 1000 {
                // Tiled: the rank-r intermediate is not materialized for the whole batch.
                assert!(tile < batch, "{what}: tile {tile}");
            }
        }

        // Gemm form (transB, the first factor with its own bias, an activation in between:
        // the exporter's optional ReLU variant).
        let a_nk = transposed(&a, k, rank); // stored [rank, k]
        let hb = vals(rank, 60);
        let bytes = dense_model(
            &[
                op("Gemm g1: X A hb -> h", &[attr_int("transB", 1)]),
                op("Relu act1: h -> hr", &[]),
                op(
                    "Gemm g2: hr B c -> z",
                    &[attr_float("alpha", 0.75), attr_float("beta", 1.5)],
                ),
                op("Sigmoid act2: z -> Y", &[]),
            ],
            &[
                tensor_floats("A", &[rank as i64, k as i64], &a_nk),
                tensor_floats("hb", &[rank as i64], &hb),
                tensor_floats("B", &[rank as i64, n as i64], &bm),
                tensor_floats("c", &[n as i64], &c),
            ],
            k,
        );
        let m = Model::from_bytes(&bytes, &[]).expect("loads");
        let first = Dense::new(&a, k, rank).bias(&hb).act("Relu");
        let c_scaled: Vec<f32> = c.iter().map(|v| v * 1.5).collect();
        let mut second = Dense::new(&bm, rank, n).bias(&c_scaled).act("Sigmoid");
        second.alpha = 0.75;
        for batch in BATCHES {
            let x = x_input(batch, k, 70 + batch as u64);
            let want = second.apply(&first.apply(&feed_f64(&x)));
            let stats = check(
                &format!("Gemm pair rank {rank} batch {batch}"),
                &m,
                &[("X", vec![batch, k], &x)],
                &want,
                &[(FusionKind::FactorizedPair, 1)],
            );
            assert_eq!(stats.fused[0].nodes, ["g1", "act1", "g2", "act2"]);
        }
    }
}

/// Two products whose intermediate is wider than the input (no bottleneck) stay two dense
/// steps; so does a pair whose intermediate is also a graph output.
#[test]
fn products_without_a_bottleneck_are_not_paired() {
    let (k, mid, n) = (8usize, 12usize, 5usize);
    let a = vals(k * mid, 80);
    let bm = vals(mid * n, 81);
    let bytes = dense_model(
        &[
            op("MatMul mm1: X A -> h", &[]),
            op("Relu act1: h -> hr", &[]),
            op("MatMul mm2: hr B -> z", &[]),
            op("Relu act2: z -> Y", &[]),
        ],
        &[
            tensor_floats("A", &[k as i64, mid as i64], &a),
            tensor_floats("B", &[mid as i64, n as i64], &bm),
        ],
        k,
    );
    let m = Model::from_bytes(&bytes, &[]).expect("loads");
    let x = x_input(33, k, 82);
    let want = Dense::new(&bm, mid, n)
        .act("Relu")
        .apply(&Dense::new(&a, k, mid).act("Relu").apply(&feed_f64(&x)));
    check(
        "no bottleneck",
        &m,
        &[("X", vec![33, k], &x)],
        &want,
        &[(FusionKind::DenseEpilogue, 2)],
    );

    let (k, rank, n) = (16usize, 3usize, 16usize);
    let a = vals(k * rank, 83);
    let bm = vals(rank * n, 84);
    let shared = model_bytes(&graph(
        "g",
        &[
            op("MatMul mm1: X A -> h", &[]),
            op("MatMul mm2: h B -> Y", &[]),
        ],
        &[
            tensor_floats("A", &[k as i64, rank as i64], &a),
            tensor_floats("B", &[rank as i64, n as i64], &bm),
        ],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(k as i64)])],
        &[value_info("Y", FLOAT, &[]), value_info("h", FLOAT, &[])],
    ));
    let m = Model::from_bytes(&shared, &[]).expect("loads");
    let x = x_input(7, k, 85);
    let want = Dense::new(&bm, rank, n).apply(&Dense::new(&a, k, rank).apply(&feed_f64(&x)));
    check(
        "intermediate is an output",
        &m,
        &[("X", vec![7, k], &x)],
        &want,
        &[],
    );
}

// ---- gather + projection ----

/// `Gather(E, ids [batch, fields]) -> MatMul(P) -> Add(mu)`, E `rows x kdim` (f32 or f16 +
/// Cast), P `kdim x d`.
fn gather_model(
    rows: usize,
    kdim: usize,
    d: usize,
    fields: usize,
    ids_type: i32,
    half: bool,
) -> (Vec<u8>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let e = vals(rows * kdim, 90 + kdim as u64);
    let p = vals(kdim * d, 91);
    let mu = vals(d, 92);
    let mut nodes = Vec::new();
    let mut inits = vec![
        tensor_floats("P", &[kdim as i64, d as i64], &p),
        tensor_floats("mu", &[d as i64], &mu),
    ];
    let table = if half {
        let bits: Vec<u8> = e
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        inits.push(tensor_raw(
            "E16",
            FLOAT16,
            &[rows as i64, kdim as i64],
            &bits,
        ));
        nodes.push(op("Cast cast: E16 -> E", &[attr_int("to", 1)]));
        "E"
    } else {
        inits.push(tensor_floats("E", &[rows as i64, kdim as i64], &e));
        "E"
    };
    nodes.push(node("Gather", "gather", &[table, "ids"], &["g"], &[]));
    nodes.push(op("MatMul proj: g P -> z", &[]));
    nodes.push(op("Add mu_add: z mu -> Y", &[]));
    let bytes = model_bytes(&graph(
        "g",
        &nodes,
        &inits,
        &[value_info(
            "ids",
            ids_type,
            &[D::P("N"), D::V(fields as i64)],
        )],
        &[value_info("Y", FLOAT, &[])],
    ));
    let e_seen: Vec<f32> = if half {
        e.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
    } else {
        e
    };
    (bytes, e_seen, p, mu)
}

fn ids_for(batch: usize, fields: usize, rows: usize, seed: u64) -> Vec<i64> {
    vals(batch * fields, seed)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let id = ((v + 1.0) * 0.5 * rows as f32) as i64 % rows as i64;
            // Some negative ids (counting from the end), as ONNX allows.
            if i % 5 == 3 {
                id - rows as i64
            } else {
                id
            }
        })
        .collect()
}

#[test]
fn gather_projection_fuses() {
    let (rows, d, fields) = (50usize, 16usize, 3usize);
    for kdim in [1usize, 3, 5, 8] {
        for (ids_type, half) in [(INT64, false), (INT32, false), (INT64, true)] {
            let (bytes, e, p, mu) = gather_model(rows, kdim, d, fields, ids_type, half);
            let m = Model::from_bytes(&bytes, &[]).expect("loads");
            let proj = Dense::new(&p, kdim, d).bias(&mu);
            for batch in BATCHES {
                let ids = ids_for(batch, fields, rows, 100 + batch as u64);
                let gathered: Vec<f64> = ids
                    .iter()
                    .flat_map(|&id| {
                        let r = if id < 0 { id + rows as i64 } else { id } as usize;
                        f64s(&e[r * kdim..(r + 1) * kdim])
                    })
                    .collect();
                let want = proj.apply(&gathered);
                let feed = if ids_type == INT64 {
                    Feed::I64(ids)
                } else {
                    Feed::I32(ids.iter().map(|&v| v as i32).collect())
                };
                let what = format!("kdim {kdim} ids {ids_type} f16={half} batch {batch}");
                let stats = check(
                    &what,
                    &m,
                    &[("ids", vec![batch, fields], &feed)],
                    &want,
                    &[(FusionKind::GatherProjection, 1)],
                );
                assert_eq!(stats.fused[0].nodes, ["gather", "proj", "mu_add"], "{what}");
            }
        }
    }
}

#[test]
fn gather_projection_reports_out_of_range_ids_like_gather() {
    // 1200 ids: several tiles, bad ids in the first, a middle and the last one.
    let (rows, kdim, d, fields, batch) = (10usize, 4usize, 6usize, 3usize, 400usize);
    let (bytes, ..) = gather_model(rows, kdim, d, fields, INT64, false);
    let m = Model::from_bytes(&bytes, &[]).expect("loads");
    let mut s = m.session();
    s.run(&[input(
        "ids",
        &[batch, fields],
        InputData::I64(&ids_for(batch, fields, rows, 6)),
    )])
    .expect("runs");
    let tile = s.plan_stats().unwrap().fused[0].tile_rows;
    assert!(tile < batch * fields / 3, "tile {tile}: want several tiles");
    for (at, bad) in [
        (0usize, 10i64),
        (37, -11),
        (650, 1 << 40),
        (1199, i64::MIN),
        (1100, 10),
    ] {
        let mut ids = ids_for(batch, fields, rows, 7);
        ids[at] = bad;
        let feed = Feed::I64(ids);
        let inputs = [("ids", vec![batch, fields], &feed)];
        let fused = run(&m, &inputs, true).expect_err("fused: out of range");
        let plain = run(&m, &inputs, false).expect_err("unfused: out of range");
        assert_eq!(fused, plain, "id {bad} at {at}");
        assert_eq!(
            fused,
            Error::IndexOutOfRange {
                input: "ids".into(),
                row: at / fields,
                index: bad,
                table_rows: rows,
            }
        );
    }
    // And a fused session still works after the error.
    let feed = Feed::I64(ids_for(batch, fields, rows, 8));
    let mut s = m.session();
    let ids = match &feed {
        Feed::I64(v) => v,
        _ => unreachable!(),
    };
    s.run(&[input("ids", &[batch, fields], InputData::I64(ids))])
        .expect("runs");
    assert_eq!(
        s.plan_stats().unwrap().count(FusionKind::GatherProjection),
        1
    );
}

/// A fused plan holds less buffer memory: the fused-away values get none.
#[test]
fn fused_away_values_get_no_buffer() {
    let (k, rank, n, batch) = (64usize, 4usize, 64usize, 1000usize);
    let bytes = dense_model(
        &[
            op("MatMul mm1: X A -> h", &[]),
            op("MatMul mm2: h B -> z", &[]),
            op("Add add: z c -> Y", &[]),
        ],
        &[
            tensor_floats("A", &[k as i64, rank as i64], &vals(k * rank, 1)),
            tensor_floats("B", &[rank as i64, n as i64], &vals(rank * n, 2)),
            tensor_floats("c", &[n as i64], &vals(n, 3)),
        ],
        k,
    );
    let m = Model::from_bytes(&bytes, &[]).expect("loads");
    let x = x_input(batch, k, 4);
    let (_, fused) = run(&m, &[("X", vec![batch, k], &x)], true).unwrap();
    let (_, plain) = run(&m, &[("X", vec![batch, k], &x)], false).unwrap();
    // Unfused: X, h, z, Y. Fused: X, Y and one tile of h.
    let f32s = |rows: usize, cols: usize| rows * cols * 4;
    assert_eq!(
        plain.buffer_bytes,
        f32s(batch, k) + f32s(batch, rank) + 2 * f32s(batch, n)
    );
    let tile = fused.fused[0].tile_rows;
    assert_eq!(
        fused.buffer_bytes,
        f32s(batch, k) + f32s(batch, n) + f32s(tile, rank)
    );
}

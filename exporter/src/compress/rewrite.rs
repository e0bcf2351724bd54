//! Writing factorized sites back into the ONNX graph, and the f16 weight variant.
//!
//! Each rewritten site keeps the name of the tensor it produced, so everything downstream
//! (and any `value_info`) stays valid:
//! - a `Gemm` layer becomes `Gemm(x, W1, b1) -> h`, `Gemm(h, W2, b2) -> y`, both `transB = 1`
//!   (W1 stored k x in, W2 out x k);
//! - a `MatMul` layer becomes `MatMul(x, W1^T) [+ b1] -> h`, `MatMul(h, W2^T) [+ b2] -> y`, so
//!   inputs with any leading dimensions keep working; a `W @ x` layer becomes
//!   `MatMul(W1, x) [+ b1] -> h`, `MatMul(W2, h) [+ b2] -> y` with column biases; a
//!   kernel-size-1 `Conv` becomes two such convolutions;
//! - an embedding table becomes `Gather(E', ids) -> g`, `MatMul(g, P) [+ mu] -> y` for every
//!   `Gather` that read it (the new table and projection are shared).
//!
//! Rewrites always start from the original graph with the full set of factors decided so far;
//! node indices of the sites therefore stay those of the original.

use std::collections::{HashMap, HashSet};

use faer::Mat;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

use super::factorize::{DenseFactors, EmbeddingFactors};
use super::graph::{f16_tensor, f32_tensor, f32_values, int_attr, node, Names};
use super::sites::{DenseOp, Site, SiteKind};
use crate::error::{Error, Result};

/// The replacement of one site.
#[derive(Debug, Clone)]
pub enum Factors {
    /// Two layers for a dense layer.
    Dense(DenseFactors),
    /// A narrow table and a projection for an embedding table.
    Embedding(EmbeddingFactors),
}

impl Factors {
    /// The rank k.
    pub fn rank(&self) -> usize {
        match self {
            Factors::Dense(f) => f.first.nrows(),
            Factors::Embedding(f) => f.table.ncols(),
        }
    }
}

/// Row-major f32 values of `m`, or of its transpose.
fn values(m: &Mat<f64>, transpose: bool) -> (Vec<usize>, Vec<f32>) {
    let (r, c) = if transpose {
        (m.ncols(), m.nrows())
    } else {
        (m.nrows(), m.ncols())
    };
    let mut out = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            let v = if transpose { m[(j, i)] } else { m[(i, j)] };
            out.push(v as f32);
        }
    }
    (vec![r, c], out)
}

fn vector(v: &[f64]) -> (Vec<usize>, Vec<f32>) {
    (vec![v.len()], v.iter().map(|&x| x as f32).collect())
}

/// A copy of `model` with every `(site, factors)` pair rewritten.
pub fn apply_factors(model: &ModelProto, replaced: &[(&Site, &Factors)]) -> Result<ModelProto> {
    let mut out = model.clone();
    let Some(graph) = out.graph.as_mut() else {
        return Err(Error::InvalidArgument {
            reason: "the model has no graph".into(),
        });
    };
    let mut names = Names::of(graph);
    let mut new_inits: Vec<TensorProto> = Vec::new();
    let mut add_init = |names: &mut Names, base: &str, (dims, data): (Vec<usize>, Vec<f32>)| {
        let name = names.fresh(base);
        new_inits.push(f32_tensor(&name, &dims, &data));
        name
    };
    // Node index -> the nodes replacing it.
    let mut replacement: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut dropped: HashSet<String> = HashSet::new();

    for &(site, factors) in replaced {
        dropped.insert(site.name.clone());
        match (&site.kind, factors) {
            (SiteKind::Dense { op, bias, .. }, Factors::Dense(f)) => {
                if let Some(b) = bias {
                    dropped.insert(b.clone());
                }
                let [ix] = site.nodes[..] else {
                    return Err(internal(site, "a dense site has one node"));
                };
                let orig = &graph.node[ix];
                // The data input: the one that is not the weight.
                let x = if *op == DenseOp::MatMulLeft {
                    orig.input[1].clone()
                } else {
                    orig.input[0].clone()
                };
                let y = orig.output[0].clone();
                let base = &site.name;
                let h = names.fresh(&format!("{base}/h"));
                let node_name = |names: &mut Names, suffix: &str| {
                    let n = if orig.name.is_empty() {
                        base
                    } else {
                        &orig.name
                    };
                    names.fresh(&format!("{n}/{suffix}"))
                };
                let mut nodes = Vec::new();
                match op {
                    DenseOp::Gemm { .. } => {
                        let w1 = add_init(
                            &mut names,
                            &format!("{base}/first"),
                            values(&f.first, false),
                        );
                        let mut in1 = vec![x, w1];
                        if let Some(b1) = &f.first_bias {
                            in1.push(add_init(
                                &mut names,
                                &format!("{base}/first_bias"),
                                vector(b1),
                            ));
                        }
                        let w2 = add_init(
                            &mut names,
                            &format!("{base}/second"),
                            values(&f.second, false),
                        );
                        let mut in2 = vec![h.clone(), w2];
                        if let Some(b2) = &f.second_bias {
                            in2.push(add_init(
                                &mut names,
                                &format!("{base}/second_bias"),
                                vector(b2),
                            ));
                        }
                        let trans_b = || vec![int_attr("transB", 1)];
                        nodes.push(node(
                            "Gemm",
                            node_name(&mut names, "first"),
                            in1,
                            vec![h],
                            trans_b(),
                        ));
                        nodes.push(node(
                            "Gemm",
                            node_name(&mut names, "second"),
                            in2,
                            vec![y],
                            trans_b(),
                        ));
                    }
                    DenseOp::Conv1x1 => {
                        // Two kernel-size-1 convolutions with the original's attributes.
                        let kernel = |m: &Mat<f64>| {
                            let (mut dims, data) = values(m, false);
                            dims.push(1);
                            (dims, data)
                        };
                        let w1 = add_init(&mut names, &format!("{base}/first"), kernel(&f.first));
                        let mut in1 = vec![x, w1];
                        if let Some(b1) = &f.first_bias {
                            in1.push(add_init(
                                &mut names,
                                &format!("{base}/first_bias"),
                                vector(b1),
                            ));
                        }
                        let w2 = add_init(&mut names, &format!("{base}/second"), kernel(&f.second));
                        let mut in2 = vec![h.clone(), w2];
                        if let Some(b2) = &f.second_bias {
                            in2.push(add_init(
                                &mut names,
                                &format!("{base}/second_bias"),
                                vector(b2),
                            ));
                        }
                        let attrs = orig.attribute.clone();
                        nodes.push(node(
                            "Conv",
                            node_name(&mut names, "first"),
                            in1,
                            vec![h],
                            attrs.clone(),
                        ));
                        nodes.push(node(
                            "Conv",
                            node_name(&mut names, "second"),
                            in2,
                            vec![y],
                            attrs,
                        ));
                    }
                    DenseOp::MatMulLeft | DenseOp::MatMul => {
                        // `W @ x` (features on the second-to-last axis): weights as stored
                        // (k x in, out x k), biases as columns. `x @ W^T`: transposed weights,
                        // biases as rows.
                        let left = *op == DenseOp::MatMulLeft;
                        let bias = |v: &[f64]| {
                            let data = v.iter().map(|&x| x as f32).collect();
                            if left {
                                (vec![v.len(), 1], data)
                            } else {
                                (vec![v.len()], data)
                            }
                        };
                        let w1 = add_init(
                            &mut names,
                            &format!("{base}/first"),
                            values(&f.first, !left),
                        );
                        let w2 = add_init(
                            &mut names,
                            &format!("{base}/second"),
                            values(&f.second, !left),
                        );
                        let b1 = f
                            .first_bias
                            .as_ref()
                            .map(|b| add_init(&mut names, &format!("{base}/first_bias"), bias(b)));
                        let b2 = f
                            .second_bias
                            .as_ref()
                            .map(|b| add_init(&mut names, &format!("{base}/second_bias"), bias(b)));
                        let operands =
                            |w: String, v: String| if left { vec![w, v] } else { vec![v, w] };
                        let first = node_name(&mut names, "first");
                        let first_bias = node_name(&mut names, "first_bias");
                        matmul_plus_bias(
                            &mut nodes,
                            &mut names,
                            (first, first_bias),
                            operands(w1, x),
                            b1,
                            h.clone(),
                            &format!("{base}/h0"),
                        );
                        let second = node_name(&mut names, "second");
                        let second_bias = node_name(&mut names, "second_bias");
                        matmul_plus_bias(
                            &mut nodes,
                            &mut names,
                            (second, second_bias),
                            operands(w2, h),
                            b2,
                            y,
                            &format!("{base}/y0"),
                        );
                    }
                }
                replacement.insert(ix, nodes);
            }
            (SiteKind::Embedding { .. }, Factors::Embedding(f)) => {
                let base = &site.name;
                let table = add_init(
                    &mut names,
                    &format!("{base}/table"),
                    values(&f.table, false),
                );
                let projection = add_init(
                    &mut names,
                    &format!("{base}/projection"),
                    values(&f.projection, false),
                );
                let mean = f
                    .mean
                    .as_ref()
                    .map(|mu| add_init(&mut names, &format!("{base}/mean"), vector(mu)));
                for &ix in &site.nodes {
                    let orig = &graph.node[ix];
                    let prefix = if orig.name.is_empty() {
                        base.clone()
                    } else {
                        orig.name.clone()
                    };
                    let y = orig.output[0].clone();
                    let g = names.fresh(&format!("{base}/g"));
                    let mut inputs = orig.input.clone();
                    inputs[0] = table.clone();
                    let mut gather = orig.clone();
                    gather.name = names.fresh(&format!("{prefix}/gather"));
                    gather.input = inputs;
                    gather.output = vec![g.clone()];
                    let mut nodes = vec![gather];
                    let project = names.fresh(&format!("{prefix}/project"));
                    match &mean {
                        None => nodes.push(node(
                            "MatMul",
                            project,
                            vec![g, projection.clone()],
                            vec![y],
                            vec![],
                        )),
                        Some(mu) => {
                            let p = names.fresh(&format!("{base}/p"));
                            nodes.push(node(
                                "MatMul",
                                project,
                                vec![g, projection.clone()],
                                vec![p.clone()],
                                vec![],
                            ));
                            let add = names.fresh(&format!("{prefix}/add_mean"));
                            nodes.push(node("Add", add, vec![p, mu.clone()], vec![y], vec![]));
                        }
                    }
                    replacement.insert(ix, nodes);
                }
            }
            _ => return Err(internal(site, "factors of the other kind")),
        }
    }

    let old_nodes = std::mem::take(&mut graph.node);
    for (ix, n) in old_nodes.into_iter().enumerate() {
        match replacement.remove(&ix) {
            Some(nodes) => graph.node.extend(nodes),
            None => graph.node.push(n),
        }
    }
    // Drop the replaced weights (and biases) that nothing reads any more.
    let still_read: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .chain(graph.output.iter().map(|o| o.name.as_str()))
        .collect();
    let unused: HashSet<String> = dropped
        .into_iter()
        .filter(|d| !still_read.contains(d.as_str()))
        .collect();
    graph.initializer.retain(|t| !unused.contains(&t.name));
    graph.input.retain(|v| !unused.contains(&v.name));
    graph.value_info.retain(|v| !unused.contains(&v.name));
    graph.initializer.extend(new_inits);
    Ok(out)
}

/// `MatMul(operands) -> out`, or `MatMul(operands) -> tmp`, `Add(tmp, bias) -> out`.
fn matmul_plus_bias(
    nodes: &mut Vec<NodeProto>,
    names: &mut Names,
    (matmul_name, add_name): (String, String),
    operands: Vec<String>,
    bias: Option<String>,
    out: String,
    tmp_base: &str,
) {
    match bias {
        None => nodes.push(node("MatMul", matmul_name, operands, vec![out], vec![])),
        Some(b) => {
            let tmp = names.fresh(tmp_base);
            nodes.push(node(
                "MatMul",
                matmul_name,
                operands,
                vec![tmp.clone()],
                vec![],
            ));
            nodes.push(node("Add", add_name, vec![tmp, b], vec![out], vec![]));
        }
    }
}

fn internal(site: &Site, what: &str) -> Error {
    Error::Compression {
        site: Some(site.name.clone()),
        reason: format!("internal error: {what}"),
    }
}

/// Largest finite f16 value.
const F16_MAX: f32 = 65504.0;
/// Initializers of at most this many elements stay f32 (scalars, exponents, tiny biases).
const F16_MIN_ELEMENTS: usize = 16;

/// Stores every FLOAT initializer of more than [`F16_MIN_ELEMENTS`] values as FLOAT16 followed
/// by `Cast(to = FLOAT)`, the pattern the runtime computes on directly. Tensors with a value
/// beyond the f16 range stay f32; their names are returned.
pub fn to_f16_weights(model: &ModelProto) -> Result<(ModelProto, Vec<String>)> {
    let mut out = model.clone();
    let Some(graph) = out.graph.as_mut() else {
        return Err(Error::InvalidArgument {
            reason: "the model has no graph".into(),
        });
    };
    let mut names = Names::of(graph);
    let mut casts = Vec::new();
    let mut kept = Vec::new();
    let mut renamed = HashSet::new();
    for t in &mut graph.initializer {
        if t.data_type != DataType::Float as i32 {
            continue;
        }
        let values = f32_values(t)?;
        if values.len() <= F16_MIN_ELEMENTS {
            continue;
        }
        if values.iter().any(|v| !v.is_finite() || v.abs() > F16_MAX) {
            kept.push(t.name.clone());
            continue;
        }
        let original = t.name.clone();
        let half_name = names.fresh(&format!("{original}/f16"));
        *t = f16_tensor(&half_name, &t.dims, &values);
        let cast_name = names.fresh(&format!("{original}/cast"));
        casts.push(node(
            "Cast",
            cast_name,
            vec![half_name],
            vec![original.clone()],
            vec![int_attr("to", DataType::Float as i64)],
        ));
        renamed.insert(original);
    }
    // The original names are now produced by the Casts, so they cannot stay graph inputs.
    graph.input.retain(|v| !renamed.contains(&v.name));
    casts.append(&mut graph.node);
    graph.node = casts;
    Ok((out, kept))
}

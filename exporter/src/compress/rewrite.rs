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
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

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
    let mut b = Builder {
        names: Names::of(graph),
        inits: Vec::new(),
    };
    // Node index -> the nodes replacing it.
    let mut replacement: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut dropped: HashSet<String> = HashSet::new();

    for &(site, factors) in replaced {
        dropped.insert(site.name.clone());
        match (&site.kind, factors) {
            (SiteKind::Dense { op, bias, .. }, Factors::Dense(f)) => {
                if let Some(bias) = bias {
                    dropped.insert(bias.clone());
                }
                let [ix] = site.nodes[..] else {
                    return Err(internal(site, "a dense site has one node"));
                };
                let nodes = b.dense(site, *op, &graph.node[ix], f);
                replacement.insert(ix, nodes);
            }
            (SiteKind::Embedding { .. }, Factors::Embedding(f)) => {
                for (ix, nodes) in b.embedding(site, &graph.node, f) {
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
    remove_unread(graph, dropped, true);
    graph.initializer.extend(b.inits);
    Ok(out)
}

/// Removes the initializers named in `dropped` that no node reads (nor a graph output, with
/// `outputs_read`), with their graph inputs and value infos; returns the names removed.
pub(super) fn remove_unread(
    graph: &mut GraphProto,
    dropped: HashSet<String>,
    outputs_read: bool,
) -> HashSet<String> {
    let outputs = graph.output.iter().filter(|_| outputs_read);
    let still_read: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .chain(outputs.map(|o| o.name.as_str()))
        .collect();
    let unused: HashSet<String> = dropped
        .into_iter()
        .filter(|d| !still_read.contains(d.as_str()))
        .collect();
    graph.initializer.retain(|t| !unused.contains(&t.name));
    graph.input.retain(|v| !unused.contains(&v.name));
    graph.value_info.retain(|v| !unused.contains(&v.name));
    unused
}

/// Fresh names and the new initializers of a rewrite.
struct Builder {
    names: Names,
    inits: Vec<TensorProto>,
}

impl Builder {
    /// A new f32 initializer named after `base`; returns its name.
    fn init(&mut self, base: &str, (dims, data): (Vec<usize>, Vec<f32>)) -> String {
        let name = self.names.fresh(base);
        self.inits.push(f32_tensor(&name, &dims, &data));
        name
    }

    /// The nodes replacing the dense node `orig` of `site`: two layers through `h`.
    fn dense(
        &mut self,
        site: &Site,
        op: DenseOp,
        orig: &NodeProto,
        f: &DenseFactors,
    ) -> Vec<NodeProto> {
        // The data input: the one that is not the weight.
        let x = if op == DenseOp::MatMulLeft {
            orig.input[1].clone()
        } else {
            orig.input[0].clone()
        };
        let y = orig.output[0].clone();
        let base = site.name.as_str();
        let h = self.names.fresh(&format!("{base}/h"));
        let prefix = if orig.name.is_empty() {
            base
        } else {
            &orig.name
        };
        let io = Io {
            base,
            prefix,
            x,
            h,
            y,
        };
        match op {
            DenseOp::Gemm { .. } => self.stacked(
                "Gemm",
                io,
                f,
                |m| values(m, false),
                vec![int_attr("transB", 1)],
            ),
            // Two kernel-size-1 convolutions with the original's attributes.
            DenseOp::Conv1x1 => self.stacked(
                "Conv",
                io,
                f,
                |m| {
                    let (mut dims, data) = values(m, false);
                    dims.push(1);
                    (dims, data)
                },
                orig.attribute.clone(),
            ),
            DenseOp::MatMulLeft | DenseOp::MatMul => self.matmuls(op == DenseOp::MatMulLeft, io, f),
        }
    }

    /// `op(x, W1, b1) -> h`, `op(h, W2, b2) -> y`, the weights laid out by `weight`, each
    /// node with `attrs`.
    fn stacked(
        &mut self,
        op: &str,
        io: Io<'_>,
        f: &DenseFactors,
        weight: impl Fn(&Mat<f64>) -> (Vec<usize>, Vec<f32>),
        attrs: Vec<AttributeProto>,
    ) -> Vec<NodeProto> {
        let Io {
            base,
            prefix,
            x,
            h,
            y,
        } = io;
        let mut layer = |input: String, m: &Mat<f64>, bias: &Option<Vec<f64>>, which: &str| {
            let w = self.init(&format!("{base}/{which}"), weight(m));
            let mut inputs = vec![input, w];
            if let Some(b) = bias {
                inputs.push(self.init(&format!("{base}/{which}_bias"), vector(b)));
            }
            inputs
        };
        let in1 = layer(x, &f.first, &f.first_bias, "first");
        let in2 = layer(h.clone(), &f.second, &f.second_bias, "second");
        let first = self.names.fresh(&format!("{prefix}/first"));
        let second = self.names.fresh(&format!("{prefix}/second"));
        vec![
            node(op, first, in1, vec![h], attrs.clone()),
            node(op, second, in2, vec![y], attrs),
        ]
    }

    /// `W @ x` (features on the second-to-last axis, `left`): weights as stored (k x in,
    /// out x k), biases as columns. `x @ W^T`: transposed weights, biases as rows. Each layer
    /// a MatMul and, with a bias, an Add.
    fn matmuls(&mut self, left: bool, io: Io<'_>, f: &DenseFactors) -> Vec<NodeProto> {
        let Io {
            base,
            prefix,
            x,
            h,
            y,
        } = io;
        let bias = |v: &[f64]| {
            let (mut dims, data) = vector(v);
            if left {
                dims.push(1);
            }
            (dims, data)
        };
        let w1 = self.init(&format!("{base}/first"), values(&f.first, !left));
        let w2 = self.init(&format!("{base}/second"), values(&f.second, !left));
        let b1 = f
            .first_bias
            .as_ref()
            .map(|b| self.init(&format!("{base}/first_bias"), bias(b)));
        let b2 = f
            .second_bias
            .as_ref()
            .map(|b| self.init(&format!("{base}/second_bias"), bias(b)));
        let operands = |w: String, v: String| if left { vec![w, v] } else { vec![v, w] };
        let mut nodes = Vec::new();
        self.matmul_plus_bias(
            &mut nodes,
            &format!("{prefix}/first"),
            operands(w1, x),
            b1,
            h.clone(),
            &format!("{base}/h0"),
        );
        self.matmul_plus_bias(
            &mut nodes,
            &format!("{prefix}/second"),
            operands(w2, h),
            b2,
            y,
            &format!("{base}/y0"),
        );
        nodes
    }

    /// `MatMul(operands) -> out`, or `MatMul(operands) -> tmp`, `Add(tmp, bias) -> out`; the
    /// nodes named `name` and `{name}_bias`.
    fn matmul_plus_bias(
        &mut self,
        nodes: &mut Vec<NodeProto>,
        name: &str,
        operands: Vec<String>,
        bias: Option<String>,
        out: String,
        tmp_base: &str,
    ) {
        let matmul_name = self.names.fresh(name);
        let add_name = self.names.fresh(&format!("{name}_bias"));
        match bias {
            None => nodes.push(node("MatMul", matmul_name, operands, vec![out], vec![])),
            Some(b) => {
                let tmp = self.names.fresh(tmp_base);
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

    /// For every `Gather` of the table of `site`: `Gather(E', ids) -> g`,
    /// `MatMul(g, P) [+ mu] -> y` (the new table and projection shared), by node index.
    fn embedding(
        &mut self,
        site: &Site,
        nodes: &[NodeProto],
        f: &EmbeddingFactors,
    ) -> Vec<(usize, Vec<NodeProto>)> {
        let base = &site.name;
        let table = self.init(&format!("{base}/table"), values(&f.table, false));
        let projection = self.init(&format!("{base}/projection"), values(&f.projection, false));
        let mean = f
            .mean
            .as_ref()
            .map(|mu| self.init(&format!("{base}/mean"), vector(mu)));
        let mut out = Vec::new();
        for &ix in &site.nodes {
            let orig = &nodes[ix];
            let prefix = if orig.name.is_empty() {
                base.clone()
            } else {
                orig.name.clone()
            };
            let y = orig.output[0].clone();
            let g = self.names.fresh(&format!("{base}/g"));
            let mut gather = orig.clone();
            gather.name = self.names.fresh(&format!("{prefix}/gather"));
            gather.input[0] = table.clone();
            gather.output = vec![g.clone()];
            let mut replaced = vec![gather];
            let project = self.names.fresh(&format!("{prefix}/project"));
            match &mean {
                None => replaced.push(node(
                    "MatMul",
                    project,
                    vec![g, projection.clone()],
                    vec![y],
                    vec![],
                )),
                Some(mu) => {
                    let p = self.names.fresh(&format!("{base}/p"));
                    replaced.push(node(
                        "MatMul",
                        project,
                        vec![g, projection.clone()],
                        vec![p.clone()],
                        vec![],
                    ));
                    let add = self.names.fresh(&format!("{prefix}/add_mean"));
                    replaced.push(node("Add", add, vec![p, mu.clone()], vec![y], vec![]));
                }
            }
            out.push((ix, replaced));
        }
        out
    }
}

/// The names around a dense site being replaced: the site (base of new tensor names), the
/// original node's name (base of new node names), input, hidden tensor and output.
struct Io<'a> {
    base: &'a str,
    prefix: &'a str,
    x: String,
    h: String,
    y: String,
}

fn internal(site: &Site, what: &str) -> Error {
    Error::Compression {
        site: Some(site.name.clone()),
        reason: format!("internal error: {what}"),
    }
}

/// Sets every denormal value of the model's FLOAT initializers to zero of the same sign, and
/// returns how many there were. Weight decay pushes unused weights into f32's denormal range,
/// where x86 arithmetic takes a microcode assist per operand (a DeepFM with 14% of its weights
/// denormal ran 17x slower); the change to any product is below 1.2e-38.
pub fn flush_denormals(model: &mut ModelProto) -> Result<usize> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(0);
    };
    let mut flushed = 0;
    for t in &mut graph.initializer {
        if t.data_type != DataType::Float as i32 {
            continue;
        }
        let values = f32_values(t)?;
        let count = values.iter().filter(|v| v.is_subnormal()).count();
        if count == 0 {
            continue;
        }
        flushed += count;
        let zeroed = values.iter().map(|&v| {
            if v.is_subnormal() {
                0f32.copysign(v)
            } else {
                v
            }
        });
        if t.raw_data.is_empty() {
            t.float_data = zeroed.collect();
        } else {
            t.raw_data = zeroed.flat_map(f32::to_le_bytes).collect();
        }
    }
    Ok(flushed)
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

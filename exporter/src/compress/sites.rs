//! Site discovery: the places of an ONNX graph that low-rank compression can rewrite.
//!
//! - An **embedding table** is a FLOAT initializer `E` (n x d) read only by `Gather` nodes on
//!   axis 0; its output features are the looked-up rows. All the `Gather`s of one table form
//!   one site, so a table shared by several fields is calibrated on all of its lookups.
//! - A **dense layer** is a FLOAT initializer `W` read by exactly one `MatMul` (as its second
//!   input, `y = x W`, or as its first, `y = W x`) or `Gemm` (as `B`, with `transA = 0`;
//!   `transB`, `alpha`, `beta` and a bias `C` that is an initializer broadcast along rows are
//!   handled), or a 1-D `Conv` of kernel size 1 (weight `[out, in, 1]`).
//!
//! A site is named after its weight initializer (the name `--rank SITE=K` takes). Candidates
//! that look like sites but cannot be rewritten are kept with the reason, for `inspect`.

use std::collections::HashMap;

use serde::Serialize;
use tract_onnx::pb::{GraphProto, NodeProto};

use super::graph::{attr_float, attr_int, dims, is_f32};

/// How a dense layer computes `y` from its input and weight initializer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "op")]
pub enum DenseOp {
    /// `y = x W` with `W` stored `[in, out]`; `x` may have any leading dimensions.
    MatMul,
    /// `y = W x` with `W` stored `[out, in]` as `MatMul`'s first input: the features are on
    /// the second-to-last axis of `x` and `y` (DCN-V2's cross layers, `W @ x` in PyTorch).
    MatMulLeft,
    /// A 1-D convolution of kernel size 1 (`Conv`, weight `[out, in, 1]`, no groups, strides,
    /// dilations or padding): `W x` at every position, features on axis 1 of `[N, C, L]`
    /// (xDeepFM's CIN).
    Conv1x1,
    /// `y = alpha x op(B) + beta C` with `x` 2-D.
    Gemm {
        /// `B` is stored `[out, in]` (PyTorch `Linear` layout) when true, `[in, out]` otherwise.
        trans_b: bool,
        /// Scale of the product.
        alpha: f32,
        /// Scale of the bias.
        beta: f32,
    },
}

/// What kind of site, with its geometry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SiteKind {
    /// A table of `rows` embeddings of `dim` features, read by `Gather`.
    Embedding {
        /// Number of rows (ids), n.
        rows: usize,
        /// Embedding width, d.
        dim: usize,
    },
    /// A dense layer with `inputs` input and `outputs` output features.
    Dense {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
        /// The node computing it.
        op: DenseOp,
        /// The bias initializer (`Gemm`'s `C`), if any.
        bias: Option<String>,
    },
}

/// One compressible site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    /// The weight initializer's name; identifies the site.
    pub name: String,
    /// Kind and geometry.
    #[serde(flatten)]
    pub kind: SiteKind,
    /// Indices (in `graph.node`) of the nodes reading the weight: the `Gather`s of a table, the
    /// one `MatMul`/`Gemm` of a dense layer.
    #[serde(skip)]
    pub nodes: Vec<usize>,
    /// The tensors whose features the site produces (one per node): the statistics of AFM are
    /// taken over their rows. (`output_tensors` in JSON, beside a dense layer's `outputs`.)
    #[serde(rename = "output_tensors")]
    pub outputs: Vec<String>,
    /// Op types of the nodes reading those outputs.
    pub consumers: Vec<String>,
    /// Number of sites on the longest path from the model inputs to this site (0 for a site
    /// no other site feeds): the order of sequential calibration.
    pub level: usize,
}

impl Site {
    /// `(m, n)`: the weight seen as an m x n matrix factorized as (m x k)(k x n): rows x dim for
    /// a table, outputs x inputs for a dense layer.
    pub fn matrix_shape(&self) -> (usize, usize) {
        match self.kind {
            SiteKind::Embedding { rows, dim } => (rows, dim),
            SiteKind::Dense {
                inputs, outputs, ..
            } => (outputs, inputs),
        }
    }

    /// Whether the output features lie on the second-to-last axis instead of the last.
    pub fn features_on_second_last_axis(&self) -> bool {
        matches!(
            self.kind,
            SiteKind::Dense {
                op: DenseOp::MatMulLeft | DenseOp::Conv1x1,
                ..
            }
        )
    }

    /// Width of the site's output features (the size of the AFM covariance).
    pub fn feature_dim(&self) -> usize {
        match self.kind {
            SiteKind::Embedding { dim, .. } => dim,
            SiteKind::Dense { outputs, .. } => outputs,
        }
    }

    /// Parameters of the weight alone (m x n).
    pub fn weight_params(&self) -> usize {
        let (m, n) = self.matrix_shape();
        m * n
    }

    /// The smallest rank at which factorizing stops paying: `k (m + n) >= m n`. Ranks
    /// `1..break_even_rank()` are worth factorizing; none is when this is 1.
    pub fn break_even_rank(&self) -> usize {
        let (m, n) = self.matrix_shape();
        (m * n).div_ceil(m + n).max(1)
    }

    /// Whether some rank makes this site smaller.
    pub fn is_factorizable(&self) -> bool {
        self.break_even_rank() > 1
    }

    /// `"embedding"` or `"dense"`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SiteKind::Embedding { .. } => "embedding",
            SiteKind::Dense { .. } => "dense",
        }
    }
}

/// A 2-D float initializer read by `Gather`/`MatMul`/`Gemm` that is not a site, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// Initializer name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Why it cannot be rewritten.
    pub reason: String,
}

/// Result of site discovery.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sites {
    /// Compressible sites in topological order of their first node.
    pub sites: Vec<Site>,
    /// Candidates that are not sites.
    pub rejected: Vec<Rejected>,
}

/// Who reads each tensor of `graph`: (node index, input slot).
pub(super) fn readers(graph: &GraphProto) -> HashMap<&str, Vec<(usize, usize)>> {
    let mut readers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (ix, n) in graph.node.iter().enumerate() {
        for (slot, input) in n.input.iter().enumerate() {
            readers.entry(input.as_str()).or_default().push((ix, slot));
        }
    }
    readers
}

/// Finds the sites of `graph`. The nodes must be in topological order (as ONNX requires).
pub fn find_sites(graph: &GraphProto) -> Sites {
    let initializers: HashMap<&str, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let readers = readers(graph);
    let graph_outputs: Vec<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();

    let mut result = Sites::default();
    for t in &graph.initializer {
        let Some(shape) = dims(t) else { continue };
        let uses = readers.get(t.name.as_str()).map_or(&[][..], Vec::as_slice);
        let candidate = uses.iter().any(|&(ix, _)| {
            matches!(
                graph.node[ix].op_type.as_str(),
                "Gather" | "MatMul" | "Gemm" | "Conv"
            )
        });
        // 2-D weights, and [out, in, 1] for 1-D convolutions of kernel size 1.
        let conv_1x1 = matches!(shape.as_slice(), [_, _, 1])
            && uses.iter().all(|&(ix, _)| graph.node[ix].op_type == "Conv");
        if !candidate || !is_f32(t) || !(shape.len() == 2 || conv_1x1) {
            continue;
        }
        let reject = |reason: String| Rejected {
            name: t.name.clone(),
            shape: shape.clone(),
            reason,
        };
        if graph_outputs.contains(&t.name.as_str()) {
            result.rejected.push(reject("also a graph output".into()));
            continue;
        }
        match classify(graph, &initializers, &shape, uses) {
            Ok((kind, nodes)) => {
                let outputs: Vec<String> = nodes
                    .iter()
                    .map(|&ix| graph.node[ix].output[0].clone())
                    .collect();
                let mut consumers: Vec<String> = outputs
                    .iter()
                    .flat_map(|o| readers.get(o.as_str()).into_iter().flatten())
                    .map(|&(ix, _)| graph.node[ix].op_type.clone())
                    .collect();
                consumers.sort();
                consumers.dedup();
                if outputs.iter().any(|o| graph_outputs.contains(&o.as_str())) {
                    consumers.push("(graph output)".into());
                }
                result.sites.push(Site {
                    name: t.name.clone(),
                    kind,
                    nodes,
                    outputs,
                    consumers,
                    level: 0,
                });
            }
            Err(reason) => result.rejected.push(reject(reason)),
        }
    }
    result.sites.sort_by_key(|s| s.nodes.first().copied());
    assign_levels(graph, &mut result.sites);
    result
}

/// Sorts out one candidate: a site kind and its nodes, or why not.
fn classify(
    graph: &GraphProto,
    initializers: &HashMap<&str, usize>,
    shape: &[usize],
    uses: &[(usize, usize)],
) -> std::result::Result<(SiteKind, Vec<usize>), String> {
    let op = |ix: usize| graph.node[ix].op_type.as_str();
    if shape.len() == 2 && uses.iter().all(|&(ix, _)| op(ix) == "Gather") {
        for &(ix, slot) in uses {
            let axis = attr_int(&graph.node[ix], "axis").unwrap_or(0);
            if slot != 0 {
                return Err("used as Gather indices".into());
            }
            if axis != 0 && axis != -2 {
                return Err(format!("Gather on axis {axis}, not the rows"));
            }
        }
        let kind = SiteKind::Embedding {
            rows: shape[0],
            dim: shape[1],
        };
        return Ok((kind, uses.iter().map(|&(ix, _)| ix).collect()));
    }
    let [(ix, slot)] = uses else {
        let ops: Vec<&str> = uses.iter().map(|&(ix, _)| op(ix)).collect();
        return Err(format!("read by several nodes ({})", ops.join(", ")));
    };
    let (ix, slot) = (*ix, *slot);
    let node = &graph.node[ix];
    match (op(ix), slot) {
        ("MatMul", 1) => Ok((
            SiteKind::Dense {
                inputs: shape[0],
                outputs: shape[1],
                op: DenseOp::MatMul,
                bias: None,
            },
            vec![ix],
        )),
        ("MatMul", 0) => Ok((
            SiteKind::Dense {
                inputs: shape[1],
                outputs: shape[0],
                op: DenseOp::MatMulLeft,
                bias: None,
            },
            vec![ix],
        )),
        ("Gemm", 1) => {
            if attr_int(node, "transA").unwrap_or(0) != 0 {
                return Err("Gemm with transA = 1".into());
            }
            let trans_b = attr_int(node, "transB").unwrap_or(0) != 0;
            let (inputs, outputs) = if trans_b {
                (shape[1], shape[0])
            } else {
                (shape[0], shape[1])
            };
            let bias = row_bias(graph, initializers, node, outputs)?;
            Ok((
                SiteKind::Dense {
                    inputs,
                    outputs,
                    op: DenseOp::Gemm {
                        trans_b,
                        alpha: attr_float(node, "alpha").unwrap_or(1.0),
                        beta: attr_float(node, "beta").unwrap_or(1.0),
                    },
                    bias,
                },
                vec![ix],
            ))
        }
        ("Conv", 1) => {
            let ints = |name: &str| {
                node.attribute
                    .iter()
                    .find(|a| a.name == name)
                    .map(|a| a.ints.clone())
            };
            let all = |name: &str, v: i64| ints(name).is_none_or(|x| x.iter().all(|&i| i == v));
            let plain = attr_int(node, "group").unwrap_or(1) == 1
                && all("strides", 1)
                && all("dilations", 1)
                && all("pads", 0)
                && all("kernel_shape", 1)
                && node
                    .attribute
                    .iter()
                    .find(|a| a.name == "auto_pad")
                    .is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET");
            if !plain {
                return Err("Conv with groups, strides, dilations or padding".into());
            }
            let bias = row_bias(graph, initializers, node, shape[0])?;
            Ok((
                SiteKind::Dense {
                    inputs: shape[1],
                    outputs: shape[0],
                    op: DenseOp::Conv1x1,
                    bias,
                },
                vec![ix],
            ))
        }
        (other, slot) => Err(format!("input {slot} of {other} '{}'", node.name)),
    }
}

/// `Gemm`'s `C` or `Conv`'s `B`, when it is an initializer with one value per output
/// feature (or one for all: shape `[]`, `[1]`, `[out]` or `[1, out]`).
fn row_bias(
    graph: &GraphProto,
    initializers: &HashMap<&str, usize>,
    node: &NodeProto,
    outputs: usize,
) -> std::result::Result<Option<String>, String> {
    let Some(c) = node.input.get(2).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let Some(&t) = initializers.get(c.as_str()) else {
        return Err(format!(
            "{} bias '{c}' is computed, not an initializer",
            node.op_type
        ));
    };
    let t = &graph.initializer[t];
    let shape = dims(t).unwrap_or_default();
    let ok = is_f32(t)
        && (matches!(shape.as_slice(), [] | [1] | [1, 1])
            || matches!(shape.as_slice(), [n] | [1, n] if *n == outputs));
    if ok {
        Ok(Some(c.clone()))
    } else {
        Err(format!(
            "{} bias '{c}' of shape {shape:?} is not one value per output",
            node.op_type
        ))
    }
}

/// Sets each site's level: 1 + the highest level of the sites that feed it, 0 for sites fed by
/// no other site.
fn assign_levels(graph: &GraphProto, sites: &mut [Site]) {
    let site_of_node: HashMap<usize, usize> = sites
        .iter()
        .enumerate()
        .flat_map(|(s, site)| site.nodes.iter().map(move |&ix| (ix, s)))
        .collect();
    // For each tensor: the number of sites on the longest path producing it.
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let mut level = vec![0usize; sites.len()];
    for (ix, n) in graph.node.iter().enumerate() {
        let input_depth = n
            .input
            .iter()
            .filter_map(|i| depth.get(i.as_str()))
            .copied()
            .max()
            .unwrap_or(0);
        let out_depth = match site_of_node.get(&ix) {
            Some(&s) => {
                level[s] = level[s].max(input_depth);
                input_depth + 1
            }
            None => input_depth,
        };
        // Subgraphs (If/Loop bodies) are not looked into: their outputs inherit the inputs'
        // depth, which is all calibration ordering needs.
        for o in &n.output {
            depth.insert(o.as_str(), out_depth);
        }
    }
    for (site, l) in sites.iter_mut().zip(level) {
        site.level = l;
    }
}

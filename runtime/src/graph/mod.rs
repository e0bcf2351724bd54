//! The graph engine.
//!
//! - [`load_graph`] turns a decoded ONNX graph into an immutable [`LoadedGraph`]: value ids,
//!   constants (initializers and `Constant` nodes, resolved against the weights buffer without
//!   copying), parsed ops in topological order. Unsupported ops, bad attributes, cycles and
//!   dangling values fail here, at load time.
//! - [`plan`] resolves every shape for one set of input shapes (one batch size), folds the
//!   shape subgraphs PyTorch emits (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`) and every
//!   other node whose inputs are constant, and preallocates one buffer per remaining value.
//! - [`ops`] holds the op semantics, [`strided`] the allocation-free index iteration.

pub(crate) mod op;
pub(crate) mod ops;
pub(crate) mod plan;
pub(crate) mod strided;
pub(crate) mod value;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::model::IoInfo;
use crate::onnx::{Dim, OnnxModel};
use crate::tensor::{ConstTensor, DType};
use op::Op;

/// Index of a value (tensor name) in the graph.
pub(crate) type ValueId = usize;

/// Most inputs one node may have (the run loop keeps their views on the stack).
pub(crate) const MAX_NODE_INPUTS: usize = 128;

/// Opset range accepted for the default domain.
pub const OPSET_RANGE: core::ops::RangeInclusive<i64> = 7..=21;

/// A parsed node.
#[derive(Debug, Clone)]
pub(crate) struct NodeDef {
    /// Node name, or `#index` when the file gives none.
    pub label: String,
    pub op_type: String,
    pub op: Op,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
    /// The model input this node's data derives from (for id errors), or the node's label.
    pub source: String,
}

/// The immutable, validated graph of a model.
#[derive(Debug, Clone)]
pub(crate) struct LoadedGraph {
    pub names: Vec<String>,
    pub consts: Vec<Option<ConstTensor>>,
    pub nodes: Vec<NodeDef>,
    pub inputs: Vec<(ValueId, IoInfo)>,
    pub outputs: Vec<(ValueId, IoInfo)>,
}

struct Ids<'a> {
    map: BTreeMap<&'a str, ValueId>,
    names: Vec<String>,
}

impl<'a> Ids<'a> {
    fn id(&mut self, name: &'a str) -> ValueId {
        if let Some(&i) = self.map.get(name) {
            return i;
        }
        let i = self.names.len();
        self.map.insert(name, i);
        self.names.push(name.to_string());
        i
    }
}

fn io_info(name: &str, elem_type: i32, shape: Option<&Vec<Dim<'_>>>, what: &str) -> Result<IoInfo> {
    let dtype = DType::from_onnx(elem_type).ok_or(Error::UnsupportedDType {
        tensor: format!("{what} '{name}'"),
        dtype: elem_type,
    })?;
    let shape = shape.ok_or_else(|| Error::InvalidGraph {
        reason: format!("{what} '{name}' has no shape in the model file"),
    })?;
    let mut dims = Vec::with_capacity(shape.len());
    for d in shape {
        dims.push(match *d {
            Dim::Known(v) if v >= 0 => {
                Some(usize::try_from(v).map_err(|_| Error::InvalidGraph {
                    reason: format!("{what} '{name}': dimension {v} too large"),
                })?)
            }
            Dim::Known(v) => {
                return Err(Error::InvalidGraph {
                    reason: format!("{what} '{name}': negative dimension {v}"),
                })
            }
            Dim::Symbolic(_) | Dim::Unknown => None,
        });
    }
    Ok(IoInfo {
        name: name.to_string(),
        dtype,
        shape: dims,
    })
}

/// Builds the validated graph of `m`, resolving constants against `weights`.
pub(crate) fn load_graph(m: &OnnxModel<'_>, weights: &[u8]) -> Result<LoadedGraph> {
    if !OPSET_RANGE.contains(&m.opset) {
        return Err(Error::InvalidGraph {
            reason: format!(
                "default-domain opset {} outside the supported range {}..={}",
                m.opset,
                OPSET_RANGE.start(),
                OPSET_RANGE.end()
            ),
        });
    }
    let g = &m.graph;
    let mut ids = Ids {
        map: BTreeMap::new(),
        names: Vec::new(),
    };
    // Who defines each value: initializer/constant, graph input, or node output.
    let mut defined: Vec<bool> = Vec::new();
    let mut consts: Vec<Option<ConstTensor>> = Vec::new();
    let grow = |v: &mut Vec<bool>, c: &mut Vec<Option<ConstTensor>>, n: usize| {
        if v.len() < n {
            v.resize(n, false);
            c.resize(n, None);
        }
    };
    for t in &g.initializers {
        let id = ids.id(t.name);
        grow(&mut defined, &mut consts, id + 1);
        if defined[id] {
            return Err(Error::InvalidGraph {
                reason: format!("initializer '{}' defined twice", t.name),
            });
        }
        consts[id] = Some(owned_bools(
            crate::onnx::resolve_tensor(t, weights)?,
            weights,
        )?);
        defined[id] = true;
    }
    let mut inputs = Vec::new();
    for vi in &g.inputs {
        let id = ids.id(vi.name);
        grow(&mut defined, &mut consts, id + 1);
        if consts[id].is_some() {
            continue; // old IR versions list initializers among inputs
        }
        if defined[id] {
            return Err(Error::InvalidGraph {
                reason: format!("graph input '{}' listed twice", vi.name),
            });
        }
        defined[id] = true;
        inputs.push((
            id,
            io_info(vi.name, vi.elem_type, vi.shape.as_ref(), "input")?,
        ));
    }
    // Nodes: parse, record producers.
    let mut raw: Vec<NodeDef> = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let label = if n.name.is_empty() {
            format!("#{i}")
        } else {
            n.name.to_string()
        };
        if n.inputs.len() > MAX_NODE_INPUTS {
            return Err(Error::InvalidNode {
                node: label,
                op: n.op_type.to_string(),
                reason: format!(
                    "{} inputs, more than the {MAX_NODE_INPUTS} supported",
                    n.inputs.len()
                ),
            });
        }
        let op = op::parse_op(n, &label, weights)?;
        let node_inputs: Vec<Option<ValueId>> = n
            .inputs
            .iter()
            .map(|&s| if s.is_empty() { None } else { Some(ids.id(s)) })
            .collect();
        let mut outs = Vec::with_capacity(n.outputs.len());
        for &o in &n.outputs {
            if o.is_empty() {
                continue;
            }
            let id = ids.id(o);
            grow(&mut defined, &mut consts, id + 1);
            if defined[id] {
                return Err(Error::InvalidGraph {
                    reason: format!("value '{o}' is produced twice (node '{label}')"),
                });
            }
            defined[id] = true;
            outs.push(id);
        }
        if outs.is_empty() {
            return Err(Error::InvalidNode {
                node: label,
                op: n.op_type.to_string(),
                reason: "no outputs".to_string(),
            });
        }
        if let Op::Constant { value } = op {
            consts[outs[0]] = Some(value);
            continue;
        }
        raw.push(NodeDef {
            label,
            op_type: n.op_type.to_string(),
            op,
            inputs: node_inputs,
            outputs: outs,
            source: String::new(),
        });
    }
    let nvalues = ids.names.len();
    grow(&mut defined, &mut consts, nvalues);
    // Every value read must be defined somewhere.
    for n in &raw {
        for v in n.inputs.iter().flatten() {
            if !defined[*v] {
                return Err(Error::InvalidGraph {
                    reason: format!(
                        "node '{}' reads '{}', which nothing produces",
                        n.label, ids.names[*v]
                    ),
                });
            }
        }
    }
    let nodes = topo_sort(raw, &consts, &inputs, &ids.names)?;
    let mut outputs = Vec::new();
    for vi in &g.outputs {
        let Some(&id) = ids.map.get(vi.name) else {
            return Err(Error::InvalidGraph {
                reason: format!("graph output '{}' is never produced", vi.name),
            });
        };
        let info =
            io_info(vi.name, vi.elem_type, vi.shape.as_ref(), "output").or_else(|e| match e {
                // Output shapes are informative only: the plan computes them.
                Error::InvalidGraph { .. } => Ok(IoInfo {
                    name: vi.name.to_string(),
                    dtype: DType::from_onnx(vi.elem_type).unwrap_or(DType::F32),
                    shape: Vec::new(),
                }),
                e => Err(e),
            })?;
        if info.dtype != DType::F32 {
            return Err(Error::UnsupportedDType {
                tensor: format!("output '{}' (the runtime returns f32 outputs)", vi.name),
                dtype: vi.elem_type,
            });
        }
        outputs.push((id, info));
    }
    if outputs.is_empty() {
        return Err(Error::InvalidGraph {
            reason: "the graph has no outputs".to_string(),
        });
    }
    let mut graph = LoadedGraph {
        names: ids.names,
        consts,
        nodes,
        inputs,
        outputs,
    };
    assign_sources(&mut graph);
    Ok(graph)
}

/// Bool tensors are kept as owned `bool`s (their file bytes were checked to be 0 or 1).
fn owned_bools(c: ConstTensor, weights: &[u8]) -> Result<ConstTensor> {
    match (&c.data, c.dtype) {
        (crate::tensor::ConstData::Weights { offset, byte_len }, DType::Bool) => {
            let bytes = crate::onnx::view_bool_bytes(weights, *offset, *byte_len)?;
            let v = bytes.iter().map(|&b| b != 0).collect();
            Ok(ConstTensor::owned(
                c.shape,
                crate::tensor::OwnedData::Bool(v),
            ))
        }
        _ => Ok(c),
    }
}

/// Kahn's algorithm; a node waiting forever means a cycle.
fn topo_sort(
    raw: Vec<NodeDef>,
    consts: &[Option<ConstTensor>],
    inputs: &[(ValueId, IoInfo)],
    names: &[String],
) -> Result<Vec<NodeDef>> {
    let n = names.len();
    let mut ready = vec![false; n];
    for (i, c) in consts.iter().enumerate() {
        ready[i] = c.is_some();
    }
    for (id, _) in inputs {
        ready[*id] = true;
    }
    let mut pending: Vec<Option<NodeDef>> = raw.into_iter().map(Some).collect();
    let mut order = Vec::with_capacity(pending.len());
    let mut progress = true;
    while progress {
        progress = false;
        for slot in pending.iter_mut() {
            let is_ready = match slot {
                Some(node) => node.inputs.iter().flatten().all(|&v| ready[v]),
                None => false,
            };
            if is_ready {
                if let Some(node) = slot.take() {
                    for &o in &node.outputs {
                        ready[o] = true;
                    }
                    order.push(node);
                    progress = true;
                }
            }
        }
    }
    if let Some(stuck) = pending.into_iter().flatten().next() {
        let waiting = stuck
            .inputs
            .iter()
            .flatten()
            .find(|&&v| !ready[v])
            .map(|&v| names[v].clone())
            .unwrap_or_default();
        return Err(Error::InvalidGraph {
            reason: format!(
                "cycle: node '{}' waits on '{}', which depends on it",
                stuck.label, waiting
            ),
        });
    }
    Ok(order)
}

/// For messages: which model input each node's data comes from.
fn assign_sources(g: &mut LoadedGraph) {
    let mut source: Vec<Option<String>> = vec![None; g.names.len()];
    for (id, info) in &g.inputs {
        source[*id] = Some(info.name.clone());
    }
    for node in &mut g.nodes {
        // A Gather's interesting operand is its indices.
        let order: Vec<Option<ValueId>> = if matches!(node.op, Op::Gather { .. }) {
            node.inputs.iter().rev().copied().collect()
        } else {
            node.inputs.clone()
        };
        let s = order.iter().flatten().find_map(|&v| source[v].clone());
        node.source = s.clone().unwrap_or_else(|| node.label.clone());
        for &o in &node.outputs {
            source[o] = s.clone();
        }
    }
}

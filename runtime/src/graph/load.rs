//! Loading: a decoded ONNX graph becomes a validated [`LoadedGraph`]. Value names get ids,
//! initializers and `Constant` nodes become constants (resolved against the weights buffer
//! without copying), nodes are parsed ([`ops::parse_op`]; `Split` and `If` expanded here) and
//! sorted topologically. Unsupported ops, bad attributes, cycles and dangling values fail here.
//!
//! Two [`Limits`] hold here: `max_nodes`, counted on the decoded graph (subgraphs included)
//! before any per-node table grows, and again as `Split` expands into one node per output;
//! `max_depth`, the longest chain of nodes, computed over the sorted nodes without recursion
//! (only `If` nesting recurses, and the loader caps it at 8 levels).

use crate::options::Limits;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::ops::{self, Op, Parsed, SplitPart};
use super::{
    resource_limit, value, IfBranches, LoadedGraph, NodeDef, NodeKind, ValueId, MAX_NODE_INPUTS,
    OPSET_RANGE,
};
use crate::error::{Error, Result};
use crate::model::IoInfo;
use crate::onnx::{AttrValue, Dim, OnnxModel};
use crate::tensor::{ConstTensor, DType};

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
pub(crate) fn load_graph(
    m: &OnnxModel<'_>,
    weights: &[u8],
    limits: &Limits,
) -> Result<LoadedGraph> {
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
    let count = count_nodes(g);
    if count > limits.max_nodes {
        return Err(resource_limit(
            "graph",
            "max_nodes",
            Some(count),
            limits.max_nodes,
        ));
    }
    let mut l = Loader {
        ids: Ids {
            map: BTreeMap::new(),
            names: Vec::new(),
        },
        defined: Vec::new(),
        consts: Vec::new(),
        nodes: Vec::new(),
        weights,
        max_nodes: limits.max_nodes,
    };
    let mut inputs = Vec::new();
    l.load_initializers(g)?;
    for vi in &g.inputs {
        let id = l.ids.id(vi.name);
        l.grow();
        if l.consts[id].is_some() {
            continue; // old IR versions list initializers among inputs
        }
        if l.defined[id] {
            return Err(Error::InvalidGraph {
                reason: format!("graph input '{}' listed twice", vi.name),
            });
        }
        l.defined[id] = true;
        inputs.push((
            id,
            io_info(vi.name, vi.elem_type, vi.shape.as_ref(), "input")?,
        ));
    }
    let order = l.load_nodes(g, 0)?;
    let mut outputs = Vec::new();
    for vi in &g.outputs {
        let Some(&id) = l.ids.map.get(vi.name) else {
            return Err(Error::InvalidGraph {
                reason: format!("graph output '{}' is never produced", vi.name),
            });
        };
        if !l.defined.get(id).copied().unwrap_or(false) {
            return Err(Error::InvalidGraph {
                reason: format!("graph output '{}' is never produced", vi.name),
            });
        }
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
        outputs.push((id, info));
    }
    if outputs.is_empty() {
        return Err(Error::InvalidGraph {
            reason: "the graph has no outputs".to_string(),
        });
    }
    let mut graph = LoadedGraph {
        names: l.ids.names,
        consts: l.consts,
        nodes: l.nodes,
        order,
        inputs,
        outputs,
    };
    check_depth(&graph, limits.max_depth)?;
    assign_sources(&mut graph);
    Ok(graph)
}

/// Nodes of `g` and of every subgraph it holds (`If` branches), counted with an explicit stack.
fn count_nodes(g: &crate::onnx::Graph<'_>) -> usize {
    let mut count = 0usize;
    let mut stack = alloc::vec![g];
    while let Some(g) = stack.pop() {
        count = count.saturating_add(g.nodes.len());
        for n in &g.nodes {
            for a in &n.attributes {
                if let AttrValue::Graph(sub) = &a.value {
                    stack.push(sub);
                }
            }
        }
    }
    count
}

/// The longest chain of nodes must not exceed `max_depth`: each node is one deeper than its
/// deepest input (constants and graph inputs are at depth 0).
fn check_depth(g: &LoadedGraph, max_depth: usize) -> Result<()> {
    let mut depth = vec![0usize; g.names.len()];
    level_depths(g, &g.order, &mut depth, max_depth)
}

/// [`check_depth`] over the nodes `order` of one graph level, in topological order; an `If`'s
/// branches first (their nesting is at most 8 levels deep), its output as deep as the deeper
/// branch output plus one.
fn level_depths(
    g: &LoadedGraph,
    order: &[usize],
    depth: &mut [usize],
    max_depth: usize,
) -> Result<()> {
    for &ni in order {
        let node = &g.nodes[ni];
        let mut d = node
            .inputs
            .iter()
            .flatten()
            .map(|&v| depth[v])
            .max()
            .unwrap_or(0);
        if let NodeKind::If(b) = &node.kind {
            level_depths(g, &b.then_nodes, depth, max_depth)?;
            level_depths(g, &b.else_nodes, depth, max_depth)?;
            d = d.max(depth[b.then_out]).max(depth[b.else_out]);
        }
        let d = d.saturating_add(1);
        if d > max_depth {
            return Err(resource_limit(&node.label, "max_depth", Some(d), max_depth));
        }
        for &o in &node.outputs {
            depth[o] = d;
        }
    }
    Ok(())
}

/// Load-time state: value ids, which values are defined, constants, all nodes (subgraph
/// nodes included) in one flat table.
struct Loader<'a, 'w> {
    ids: Ids<'a>,
    defined: Vec<bool>,
    consts: Vec<Option<ConstTensor>>,
    nodes: Vec<NodeDef>,
    weights: &'w [u8],
    /// [`Limits::max_nodes`], checked as `Split` expands (the decoded count was checked first).
    max_nodes: usize,
}

impl<'a> Loader<'a, '_> {
    fn grow(&mut self) {
        let n = self.ids.names.len();
        if self.defined.len() < n {
            self.defined.resize(n, false);
            self.consts.resize(n, None);
        }
    }

    /// One more node must stay within `max_nodes`.
    fn check_node_count(&self, label: &str) -> Result<()> {
        let count = self.nodes.len().saturating_add(1);
        if count > self.max_nodes {
            return Err(resource_limit(
                label,
                "max_nodes",
                Some(count),
                self.max_nodes,
            ));
        }
        Ok(())
    }

    fn load_initializers(&mut self, g: &crate::onnx::Graph<'a>) -> Result<()> {
        for t in &g.initializers {
            let id = self.ids.id(t.name);
            self.grow();
            if self.defined[id] {
                return Err(Error::InvalidGraph {
                    reason: format!("initializer '{}' defined twice", t.name),
                });
            }
            self.consts[id] = Some(owned_bools(
                crate::onnx::resolve_tensor(t, self.weights)?,
                self.weights,
            )?);
            self.defined[id] = true;
        }
        Ok(())
    }

    fn define(&mut self, name: &'a str, label: &str) -> Result<ValueId> {
        let id = self.ids.id(name);
        self.grow();
        if self.defined[id] {
            return Err(Error::InvalidGraph {
                reason: format!("value '{name}' is produced twice (node '{label}')"),
            });
        }
        self.defined[id] = true;
        Ok(id)
    }

    /// Dropout's optional 'training_mode' input: only a constant (initializer or earlier
    /// Constant node) holding false is inference, anything else is refused.
    fn check_training_mode(
        &self,
        input: Option<ValueId>,
        bad: &dyn Fn(String) -> Error,
    ) -> Result<()> {
        let Some(id) = input else {
            return Ok(());
        };
        let Some(c) = self.consts.get(id).and_then(|c| c.as_ref()) else {
            return Err(bad(format!(
                "the 'training_mode' input '{}' must be constant at plan time (a constant \
                 false; training mode is not supported)",
                self.ids.names[id]
            )));
        };
        match value::const_data(c, self.weights, &self.ids.names[id])? {
            value::Data::Bool(v) if v.len() == 1 => {
                if v[0] {
                    Err(bad(
                        "the 'training_mode' input is true: training mode is not supported \
                         (inference only)"
                            .to_string(),
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Err(bad("the 'training_mode' input must be one bool".to_string())),
        }
    }

    /// Parses the nodes of `g` (recursing into `If` branches) and returns their indices in
    /// topological order.
    fn load_nodes(&mut self, g: &crate::onnx::Graph<'a>, depth: usize) -> Result<Vec<usize>> {
        let mut mine = Vec::new();
        for (i, n) in g.nodes.iter().enumerate() {
            let label = if n.name.is_empty() {
                format!("#{i}")
            } else {
                n.name.to_string()
            };
            let bad = |reason: String| Error::InvalidNode {
                node: label.clone(),
                op: n.op_type.to_string(),
                reason,
            };
            if n.inputs.len() > MAX_NODE_INPUTS {
                return Err(bad(format!(
                    "{} inputs, more than the {MAX_NODE_INPUTS} supported",
                    n.inputs.len()
                )));
            }
            let mut inputs: Vec<Option<ValueId>> = n
                .inputs
                .iter()
                .map(|&s| (!s.is_empty()).then(|| self.ids.id(s)))
                .collect();
            self.grow();
            let outputs: Vec<&'a str> = n
                .outputs
                .iter()
                .copied()
                .filter(|o| !o.is_empty())
                .collect();
            if outputs.is_empty() {
                return Err(bad("no outputs".to_string()));
            }
            if n.op_type == "Split" && n.domain.is_empty() {
                self.load_split(n, &label, inputs, &outputs, &bad, &mut mine)?;
                continue;
            }
            let kind = if n.op_type == "If" && n.domain.is_empty() {
                NodeKind::If(self.load_if(n, &label, &mut inputs, outputs.len(), depth, &bad)?)
            } else {
                if n.op_type == "Dropout" && n.domain.is_empty() {
                    self.check_training_mode(inputs.get(2).copied().flatten(), &bad)?;
                }
                match ops::parse_op(n, &label, self.weights)? {
                    Parsed::Op(op) => NodeKind::Op(op),
                    Parsed::ConstantOfShape(value) => NodeKind::ConstantOfShape { value },
                    Parsed::Constant(value) => {
                        let out = self.define_all(&outputs, &label)?[0];
                        self.consts[out] = Some(value);
                        continue;
                    }
                }
            };
            let outputs = self.define_all(&outputs, &label)?;
            self.check_node_count(&label)?;
            mine.push(self.nodes.len());
            self.nodes.push(NodeDef {
                label,
                op_type: n.op_type.to_string(),
                kind,
                inputs,
                outputs,
                source: String::new(),
            });
        }
        self.grow();
        topo_sort(
            &self.nodes,
            &mine,
            &self.consts,
            &self.defined,
            &self.ids.names,
        )
    }

    fn define_all(&mut self, names: &[&'a str], label: &str) -> Result<Vec<ValueId>> {
        let mut ids = Vec::with_capacity(names.len());
        for &o in names {
            ids.push(self.define(o, label)?);
        }
        Ok(ids)
    }

    /// A Split becomes one single-output node per part: the planner computes each part's range.
    fn load_split(
        &mut self,
        n: &crate::onnx::Node<'a>,
        label: &str,
        inputs: Vec<Option<ValueId>>,
        outputs: &[&'a str],
        bad: &dyn Fn(String) -> Error,
        mine: &mut Vec<usize>,
    ) -> Result<()> {
        let axis = match n.attr("axis") {
            None => 0,
            Some(AttrValue::Int(v)) => *v,
            Some(_) => return Err(bad("attribute 'axis' must be an int".to_string())),
        };
        let sizes = match n.attr("split") {
            Some(AttrValue::Ints(v)) => Some(v.clone()),
            None => None,
            Some(_) => return Err(bad("attribute 'split' must be ints".to_string())),
        };
        let count = outputs.len();
        for (part, &o) in outputs.iter().enumerate() {
            let id = self.define(o, label)?;
            self.check_node_count(label)?;
            mine.push(self.nodes.len());
            self.nodes.push(NodeDef {
                label: format!("{label}[{part}]"),
                op_type: "Split".to_string(),
                kind: NodeKind::Op(Op::SplitPart(SplitPart {
                    axis,
                    part,
                    count,
                    sizes: sizes.clone(),
                })),
                inputs: inputs.clone(),
                outputs: alloc::vec![id],
                source: String::new(),
            });
        }
        Ok(())
    }

    /// Loads both branches of an `If`. Values the branches read from outside become inputs of
    /// the If node (appended to `inputs`), so the topological order places it after them.
    fn load_if(
        &mut self,
        n: &crate::onnx::Node<'a>,
        label: &str,
        inputs: &mut Vec<Option<ValueId>>,
        outputs: usize,
        depth: usize,
        bad: &dyn Fn(String) -> Error,
    ) -> Result<IfBranches> {
        if depth >= 8 {
            return Err(bad("If nested too deeply".to_string()));
        }
        if outputs != 1 {
            return Err(bad("only single-output If is supported".to_string()));
        }
        let branch = |name: &str| -> Result<&crate::onnx::Graph<'a>> {
            match n.attr(name) {
                Some(AttrValue::Graph(g)) => Ok(g),
                _ => Err(bad(format!("missing graph attribute '{name}'"))),
            }
        };
        let (tg, eg) = (branch("then_branch")?, branch("else_branch")?);
        let (then_nodes, then_out) = self.load_branch(tg, label, depth)?;
        let (else_nodes, else_out) = self.load_branch(eg, label, depth)?;
        let mut inner = alloc::collections::BTreeSet::new();
        for &ni in then_nodes.iter().chain(&else_nodes) {
            inner.extend(self.nodes[ni].outputs.iter().copied());
        }
        let read = then_nodes
            .iter()
            .chain(&else_nodes)
            .flat_map(|&ni| self.nodes[ni].inputs.iter().copied().flatten())
            .chain([then_out, else_out]);
        for v in read {
            if !inner.contains(&v) && self.consts[v].is_none() && !inputs.contains(&Some(v)) {
                inputs.push(Some(v));
            }
        }
        Ok(IfBranches {
            then_nodes,
            then_out,
            else_nodes,
            else_out,
        })
    }

    /// One `If` branch: its nodes in order and its single output.
    fn load_branch(
        &mut self,
        bg: &crate::onnx::Graph<'a>,
        label: &str,
        depth: usize,
    ) -> Result<(Vec<usize>, ValueId)> {
        self.load_initializers(bg)?;
        let order = self.load_nodes(bg, depth + 1)?;
        let out = bg.outputs.first().map(|o| o.name).unwrap_or("");
        match self.ids.map.get(out) {
            Some(&id) if bg.outputs.len() == 1 => Ok((order, id)),
            _ => Err(Error::InvalidNode {
                node: label.to_string(),
                op: "If".to_string(),
                reason: "a branch must have exactly one output".to_string(),
            }),
        }
    }
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

/// Kahn's algorithm over the nodes `mine` of one graph level. Values not produced by these
/// nodes (constants, graph inputs, outer-scope values) are ready from the start; a value read
/// but defined nowhere, or a node waiting forever (a cycle), is an error.
fn topo_sort(
    nodes: &[NodeDef],
    mine: &[usize],
    consts: &[Option<ConstTensor>],
    defined: &[bool],
    names: &[String],
) -> Result<Vec<usize>> {
    let mut ready: Vec<bool> = defined.to_vec();
    for &ni in mine {
        for v in nodes[ni].inputs.iter().flatten() {
            if !defined[*v] {
                return Err(Error::InvalidGraph {
                    reason: format!(
                        "node '{}' reads '{}', which nothing produces",
                        nodes[ni].label, names[*v]
                    ),
                });
            }
        }
        for &o in &nodes[ni].outputs {
            ready[o] = false;
        }
    }
    for (i, c) in consts.iter().enumerate() {
        if c.is_some() {
            ready[i] = true;
        }
    }
    let mut pending: Vec<Option<usize>> = mine.iter().copied().map(Some).collect();
    let mut order = Vec::with_capacity(pending.len());
    let mut progress = true;
    while progress {
        progress = false;
        for slot in pending.iter_mut() {
            if let Some(ni) = *slot {
                if nodes[ni].inputs.iter().flatten().all(|&v| ready[v]) {
                    for &o in &nodes[ni].outputs {
                        ready[o] = true;
                    }
                    order.push(ni);
                    *slot = None;
                    progress = true;
                }
            }
        }
    }
    if let Some(ni) = pending.into_iter().flatten().next() {
        let stuck = &nodes[ni];
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
    let order = g.order.clone();
    visit_sources(g, &order, &mut source);
}

fn visit_sources(g: &mut LoadedGraph, order: &[usize], source: &mut [Option<String>]) {
    for &ni in order {
        if let NodeKind::If(b) = &g.nodes[ni].kind {
            let (t, e) = (b.then_nodes.clone(), b.else_nodes.clone());
            visit_sources(g, &t, source);
            visit_sources(g, &e, source);
        }
        let node = &mut g.nodes[ni];
        // A Gather's interesting operand is its indices.
        let s = if matches!(node.op(), Some(Op::Gather { .. })) {
            node.inputs
                .iter()
                .rev()
                .flatten()
                .find_map(|&v| source[v].clone())
        } else {
            node.inputs
                .iter()
                .flatten()
                .find_map(|&v| source[v].clone())
        };
        node.source = s.clone().unwrap_or_else(|| node.label.clone());
        for &o in &node.outputs {
            source[o] = s.clone();
        }
    }
}

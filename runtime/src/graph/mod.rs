//! The graph engine.
//!
//! - [`load_graph`] turns a decoded ONNX graph into an immutable [`LoadedGraph`]: value ids,
//!   constants (initializers and `Constant` nodes, resolved against the weights buffer without
//!   copying), parsed ops in topological order. Unsupported ops, bad attributes, cycles and
//!   dangling values fail here, at load time.
//! - [`plan`] resolves every shape for one set of input shapes (one batch size), folds the
//!   shape subgraphs PyTorch emits (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`) and every
//!   other node whose inputs are constant, and preallocates one buffer per remaining value.
//! - [`fuse`] rewrites the plan's steps into fused ones (bias + activation into the matrix
//!   product, factorized pairs and gather + projection computed in row tiles).
//! - [`ops`] holds the op semantics, one file per op family (parse, shape rule and evaluation
//!   side by side); [`value`] the typed views and buffers they read and write, [`strided`] the
//!   allocation-free index iteration.

pub(crate) mod fuse;
pub use fuse::{FusedStepInfo, FusionKind, PlanStats};
mod load;
pub(crate) use load::load_graph;
pub(crate) mod ops;
pub use ops::SUPPORTED_OPS;
pub(crate) mod plan;
pub(crate) mod strided;
pub(crate) mod value;

use alloc::string::String;
use alloc::vec::Vec;

use crate::model::IoInfo;
use crate::tensor::ConstTensor;
use ops::Op;

/// Index of a value (tensor name) in the graph.
pub(crate) type ValueId = usize;

/// Most inputs one node may have (the run loop keeps their views on the stack).
pub(crate) const MAX_NODE_INPUTS: usize = 128;

/// Opset range accepted for the default domain.
pub const OPSET_RANGE: core::ops::RangeInclusive<i64> = 7..=21;

/// What a node does.
#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    /// An op the planner shapes and folds or the session runs.
    Op(Op),
    /// ConstantOfShape: always folded by the planner, which fills it with `value`.
    ConstantOfShape { value: ConstTensor },
    /// If whose condition is constant at plan time; the chosen branch's nodes are planned in
    /// place of the node.
    If(IfBranches),
}

/// The two branches of an `If`: their nodes (indices into [`LoadedGraph::nodes`], in
/// topological order) and the value each branch outputs.
#[derive(Debug, Clone)]
pub(crate) struct IfBranches {
    pub then_nodes: Vec<usize>,
    pub then_out: ValueId,
    pub else_nodes: Vec<usize>,
    pub else_out: ValueId,
}

/// A parsed node.
#[derive(Debug, Clone)]
pub(crate) struct NodeDef {
    /// Node name, or `#index` when the file gives none.
    pub label: String,
    pub op_type: String,
    pub kind: NodeKind,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
    /// The model input this node's data derives from (for id errors), or the node's label.
    pub source: String,
}

/// The immutable, validated graph of a model.
#[derive(Debug, Clone)]
pub(crate) struct LoadedGraph {
    /// Value names, by [`ValueId`].
    pub names: Vec<String>,
    pub consts: Vec<Option<ConstTensor>>,
    /// All nodes, `If` branch nodes included.
    pub nodes: Vec<NodeDef>,
    /// Top-level nodes in topological order (indices into `nodes`).
    pub order: Vec<usize>,
    pub inputs: Vec<(ValueId, IoInfo)>,
    pub outputs: Vec<(ValueId, IoInfo)>,
}

/// [`Error::ResourceLimit`]: `node` asks for `requested` (`None`: a size that overflows) of
/// `limit`, which allows `allowed`.
pub(crate) fn resource_limit(
    node: &str,
    limit: &'static str,
    requested: Option<usize>,
    allowed: usize,
) -> crate::error::Error {
    let to_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    crate::error::Error::ResourceLimit {
        node: node.into(),
        limit,
        requested: requested.map_or(u64::MAX, to_u64),
        allowed: to_u64(allowed),
    }
}

impl NodeDef {
    /// The op of a node the planner runs (`None` for ConstantOfShape and If).
    pub(crate) fn op(&self) -> Option<&Op> {
        match &self.kind {
            NodeKind::Op(op) => Some(op),
            _ => None,
        }
    }
}

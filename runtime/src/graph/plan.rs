//! Planning for one set of input shapes: resolve shapes, fold constants, alias pure
//! re-shapings, materialize f16 weights only where an op cannot read them directly, and
//! preallocate one buffer per computed value.
//!
//! Every shape the planner resolves is checked ([`checked_bytes`]) before anything of that
//! size exists, and two [`Limits`] hold: `max_folded_bytes` on the running total of the
//! constants it computes (checked before each one is allocated) and `max_scratch_bytes` on the
//! session buffers of the finished plan (checked before [`alloc_bufs`] runs). Both are
//! [`Error::ResourceLimit`] naming the node.

use crate::options::Limits;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use super::fuse::Fused;
use super::ops::constant::{fill_constant, infer_constant_of_shape};
use super::ops::{self, is_alias, logical, reads_f16, Inferred, Meta, NodeCtx, Op};
use super::strided::MAX_RANK;
use super::value::{checked_bytes, numel, Buf, Data, View};
use super::{resource_limit, IfBranches, LoadedGraph, NodeDef, NodeKind, ValueId};
use crate::error::{Error, Result};
use crate::kernels::Kernels;
use crate::tensor::DType;

/// The values of a model constant (kept here for the model's own use).
pub(crate) use super::value::const_data;

/// Where a value's data lives during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A model constant (initializer), by value id.
    Model(ValueId),
    /// A constant computed by the planner.
    Folded(usize),
    /// A session buffer.
    Buf(usize),
}

/// A slot with the shape it is read with (aliased re-shapings share a slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operand {
    pub slot: Slot,
    pub shape: Vec<usize>,
}

/// One node to run, or a fused run of nodes.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The node (of a fused step: its first node, which names it in errors).
    pub node: usize,
    pub inputs: Vec<Option<Operand>>,
    pub output: usize,
    pub out_shape: Vec<usize>,
    pub run: Run,
}

/// What a step runs.
#[derive(Debug, Clone)]
pub(crate) enum Run {
    /// The node's op.
    Op(Op),
    /// A fused run of nodes, in place of the node's op.
    Fused(Box<Fused>),
}

impl Step {
    /// The fused run of a fused step.
    pub(crate) fn fused(&self) -> Option<&Fused> {
        match &self.run {
            Run::Fused(f) => Some(f),
            Run::Op(_) => None,
        }
    }

    /// The op of a step that is not fused.
    pub(crate) fn op(&self) -> Option<&Op> {
        match &self.run {
            Run::Op(op) => Some(op),
            Run::Fused(_) => None,
        }
    }
}

/// The plan for one set of input shapes.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub input_shapes: Vec<Vec<usize>>,
    pub folded: Vec<Buf>,
    pub steps: Vec<Step>,
    /// dtype and element count of every session buffer.
    pub bufs: Vec<(DType, usize)>,
    /// Buffer of each model input.
    pub inputs: Vec<usize>,
    pub outputs: Vec<Operand>,
}

/// Resolves a slot to a view during planning or running.
pub(crate) fn view_of<'a>(
    g: &'a LoadedGraph,
    weights: &'a [u8],
    folded: &'a [Buf],
    bufs: &'a [Buf],
    op: &'a Operand,
) -> Result<View<'a>> {
    let data = match op.slot {
        Slot::Model(id) => match g.consts.get(id).and_then(|c| c.as_ref()) {
            Some(c) => const_data(c, weights, &g.names[id])?,
            None => return Err(internal("model constant")),
        },
        Slot::Folded(i) => folded
            .get(i)
            .ok_or_else(|| internal("folded constant"))?
            .data(),
        Slot::Buf(i) => bufs.get(i).ok_or_else(|| internal("buffer"))?.data(),
    };
    Ok(View {
        shape: &op.shape,
        data,
    })
}

fn internal(what: &str) -> Error {
    Error::InvalidGraph {
        reason: format!("internal planner error: {what}"),
    }
}

/// Plans `g` for the given input shapes (one per model input, in order), fusions on.
pub(crate) fn plan(
    g: &LoadedGraph,
    weights: &[u8],
    k: &Kernels,
    input_shapes: &[Vec<usize>],
    limits: &Limits,
) -> Result<Plan> {
    plan_with(g, weights, k, input_shapes, true, limits)
}

/// Plans `g` for the given input shapes, then applies the plan-time fusions of
/// [`super::fuse`] when `fusion` is on.
pub(crate) fn plan_with(
    g: &LoadedGraph,
    weights: &[u8],
    k: &Kernels,
    input_shapes: &[Vec<usize>],
    fusion: bool,
    limits: &Limits,
) -> Result<Plan> {
    let mut p = plan_unfused(g, weights, k, input_shapes, limits)?;
    if fusion {
        super::fuse::fuse(g, weights, &mut p, limits)?;
    }
    check_scratch(g, &p, limits.max_scratch_bytes)?;
    Ok(p)
}

/// Bytes of the folded constants of `plan`.
pub(crate) fn folded_bytes(plan: &Plan) -> usize {
    // Each was checked against max_folded_bytes (at most isize::MAX) as it was added.
    plan.folded
        .iter()
        .map(|b| b.len().saturating_mul(b.dtype().size()))
        .fold(0, usize::saturating_add)
}

/// Bytes of the session buffers of `plan` ([`alloc_bufs`]); `None` when the sum overflows.
pub(crate) fn scratch_bytes(plan: &Plan) -> Option<usize> {
    plan.bufs.iter().try_fold(0usize, |acc, &(d, n)| {
        acc.checked_add(n.checked_mul(d.size())?)
    })
}

/// The session buffers of `plan` must fit in `allowed` bytes; the error names the node whose
/// buffer crosses the limit (a model input's name for an input buffer).
fn check_scratch(g: &LoadedGraph, plan: &Plan, allowed: usize) -> Result<()> {
    let total = scratch_bytes(plan);
    if total.is_some_and(|t| t <= allowed) {
        return Ok(());
    }
    let mut sum = 0usize;
    let crossing = plan
        .bufs
        .iter()
        .position(|&(d, n)| {
            sum = sum.saturating_add(n.saturating_mul(d.size()));
            sum > allowed
        })
        .unwrap_or(0);
    let owner = plan
        .steps
        .iter()
        .find(|s| s.output == crossing || s.fused().is_some_and(|f| f.scratch.contains(&crossing)))
        .and_then(|s| g.nodes.get(s.node))
        .map(|n| n.label.as_str())
        .or_else(|| {
            let i = plan.inputs.iter().position(|&b| b == crossing)?;
            g.inputs.get(i).map(|(_, info)| info.name.as_str())
        })
        .unwrap_or("graph");
    Err(resource_limit(owner, "max_scratch_bytes", total, allowed))
}

/// What the planner knows of a value: where it lives, its dtype and shape.
#[derive(Clone)]
struct Val {
    slot: Slot,
    dtype: DType,
    shape: Vec<usize>,
}

/// Work for the planner. A work stack instead of a loop over `g.order`: an `If` whose
/// condition is folded pushes its chosen branch's nodes, then an alias of the If's output to
/// the branch's output.
enum Work {
    Node(usize),
    Alias { out: ValueId, from: ValueId },
}

/// Planning state: the values known so far and the plan being built.
struct Planner<'g> {
    g: &'g LoadedGraph,
    weights: &'g [u8],
    k: &'g Kernels,
    vals: Vec<Option<Val>>,
    plan: Plan,
    /// Bytes of the folded constants so far (capped by `max_folded_bytes`).
    folded_bytes: usize,
    max_folded_bytes: usize,
    /// For messages only: the plan's buffers are checked once it is finished.
    max_scratch_bytes: usize,
}

/// Plans `g` node by node: one step per node that is not folded or aliased.
fn plan_unfused(
    g: &LoadedGraph,
    weights: &[u8],
    k: &Kernels,
    input_shapes: &[Vec<usize>],
    limits: &Limits,
) -> Result<Plan> {
    let mut p = Planner::new(g, weights, k, input_shapes, limits)?;
    let mut work: Vec<Work> = g.order.iter().rev().map(|&i| Work::Node(i)).collect();
    while let Some(item) = work.pop() {
        match item {
            Work::Node(ni) => p.node(ni, &mut work)?,
            Work::Alias { out, from } => {
                p.vals[out] = Some(
                    p.vals[from]
                        .clone()
                        .ok_or_else(|| internal("If branch output"))?,
                );
            }
        }
    }
    p.outputs()?;
    Ok(p.plan)
}

impl<'g> Planner<'g> {
    /// Known values: the model constants and the inputs (one buffer each).
    fn new(
        g: &'g LoadedGraph,
        weights: &'g [u8],
        k: &'g Kernels,
        input_shapes: &[Vec<usize>],
        limits: &Limits,
    ) -> Result<Self> {
        let mut vals: Vec<Option<Val>> = (0..g.names.len()).map(|_| None).collect();
        for (id, c) in g.consts.iter().enumerate() {
            if let Some(c) = c {
                vals[id] = Some(Val {
                    slot: Slot::Model(id),
                    dtype: logical(c.dtype),
                    shape: c.shape.clone(),
                });
            }
        }
        let mut p = Planner {
            g,
            weights,
            k,
            vals,
            plan: Plan {
                input_shapes: input_shapes.to_vec(),
                folded: Vec::new(),
                steps: Vec::new(),
                bufs: Vec::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
            },
            folded_bytes: 0,
            max_folded_bytes: limits.max_folded_bytes,
            max_scratch_bytes: limits.max_scratch_bytes,
        };
        if input_shapes.len() != g.inputs.len() {
            return Err(internal("input count"));
        }
        for ((id, info), shape) in g.inputs.iter().zip(input_shapes) {
            if shape.len() > MAX_RANK {
                return Err(Error::InputMismatch {
                    input: info.name.clone(),
                    expected: format!("rank <= {MAX_RANK}"),
                    got: format!("{shape:?}"),
                });
            }
            let b = p.add_buf(logical(info.dtype), shape, &info.name)?;
            p.plan.inputs.push(b);
            p.vals[*id] = Some(Val {
                slot: Slot::Buf(b),
                dtype: logical(info.dtype),
                shape: shape.clone(),
            });
        }
        Ok(p)
    }

    /// A new session buffer of `shape` for node (or model input) `owner`. Only its size is
    /// recorded: [`check_scratch`] holds the finished plan to `max_scratch_bytes`.
    fn add_buf(&mut self, dtype: DType, shape: &[usize], owner: &str) -> Result<usize> {
        if checked_bytes(shape, dtype.size()).is_none() {
            return Err(resource_limit(
                owner,
                "max_scratch_bytes",
                None,
                self.max_scratch_bytes,
            ));
        }
        self.plan.bufs.push((dtype, numel(shape)));
        Ok(self.plan.bufs.len() - 1)
    }

    /// Room for one more folded constant of `shape` for node `owner`: checked against
    /// `max_folded_bytes` (with the constants folded so far) before it is allocated.
    fn reserve_folded(&mut self, dtype: DType, shape: &[usize], owner: &str) -> Result<()> {
        let allowed = self.max_folded_bytes;
        let total = checked_bytes(shape, dtype.size())
            .and_then(|b| b.checked_add(self.folded_bytes))
            .filter(|&t| t <= isize::MAX as usize);
        match total {
            Some(t) if t <= allowed => {
                self.folded_bytes = t;
                Ok(())
            }
            t => Err(resource_limit(owner, "max_folded_bytes", t, allowed)),
        }
    }

    /// A zeroed folded constant of `shape` for node `owner`, within `max_folded_bytes`.
    fn new_folded(&mut self, dtype: DType, shape: &[usize], owner: &str) -> Result<Buf> {
        self.reserve_folded(dtype, shape, owner)?;
        Ok(Buf::zeros(dtype, numel(shape)))
    }

    /// The values of a constant operand (during planning no session buffer exists).
    fn const_view<'s>(&'s self, o: &'s Operand) -> Result<View<'s>> {
        view_of(self.g, self.weights, &self.plan.folded, &[], o)
    }

    /// Adds `buf` to the folded constants; its slot.
    fn fold(&mut self, buf: Buf) -> Slot {
        self.plan.folded.push(buf);
        Slot::Folded(self.plan.folded.len() - 1)
    }

    /// Plans node `ni`: an If pushes its chosen branch onto `work`; any other node is shaped,
    /// then aliased, folded or given a step.
    fn node(&mut self, ni: usize, work: &mut Vec<Work>) -> Result<()> {
        let g = self.g;
        let node = g.nodes.get(ni).ok_or_else(|| internal("node index"))?;
        let cx = NodeCtx {
            node: &node.label,
            op_type: &node.op_type,
            source: &node.source,
        };
        let op = match &node.kind {
            NodeKind::If(b) => return self.expand_if(node, b, &cx, work),
            NodeKind::Op(op) => Some(op),
            NodeKind::ConstantOfShape { .. } => None,
        };
        let (operands, dtypes) = self.operands(node, op, &cx)?;
        let (dtype, out_shape) = self.infer(node, op, &operands, &dtypes, &cx)?;
        let out_id = node.outputs[0];
        let all_const = operands
            .iter()
            .flatten()
            .all(|o| !matches!(o.slot, Slot::Buf(_)));
        // Every resolved shape must have a size (aliases too: later ops index by it).
        if checked_bytes(&out_shape, dtype.size()).is_none() {
            let folded = all_const || matches!(op, None | Some(Op::Shape { .. }));
            let (limit, allowed) = if folded {
                ("max_folded_bytes", self.max_folded_bytes)
            } else {
                ("max_scratch_bytes", self.max_scratch_bytes)
            };
            return Err(resource_limit(cx.node, limit, None, allowed));
        }
        let Some(op) = op else {
            let NodeKind::ConstantOfShape { value } = &node.kind else {
                return Err(internal("node kind"));
            };
            // Its shape input is constant (inference checked it); another input may not be.
            if !all_const {
                return Err(
                    cx.err("internal: ConstantOfShape is evaluated by the planner".to_string())
                );
            }
            let mut out = self.new_folded(dtype, &out_shape, cx.node)?;
            fill_constant(&mut out, value, self.weights, &cx)?;
            let slot = self.fold(out);
            self.vals[out_id] = Some(Val {
                slot,
                dtype,
                shape: out_shape,
            });
            return Ok(());
        };
        // Aliases and same-dtype casts reuse their input's slot.
        let same_cast = matches!(op, Op::Cast { to } if *to == dtypes[0] || (*to == DType::F32 && dtypes[0] == DType::F32));
        if is_alias(op) || same_cast {
            let src = operands[0]
                .as_ref()
                .ok_or_else(|| internal("alias source"))?;
            self.vals[out_id] = Some(Val {
                slot: src.slot,
                dtype,
                shape: out_shape,
            });
            return Ok(());
        }
        let slot = if all_const || matches!(op, Op::Shape { .. }) {
            let mut out = self.new_folded(dtype, &out_shape, cx.node)?;
            self.eval_const(op, &operands, &mut out, &out_shape, &cx)?;
            self.fold(out)
        } else {
            let b = self.add_buf(dtype, &out_shape, cx.node)?;
            self.plan.steps.push(Step {
                node: ni,
                inputs: operands,
                output: b,
                out_shape: out_shape.clone(),
                run: Run::Op(op.clone()),
            });
            Slot::Buf(b)
        };
        self.vals[out_id] = Some(Val {
            slot,
            dtype,
            shape: out_shape,
        });
        Ok(())
    }

    /// An If: its condition must be a constant bool; the chosen branch is planned in its place.
    fn expand_if(
        &self,
        node: &NodeDef,
        b: &IfBranches,
        cx: &NodeCtx<'_>,
        work: &mut Vec<Work>,
    ) -> Result<()> {
        let cond = node
            .inputs
            .first()
            .copied()
            .flatten()
            .and_then(|id| self.vals[id].as_ref());
        let value = match cond {
            Some(v) if !matches!(v.slot, Slot::Buf(_)) => {
                let o = Operand {
                    slot: v.slot,
                    shape: v.shape.clone(),
                };
                match self.const_view(&o)?.data {
                    Data::Bool(b) if b.len() == 1 => b[0],
                    _ => return Err(cx.err("condition must be a single bool".to_string())),
                }
            }
            _ => {
                return Err(cx.err(
                    "condition must be constant at plan time (it depends on run-time values)"
                        .to_string(),
                ))
            }
        };
        let (nodes, out) = if value {
            (&b.then_nodes, b.then_out)
        } else {
            (&b.else_nodes, b.else_out)
        };
        work.push(Work::Alias {
            out: node.outputs[0],
            from: out,
        });
        work.extend(nodes.iter().rev().map(|&n| Work::Node(n)));
        Ok(())
    }

    /// The node's operands, materializing f16 constants the op cannot read, and their dtypes.
    fn operands(
        &mut self,
        node: &NodeDef,
        op: Option<&Op>,
        cx: &NodeCtx<'_>,
    ) -> Result<(Vec<Option<Operand>>, Vec<DType>)> {
        let mut operands: Vec<Option<Operand>> = Vec::with_capacity(node.inputs.len());
        for (i, inp) in node.inputs.iter().enumerate() {
            let Some(id) = inp else {
                operands.push(None);
                continue;
            };
            let v = self.vals[*id]
                .as_ref()
                .ok_or_else(|| internal("value order"))?;
            let mut operand = Operand {
                slot: v.slot,
                shape: v.shape.clone(),
            };
            if !op.is_some_and(|op| reads_f16(op, i)) && !matches!(v.slot, Slot::Buf(_)) {
                if let Data::F16(_) = self.const_view(&operand)?.data {
                    self.reserve_folded(DType::F32, &operand.shape, cx.node)?;
                    let Data::F16(h) = self.const_view(&operand)?.data else {
                        return Err(internal("f16 constant"));
                    };
                    let f: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
                    operand.slot = self.fold(Buf::F32(f));
                }
            }
            if operand.shape.len() > MAX_RANK {
                return Err(cx.err(format!(
                    "input rank {} above {MAX_RANK}",
                    operand.shape.len()
                )));
            }
            operands.push(Some(operand));
        }
        let dtypes = node
            .inputs
            .iter()
            .map(|i| {
                i.and_then(|id| self.vals[id].as_ref())
                    .map(|v| v.dtype)
                    .unwrap_or(DType::F32)
            })
            .collect();
        Ok((operands, dtypes))
    }

    /// The node's output dtype and shape (constant operands give their values).
    fn infer(
        &self,
        node: &NodeDef,
        op: Option<&Op>,
        operands: &[Option<Operand>],
        dtypes: &[DType],
        cx: &NodeCtx<'_>,
    ) -> Result<Inferred> {
        let mut metas: Vec<Option<Meta<'_>>> = Vec::with_capacity(operands.len());
        for (o, &dt) in operands.iter().zip(dtypes) {
            metas.push(match o {
                None => None,
                Some(o) => Some(Meta {
                    dtype: dt,
                    shape: &o.shape,
                    value: match o.slot {
                        Slot::Buf(_) => None,
                        _ => Some(self.const_view(o)?),
                    },
                }),
            });
        }
        let (dtype, shape) = match (op, &node.kind) {
            (Some(op), _) => ops::infer(op, &metas, cx)?,
            (None, NodeKind::ConstantOfShape { value }) => {
                infer_constant_of_shape(value, &metas, cx)?
            }
            (None, _) => return Err(internal("node kind")),
        };
        if node.outputs.len() > 1 {
            return Err(cx.err(format!(
                "produces 1 outputs, the graph uses {}",
                node.outputs.len()
            )));
        }
        if shape.len() > MAX_RANK {
            return Err(cx.err(format!("output rank {} above {MAX_RANK}", shape.len())));
        }
        Ok((dtype, shape))
    }

    /// Evaluates `op` on constant operands into `out` (a folded value). The operands of Shape
    /// may be buffers: Shape reads only their shapes.
    fn eval_const(
        &self,
        op: &Op,
        operands: &[Option<Operand>],
        out: &mut Buf,
        out_shape: &[usize],
        cx: &NodeCtx<'_>,
    ) -> Result<()> {
        let mut views: Vec<Option<View<'_>>> = Vec::with_capacity(operands.len());
        for o in operands {
            views.push(match o {
                None => None,
                Some(o) if matches!(o.slot, Slot::Buf(_)) => Some(View {
                    shape: &o.shape,
                    data: Data::F32(&[]),
                }),
                Some(o) => Some(self.const_view(o)?),
            });
        }
        ops::eval(op, self.k, &views, out, out_shape, cx)
    }

    /// The graph outputs' operands, checked against their declared dtypes.
    fn outputs(&mut self) -> Result<()> {
        for (id, info) in &self.g.outputs {
            let v = self.vals[*id].as_ref().ok_or_else(|| internal("output"))?;
            // f16 is a storage format: a FLOAT16 output holds f16-rounded values as f32.
            let declared = if info.dtype == DType::F16 {
                DType::F32
            } else {
                info.dtype
            };
            if v.dtype != declared {
                return Err(Error::InvalidGraph {
                    reason: format!(
                        "output '{}' is declared {} but computes {}",
                        info.name,
                        info.dtype.name(),
                        v.dtype.name()
                    ),
                });
            }
            let mut operand = Operand {
                slot: v.slot,
                shape: v.shape.clone(),
            };
            // f32 outputs are read as f32: a constant one stored as f16 is converted once here.
            if let (Slot::Model(_), DType::F32) = (v.slot, v.dtype) {
                if let Data::F16(_) = self.const_view(&operand)?.data {
                    self.reserve_folded(DType::F32, &operand.shape, &info.name)?;
                    let Data::F16(h) = self.const_view(&operand)?.data else {
                        return Err(internal("f16 output"));
                    };
                    operand.slot = self.fold(Buf::F32(h.iter().map(|x| x.to_f32()).collect()));
                }
            }
            self.plan.outputs.push(operand);
        }
        Ok(())
    }
}

/// Initial contents of the session buffers of `plan`.
pub(crate) fn alloc_bufs(plan: &Plan) -> Vec<Buf> {
    plan.bufs.iter().map(|&(d, n)| Buf::zeros(d, n)).collect()
}

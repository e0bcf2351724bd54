//! Planning for one set of input shapes: resolve shapes, fold constants, alias pure
//! re-shapings, materialize f16 weights only where an op cannot read them directly, and
//! preallocate one buffer per computed value.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use super::fuse::Fused;
use super::op::Op;
use super::ops::{self, logical, Meta, NodeCtx};
use super::strided::MAX_RANK;
use super::value::{numel, Buf, Data, View};
use super::{LoadedGraph, ValueId};
use crate::error::{Error, Result};
use crate::kernels::Kernels;
use crate::tensor::{ConstData, ConstTensor, DType, OwnedData};

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
    /// What a fused step runs in place of the node's op.
    pub fused: Option<Box<Fused>>,
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

/// Most scratch memory one plan may ask for (hostile shapes must not exhaust memory).
pub(crate) const MAX_SCRATCH_BYTES: usize = 1 << 30;

/// The values of a model constant, viewed in place in the weights buffer when stored there.
pub(crate) fn const_data<'a>(
    c: &'a ConstTensor,
    weights: &'a [u8],
    name: &str,
) -> Result<Data<'a>> {
    let bad = |reason: &str| Error::InvalidTensor {
        tensor: name.to_string(),
        reason: reason.to_string(),
    };
    Ok(match &c.data {
        ConstData::Owned(OwnedData::F32(v)) => Data::F32(v),
        ConstData::Owned(OwnedData::F16(v)) => Data::F16(v),
        ConstData::Owned(OwnedData::I64(v)) => Data::I64(v),
        ConstData::Owned(OwnedData::I32(v)) => Data::I32(v),
        ConstData::Owned(OwnedData::Bool(v)) => Data::Bool(v),
        ConstData::Weights { offset, byte_len } => {
            let (o, n) = (*offset, *byte_len);
            match c.dtype {
                DType::F32 => Data::F32(crate::onnx::view_f32(weights, o, n)?),
                DType::F16 => Data::F16(crate::onnx::view_f16(weights, o, n)?),
                DType::I64 => Data::I64(crate::onnx::view_i64(weights, o, n)?),
                DType::I32 => Data::I32(crate::onnx::view_i32(weights, o, n)?),
                // The loader turns bool tensors into owned values (bytes are not `bool`s).
                DType::Bool => return Err(bad("bool tensor left in the weights file")),
            }
        }
    })
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

/// Which inputs of `op` may stay f16 storage (read directly by the op).
fn reads_f16(op: &Op, input: usize) -> bool {
    match op {
        Op::MatMul => input == 1,
        Op::Gemm { .. } => input >= 1,
        Op::Gather { .. } => input == 0,
        Op::Concat { .. }
        | Op::Cast { .. }
        | Op::Identity
        | Op::Reshape { .. }
        | Op::Flatten { .. } => true,
        Op::Unsqueeze { .. } | Op::Squeeze { .. } => input == 0,
        _ => false,
    }
}

/// True for ops whose output is their first input with another shape (no data change).
fn is_alias(op: &Op) -> bool {
    matches!(
        op,
        Op::Identity
            | Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Unsqueeze { .. }
            | Op::Squeeze { .. }
    )
}

/// Plans `g` for the given input shapes (one per model input, in order), fusions on.
pub(crate) fn plan(
    g: &LoadedGraph,
    weights: &[u8],
    k: &Kernels,
    input_shapes: &[Vec<usize>],
) -> Result<Plan> {
    plan_with(g, weights, k, input_shapes, true)
}

/// Plans `g` for the given input shapes, then applies the plan-time fusions of
/// [`super::fuse`] when `fusion` is on.
pub(crate) fn plan_with(
    g: &LoadedGraph,
    weights: &[u8],
    k: &Kernels,
    input_shapes: &[Vec<usize>],
    fusion: bool,
) -> Result<Plan> {
    let mut p = plan_unfused(g, weights, k, input_shapes)?;
    if fusion {
        super::fuse::fuse(g, weights, &mut p)?;
    }
    Ok(p)
}

/// Plans `g` node by node: one step per node that is not folded or aliased.
fn plan_unfused(
    g: &LoadedGraph,
    weights: &[u8],
    k: &Kernels,
    input_shapes: &[Vec<usize>],
) -> Result<Plan> {
    #[derive(Clone)]
    struct Val {
        slot: Slot,
        dtype: DType,
        shape: Vec<usize>,
    }
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
    let mut plan = Plan {
        input_shapes: input_shapes.to_vec(),
        folded: Vec::new(),
        steps: Vec::new(),
        bufs: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    let mut scratch = 0usize;
    let mut add_buf = |plan: &mut Plan,
                       dtype: DType,
                       shape: &[usize],
                       what: &str|
     -> Result<usize> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| Error::InvalidGraph {
                reason: format!("value '{what}' of shape {shape:?} overflows"),
            })?;
        scratch = scratch.saturating_add(n);
        if scratch > MAX_SCRATCH_BYTES {
            return Err(Error::InvalidGraph {
                reason: format!("plan needs more than {MAX_SCRATCH_BYTES} bytes of scratch (value '{what}' of shape {shape:?})"),
            });
        }
        plan.bufs.push((dtype, numel(shape)));
        Ok(plan.bufs.len() - 1)
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
        let b = add_buf(&mut plan, logical(info.dtype), shape, &info.name)?;
        plan.inputs.push(b);
        vals[*id] = Some(Val {
            slot: Slot::Buf(b),
            dtype: logical(info.dtype),
            shape: shape.clone(),
        });
    }
    let no_bufs: [Buf; 0] = [];
    // A work stack instead of a loop over `g.order`: an `If` whose condition is folded pushes
    // its chosen branch's nodes, then an alias of the If's output to the branch's output.
    enum Work {
        Node(usize),
        Alias { out: ValueId, from: ValueId },
    }
    let mut work: Vec<Work> = g.order.iter().rev().map(|&i| Work::Node(i)).collect();
    while let Some(item) = work.pop() {
        let ni = match item {
            Work::Node(ni) => ni,
            Work::Alias { out, from } => {
                vals[out] = Some(
                    vals[from]
                        .clone()
                        .ok_or_else(|| internal("If branch output"))?,
                );
                continue;
            }
        };
        let node = g.nodes.get(ni).ok_or_else(|| internal("node index"))?;
        let cx = NodeCtx {
            node: &node.label,
            op_type: &node.op_type,
            source: &node.source,
        };
        if let Op::If {
            then_nodes,
            then_out,
            else_nodes,
            else_out,
        } = &node.op
        {
            let cond = node
                .inputs
                .first()
                .copied()
                .flatten()
                .and_then(|id| vals[id].as_ref());
            let value =
                match cond {
                    Some(v) if !matches!(v.slot, Slot::Buf(_)) => {
                        let o = Operand {
                            slot: v.slot,
                            shape: v.shape.clone(),
                        };
                        match view_of(g, weights, &plan.folded, &no_bufs, &o)?.data {
                            Data::Bool(b) if b.len() == 1 => b[0],
                            _ => return Err(cx.err("condition must be a single bool".to_string())),
                        }
                    }
                    _ => return Err(cx.err(
                        "condition must be constant at plan time (it depends on run-time values)"
                            .to_string(),
                    )),
                };
            let (nodes, out) = if value {
                (then_nodes, *then_out)
            } else {
                (else_nodes, *else_out)
            };
            work.push(Work::Alias {
                out: node.outputs[0],
                from: out,
            });
            work.extend(nodes.iter().rev().map(|&n| Work::Node(n)));
            continue;
        }
        // Operands, materializing f16 constants the op cannot read.
        let mut operands: Vec<Option<Operand>> = Vec::with_capacity(node.inputs.len());
        for (i, inp) in node.inputs.iter().enumerate() {
            let Some(id) = inp else {
                operands.push(None);
                continue;
            };
            let v = vals[*id].as_ref().ok_or_else(|| internal("value order"))?;
            let mut operand = Operand {
                slot: v.slot,
                shape: v.shape.clone(),
            };
            if !reads_f16(&node.op, i) {
                let view = match v.slot {
                    Slot::Buf(_) => None,
                    _ => Some(view_of(g, weights, &plan.folded, &no_bufs, &operand)?),
                };
                if let Some(View {
                    data: Data::F16(h), ..
                }) = view
                {
                    let f: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
                    plan.folded.push(Buf::F32(f));
                    operand.slot = Slot::Folded(plan.folded.len() - 1);
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
        let dtypes: Vec<DType> = node
            .inputs
            .iter()
            .map(|i| {
                i.and_then(|id| vals[id].as_ref())
                    .map(|v| v.dtype)
                    .unwrap_or(DType::F32)
            })
            .collect();
        let all_const = operands
            .iter()
            .flatten()
            .all(|o| !matches!(o.slot, Slot::Buf(_)));
        // Infer output shapes (constant inputs give their values).
        let outs = {
            let mut metas: Vec<Option<Meta<'_>>> = Vec::with_capacity(operands.len());
            for (o, &dt) in operands.iter().zip(&dtypes) {
                metas.push(match o {
                    None => None,
                    Some(o) => Some(Meta {
                        dtype: dt,
                        shape: &o.shape,
                        value: match o.slot {
                            Slot::Buf(_) => None,
                            _ => Some(view_of(g, weights, &plan.folded, &no_bufs, o)?),
                        },
                    }),
                });
            }
            ops::infer(&node.op, &metas, &cx)?
        };
        if outs.len() < node.outputs.len() {
            return Err(cx.err(format!(
                "produces {} outputs, the graph uses {}",
                outs.len(),
                node.outputs.len()
            )));
        }
        let (dtype, out_shape) = outs
            .into_iter()
            .next()
            .ok_or_else(|| internal("no output"))?;
        if out_shape.len() > MAX_RANK {
            return Err(cx.err(format!("output rank {} above {MAX_RANK}", out_shape.len())));
        }
        let out_id = node.outputs[0];
        // Aliases and same-dtype casts reuse their input's slot.
        let same_cast = matches!(node.op, Op::Cast { to } if to == dtypes[0] || (to == DType::F32 && dtypes[0] == DType::F32));
        if is_alias(&node.op) || same_cast {
            let src = operands[0]
                .as_ref()
                .ok_or_else(|| internal("alias source"))?;
            vals[out_id] = Some(Val {
                slot: src.slot,
                dtype,
                shape: out_shape,
            });
            continue;
        }
        let fold = all_const || matches!(node.op, Op::Shape { .. });
        if fold {
            let mut out = Buf::zeros(dtype, numel(&out_shape));
            if let Op::ConstantOfShape { value } = &node.op {
                fill_constant(&mut out, value, g, weights, &cx)?;
            } else {
                let mut views: Vec<Option<View<'_>>> = Vec::with_capacity(operands.len());
                for o in &operands {
                    views.push(match o {
                        None => None,
                        Some(o) if matches!(o.slot, Slot::Buf(_)) => Some(View {
                            shape: &o.shape,
                            data: Data::F32(&[]),
                        }),
                        Some(o) => Some(view_of(g, weights, &plan.folded, &no_bufs, o)?),
                    });
                }
                ops::eval(&node.op, k, &views, &mut out, &out_shape, &cx)?;
            }
            plan.folded.push(out);
            vals[out_id] = Some(Val {
                slot: Slot::Folded(plan.folded.len() - 1),
                dtype,
                shape: out_shape,
            });
            continue;
        }
        let b = add_buf(&mut plan, dtype, &out_shape, &g.names[out_id])?;
        plan.steps.push(Step {
            node: ni,
            inputs: operands,
            output: b,
            out_shape: out_shape.clone(),
            fused: None,
        });
        vals[out_id] = Some(Val {
            slot: Slot::Buf(b),
            dtype,
            shape: out_shape,
        });
    }
    for (id, info) in &g.outputs {
        let v = vals[*id].as_ref().ok_or_else(|| internal("output"))?;
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
            if let Data::F16(h) = view_of(g, weights, &plan.folded, &no_bufs, &operand)?.data {
                plan.folded
                    .push(Buf::F32(h.iter().map(|x| x.to_f32()).collect()));
                operand.slot = Slot::Folded(plan.folded.len() - 1);
            }
        }
        plan.outputs.push(operand);
    }
    Ok(plan)
}

fn fill_constant(
    out: &mut Buf,
    value: &ConstTensor,
    g: &LoadedGraph,
    weights: &[u8],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let v = const_data(value, weights, cx.node)?;
    match (v, out) {
        (Data::F32(s), Buf::F32(d)) if !s.is_empty() => d.iter_mut().for_each(|x| *x = s[0]),
        (Data::F16(s), Buf::F32(d)) if !s.is_empty() => {
            d.iter_mut().for_each(|x| *x = s[0].to_f32())
        }
        (Data::I64(s), Buf::I64(d)) if !s.is_empty() => d.iter_mut().for_each(|x| *x = s[0]),
        (Data::I32(s), Buf::I32(d)) if !s.is_empty() => d.iter_mut().for_each(|x| *x = s[0]),
        (Data::Bool(s), Buf::Bool(d)) if !s.is_empty() => d.iter_mut().for_each(|x| *x = s[0]),
        _ => return Err(cx.err("value dtype does not match the output".to_string())),
    }
    let _ = g;
    Ok(())
}

/// Initial contents of the session buffers of `plan`.
pub(crate) fn alloc_bufs(plan: &Plan) -> Vec<Buf> {
    plan.bufs.iter().map(|&(d, n)| Buf::zeros(d, n)).collect()
}

//! The ops: for each one its parsing (load time: attributes checked, so an unsupported op or a
//! malformed attribute fails when the model is opened), its shape rule (plan time: output dtype
//! and shape) and its evaluation (run time, and plan time for constant folding; `eval` writes
//! into preallocated buffers and does not allocate), side by side in one file per family:
//!
//! - [`gather`]: Gather (embedding lookups; the index checks shared with the fused steps);
//! - [`matmul`]: MatMul, Gemm (through the kernel table); [`einsum`]: one- and two-operand
//!   Einsum; [`conv`]: 1-D/2-D Conv;
//! - [`elementwise`]: broadcasting binary ops, comparisons, unary ops, Clip, Where, Cast;
//! - [`shape`]: the re-shapings that keep the data (Reshape, Flatten, Squeeze, Unsqueeze,
//!   Identity/Dropout; the planner aliases them) and Shape;
//! - [`layout`]: the ops that move data (Concat, Transpose, Slice, Split, Expand, Tile);
//! - [`reduce`]: ReduceSum/Mean/Max; [`norm`]: Softmax, BatchNormalization,
//!   LayerNormalization;
//! - [`constant`]: Constant and ConstantOfShape, which never reach [`eval`]: the loader turns a
//!   Constant into a graph constant and the planner folds ConstantOfShape ([`Parsed`] says
//!   which). `If` and `Split` are expanded by the loader before [`parse_op`].
//!
//! [`Op`] is the closed set of ops [`infer`] and [`eval`] dispatch on.

mod attrs;
pub(crate) mod constant;
mod conv;
mod einsum;
mod elementwise;
pub(crate) mod gather;
mod layout;
mod matmul;
mod norm;
mod reduce;
mod shape;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::strided::MAX_RANK;
use super::value::{Buf, Data, View};
use crate::error::{Error, Result};
use crate::kernels::Kernels;
use crate::onnx::Node;
use crate::tensor::{ConstTensor, DType};
pub(crate) use attrs::Attrs;
pub(crate) use conv::ConvAttrs;
pub(crate) use elementwise::{BinOp, CmpOp, UnOp};
pub(crate) use gather::{gather_index, ids_per_row};
pub(crate) use layout::SplitPart;
pub(crate) use reduce::Reduce;

/// One op the planner shapes and the session runs, with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Gather {
        axis: i64,
    },
    MatMul,
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    Binary(BinOp),
    Compare(CmpOp),
    Unary(UnOp),
    Concat {
        axis: i64,
    },
    Reshape {
        allowzero: bool,
    },
    Flatten {
        axis: i64,
    },
    /// `axes` from the attribute (opset < 13) or, when `None`, from the second input.
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    /// `axes` from the attribute (opset < 13) or from the optional second input.
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Transpose {
        perm: Option<Vec<i64>>,
    },
    Reduce(Reduce),
    Cast {
        to: DType,
    },
    /// Identity, Dropout (inference), and other pass-throughs.
    Identity,
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Slice,
    Softmax {
        axis: i64,
    },
    /// One- or two-operand Einsum with an explicit `->` output.
    Einsum {
        equation: String,
    },
    /// Inference BatchNormalization: inputs X, scale, B, mean, var.
    BatchNorm {
        epsilon: f32,
    },
    /// Clip with min/max from inputs (opset >= 11) or attributes (older).
    Clip {
        min: Option<f32>,
        max: Option<f32>,
    },
    /// 1-D/2-D convolution (N, C, [H,] W), group 1.
    Conv(ConvAttrs),
    /// One output of a Split (the loader makes one node per output).
    SplitPart(SplitPart),
    /// Expand to a shape constant at plan time (bidirectional NumPy broadcast).
    Expand,
    /// Where(condition, X, Y), all three broadcast like NumPy.
    Where,
    /// Tile with `repeats` constant at plan time.
    Tile,
    /// LayerNormalization (opset 17), output Y only.
    LayerNorm {
        axis: i64,
        epsilon: f32,
    },
}

/// What a parsed node is: an op, or one the loader or the planner resolves itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    Op(Op),
    /// A `Constant` node: its value becomes a graph constant at load.
    Constant(ConstTensor),
    /// `ConstantOfShape`, folded by the planner (its shape input must be constant).
    ConstantOfShape(ConstTensor),
}

/// Every default-domain op the runtime loads, sorted. `Split` and `If` are expanded by the
/// loader (`load_graph`) before [`parse_op`]; every other entry is parsed by [`parse_op`], and a
/// unit test keeps this list and `parse_op` in step. The README's op list is generated from it.
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Add",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Einsum",
    "Equal",
    "Exp",
    "Expand",
    "Flatten",
    "Gather",
    "Gemm",
    "Greater",
    "Identity",
    "If",
    "LayerNormalization",
    "Less",
    "Log",
    "MatMul",
    "Mul",
    "Neg",
    "Pow",
    "ReduceMax",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Where",
];

/// The ops of [`SUPPORTED_OPS`] that the loader expands itself instead of calling [`parse_op`].
#[cfg(test)]
pub(crate) const LOADER_OPS: &[&str] = &["If", "Split"];

/// Parses a node. `weights` resolves tensor attributes of `Constant` nodes.
pub(crate) fn parse_op(node: &Node<'_>, label: &str, weights: &[u8]) -> Result<Parsed> {
    let a = Attrs { node, label };
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return Err(Error::UnsupportedOp {
            op: format!("{}:{}", node.domain, node.op_type),
            node: label.to_string(),
        });
    }
    let op = match node.op_type {
        "Constant" => return Ok(Parsed::Constant(constant::parse_constant(&a, weights)?)),
        "ConstantOfShape" => {
            return Ok(Parsed::ConstantOfShape(constant::parse_constant_of_shape(
                &a, weights,
            )?))
        }
        "Gather" => Op::Gather {
            axis: a.int("axis", 0)?,
        },
        "MatMul" => Op::MatMul,
        "Gemm" => matmul::parse_gemm(&a)?,
        "Einsum" => einsum::parse(&a)?,
        "Conv" => conv::parse(&a)?,
        "Add" => Op::Binary(BinOp::Add),
        "Sub" => Op::Binary(BinOp::Sub),
        "Mul" => Op::Binary(BinOp::Mul),
        "Div" => Op::Binary(BinOp::Div),
        "Pow" => Op::Binary(BinOp::Pow),
        "Equal" => Op::Compare(CmpOp::Equal),
        "Less" => Op::Compare(CmpOp::Less),
        "Greater" => Op::Compare(CmpOp::Greater),
        "Relu" => Op::Unary(UnOp::Relu),
        "Sigmoid" => Op::Unary(UnOp::Sigmoid),
        "Tanh" => Op::Unary(UnOp::Tanh),
        "Exp" => Op::Unary(UnOp::Exp),
        "Log" => Op::Unary(UnOp::Log),
        "Sqrt" => Op::Unary(UnOp::Sqrt),
        "Abs" => Op::Unary(UnOp::Abs),
        "Neg" => Op::Unary(UnOp::Neg),
        "Clip" => Op::Clip {
            min: a.opt_float("min")?,
            max: a.opt_float("max")?,
        },
        "Where" => Op::Where,
        "Cast" => elementwise::parse_cast(&a)?,
        "Reshape" => Op::Reshape {
            allowzero: a.flag("allowzero", false)?,
        },
        "Flatten" => Op::Flatten {
            axis: a.int("axis", 1)?,
        },
        "Unsqueeze" => Op::Unsqueeze {
            axes: a.ints("axes")?,
        },
        "Squeeze" => Op::Squeeze {
            axes: a.ints("axes")?,
        },
        "Identity" => Op::Identity,
        "Dropout" => shape::parse_dropout(&a)?,
        "Shape" => shape::parse_shape(&a)?,
        "Concat" => layout::parse_concat(&a)?,
        "Transpose" => Op::Transpose {
            perm: a.ints("perm")?,
        },
        "Slice" => layout::parse_slice(&a)?,
        "Expand" => Op::Expand,
        "Tile" => Op::Tile,
        "ReduceSum" | "ReduceMean" | "ReduceMax" => reduce::parse(&a)?,
        "Softmax" => Op::Softmax {
            axis: a.int("axis", -1)?,
        },
        "BatchNormalization" => norm::parse_batch_norm(&a)?,
        "LayerNormalization" => norm::parse_layer_norm(&a)?,
        other => {
            return Err(Error::UnsupportedOp {
                op: other.to_string(),
                node: label.to_string(),
            })
        }
    };
    Ok(Parsed::Op(op))
}

/// What the planner knows of an op input: dtype, shape, and the values when constant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub dtype: DType,
    pub shape: &'a [usize],
    pub value: Option<View<'a>>,
}

/// A node's inputs as the planner knows them (`None`: an omitted optional input).
pub(crate) type Metas<'a> = [Option<Meta<'a>>];

/// A node's input values at run time (`None`: an omitted optional input).
pub(crate) type Views<'a> = [Option<View<'a>>];

/// The dtype and shape of an op's output.
pub(crate) type Inferred = (DType, Vec<usize>);

/// Output dtype and shape of a node (every op has one output).
pub(crate) fn infer(op: &Op, ins: &Metas, cx: &NodeCtx) -> Result<Inferred> {
    match op {
        Op::Gather { axis } => gather::infer(*axis, ins, cx),
        Op::MatMul => matmul::infer_matmul(ins, cx),
        Op::Gemm {
            trans_a, trans_b, ..
        } => matmul::infer_gemm(*trans_a, *trans_b, ins, cx),
        Op::Einsum { equation } => einsum::infer(equation, ins, cx),
        Op::Conv(c) => c.infer(ins, cx),
        Op::Binary(b) => elementwise::infer_binary(*b, ins, cx),
        Op::Compare(_) => elementwise::infer_compare(ins, cx),
        Op::Unary(u) => elementwise::infer_unary(*u, ins, cx),
        Op::Clip { .. } => elementwise::infer_clip(ins, cx),
        Op::Where => elementwise::infer_where(ins, cx),
        Op::Cast { to } => elementwise::infer_cast(*to, ins, cx),
        Op::Reshape { allowzero } => shape::infer_reshape(*allowzero, ins, cx),
        Op::Flatten { axis } => shape::infer_flatten(*axis, ins, cx),
        Op::Unsqueeze { axes } => shape::infer_unsqueeze(axes.as_deref(), ins, cx),
        Op::Squeeze { axes } => shape::infer_squeeze(axes.as_deref(), ins, cx),
        Op::Identity => shape::infer_identity(ins, cx),
        Op::Shape { start, end } => shape::infer_shape(*start, *end, ins, cx),
        Op::Concat { axis } => layout::infer_concat(*axis, ins, cx),
        Op::Transpose { perm } => layout::infer_transpose(perm.as_deref(), ins, cx),
        Op::Slice => layout::infer_slice(ins, cx),
        Op::SplitPart(s) => s.infer(ins, cx),
        Op::Expand => layout::infer_expand(ins, cx),
        Op::Tile => layout::infer_tile(ins, cx),
        Op::Reduce(r) => r.infer(ins, cx),
        Op::Softmax { axis } => norm::infer_softmax(*axis, ins, cx),
        Op::BatchNorm { .. } => norm::infer_batch_norm(ins, cx),
        Op::LayerNorm { axis, .. } => norm::infer_layer_norm(*axis, ins, cx),
    }
}

/// Evaluates a node into `out` (preallocated with `out_shape`'s element count and the inferred
/// dtype).
pub(crate) fn eval(
    op: &Op,
    k: &Kernels,
    ins: &Views,
    out: &mut Buf,
    out_shape: &[usize],
    cx: &NodeCtx,
) -> Result<()> {
    let x = || need_view(ins, 0, cx);
    let y = || need_view(ins, 1, cx);
    match op {
        Op::Gather { axis } => gather::eval(*axis, x()?, y()?, out, cx),
        Op::MatMul => matmul::matmul(k, x()?, y()?, out, cx),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => matmul::gemm(
            k,
            (*alpha, *beta, *trans_a, *trans_b),
            ins,
            out,
            out_shape,
            cx,
        ),
        Op::Einsum { equation } => einsum::eval(k, equation, ins, out, cx),
        Op::Conv(c) => c.eval(k, ins, out, cx),
        Op::Binary(b) => elementwise::binary(k, *b, x()?, y()?, out, out_shape, cx),
        Op::Compare(c) => elementwise::compare(*c, x()?, y()?, out, out_shape, cx),
        Op::Unary(u) => elementwise::unary(k, *u, x()?, out, cx),
        Op::Clip { min, max } => elementwise::clip(*min, *max, ins, out, cx),
        Op::Where => elementwise::where_(ins, out, out_shape, cx),
        Op::Cast { to } => elementwise::cast(*to, x()?, out, cx),
        Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Unsqueeze { .. }
        | Op::Squeeze { .. }
        | Op::Identity => copy_into(x()?.data, out, cx),
        Op::Shape { start, end } => shape::eval_shape(*start, *end, x()?, out, cx),
        Op::Concat { axis } => layout::concat(*axis, ins, out, out_shape, cx),
        Op::Transpose { perm } => layout::transpose(perm.as_deref(), x()?, out, cx),
        Op::Slice => layout::slice(ins, out, cx),
        Op::SplitPart(s) => s.eval(ins, out, cx),
        Op::Expand => layout::expand(x()?, out, out_shape, cx),
        Op::Tile => layout::tile(x()?, out, out_shape, cx),
        Op::Reduce(r) => r.eval(ins, out, cx),
        Op::Softmax { axis } => norm::softmax(*axis, x()?, out, cx),
        Op::BatchNorm { epsilon } => norm::batch_norm(*epsilon, ins, out, cx),
        Op::LayerNorm { axis, epsilon } => norm::layer_norm(*axis, *epsilon, ins, out, cx),
    }
}

/// Which inputs of `op` may stay f16 storage (read directly by the op).
pub(crate) fn reads_f16(op: &Op, input: usize) -> bool {
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
pub(crate) fn is_alias(op: &Op) -> bool {
    matches!(
        op,
        Op::Identity
            | Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Unsqueeze { .. }
            | Op::Squeeze { .. }
    )
}

/// Names used in error messages of one node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeCtx<'a> {
    pub node: &'a str,
    pub op_type: &'a str,
    /// The model input the node's index/data operand derives from, for id errors.
    pub source: &'a str,
}

impl NodeCtx<'_> {
    pub(crate) fn err(&self, reason: String) -> Error {
        Error::InvalidNode {
            node: self.node.to_string(),
            op: self.op_type.to_string(),
            reason,
        }
    }
}

fn need<'a, 'b>(ins: &'b Metas<'a>, i: usize, cx: &NodeCtx) -> Result<&'b Meta<'a>> {
    ins.get(i)
        .and_then(|m| m.as_ref())
        .ok_or_else(|| cx.err(format!("missing input #{i}")))
}

fn need_view<'a>(ins: &Views<'a>, i: usize, cx: &NodeCtx) -> Result<View<'a>> {
    ins.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| cx.err(format!("missing input #{i}")))
}

/// Normalizes an axis in `[-rank, rank)`.
pub(crate) fn norm_axis(axis: i64, rank: usize, cx: &NodeCtx) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) && !(r == 0 && a == 0) || (r > 0 && a >= r) {
        return Err(cx.err(format!("axis {axis} out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// Reads a constant integer tensor (axes, shapes, slice bounds).
fn const_ints(m: &Meta, what: &str, cx: &NodeCtx) -> Result<Vec<i64>> {
    match m.value.map(|v| v.data) {
        Some(Data::I64(v)) => Ok(v.to_vec()),
        Some(Data::I32(v)) => Ok(v.iter().map(|&x| x as i64).collect()),
        Some(_) => Err(cx.err(format!("{what} must be an integer tensor"))),
        None => Err(cx.err(format!(
            "{what} must be constant at plan time (it depends on run-time values)"
        ))),
    }
}

/// Axes or sizes from an attribute, else from a constant input (`what` names it in errors),
/// else `None`.
fn ints_from(
    attr: Option<&[i64]>,
    input: Option<&Meta>,
    what: &str,
    cx: &NodeCtx,
) -> Result<Option<Vec<i64>>> {
    Ok(match (attr, input) {
        (Some(a), _) => Some(a.to_vec()),
        (None, Some(m)) => Some(const_ints(m, what, cx)?),
        (None, None) => None,
    })
}

/// The integers of `v` into `out` (at most [`MAX_RANK`]); their count, 0 for another dtype.
fn view_ints(v: &View, out: &mut [i64; MAX_RANK]) -> usize {
    let n = v.data.len().min(MAX_RANK);
    match v.data {
        Data::I64(s) => out[..n].copy_from_slice(&s[..n]),
        Data::I32(s) => {
            for i in 0..n {
                out[i] = s[i] as i64;
            }
        }
        _ => return 0,
    }
    n
}

/// NumPy broadcast of two shapes.
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize], cx: &NodeCtx) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for (i, o) in out.iter_mut().enumerate() {
        let (da, db) = (aligned_dim(a, i, r), aligned_dim(b, i, r));
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(cx.err(format!("shapes {a:?} and {b:?} cannot be broadcast")));
        };
    }
    Ok(out)
}

/// Dimension `i` of `shape` aligned right to rank `r` (NumPy broadcasting): 1 where `shape`
/// is shorter.
fn aligned_dim(shape: &[usize], i: usize, r: usize) -> usize {
    if i + shape.len() >= r {
        shape[i + shape.len() - r]
    } else {
        1
    }
}

/// f16 values compute as f32.
pub(crate) fn logical(d: DType) -> DType {
    if d == DType::F16 {
        DType::F32
    } else {
        d
    }
}

fn internal(cx: &NodeCtx, what: &str) -> Error {
    cx.err(format!("internal: inconsistent buffers in {what}"))
}

/// `Ok` when a copy or gather into the output succeeded, else the internal error naming `what`.
fn checked(ok: bool, cx: &NodeCtx, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(internal(cx, what))
    }
}

/// `out` = `src`; f16 storage is widened to the f32 it computes as.
fn copy_into(src: Data, out: &mut Buf, cx: &NodeCtx) -> Result<()> {
    let ok = match (src, &mut *out) {
        (Data::F16(s), Buf::F32(o)) if s.len() == o.len() => {
            for (d, v) in o.iter_mut().zip(s) {
                *d = v.to_f32();
            }
            true
        }
        (Data::F16(_), _) => false,
        _ => out.copy_from(src),
    };
    checked(ok, cx, "copy")
}

/// Copies blocks of `len` elements of `src` into `out`, widening f16 storage to f32: each
/// `(from, to)` of `blocks` copies `src[from..from + len]` to `out[to..to + len]`. `false` when
/// the dtypes do not match or a block falls outside either; errors of `blocks` pass through.
fn copy_blocks(
    src: Data,
    out: &mut Buf,
    len: usize,
    blocks: impl IntoIterator<Item = Result<(usize, usize)>>,
) -> Result<bool> {
    fn run<T: Copy, U>(
        s: &[T],
        d: &mut [U],
        len: usize,
        conv: impl Fn(T) -> U,
        blocks: impl IntoIterator<Item = Result<(usize, usize)>>,
    ) -> Result<bool> {
        for block in blocks {
            let (from, to) = block?;
            let (Some(s), Some(d)) = (s.get(from..from + len), d.get_mut(to..to + len)) else {
                return Ok(false);
            };
            for (d, &s) in d.iter_mut().zip(s) {
                *d = conv(s);
            }
        }
        Ok(true)
    }
    match (src, out) {
        (Data::F32(s), Buf::F32(d)) => run(s, d, len, |v| v, blocks),
        (Data::F16(s), Buf::F32(d)) => run(s, d, len, half::f16::to_f32, blocks),
        (Data::I64(s), Buf::I64(d)) => run(s, d, len, |v| v, blocks),
        (Data::I32(s), Buf::I32(d)) => run(s, d, len, |v| v, blocks),
        (Data::Bool(s), Buf::Bool(d)) => run(s, d, len, |v| v, blocks),
        _ => Ok(false),
    }
}

/// Value `i` of float data (f32 or f16 storage), `None` out of range or for another dtype.
fn float_at(d: Data, i: isize) -> Option<f32> {
    let i = usize::try_from(i).ok()?;
    match d {
        Data::F32(v) => v.get(i).copied(),
        Data::F16(v) => v.get(i).map(|x| x.to_f32()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{AttrValue, Attribute};

    fn node<'a>(op_type: &'a str, attributes: Vec<Attribute<'a>>) -> Node<'a> {
        Node {
            name: "n",
            op_type,
            domain: "",
            inputs: alloc::vec!["x"],
            outputs: alloc::vec!["y"],
            attributes,
        }
    }

    /// The attributes an op cannot do without (everything else has an ONNX default).
    fn required_attrs(op_type: &str) -> Vec<Attribute<'static>> {
        let attr = |name, value| Attribute { name, value };
        match op_type {
            "Concat" => alloc::vec![attr("axis", AttrValue::Int(0))],
            "Einsum" => alloc::vec![attr("equation", AttrValue::String(b"ij->ji"))],
            "Cast" => alloc::vec![attr("to", AttrValue::Int(1))],
            "Constant" => alloc::vec![attr("value_float", AttrValue::Float(1.0))],
            _ => Vec::new(),
        }
    }

    #[test]
    fn supported_ops_are_sorted_and_unique() {
        assert!(SUPPORTED_OPS.windows(2).all(|w| w[0] < w[1]));
        assert!(LOADER_OPS.iter().all(|o| SUPPORTED_OPS.contains(o)));
    }

    #[test]
    fn every_listed_op_parses() {
        for &op in SUPPORTED_OPS.iter().filter(|o| !LOADER_OPS.contains(o)) {
            let n = node(op, required_attrs(op));
            assert!(parse_op(&n, "n", &[]).is_ok(), "{op} is listed but refused");
        }
    }

    #[test]
    fn unlisted_ops_are_refused_naming_op_and_node() {
        // A sample of ONNX ops (from the backend node cases and CTR exports) the runtime lacks,
        // plus the loader-expanded ops, which parse_op itself never sees.
        let unlisted = [
            "Max",
            "Min",
            "Not",
            "And",
            "Or",
            "Erf",
            "Sin",
            "Cos",
            "CastLike",
            "LeakyRelu",
            "Range",
            "ReduceMin",
            "ReduceProd",
            "ArgMax",
            "TopK",
            "GatherElements",
            "ScatterND",
            "Resize",
            "MaxPool",
            "LSTM",
            "Floor",
            "Ceil",
            "Round",
            "Sign",
            "Reciprocal",
            "HardSigmoid",
            "Elu",
            "Selu",
            "Softplus",
            "LogSoftmax",
            "Mod",
            "GreaterOrEqual",
            "LessOrEqual",
            "Sum",
            "Mean",
            "If",
            "Split",
        ];
        for op in unlisted {
            assert!(
                !SUPPORTED_OPS.contains(&op) || LOADER_OPS.contains(&op),
                "{op} is listed"
            );
            let n = node(op, Vec::new());
            match parse_op(&n, "node7", &[]) {
                Err(Error::UnsupportedOp { op: o, node }) => {
                    assert_eq!((o.as_str(), node.as_str()), (op, "node7"))
                }
                other => panic!("{op}: expected UnsupportedOp, got {other:?}"),
            }
        }
    }
}

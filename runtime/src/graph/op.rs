//! Parsed ops: each ONNX node becomes an [`Op`] with its attributes checked at load time, so an
//! unsupported op or a malformed attribute fails when the model is opened, not when it runs.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::onnx::{AttrValue, Node};
use crate::tensor::{ConstTensor, DType};

/// Elementwise binary ops (NumPy broadcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// Elementwise comparisons (bool output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Equal,
    Less,
    Greater,
}

/// Elementwise unary ops on floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Abs,
    Neg,
}

/// Reductions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReduceKind {
    Sum,
    Mean,
    Max,
}

/// One supported op with its attributes.
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
    /// `axes` from the attribute (older opsets) or from the optional second input.
    Reduce {
        kind: ReduceKind,
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    Cast {
        to: DType,
    },
    /// Identity, Dropout (inference), and other pass-throughs.
    Identity,
    Constant {
        value: ConstTensor,
    },
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Slice,
    ConstantOfShape {
        value: ConstTensor,
    },
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
    Conv {
        strides: Option<Vec<i64>>,
        pads: Option<Vec<i64>>,
        dilations: Option<Vec<i64>>,
        group: i64,
    },
    /// Part `part` of a Split with `count` outputs (the loader makes one node per output).
    SplitPart {
        axis: i64,
        part: usize,
        count: usize,
        sizes: Option<Vec<i64>>,
    },
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
    /// If whose condition is constant at plan time; the chosen branch's nodes are planned in
    /// place of the node.
    If {
        then_nodes: Vec<usize>,
        then_out: usize,
        else_nodes: Vec<usize>,
        else_out: usize,
    },
}

/// Reads attributes of one node with messages naming it.
struct Attrs<'n, 'a> {
    node: &'n Node<'a>,
    label: &'n str,
}

impl<'n, 'a> Attrs<'n, 'a> {
    fn err(&self, reason: String) -> Error {
        Error::InvalidNode {
            node: self.label.to_string(),
            op: self.node.op_type.to_string(),
            reason,
        }
    }

    fn int(&self, name: &str, default: i64) -> Result<i64> {
        match self.node.attr(name) {
            None => Ok(default),
            Some(AttrValue::Int(v)) => Ok(*v),
            Some(other) => Err(self.err(format!(
                "attribute '{name}' must be an int, got {}",
                kind(other)
            ))),
        }
    }

    fn float(&self, name: &str, default: f32) -> Result<f32> {
        match self.node.attr(name) {
            None => Ok(default),
            Some(AttrValue::Float(v)) => Ok(*v),
            Some(other) => Err(self.err(format!(
                "attribute '{name}' must be a float, got {}",
                kind(other)
            ))),
        }
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.node.attr(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.err(format!(
                "attribute '{name}' must be ints, got {}",
                kind(other)
            ))),
        }
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool> {
        match self.int(name, default as i64)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("attribute '{name}' must be 0 or 1, got {v}"))),
        }
    }
}

fn kind(v: &AttrValue<'_>) -> &'static str {
    match v {
        AttrValue::Float(_) => "a float",
        AttrValue::Int(_) => "an int",
        AttrValue::String(_) => "a string",
        AttrValue::Tensor(_) => "a tensor",
        AttrValue::Graph(_) => "a graph",
        AttrValue::Floats(_) => "floats",
        AttrValue::Ints(_) => "ints",
        AttrValue::Strings(_) => "strings",
    }
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

/// Parses a node into an [`Op`]. `weights` resolves tensor attributes of `Constant` nodes.
pub(crate) fn parse_op(node: &Node<'_>, label: &str, weights: &[u8]) -> Result<Op> {
    let a = Attrs { node, label };
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return Err(Error::UnsupportedOp {
            op: format!("{}:{}", node.domain, node.op_type),
            node: label.to_string(),
        });
    }
    let op = match node.op_type {
        "Gather" => Op::Gather {
            axis: a.int("axis", 0)?,
        },
        "MatMul" => Op::MatMul,
        "Gemm" => Op::Gemm {
            alpha: a.float("alpha", 1.0)?,
            beta: a.float("beta", 1.0)?,
            trans_a: a.flag("transA", false)?,
            trans_b: a.flag("transB", false)?,
        },
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
        "Concat" => match node.attr("axis") {
            Some(_) => Op::Concat {
                axis: a.int("axis", 0)?,
            },
            None => return Err(a.err("missing required attribute 'axis'".to_string())),
        },
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
        "Transpose" => Op::Transpose {
            perm: a.ints("perm")?,
        },
        "ReduceSum" | "ReduceMean" | "ReduceMax" => Op::Reduce {
            kind: match node.op_type {
                "ReduceSum" => ReduceKind::Sum,
                "ReduceMean" => ReduceKind::Mean,
                _ => ReduceKind::Max,
            },
            axes: a.ints("axes")?,
            keepdims: a.flag("keepdims", true)?,
            noop_with_empty_axes: a.flag("noop_with_empty_axes", false)?,
        },
        "Cast" => {
            let to = a.int("to", 0)?;
            let code = i32::try_from(to)
                .map_err(|_| a.err(format!("attribute 'to' = {to} is not a data type")))?;
            match DType::from_onnx(code) {
                Some(to) => Op::Cast { to },
                None => {
                    return Err(Error::UnsupportedDType {
                        tensor: format!("output of Cast node '{label}'"),
                        dtype: code,
                    })
                }
            }
        }
        "Identity" => Op::Identity,
        "Dropout" => {
            // Inference Dropout is the identity; training mode and its mask are not. A
            // 'training_mode' input is checked by the loader, which has the constants: only a
            // constant false is accepted.
            if node.outputs.get(1).is_some_and(|o| !o.is_empty()) {
                return Err(
                    a.err("the 'mask' output is not supported (inference only)".to_string())
                );
            }
            Op::Identity
        }
        "Constant" => Op::Constant {
            value: constant_value(&a, weights)?,
        },
        "Shape" => Op::Shape {
            start: a.int("start", 0)?,
            end: match node.attr("end") {
                None => None,
                Some(_) => Some(a.int("end", 0)?),
            },
        },
        "Slice" => {
            if node.attr("starts").is_some() {
                return Err(a.err(
                    "Slice with 'starts' attribute (opset < 10) is not supported".to_string(),
                ));
            }
            Op::Slice
        }
        "ConstantOfShape" => Op::ConstantOfShape {
            value: match node.attr("value") {
                None => ConstTensor::owned(
                    alloc::vec![1],
                    crate::tensor::OwnedData::F32(alloc::vec![0.0]),
                ),
                Some(AttrValue::Tensor(t)) => {
                    let c = crate::onnx::resolve_tensor(t, weights)?;
                    if c.numel() != 1 {
                        return Err(
                            a.err(format!("'value' must hold one element, has {}", c.numel()))
                        );
                    }
                    c
                }
                Some(other) => {
                    return Err(a.err(format!(
                        "attribute 'value' must be a tensor, got {}",
                        kind(other)
                    )))
                }
            },
        },
        "Softmax" => Op::Softmax {
            axis: a.int("axis", -1)?,
        },
        "Einsum" => match node.attr("equation") {
            Some(AttrValue::String(s)) => Op::Einsum {
                equation: core::str::from_utf8(s)
                    .map_err(|_| a.err("equation is not UTF-8".to_string()))?
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect(),
            },
            _ => return Err(a.err("missing string attribute 'equation'".to_string())),
        },
        "BatchNormalization" => {
            if a.int("training_mode", 0)? != 0 {
                return Err(a.err("training_mode=1 is not supported".to_string()));
            }
            Op::BatchNorm {
                epsilon: a.float("epsilon", 1e-5)?,
            }
        }
        "Clip" => Op::Clip {
            min: match node.attr("min") {
                Some(_) => Some(a.float("min", 0.0)?),
                None => None,
            },
            max: match node.attr("max") {
                Some(_) => Some(a.float("max", 0.0)?),
                None => None,
            },
        },
        "Conv" => {
            if let Some(AttrValue::String(p)) = node.attr("auto_pad") {
                if *p != b"NOTSET" && *p != b"VALID" {
                    return Err(a.err("auto_pad SAME_* is not supported".to_string()));
                }
            }
            Op::Conv {
                strides: a.ints("strides")?,
                pads: a.ints("pads")?,
                dilations: a.ints("dilations")?,
                group: a.int("group", 1)?,
            }
        }
        "Expand" => Op::Expand,
        "Where" => Op::Where,
        "Tile" => Op::Tile,
        "LayerNormalization" => {
            for (i, name) in [(1, "Mean"), (2, "InvStdDev")] {
                if node.outputs.get(i).is_some_and(|o| !o.is_empty()) {
                    return Err(a.err(format!(
                        "the '{name}' output is not supported (only Y is computed)"
                    )));
                }
            }
            let stash = a.int("stash_type", 1)?;
            if stash != 1 {
                return Err(a.err(format!(
                    "attribute 'stash_type' = {stash} is not supported (only 1, float)"
                )));
            }
            Op::LayerNorm {
                axis: a.int("axis", -1)?,
                epsilon: a.float("epsilon", 1e-5)?,
            }
        }
        other => {
            return Err(Error::UnsupportedOp {
                op: other.to_string(),
                node: label.to_string(),
            })
        }
    };
    Ok(op)
}

fn constant_value(a: &Attrs<'_, '_>, weights: &[u8]) -> Result<ConstTensor> {
    use crate::tensor::OwnedData;
    let Some(attr) = a.node.attributes.first() else {
        return Err(a.err("Constant without a value attribute".to_string()));
    };
    if a.node.attributes.len() != 1 {
        return Err(a.err("Constant must have exactly one value attribute".to_string()));
    }
    Ok(match (attr.name, &attr.value) {
        ("value", AttrValue::Tensor(t)) => crate::onnx::resolve_tensor(t, weights)?,
        ("value_float", AttrValue::Float(v)) => {
            ConstTensor::owned(Vec::new(), OwnedData::F32(alloc::vec![*v]))
        }
        ("value_floats", AttrValue::Floats(v)) => {
            ConstTensor::owned(alloc::vec![v.len()], OwnedData::F32(v.clone()))
        }
        ("value_int", AttrValue::Int(v)) => {
            ConstTensor::owned(Vec::new(), OwnedData::I64(alloc::vec![*v]))
        }
        ("value_ints", AttrValue::Ints(v)) => {
            ConstTensor::owned(alloc::vec![v.len()], OwnedData::I64(v.clone()))
        }
        (name, v) => {
            return Err(a.err(format!(
                "unsupported Constant attribute '{name}' ({})",
                kind(v)
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::Attribute;

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

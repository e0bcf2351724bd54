//! Graph clean-up before compression, each step equivalent under the ONNX spec, so that tract
//! (the calibration and validation engine) runs what the exporters write:
//! - `ConstantOfShape` without a `value` gets the spec's default written out (a float32 zero;
//!   tract 0.23 defaults to f64 and then fails to type the graph, as in PyTorch's dynamo
//!   exports of `new_zeros`);
//! - `If` nodes whose condition is known from static shapes are replaced by the branch they
//!   always take.
//!
//! PyTorch's TorchScript exporter writes `x.squeeze(d)` on a tensor with a dynamic batch as
//! `If(Shape(x)[d] == 1, Squeeze, Identity)` (DeepCTR's DCN cross network does this). The two
//! branches have different ranks, which tract refuses, yet the condition depends only on a
//! fixed dimension. tract's shape analysis of the declared inputs (symbolic batch) gives the
//! condition's value; the chosen branch's nodes then take the `If`'s place, its outputs renamed
//! to the `If`'s outputs. The resulting graph is equivalent for every batch size.

use std::collections::HashMap;

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto};
use tract_onnx::prelude::{Framework, InferenceModelExt};
use tract_onnx::tract_hir::infer::Factoid;

use super::graph::{f32_tensor, node, Names};
use crate::backend::tract::{guarded_in_memory, in_memory_error};
use crate::error::Result;

/// Both clean-ups: a copy of `model` with explicit `ConstantOfShape` values and its statically
/// decided `If`s inlined (their number returned with it).
pub fn simplify(model: &ModelProto) -> Result<(ModelProto, usize)> {
    let mut model = model.clone();
    explicit_constant_of_shape_values(&mut model);
    inline_static_ifs(&model)
}

/// Writes the default `value` (float32 zero, shape `[1]`) on every top-level
/// `ConstantOfShape` that has none.
pub fn explicit_constant_of_shape_values(model: &mut ModelProto) {
    let Some(graph) = model.graph.as_mut() else {
        return;
    };
    for n in &mut graph.node {
        if n.op_type == "ConstantOfShape" && !n.attribute.iter().any(|a| a.name == "value") {
            n.attribute.push(AttributeProto {
                name: "value".into(),
                r#type: AttributeType::Tensor as i32,
                t: Some(f32_tensor("value", &[1], &[0.0])),
                ..AttributeProto::default()
            });
        }
    }
}

/// A copy of `model` with every statically decided top-level `If` inlined; the number of `If`
/// nodes replaced is returned with it.
pub fn inline_static_ifs(model: &ModelProto) -> Result<(ModelProto, usize)> {
    let has_if = model
        .graph
        .as_ref()
        .is_some_and(|g| g.node.iter().any(|n| n.op_type == "If"));
    if !has_if {
        return Ok((model.clone(), 0));
    }
    let im = guarded_in_memory("analysing", || {
        let mut im = tract_onnx::onnx()
            .model_for_proto_model(model)
            .map_err(in_memory_error("loading"))?;
        // Analysis may stop at the very If it cannot type; the facts found so far are enough.
        let _ = im.analyse(true);
        Ok(im)
    })?;

    let mut out = model.clone();
    let Some(graph) = out.graph.as_mut() else {
        return Ok((out, 0));
    };
    let mut names = Names::of(graph);
    let old = std::mem::take(&mut graph.node);
    let mut inlined = 0;
    for n in old {
        if n.op_type != "If" {
            graph.node.push(n);
            continue;
        }
        let condition = n.input.first().and_then(|c| {
            let outlet = im.find_outlet_label(c)?;
            let value = im.outlet_fact(outlet).ok()?.value.concretize()?;
            value.cast_to_scalar::<bool>().ok()
        });
        let branch_name = match condition {
            Some(true) => "then_branch",
            Some(false) => "else_branch",
            None => {
                graph.node.push(n);
                continue;
            }
        };
        let Some(branch) = n
            .attribute
            .iter()
            .find(|a| a.name == branch_name)
            .and_then(|a| a.g.as_ref())
        else {
            graph.node.push(n);
            continue;
        };
        let (nodes, initializers) = inline_branch(branch, &n, &mut names);
        graph.node.extend(nodes);
        graph.initializer.extend(initializers);
        inlined += 1;
    }
    Ok((out, inlined))
}

/// The nodes (and initializers) of `branch` renamed to fit in the outer graph: its outputs take
/// the names of the `If`'s outputs, its other tensors fresh names where they would clash.
fn inline_branch(
    branch: &GraphProto,
    if_node: &NodeProto,
    names: &mut Names,
) -> (Vec<NodeProto>, Vec<tract_onnx::pb::TensorProto>) {
    let mut rename: HashMap<String, String> = HashMap::new();
    for (b, o) in branch.output.iter().zip(&if_node.output) {
        rename.insert(b.name.clone(), o.clone());
    }
    let mut produced = std::collections::HashSet::new();
    for n in &branch.node {
        for o in &n.output {
            produced.insert(o.clone());
            if !rename.contains_key(o) && !o.is_empty() {
                rename.insert(o.clone(), names.fresh(o));
            }
        }
    }
    let mut initializers = Vec::new();
    for t in &branch.initializer {
        let mut t = t.clone();
        let fresh = names.fresh(&t.name);
        rename.insert(t.name.clone(), fresh.clone());
        produced.insert(t.name.clone());
        t.name = fresh;
        initializers.push(t);
    }
    let map = |s: &String| rename.get(s).cloned().unwrap_or_else(|| s.clone());
    let mut nodes: Vec<NodeProto> = branch
        .node
        .iter()
        .map(|n| {
            let mut n = n.clone();
            n.input = n.input.iter().map(map).collect();
            n.output = n.output.iter().map(map).collect();
            if !n.name.is_empty() {
                n.name = names.fresh(&n.name);
            }
            n
        })
        .collect();
    // A branch output that is an outer tensor passed through unchanged needs a node.
    for (b, o) in branch.output.iter().zip(&if_node.output) {
        if !produced.contains(&b.name) {
            let name = names.fresh(&format!("{}/identity", if_node.name));
            nodes.push(node(
                "Identity",
                name,
                vec![b.name.clone()],
                vec![o.clone()],
                vec![],
            ));
        }
    }
    (nodes, initializers)
}

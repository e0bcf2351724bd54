//! The ONNX decoder on arbitrary bytes: `decode_model`, then what the loader does with a decoded
//! model before any graph work (the external-data location, every initializer and tensor
//! attribute resolved against a small weights buffer), and `decode_tensor_file`.
//!
//! A finding is a panic, an overflow, a sanitizer report, a huge allocation or a hang; on top
//! of that each resolved tensor must hold exactly `numel` elements, inside the weights buffer
//! when it is viewed there.
#![no_main]

use ctr_edge_runtime::onnx::{self, AttrValue, Graph, TensorProto};
use ctr_edge_runtime::tensor::{ConstData, ConstTensor};
use libfuzzer_sys::fuzz_target;

/// Stands in for a weights file: external tensors of the seeds and mutants resolve against it.
static WEIGHTS: [u8; 4096] = {
    let mut w = [0u8; 4096];
    let mut i = 0;
    while i < w.len() {
        w[i] = (i % 251) as u8;
        i += 1;
    }
    w
};

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = onnx::decode_model(data) {
        let _ = onnx::external_location(&model);
        resolve_graph(&model.graph, 0);
    }
    if let Ok(t) = onnx::decode_tensor_file(data) {
        let numel = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        assert_eq!(numel, Some(t.values.len()), "decode_tensor_file {}", t.name);
        assert_eq!(t.values.dtype(), t.dtype);
    }
});

fn resolve_graph(graph: &Graph<'_>, depth: usize) {
    // The decoder caps nesting itself (MAX_GRAPH_DEPTH); this only guards the harness.
    assert!(
        depth <= onnx::MAX_GRAPH_DEPTH,
        "decoder let a graph nest {depth} deep"
    );
    for t in &graph.initializers {
        resolve(t);
    }
    for node in &graph.nodes {
        for attr in &node.attributes {
            match &attr.value {
                AttrValue::Tensor(t) => resolve(t),
                AttrValue::Graph(g) => resolve_graph(g, depth + 1),
                _ => {}
            }
        }
    }
}

fn resolve(t: &TensorProto<'_>) {
    if let Ok(c) = onnx::resolve_tensor(t, &WEIGHTS) {
        check_const(t.name, &c);
    }
}

fn check_const(name: &str, c: &ConstTensor) {
    let numel = c
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .unwrap_or_else(|| panic!("{name}: resolved shape {:?} overflows", c.shape));
    match &c.data {
        ConstData::Weights { offset, byte_len } => {
            let end = offset
                .checked_add(*byte_len)
                .expect("offset + length overflows");
            assert!(
                end <= WEIGHTS.len(),
                "{name}: view {offset}+{byte_len} past the weights"
            );
            assert_eq!(Some(*byte_len), numel.checked_mul(c.dtype.size()), "{name}");
        }
        ConstData::Owned(o) => {
            assert_eq!(o.len(), numel, "{name}");
            assert_eq!(o.dtype(), c.dtype, "{name}");
        }
    }
}

//! Small builders for hand-made ONNX models (tract's prost types), used by the tests of every
//! crate, the examples and the benches to write artifacts with
//! [`crate::artifact::write_artifact`]. One copy, here, so the test suites cannot drift apart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Name of the symbolic batch dimension in [`value_info`].
pub const BATCH: &str = "N";

/// A tensor value description; `None` dims are the symbolic batch [`BATCH`].
pub fn value_info(name: &str, elem: DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            denotation: String::new(),
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam(BATCH.into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

/// An f32 initializer with its values in `raw_data`.
pub fn tensor_f32(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..tensor(name, dims, DataType::Float, values.len())
    }
}

/// An i64 initializer with its values in `int64_data`.
pub fn tensor_i64(name: &str, dims: &[usize], values: &[i64]) -> TensorProto {
    TensorProto {
        int64_data: values.to_vec(),
        ..tensor(name, dims, DataType::Int64, values.len())
    }
}

/// An initializer without values, checked to hold `len` of them.
fn tensor(name: &str, dims: &[usize], data_type: DataType, len: usize) -> TensorProto {
    assert_eq!(dims.iter().product::<usize>(), len, "{name}");
    TensorProto {
        name: name.into(),
        data_type: data_type as i32,
        dims: dims.iter().map(|&d| d as i64).collect(),
        ..Default::default()
    }
}

/// A node of the default domain, named after its first output.
pub fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    let name = outputs.first().map_or_else(String::new, |s| s.to_string());
    crate::compress::graph::node(op, name, strings(inputs), strings(outputs), attrs)
}

/// An INT attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    crate::compress::graph::int_attr(name, v)
}

/// `Cast(input) -> output` to the ONNX data type `to`.
pub fn cast(input: &str, output: &str, to: DataType) -> NodeProto {
    node("Cast", &[input], &[output], vec![attr_int("to", to as i64)])
}

/// An INTS attribute.
pub fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..attr_int(name, 0)
    }
}

/// An opset-13 model (IR version 8) around one graph.
pub fn model(
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "ctr-edge-tests".into(),
        graph: Some(GraphProto {
            name: "main".into(),
            node: nodes,
            initializer: initializers,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Deterministic values in [-1, 1] that differ with `seed`.
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(40_503))
                >> 8;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// A fresh folder under the system temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/ctr-edge-<tag>-<pid>-<n>` (removing any leftover of that name).
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "ctr-edge-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create temporary folder");
        TempDir(d)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

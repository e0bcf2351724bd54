//! The ONNX graph as the compressor sees it: a decoded `ModelProto` (prost, `tract_onnx::pb`)
//! with every initializer's values in memory, and the few helpers the rewrite needs to read
//! float tensors, build new initializers and nodes, and keep tensor names unique.
//!
//! External data of an input model is read once, when loading, so every later step (site
//! discovery, calibration through tract, the rewrite and the artifact writer) works on one
//! self-contained `ModelProto`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Component, Path};

use half::f16;
use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::{DataLocation, DataType};
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

use ctr_edge_runtime::onnx::{external_bytes, tensor_byte_len};

use crate::artifact::{element_size, read_verified_weights, WEIGHTS_FILE};
use crate::error::{Error, Result};

/// Reads and decodes the ONNX file at `path`, and loads the values of external initializers
/// (`location` relative to the model's folder) into the tensors. The weights file of an
/// artifact must match what its model records ([`read_verified_weights`]). A model over the
/// native runtime's resource limits is refused first (`Error::Runtime` with
/// `ResourceLimit`), before it is decoded.
pub fn load_model(path: &Path) -> Result<ModelProto> {
    // Decoding and tract have no resource limits: a model the runtime's refuse stops here.
    crate::backend::check_resource_limits(path)?;
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut model = ModelProto::decode(bytes.as_slice()).map_err(|e| Error::InvalidModel {
        path: path.to_path_buf(),
        reason: format!("not an ONNX model: {e}"),
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    // An artifact's weights are checked against its metadata (every byte) before use.
    if let Some(weights) = read_verified_weights(path, &model.metadata_props)? {
        files.insert(WEIGHTS_FILE.to_string(), weights);
    }
    let graph = model.graph.as_mut().ok_or_else(|| Error::InvalidModel {
        path: path.to_path_buf(),
        reason: "the model has no graph".into(),
    })?;
    for t in &mut graph.initializer {
        if t.data_location == Some(DataLocation::External as i32) {
            load_external(t, base, &mut files).map_err(|reason| Error::InvalidModel {
                path: path.to_path_buf(),
                reason: format!("initializer '{}': {reason}", t.name),
            })?;
        }
    }
    Ok(model)
}

/// Moves the bytes an external tensor points to into its `raw_data`.
///
/// The location may name a file in a subfolder of the model's folder (ONNX allows it; the
/// runtime's artifacts use a plain file name), never one outside it; several files may be
/// used. Offset, length and the range in the file follow the runtime's rules
/// ([`ctr_edge_runtime::onnx::external_bytes`]): the tensor's size comes from its dims and
/// data type, `length` when given must equal it. For data types the artifact writer has no
/// element size for (STRING, 4-bit and 8-bit floats...) the size is `length`, or the rest of
/// the file when absent.
fn load_external(
    t: &mut TensorProto,
    base: &Path,
    files: &mut HashMap<String, Vec<u8>>,
) -> std::result::Result<(), String> {
    let entry = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    let location = entry("location").ok_or("external data without a location")?;
    let relative = Path::new(&location);
    // The location is relative to the model's folder and may not climb out of it.
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "external data location '{location}' leaves the model's folder"
        ));
    }
    let parse = |key: &str| -> std::result::Result<Option<u64>, String> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|e| format!("bad external {key} '{v}': {e}"))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;
    if !files.contains_key(&location) {
        let bytes = fs::read(base.join(relative))
            .map_err(|e| format!("cannot read external data '{location}': {e}"))?;
        files.insert(location.clone(), bytes);
    }
    let file = &files[&location];
    let reason = |e: ctr_edge_runtime::Error| match e {
        ctr_edge_runtime::Error::InvalidTensor { reason, .. } => reason,
        other => other.to_string(),
    };
    let byte_len = match element_size(t.data_type) {
        Some(size) => tensor_byte_len(&t.name, &t.dims, size as usize).map_err(reason)?,
        None => {
            // No element size: `length`, or the rest of the file.
            let len = length.unwrap_or_else(|| (file.len() as u64).saturating_sub(offset));
            usize::try_from(len).unwrap_or(usize::MAX)
        }
    };
    let bytes = external_bytes(&t.name, offset, length, byte_len, file).map_err(reason)?;
    t.raw_data = bytes.to_vec();
    t.data_location = None;
    t.external_data.clear();
    Ok(())
}

/// The graph of a model, or an error naming what is missing.
pub fn graph(model: &ModelProto) -> Result<&GraphProto> {
    model.graph.as_ref().ok_or_else(|| Error::InvalidArgument {
        reason: "the model has no graph".into(),
    })
}

/// The shape of a tensor as unsigned sizes, or `None` when a dimension is negative.
pub fn dims(t: &TensorProto) -> Option<Vec<usize>> {
    t.dims.iter().map(|&d| usize::try_from(d).ok()).collect()
}

/// Number of elements of a tensor, `None` on a negative dimension or overflow.
pub fn numel(t: &TensorProto) -> Option<usize> {
    dims(t)?
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Whether the tensor holds 32-bit floats.
pub fn is_f32(t: &TensorProto) -> bool {
    t.data_type == DataType::Float as i32
}

/// The values of a FLOAT tensor (from `float_data` or little-endian `raw_data`).
pub fn f32_values(t: &TensorProto) -> Result<Vec<f32>> {
    let bad = |reason: String| Error::InvalidArgument {
        reason: format!("initializer '{}': {reason}", t.name),
    };
    if !is_f32(t) {
        return Err(bad(format!("element type {} is not FLOAT", t.data_type)));
    }
    let n = numel(t).ok_or_else(|| bad("invalid dimensions".into()))?;
    let values: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    if values.len() != n || (!t.raw_data.is_empty() && t.raw_data.len() != 4 * n) {
        return Err(bad(format!(
            "holds {} values for shape {:?}",
            values.len(),
            t.dims
        )));
    }
    Ok(values)
}

/// A FLOAT initializer with `dims` and `values` (stored as raw little-endian bytes).
pub fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    debug_assert_eq!(dims.iter().product::<usize>(), values.len());
    TensorProto {
        name: name.to_owned(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

/// A FLOAT16 initializer with `dims` and `values` rounded to nearest.
pub fn f16_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: dims.to_vec(),
        data_type: DataType::Float16 as i32,
        raw_data: values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
        ..TensorProto::default()
    }
}

/// An integer attribute of a node, if present.
pub fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// A float attribute of a node, if present.
pub fn attr_float(node: &NodeProto, name: &str) -> Option<f32> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.f)
}

/// An INT attribute (the builder `onnx_build` and the tests use too).
pub fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..AttributeProto::default()
    }
}

/// A node of the default domain.
pub fn node(
    op_type: &str,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op_type.to_owned(),
        name,
        input: inputs,
        output: outputs,
        attribute: attributes,
        ..NodeProto::default()
    }
}

/// Hands out tensor and node names that no existing tensor or node of the graph uses.
#[derive(Debug, Default)]
pub struct Names {
    taken: HashSet<String>,
}

impl Names {
    /// Every name the graph already uses: inputs, outputs, initializers, node outputs, nodes.
    pub fn of(graph: &GraphProto) -> Names {
        let mut taken = HashSet::new();
        taken.extend(graph.input.iter().map(|v| v.name.clone()));
        taken.extend(graph.output.iter().map(|v| v.name.clone()));
        taken.extend(graph.value_info.iter().map(|v| v.name.clone()));
        taken.extend(graph.initializer.iter().map(|t| t.name.clone()));
        for n in &graph.node {
            taken.extend(n.output.iter().cloned());
            taken.extend(n.input.iter().cloned());
            taken.insert(n.name.clone());
        }
        Names { taken }
    }

    /// `base`, or `base_2`, `base_3`... whichever is free first; the name is then taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut i = 2;
        while self.taken.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_tensors_round_trip_through_raw_and_float_data() {
        let t = f32_tensor("w", &[2, 3], &[1.0, -2.0, 3.5, 0.0, 1e-3, 7.0]);
        assert_eq!(
            f32_values(&t).unwrap(),
            vec![1.0, -2.0, 3.5, 0.0, 1e-3, 7.0]
        );
        let typed = TensorProto {
            name: "v".into(),
            dims: vec![2],
            data_type: DataType::Float as i32,
            float_data: vec![4.0, 5.0],
            ..TensorProto::default()
        };
        assert_eq!(f32_values(&typed).unwrap(), vec![4.0, 5.0]);
        let short = TensorProto {
            dims: vec![3],
            ..typed
        };
        assert!(f32_values(&short).is_err());
    }

    #[test]
    fn fresh_names_avoid_existing_ones() {
        let graph = GraphProto {
            node: vec![node(
                "Relu",
                "r".into(),
                vec!["x".into()],
                vec!["y".into()],
                vec![],
            )],
            ..GraphProto::default()
        };
        let mut names = Names::of(&graph);
        assert_eq!(names.fresh("y"), "y_2");
        assert_eq!(names.fresh("y"), "y_3");
        assert_eq!(names.fresh("z"), "z");
    }
}

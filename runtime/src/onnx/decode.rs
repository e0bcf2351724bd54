//! The ONNX `ModelProto` decoder: walks the protobuf fields (see [`super::proto`]) and fills the
//! borrowed structs of [`super::types`].
//!
//! Rules it enforces (anything else is a typed [`Error::Protobuf`], never a panic):
//! - the wire format is well formed (see [`super::proto`]); known fields have their declared
//!   wire type; strings are valid UTF-8;
//! - singular message fields (`graph`, `type`, `t`, `g`...) appear at most once (the protobuf
//!   merge of repeated occurrences is not supported); singular scalars: the last one wins;
//! - subgraphs nest at most [`MAX_GRAPH_DEPTH`] deep (hostile files cannot exhaust the stack);
//! - a tensor has at most one data field, and `external_data` exactly when
//!   `data_location = EXTERNAL`; sparse initializers are rejected.
//!
//! Values (dims, sizes, dtypes, external offsets) are checked later, against the weights file,
//! by [`super::external::resolve_tensor`]. Errors carry a context path such as
//! `ModelProto.graph.node[12](name 'Gemm_3').attribute[0](name 'alpha')`; names are looked up
//! only when an error is reported.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::proto::{Field, Reader, WireError};
use super::types::*;
use crate::error::{Error, Result};

/// How deep subgraphs (attributes of `If`/`Loop`/`Scan`) may nest; the main graph is depth 0.
pub const MAX_GRAPH_DEPTH: usize = 32;

crate::tensor::code_table! {
    /// ONNX `AttributeProto.AttributeType` codes.
    mod attr_type {
        UNDEFINED = 0, FLOAT = 1, INT = 2, STRING = 3, TENSOR = 4, GRAPH = 5, FLOATS = 6,
        INTS = 7, STRINGS = 8, TENSORS = 9, GRAPHS = 10, SPARSE_TENSOR = 11, SPARSE_TENSORS = 12,
        TYPE_PROTO = 13, TYPE_PROTOS = 14,
    }
}

/// `TensorProto.DataLocation.EXTERNAL`.
const DATA_LOCATION_EXTERNAL: i32 = 1;

/// Where in the model a decoder is: a linked list on the stack, rendered only on error.
#[derive(Clone, Copy)]
struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    segment: Segment<'p>,
}

#[derive(Clone, Copy)]
enum Segment<'p> {
    /// The top-level message name.
    Root(&'static str),
    /// A singular field.
    Field(&'static str),
    /// Element `index` of a repeated message field; `message` holds its bytes so that its name
    /// (field `name_field`, a string) can be found when an error is rendered.
    Item {
        field: &'static str,
        index: usize,
        message: &'p [u8],
        name_field: u32,
    },
}

impl<'p> Path<'p> {
    fn root(name: &'static str) -> Path<'static> {
        Path {
            parent: None,
            segment: Segment::Root(name),
        }
    }

    fn field(&'p self, name: &'static str) -> Path<'p> {
        Path {
            parent: Some(self),
            segment: Segment::Field(name),
        }
    }

    fn item(
        &'p self,
        field: &'static str,
        index: usize,
        message: &'p [u8],
        name_field: u32,
    ) -> Path<'p> {
        Path {
            parent: Some(self),
            segment: Segment::Item {
                field,
                index,
                message,
                name_field,
            },
        }
    }

    /// A protobuf error at this place.
    fn error(&self, reason: impl fmt::Display) -> Error {
        Error::Protobuf {
            context: self.render(),
            reason: format!("{reason}"),
        }
    }

    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segments.push(p.segment);
            cur = p.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            match *segment {
                Segment::Root(name) => out.push_str(name),
                Segment::Field(name) => {
                    out.push('.');
                    out.push_str(name);
                }
                Segment::Item {
                    field,
                    index,
                    message,
                    name_field,
                } => {
                    out.push_str(&format!(".{field}[{index}]"));
                    if let Some(name) = find_name(message, name_field) {
                        out.push_str(&format!("(name '{name}')"));
                    }
                }
            }
        }
        out
    }
}

/// Best-effort lookup of a non-empty UTF-8 string field in a (possibly malformed) message.
fn find_name(message: &[u8], name_field: u32) -> Option<&str> {
    let mut r = Reader::new(message);
    let mut found = None;
    while let Ok(Some(f)) = r.next_field() {
        if f.number == name_field {
            if let Ok(s) = f.bytes().map(core::str::from_utf8) {
                found = s.ok().filter(|s| !s.is_empty());
            }
        }
    }
    found
}

/// Wire errors become protobuf errors at `path`.
trait AtPath<T> {
    fn at(self, path: &Path<'_>) -> Result<T>;
}

impl<T> AtPath<T> for core::result::Result<T, WireError> {
    fn at(self, path: &Path<'_>) -> Result<T> {
        self.map_err(|e| path.error(e))
    }
}

fn string<'a>(f: &Field<'a>, path: &Path<'_>, what: &str) -> Result<&'a str> {
    let bytes = f.bytes().at(path)?;
    core::str::from_utf8(bytes).map_err(|e| {
        path.error(format_args!(
            "{what} (field {}) at byte {} is not valid UTF-8: {e}",
            f.number, f.value_at
        ))
    })
}

/// Stores a singular message field, refusing a second occurrence.
fn once<'a>(slot: &mut Option<Field<'a>>, f: Field<'a>, path: &Path<'_>, what: &str) -> Result<()> {
    if slot.is_some() {
        return Err(path.error(format_args!(
            "field '{what}' (field {}) appears twice at byte {} (merging is not supported)",
            f.number, f.tag_at
        )));
    }
    f.bytes().at(path)?;
    *slot = Some(f);
    Ok(())
}

/// Field `number` (named `what` in errors) of the message `m`, which may hold it once.
fn only_field<'a>(
    m: &Field<'a>,
    path: &Path<'_>,
    number: u32,
    what: &str,
) -> Result<Option<Field<'a>>> {
    let mut r = m.message().at(path)?;
    let mut found = None;
    while let Some(f) = r.next_field().at(path)? {
        if f.number == number {
            once(&mut found, f, path, what)?;
        }
    }
    Ok(found)
}

/// Decodes an ONNX `ModelProto` from the bytes of a `.onnx` file, borrowing names and inline
/// tensor data from `bytes`.
///
/// Only the structure is checked here; tensor values are validated by
/// [`super::external::resolve_tensor`].
pub fn decode_model(bytes: &[u8]) -> Result<OnnxModel<'_>> {
    let path = Path::root("ModelProto");
    let mut r = Reader::new(bytes);
    let mut ir_version = 0;
    let mut opset_imports: Vec<(&str, i64)> = Vec::new();
    let mut producer_name = "";
    let mut graph = None;
    let mut metadata = Vec::new();
    while let Some(f) = r.next_field().at(&path)? {
        match f.number {
            1 => ir_version = f.int64().at(&path)?,
            2 => producer_name = string(&f, &path, "producer_name")?,
            7 => once(&mut graph, f, &path, "graph")?,
            8 => {
                let p = path.item("opset_import", opset_imports.len(), f.bytes().at(&path)?, 1);
                let (domain, version) = decode_opset(&f, &p)?;
                if opset_imports.iter().any(|(d, _)| *d == domain) {
                    return Err(p.error(format_args!("domain '{domain}' is imported twice")));
                }
                opset_imports.push((domain, version));
            }
            14 => {
                let p = path.item("metadata_props", metadata.len(), f.bytes().at(&path)?, 1);
                metadata.push(decode_string_entry(&f, &p)?);
            }
            _ => {}
        }
    }
    let graph = match graph {
        Some(f) => decode_graph(&f, &path.field("graph"), 0)?,
        None => return Err(path.error("the model has no graph")),
    };
    let opset = opset_imports
        .iter()
        .find(|(d, _)| d.is_empty() || *d == "ai.onnx")
        .map_or(0, |(_, v)| *v);
    Ok(OnnxModel {
        ir_version,
        opset,
        opset_imports,
        producer_name,
        graph,
        metadata,
    })
}

fn decode_opset<'a>(f: &Field<'a>, path: &Path<'_>) -> Result<(&'a str, i64)> {
    let mut r = f.message().at(path)?;
    let (mut domain, mut version) = ("", 0);
    while let Some(f) = r.next_field().at(path)? {
        match f.number {
            1 => domain = string(&f, path, "domain")?,
            2 => version = f.int64().at(path)?,
            _ => {}
        }
    }
    Ok((domain, version))
}

fn decode_string_entry<'a>(f: &Field<'a>, path: &Path<'_>) -> Result<(&'a str, &'a str)> {
    let mut r = f.message().at(path)?;
    let (mut key, mut value) = ("", "");
    while let Some(f) = r.next_field().at(path)? {
        match f.number {
            1 => key = string(&f, path, "key")?,
            2 => value = string(&f, path, "value")?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn decode_graph<'a>(f: &Field<'a>, path: &Path<'_>, depth: usize) -> Result<Graph<'a>> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(path.error(format_args!(
            "subgraphs nest deeper than {MAX_GRAPH_DEPTH} levels"
        )));
    }
    let mut r = f.message().at(path)?;
    let mut g = Graph::default();
    while let Some(f) = r.next_field().at(path)? {
        match f.number {
            1 => {
                let p = path.item("node", g.nodes.len(), f.bytes().at(path)?, 3);
                g.nodes.push(decode_node(&f, &p, depth)?);
            }
            2 => g.name = string(&f, path, "name")?,
            5 => {
                let p = path.item("initializer", g.initializers.len(), f.bytes().at(path)?, 8);
                g.initializers.push(decode_tensor(&f, &p)?);
            }
            11..=13 => {
                let (what, list) = match f.number {
                    11 => ("input", &mut g.inputs),
                    12 => ("output", &mut g.outputs),
                    _ => ("value_info", &mut g.value_info),
                };
                let p = path.item(what, list.len(), f.bytes().at(path)?, 1);
                list.push(decode_value_info(&f, &p)?);
            }
            15 => {
                return Err(path.error(format_args!(
                    "sparse initializers unsupported (sparse_initializer at byte {})",
                    f.tag_at
                )))
            }
            _ => {}
        }
    }
    Ok(g)
}

fn decode_node<'a>(f: &Field<'a>, path: &Path<'_>, depth: usize) -> Result<Node<'a>> {
    let mut r = f.message().at(path)?;
    let mut node = Node {
        name: "",
        op_type: "",
        domain: "",
        inputs: Vec::new(),
        outputs: Vec::new(),
        attributes: Vec::new(),
    };
    while let Some(f) = r.next_field().at(path)? {
        match f.number {
            1 => node.inputs.push(string(&f, path, "input")?),
            2 => node.outputs.push(string(&f, path, "output")?),
            3 => node.name = string(&f, path, "name")?,
            4 => node.op_type = string(&f, path, "op_type")?,
            5 => {
                let p = path.item("attribute", node.attributes.len(), f.bytes().at(path)?, 1);
                node.attributes.push(decode_attribute(&f, &p, depth)?);
            }
            7 => node.domain = string(&f, path, "domain")?,
            _ => {}
        }
    }
    if node.op_type.is_empty() {
        return Err(path.error("node has no op_type"));
    }
    Ok(node)
}

fn decode_attribute<'a>(f: &Field<'a>, path: &Path<'_>, depth: usize) -> Result<Attribute<'a>> {
    let mut r = f.message().at(path)?;
    let mut name = "";
    let mut declared_type = 0;
    let mut float = None;
    let mut int = None;
    let mut string_value = None;
    let mut tensor = None;
    let mut graph = None;
    let mut floats = Vec::new();
    let mut ints = Vec::new();
    let mut strings = Vec::new();
    // Attribute types whose value field appeared (to infer a missing `type`).
    let mut present: Vec<i32> = Vec::new();
    while let Some(f) = r.next_field().at(path)? {
        let kind = match f.number {
            1 => {
                name = string(&f, path, "name")?;
                continue;
            }
            2 => {
                float = Some(f.float().at(path)?);
                attr_type::FLOAT
            }
            3 => {
                int = Some(f.int64().at(path)?);
                attr_type::INT
            }
            4 => {
                string_value = Some(f.bytes().at(path)?);
                attr_type::STRING
            }
            5 => {
                once(&mut tensor, f, path, "t")?;
                attr_type::TENSOR
            }
            6 => {
                once(&mut graph, f, path, "g")?;
                attr_type::GRAPH
            }
            7 => {
                f.push_floats(&mut floats).at(path)?;
                attr_type::FLOATS
            }
            8 => {
                f.push_int64s(&mut ints).at(path)?;
                attr_type::INTS
            }
            9 => {
                strings.push(f.bytes().at(path)?);
                attr_type::STRINGS
            }
            // Kinds the runtime does not represent: tensors, graphs, sparse tensor(s), type
            // proto(s). Only their framing is checked.
            10 | 11 | 22 | 23 | 14 | 15 => {
                f.bytes().at(path)?;
                match f.number {
                    10 => attr_type::TENSORS,
                    11 => attr_type::GRAPHS,
                    22 => attr_type::SPARSE_TENSOR,
                    23 => attr_type::SPARSE_TENSORS,
                    14 => attr_type::TYPE_PROTO,
                    _ => attr_type::TYPE_PROTOS,
                }
            }
            20 => {
                declared_type = f.int32().at(path)?;
                continue;
            }
            21 => {
                let r = string(&f, path, "ref_attr_name")?;
                return Err(path.error(format_args!(
                    "attribute refers to function attribute '{r}' (ref_attr_name), which is only valid inside functions"
                )));
            }
            _ => continue,
        };
        if !present.contains(&kind) {
            present.push(kind);
        }
    }
    // IR version 1 files have no `type`: infer it from the one value field present.
    let kind =
        if declared_type != 0 {
            declared_type
        } else {
            match present.as_slice() {
                [k] => *k,
                [] => return Err(path.error("attribute has neither a type nor a value")),
                _ => return Err(path.error(
                    "attribute has no type and several value fields; cannot tell which is meant",
                )),
            }
        };
    // proto3 omits default values: a missing `f`/`i`/`s` is 0 / empty.
    let value = match kind {
        attr_type::FLOAT => AttrValue::Float(float.unwrap_or(0.0)),
        attr_type::INT => AttrValue::Int(int.unwrap_or(0)),
        attr_type::STRING => AttrValue::String(string_value.unwrap_or(&[])),
        attr_type::TENSOR => match tensor {
            Some(t) => AttrValue::Tensor(decode_tensor(&t, &path.field("t"))?),
            None => return Err(path.error("TENSOR attribute without a tensor (field t)")),
        },
        attr_type::GRAPH => match graph {
            Some(g) => AttrValue::Graph(Box::new(decode_graph(
                &g,
                &path.field("g"),
                depth.saturating_add(1),
            )?)),
            None => return Err(path.error("GRAPH attribute without a graph (field g)")),
        },
        attr_type::FLOATS => AttrValue::Floats(floats),
        attr_type::INTS => AttrValue::Ints(ints),
        attr_type::STRINGS => AttrValue::Strings(strings),
        other => {
            return Err(path.error(format_args!(
                "attribute type {other} ({}) is not supported",
                attr_type::name(other)
            )))
        }
    };
    Ok(Attribute { name, value })
}

fn decode_value_info<'a>(f: &Field<'a>, path: &Path<'_>) -> Result<ValueInfo<'a>> {
    let mut r = f.message().at(path)?;
    let mut info = ValueInfo {
        name: "",
        elem_type: 0,
        shape: None,
    };
    let mut type_proto = None;
    while let Some(f) = r.next_field().at(path)? {
        match f.number {
            1 => info.name = string(&f, path, "name")?,
            2 => once(&mut type_proto, f, path, "type")?,
            _ => {}
        }
    }
    let Some(type_proto) = type_proto else {
        return Ok(info);
    };
    // TypeProto: only tensor_type (1) is represented; sequences, maps... stay elem_type 0.
    let path = path.field("type");
    let Some(tensor_type) = only_field(&type_proto, &path, 1, "tensor_type")? else {
        return Ok(info);
    };
    let path = path.field("tensor_type");
    let mut r = tensor_type.message().at(&path)?;
    let mut shape = None;
    while let Some(f) = r.next_field().at(&path)? {
        match f.number {
            1 => info.elem_type = f.int32().at(&path)?,
            2 => once(&mut shape, f, &path, "shape")?,
            _ => {}
        }
    }
    if let Some(shape) = shape {
        let path = path.field("shape");
        let mut r = shape.message().at(&path)?;
        let mut dims = Vec::new();
        while let Some(f) = r.next_field().at(&path)? {
            if f.number == 1 {
                let p = path.item("dim", dims.len(), f.bytes().at(&path)?, 2);
                dims.push(decode_dim(&f, &p)?);
            }
        }
        info.shape = Some(dims);
    }
    Ok(info)
}

fn decode_dim<'a>(f: &Field<'a>, path: &Path<'_>) -> Result<Dim<'a>> {
    let mut r = f.message().at(path)?;
    let mut dim = Dim::Unknown;
    // `dim_value` and `dim_param` are a oneof: the last one wins.
    while let Some(f) = r.next_field().at(path)? {
        match f.number {
            1 => dim = Dim::Known(f.int64().at(path)?),
            2 => dim = Dim::Symbolic(string(&f, path, "dim_param")?),
            _ => {}
        }
    }
    Ok(dim)
}

fn decode_tensor<'a>(f: &Field<'a>, path: &Path<'_>) -> Result<TensorProto<'a>> {
    decode_tensor_message(f.message().at(path)?, path)
}

/// A standalone `TensorProto` with its values copied out: what [`decode_tensor_file`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedTensor {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: crate::tensor::DType,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// The values, owned.
    pub values: crate::tensor::OwnedData,
}

/// Decodes a serialized `TensorProto` on its own (the `input_N.pb`/`output_N.pb` files of the
/// ONNX backend tests, `onnx.numpy_helper.from_array(..).SerializeToString()`), with the same
/// wire decoding and value checks as an inline initializer.
///
/// Errors: [`Error::Protobuf`] or [`Error::InvalidTensor`] for malformed bytes,
/// [`Error::UnsupportedDType`] for a dtype outside the runtime's set (DOUBLE included: unlike
/// an initializer, a test value is not narrowed to f32), and [`Error::InvalidTensor`] for
/// external data, which a standalone tensor cannot resolve.
pub fn decode_tensor_file(bytes: &[u8]) -> Result<DecodedTensor> {
    let path = Path::root("TensorProto");
    let t = decode_tensor_message(Reader::new(bytes), &path)?;
    if crate::tensor::DType::from_onnx(t.data_type).is_none() {
        return Err(Error::UnsupportedDType {
            tensor: String::from(t.name),
            dtype: t.data_type,
        });
    }
    let c = super::external::resolve_tensor(&t, &[])?;
    match c.data {
        crate::tensor::ConstData::Owned(values) => Ok(DecodedTensor {
            name: String::from(t.name),
            dtype: c.dtype,
            shape: c.shape,
            values,
        }),
        crate::tensor::ConstData::Weights { .. } => Err(Error::InvalidTensor {
            tensor: String::from(t.name),
            reason: String::from("a standalone tensor cannot use external data"),
        }),
    }
}

fn decode_tensor_message<'a>(mut r: Reader<'a>, path: &Path<'_>) -> Result<TensorProto<'a>> {
    let mut name = "";
    let mut data_type = 0;
    let mut dims = Vec::new();
    let mut data_location = 0;
    let mut raw = None;
    let mut float_data = Vec::new();
    let mut int32_data = Vec::new();
    let mut int64_data = Vec::new();
    let mut double_data = Vec::new();
    let mut external: Vec<(&str, &str)> = Vec::new();
    // Names of the data fields present, in file order of first appearance.
    let mut data_fields: Vec<&'static str> = Vec::new();
    let mut mark = |field: &'static str| {
        if !data_fields.contains(&field) {
            data_fields.push(field);
        }
    };
    while let Some(f) = r.next_field().at(path)? {
        match f.number {
            1 => f.push_int64s(&mut dims).at(path)?,
            2 => data_type = f.int32().at(path)?,
            4 => {
                f.push_floats(&mut float_data).at(path)?;
                mark("float_data");
            }
            5 => {
                f.push_int32s(&mut int32_data).at(path)?;
                mark("int32_data");
            }
            6 => {
                f.bytes().at(path)?;
                mark("string_data");
            }
            7 => {
                f.push_int64s(&mut int64_data).at(path)?;
                mark("int64_data");
            }
            8 => name = string(&f, path, "name")?,
            9 => {
                raw = Some(f.bytes().at(path)?);
                mark("raw_data");
            }
            10 => {
                f.push_doubles(&mut double_data).at(path)?;
                mark("double_data");
            }
            11 => {
                // uint64_data: for UINT32/UINT64 tensors, which the runtime does not support.
                f.push_int64s(&mut Vec::new()).at(path)?;
                mark("uint64_data");
            }
            13 => {
                let p = path.item("external_data", external.len(), f.bytes().at(path)?, 1);
                let (key, value) = decode_string_entry(&f, &p)?;
                if external.iter().any(|(k, _)| *k == key) {
                    return Err(p.error(format_args!("external_data key '{key}' given twice")));
                }
                external.push((key, value));
            }
            14 => data_location = f.int32().at(path)?,
            _ => {}
        }
    }
    let data = match (data_location, data_fields.as_slice()) {
        (DATA_LOCATION_EXTERNAL, []) => decode_external(&external, path)?,
        (DATA_LOCATION_EXTERNAL, [field, ..]) => {
            return Err(path.error(format_args!(
                "tensor has data_location EXTERNAL and inline data ({field})"
            )))
        }
        (0, _) if !external.is_empty() => {
            return Err(
                path.error("tensor has external_data entries but data_location is not EXTERNAL")
            )
        }
        (0, []) => TensorData::Empty,
        (0, [only]) => match *only {
            "raw_data" => TensorData::Raw(raw.unwrap_or(&[])),
            "float_data" => TensorData::Floats(float_data),
            "int32_data" => TensorData::Int32s(int32_data),
            "int64_data" => TensorData::Int64s(int64_data),
            "double_data" => TensorData::Doubles(double_data),
            // Only valid for dtypes the runtime rejects anyway (STRING; UINT32/UINT64), whose
            // values it therefore does not keep.
            "string_data" if data_type == 8 => TensorData::Empty,
            "uint64_data" if data_type == 12 || data_type == 13 => TensorData::Empty,
            other => {
                return Err(path.error(format_args!(
                    "{other} given for a tensor of data type {data_type} ({})",
                    crate::tensor::onnx_dtype_name(data_type)
                )))
            }
        },
        (0, [first, second, ..]) => {
            return Err(path.error(format_args!(
                "tensor has several data fields ({first} and {second})"
            )))
        }
        (other, _) => {
            return Err(path.error(format_args!(
                "data_location {other} is neither DEFAULT (0) nor EXTERNAL (1)"
            )))
        }
    };
    Ok(TensorProto {
        name,
        data_type,
        dims,
        data,
    })
}

fn decode_external<'a>(entries: &[(&'a str, &'a str)], path: &Path<'_>) -> Result<TensorData<'a>> {
    let mut location = None;
    let mut offset = 0;
    let mut length = None;
    for &(key, value) in entries {
        match key {
            "location" => location = Some(value),
            "offset" => offset = parse_u64(value, "offset", path)?,
            "length" => length = Some(parse_u64(value, "length", path)?),
            // "checksum" and keys of later ONNX versions carry nothing the runtime checks here.
            _ => {}
        }
    }
    match location {
        Some(location) => Ok(TensorData::External {
            location,
            offset,
            length,
        }),
        None => Err(path.error("external tensor has no 'location' in external_data")),
    }
}

/// A decimal `u64` (digits only, no sign, no spaces).
fn parse_u64(s: &str, what: &str, path: &Path<'_>) -> Result<u64> {
    let bad = || {
        path.error(format_args!(
            "external_data {what} '{s}' is not a decimal byte count"
        ))
    };
    if s.is_empty() || s.len() > 20 {
        return Err(bad());
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        let digit = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return Err(bad()),
        };
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(digit))
            .ok_or_else(bad)?;
    }
    Ok(v)
}

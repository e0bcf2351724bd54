//! Test support shared by the `onnx_*` tests: a tiny protobuf *writer* (written independently of
//! the runtime's reader) and builders for ONNX messages, plus a small MLP model.
#![allow(dead_code)]

use ctr_edge_runtime::onnx::{self, AttrValue, Graph, OnnxModel, TensorProto};
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::tensor::{ConstData, ConstTensor, OwnedData};
use ctr_edge_runtime::{Error, Input};

/// ONNX data type codes used by the tests.
pub const FLOAT: i32 = 1;
pub const INT32: i32 = 6;
pub const INT64: i32 = 7;
pub const STRING: i32 = 8;
pub const BOOL: i32 = 9;
pub const FLOAT16: i32 = 10;
pub const DOUBLE: i32 = 11;

/// Appends a base-128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A protobuf message under construction (fields appended in call order).
#[derive(Clone, Debug, Default)]
pub struct Msg(pub Vec<u8>);

impl Msg {
    pub fn new() -> Msg {
        Msg(Vec::new())
    }

    fn tag(mut self, field: u32, wire: u8) -> Msg {
        put_varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire));
        self
    }

    /// Raw bytes appended as they are (for hand-made malformations).
    pub fn raw(mut self, bytes: &[u8]) -> Msg {
        self.0.extend_from_slice(bytes);
        self
    }

    pub fn varint(self, field: u32, v: u64) -> Msg {
        let mut m = self.tag(field, 0);
        put_varint(&mut m.0, v);
        m
    }

    pub fn int(self, field: u32, v: i64) -> Msg {
        self.varint(field, v as u64)
    }

    pub fn fixed32(self, field: u32, v: u32) -> Msg {
        let mut m = self.tag(field, 5);
        m.0.extend_from_slice(&v.to_le_bytes());
        m
    }

    pub fn float(self, field: u32, v: f32) -> Msg {
        self.fixed32(field, v.to_bits())
    }

    pub fn fixed64(self, field: u32, v: u64) -> Msg {
        let mut m = self.tag(field, 1);
        m.0.extend_from_slice(&v.to_le_bytes());
        m
    }

    pub fn bytes(self, field: u32, b: &[u8]) -> Msg {
        let mut m = self.tag(field, 2);
        put_varint(&mut m.0, b.len() as u64);
        m.0.extend_from_slice(b);
        m
    }

    pub fn string(self, field: u32, s: &str) -> Msg {
        self.bytes(field, s.as_bytes())
    }

    pub fn msg(self, field: u32, m: &Msg) -> Msg {
        self.bytes(field, &m.0)
    }

    pub fn packed_varints(self, field: u32, vs: &[i64]) -> Msg {
        let mut payload = Vec::new();
        for &v in vs {
            put_varint(&mut payload, v as u64);
        }
        self.bytes(field, &payload)
    }

    pub fn packed_floats(self, field: u32, vs: &[f32]) -> Msg {
        let payload: Vec<u8> = vs.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &payload)
    }

    pub fn packed_doubles(self, field: u32, vs: &[f64]) -> Msg {
        let payload: Vec<u8> = vs.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &payload)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

// ---- ONNX message builders (field numbers from onnx.proto3) ----

/// TensorProto header: name, data_type, dims (packed).
pub fn tensor(name: &str, data_type: i32, dims: &[i64]) -> Msg {
    Msg::new()
        .packed_varints(1, dims)
        .int(2, i64::from(data_type))
        .string(8, name)
}

pub fn tensor_raw(name: &str, data_type: i32, dims: &[i64], raw: &[u8]) -> Msg {
    tensor(name, data_type, dims).bytes(9, raw)
}

pub fn tensor_floats(name: &str, dims: &[i64], values: &[f32]) -> Msg {
    tensor(name, FLOAT, dims).packed_floats(4, values)
}

pub fn tensor_int64s(name: &str, dims: &[i64], values: &[i64]) -> Msg {
    tensor(name, INT64, dims).packed_varints(7, values)
}

pub fn string_entry(key: &str, value: &str) -> Msg {
    Msg::new().string(1, key).string(2, value)
}

/// An external tensor: `external_data` entries and `data_location = EXTERNAL`.
pub fn tensor_external(
    name: &str,
    data_type: i32,
    dims: &[i64],
    location: &str,
    offset: u64,
    length: Option<u64>,
) -> Msg {
    let mut m = tensor(name, data_type, dims)
        .msg(13, &string_entry("location", location))
        .msg(13, &string_entry("offset", &offset.to_string()));
    if let Some(l) = length {
        m = m.msg(13, &string_entry("length", &l.to_string()));
    }
    m.int(14, 1)
}

/// A dimension of a value info shape.
#[derive(Clone, Copy, Debug)]
pub enum D<'s> {
    V(i64),
    P(&'s str),
}

pub fn value_info(name: &str, elem_type: i32, dims: &[D<'_>]) -> Msg {
    let mut shape = Msg::new();
    for d in dims {
        let dim = match *d {
            D::V(v) => Msg::new().int(1, v),
            D::P(p) => Msg::new().string(2, p),
        };
        shape = shape.msg(1, &dim);
    }
    let tensor_type = Msg::new().int(1, i64::from(elem_type)).msg(2, &shape);
    let type_proto = Msg::new().msg(1, &tensor_type);
    Msg::new().string(1, name).msg(2, &type_proto)
}

pub fn attr_int(name: &str, v: i64) -> Msg {
    Msg::new().string(1, name).int(3, v).int(20, 2)
}

pub fn attr_float(name: &str, v: f32) -> Msg {
    Msg::new().string(1, name).float(2, v).int(20, 1)
}

pub fn attr_ints(name: &str, vs: &[i64]) -> Msg {
    Msg::new().string(1, name).packed_varints(8, vs).int(20, 7)
}

pub fn attr_floats(name: &str, vs: &[f32]) -> Msg {
    Msg::new().string(1, name).packed_floats(7, vs).int(20, 6)
}

pub fn attr_string(name: &str, s: &[u8]) -> Msg {
    Msg::new().string(1, name).bytes(4, s).int(20, 3)
}

pub fn attr_strings(name: &str, ss: &[&[u8]]) -> Msg {
    let mut m = Msg::new().string(1, name);
    for s in ss {
        m = m.bytes(9, s);
    }
    m.int(20, 8)
}

pub fn attr_tensor(name: &str, t: &Msg) -> Msg {
    Msg::new().string(1, name).msg(5, t).int(20, 4)
}

pub fn attr_graph(name: &str, g: &Msg) -> Msg {
    Msg::new().string(1, name).msg(6, g).int(20, 5)
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: &[Msg]) -> Msg {
    let mut m = Msg::new();
    for i in inputs {
        m = m.string(1, i);
    }
    for o in outputs {
        m = m.string(2, o);
    }
    m = m.string(3, name).string(4, op);
    for a in attrs {
        m = m.msg(5, a);
    }
    m
}

/// A node written `"OpType name: in1 in2 -> out1"` (an omitted optional input is `_`), with
/// its attributes: one short line per node in the graphs of the tests.
pub fn op(spec: &str, attrs: &[Msg]) -> Msg {
    let (head, io) = spec
        .split_once(':')
        .expect("'OpType name: inputs -> outputs'");
    let (op_type, name) = head.split_once(' ').expect("op type and node name");
    let (ins, outs) = io
        .split_once("->")
        .expect("'->' between inputs and outputs");
    fn names(s: &str) -> Vec<&str> {
        s.split_whitespace()
            .map(|v| if v == "_" { "" } else { v })
            .collect()
    }
    node(op_type, name, &names(ins), &names(outs), attrs)
}

pub fn graph(name: &str, nodes: &[Msg], inits: &[Msg], inputs: &[Msg], outputs: &[Msg]) -> Msg {
    let mut m = Msg::new();
    for n in nodes {
        m = m.msg(1, n);
    }
    m = m.string(2, name);
    for t in inits {
        m = m.msg(5, t);
    }
    for i in inputs {
        m = m.msg(11, i);
    }
    for o in outputs {
        m = m.msg(12, o);
    }
    m
}

pub fn model(graph: &Msg) -> Msg {
    Msg::new()
        .int(1, 8)
        .string(2, "ctr-edge-tests")
        .msg(7, graph)
        .msg(8, &Msg::new().string(1, "").int(2, 13))
}

pub fn model_bytes(graph: &Msg) -> Vec<u8> {
    model(graph).into_bytes()
}

// ---- the MLP used by several tests ----

pub const W1_VALUES: usize = 4 * 8;
pub const W2_OFFSET: usize = 192;

pub fn w1() -> Vec<f32> {
    (0..W1_VALUES).map(|i| i as f32 * 0.25 - 3.0).collect()
}

pub fn w2() -> Vec<f32> {
    (0..8).map(|i| 1.0 / (i as f32 + 1.0)).collect()
}

pub fn b1() -> Vec<f32> {
    (0..8).map(|i| i as f32 * -0.5).collect()
}

/// A weights buffer laid out as the artifact contract says: W1 at 0, W2 at 192 (64-aligned).
/// Backed by `u64`s so that its base address is 8-aligned whatever the allocator does.
pub struct Weights(Vec<u64>);

impl Weights {
    pub fn mlp() -> Weights {
        let mut w = Weights::zeroed(W2_OFFSET + 8 * 4);
        w.put_f32(0, &w1());
        w.put_f32(W2_OFFSET, &w2());
        w
    }

    pub fn zeroed(len: usize) -> Weights {
        assert_eq!(len % 8, 0);
        Weights(vec![0u64; len / 8])
    }

    pub fn put_f32(&mut self, offset: usize, values: &[f32]) {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.0);
        for (i, v) in values.iter().enumerate() {
            bytes[offset + 4 * i..offset + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
    }

    pub fn put_bytes(&mut self, offset: usize, b: &[u8]) {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.0);
        bytes[offset..offset + b.len()].copy_from_slice(b);
    }

    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// x[batch,4] -> Flatten -> MatMul W1 (external) -> Add b1 (raw) -> Relu -> MatMul W2
/// (external) -> Add b2 (float_data) -> Sigmoid -> y[batch,1]; plus an unused Constant node
/// holding an int64 tensor attribute.
pub fn mlp_graph() -> Msg {
    let b1_raw: Vec<u8> = b1().iter().flat_map(|v| v.to_le_bytes()).collect();
    let inits = [
        tensor_external("W1", FLOAT, &[4, 8], "model.weights", 0, Some(128)),
        tensor_raw("b1", FLOAT, &[8], &b1_raw),
        tensor_external(
            "W2",
            FLOAT,
            &[8, 1],
            "model.weights",
            W2_OFFSET as u64,
            None,
        ),
        tensor_floats("b2", &[1], &[0.125]),
    ];
    let nodes = [
        op("Flatten flatten: x -> xf", &[attr_int("axis", 1)]),
        op("MatMul fc1: xf W1 -> h1", &[]),
        op("Add fc1_bias: h1 b1 -> h2", &[]),
        op("Relu relu: h2 -> h3", &[]),
        op("MatMul fc2: h3 W2 -> h4", &[]),
        op("Add fc2_bias: h4 b2 -> h5", &[]),
        op("Sigmoid sigmoid: h5 -> y", &[]),
        op(
            "Constant shape_const: -> shape",
            &[attr_tensor("value", &tensor_int64s("", &[2], &[-1, 8]))],
        ),
    ];
    graph(
        "mlp",
        &nodes,
        &inits,
        &[value_info("x", FLOAT, &[D::P("batch"), D::V(4)])],
        &[value_info("y", FLOAT, &[D::P("batch"), D::V(1)])],
    )
    .msg(13, &value_info("h1", FLOAT, &[D::P("batch"), D::V(8)]))
}

pub fn mlp_model() -> Msg {
    model(&mlp_graph())
        .msg(14, &string_entry("ctr_edge.version", "0.1.0"))
        .msg(14, &string_entry("ctr_edge.method", "none"))
}

pub fn mlp_bytes() -> Vec<u8> {
    mlp_model().into_bytes()
}

// ---- loading everything a file holds ----

/// Every tensor of a graph: initializers and tensor attributes, subgraphs included.
pub fn all_tensors<'g, 'a>(g: &'g Graph<'a>, out: &mut Vec<&'g TensorProto<'a>>) {
    out.extend(g.initializers.iter());
    for n in &g.nodes {
        for a in &n.attributes {
            match &a.value {
                AttrValue::Tensor(t) => out.push(t),
                AttrValue::Graph(sub) => all_tensors(sub, out),
                _ => {}
            }
        }
    }
}

/// Decodes, checks the weights file name and resolves every tensor: what a loader does.
pub fn load<'a>(onnx_bytes: &'a [u8], weights: &[u8]) -> Result<OnnxModel<'a>, Error> {
    let m = onnx::decode_model(onnx_bytes)?;
    onnx::external_location(&m)?;
    let mut tensors = Vec::new();
    all_tensors(&m.graph, &mut tensors);
    for t in tensors {
        let c = onnx::resolve_tensor(t, weights)?;
        // Whatever was accepted must be viewable without panicking.
        let _ = values_bytes(&c, weights);
    }
    Ok(m)
}

/// The little-endian bytes of a constant's values (viewing weights in place).
pub fn values_bytes(c: &ConstTensor, weights: &[u8]) -> Vec<u8> {
    match &c.data {
        ConstData::Weights { offset, byte_len } => weights[*offset..*offset + *byte_len].to_vec(),
        ConstData::Owned(d) => match d {
            OwnedData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            OwnedData::F16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
            OwnedData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            OwnedData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            OwnedData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        },
    }
}

/// Name of an error's variant, for corpus expectations.
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Protobuf { .. } => "Protobuf",
        Error::InvalidTensor { .. } => "InvalidTensor",
        Error::UnsupportedDType { .. } => "UnsupportedDType",
        Error::Weights { .. } => "Weights",
        _ => "other",
    }
}

/// 64-bit FNV-1a, to compare tensor values with the Python reference.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

// ---- canonical text dump, compared with the one `corpus/reference/make_reference.py` writes
// with the Python `onnx` package ----

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dump_dims(dims: &[onnx::Dim<'_>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            onnx::Dim::Known(v) => v.to_string(),
            onnx::Dim::Symbolic(p) => (*p).to_string(),
            onnx::Dim::Unknown => "?".to_string(),
        })
        .collect();
    format!("[{}]", parts.join(","))
}

fn dump_value_info(out: &mut String, indent: &str, what: &str, v: &onnx::ValueInfo<'_>) {
    let shape = match &v.shape {
        Some(dims) => dump_dims(dims),
        None => "none".to_string(),
    };
    out.push_str(&format!(
        "{indent}{what} '{}' elem {} shape {shape}\n",
        v.name, v.elem_type
    ));
}

fn dump_tensor(out: &mut String, indent: &str, what: &str, t: &TensorProto<'_>, weights: &[u8]) {
    let kind = match &t.data {
        onnx::TensorData::Raw(_) => "raw",
        onnx::TensorData::External { .. } => "external",
        onnx::TensorData::Floats(_) => "float_data",
        onnx::TensorData::Int32s(_) => "int32_data",
        onnx::TensorData::Int64s(_) => "int64_data",
        onnx::TensorData::Doubles(_) => "double_data",
        onnx::TensorData::Empty => "empty",
    };
    let dims: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
    let hash = match onnx::resolve_tensor(t, weights) {
        Ok(c) => format!("{:016x}", fnv1a(&values_bytes(&c, weights))),
        Err(Error::UnsupportedDType { .. }) => "unsupported".to_string(),
        Err(e) => format!("error {e}"),
    };
    out.push_str(&format!(
        "{indent}{what} '{}' type {} dims [{}] data {kind} hash {hash}\n",
        t.name,
        t.data_type,
        dims.join(",")
    ));
}

fn dump_graph(out: &mut String, indent: &str, g: &Graph<'_>, weights: &[u8]) {
    out.push_str(&format!("{indent}graph '{}'\n", g.name));
    for v in &g.inputs {
        dump_value_info(out, indent, "input", v);
    }
    for v in &g.outputs {
        dump_value_info(out, indent, "output", v);
    }
    for v in &g.value_info {
        dump_value_info(out, indent, "value_info", v);
    }
    for t in &g.initializers {
        dump_tensor(out, indent, "initializer", t, weights);
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let quote = |v: &[&str]| {
            let q: Vec<String> = v.iter().map(|s| format!("'{s}'")).collect();
            format!("[{}]", q.join(","))
        };
        out.push_str(&format!(
            "{indent}node {i} '{}' op '{}' domain '{}' in {} out {}\n",
            n.name,
            n.op_type,
            n.domain,
            quote(&n.inputs),
            quote(&n.outputs)
        ));
        for a in &n.attributes {
            let head = format!("{indent}  attr '{}'", a.name);
            match &a.value {
                AttrValue::Float(f) => out.push_str(&format!("{head} float {:08x}\n", f.to_bits())),
                AttrValue::Int(i) => out.push_str(&format!("{head} int {i}\n")),
                AttrValue::String(s) => out.push_str(&format!("{head} string {}\n", hex(s))),
                AttrValue::Floats(fs) => {
                    let v: Vec<String> =
                        fs.iter().map(|f| format!("{:08x}", f.to_bits())).collect();
                    out.push_str(&format!("{head} floats [{}]\n", v.join(",")));
                }
                AttrValue::Ints(is) => {
                    let v: Vec<String> = is.iter().map(|i| i.to_string()).collect();
                    out.push_str(&format!("{head} ints [{}]\n", v.join(",")));
                }
                AttrValue::Strings(ss) => {
                    let v: Vec<String> = ss.iter().map(|s| hex(s)).collect();
                    out.push_str(&format!("{head} strings [{}]\n", v.join(",")));
                }
                AttrValue::Tensor(t) => {
                    out.push_str(&format!("{head} tensor\n"));
                    dump_tensor(out, &format!("{indent}    "), "tensor", t, weights);
                }
                AttrValue::Graph(g) => {
                    out.push_str(&format!("{head} graph\n"));
                    dump_graph(out, &format!("{indent}    "), g, weights);
                }
            }
        }
    }
}

/// The canonical dump of a decoded model (see `corpus/reference/make_reference.py`).
pub fn dump(m: &OnnxModel<'_>, weights: &[u8]) -> String {
    let mut out = String::new();
    out.push_str(&format!("ir_version {}\n", m.ir_version));
    for (d, v) in &m.opset_imports {
        out.push_str(&format!("opset_import '{d}' {v}\n"));
    }
    out.push_str(&format!("producer '{}'\n", m.producer_name));
    for (k, v) in &m.metadata {
        out.push_str(&format!("metadata '{k}' '{v}'\n"));
    }
    dump_graph(&mut out, "", &m.graph, weights);
    out
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A named input for `Session::run`.
pub fn input<'a>(name: &'a str, shape: &'a [usize], data: InputData<'a>) -> Input<'a> {
    Input { name, shape, data }
}

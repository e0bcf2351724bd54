//! The decoded ONNX model: the subset of `ModelProto` the runtime uses, borrowing strings and raw
//! tensor bytes from the file (no copies of weight data).

use alloc::boxed::Box;
use alloc::vec::Vec;

/// `ModelProto`.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxModel<'a> {
    /// `ir_version`.
    pub ir_version: i64,
    /// Version of the default ONNX domain (`""` or `ai.onnx`) from `opset_import` (0 if absent).
    pub opset: i64,
    /// All `opset_import` entries: (domain, version).
    pub opset_imports: Vec<(&'a str, i64)>,
    /// `producer_name`.
    pub producer_name: &'a str,
    /// The main graph.
    pub graph: Graph<'a>,
    /// `metadata_props` (key, value).
    pub metadata: Vec<(&'a str, &'a str)>,
}

/// `GraphProto`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph<'a> {
    /// Graph name.
    pub name: &'a str,
    /// Nodes in file order.
    pub nodes: Vec<Node<'a>>,
    /// Initializers.
    pub initializers: Vec<TensorProto<'a>>,
    /// Graph inputs (may include initializers for old IR versions).
    pub inputs: Vec<ValueInfo<'a>>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfo<'a>>,
    /// `value_info`: types/shapes of intermediate values, when the file records them.
    pub value_info: Vec<ValueInfo<'a>>,
}

/// `NodeProto`.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    /// Node name (may be empty).
    pub name: &'a str,
    /// Op type, e.g. `MatMul`.
    pub op_type: &'a str,
    /// Domain (`""` for the default ONNX domain).
    pub domain: &'a str,
    /// Input value names; an empty string marks an omitted optional input.
    pub inputs: Vec<&'a str>,
    /// Output value names.
    pub outputs: Vec<&'a str>,
    /// Attributes.
    pub attributes: Vec<Attribute<'a>>,
}

impl<'a> Node<'a> {
    /// The attribute named `name`, if any.
    pub fn attr(&self, name: &str) -> Option<&AttrValue<'a>> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }
}

/// `AttributeProto` (name and typed value).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute<'a> {
    /// Attribute name.
    pub name: &'a str,
    /// Value.
    pub value: AttrValue<'a>,
}

/// The value of an attribute, by its `type` field.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue<'a> {
    /// FLOAT
    Float(f32),
    /// INT
    Int(i64),
    /// STRING (raw bytes)
    String(&'a [u8]),
    /// TENSOR
    Tensor(TensorProto<'a>),
    /// GRAPH (subgraph of `If`/`Loop`)
    Graph(Box<Graph<'a>>),
    /// FLOATS
    Floats(Vec<f32>),
    /// INTS
    Ints(Vec<i64>),
    /// STRINGS
    Strings(Vec<&'a [u8]>),
}

/// `ValueInfoProto` restricted to tensor types.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo<'a> {
    /// Value name.
    pub name: &'a str,
    /// ONNX element type code (0 when absent).
    pub elem_type: i32,
    /// Shape, when the file gives one.
    pub shape: Option<Vec<Dim<'a>>>,
}

/// One dimension of a `TensorShapeProto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim<'a> {
    /// `dim_value`
    Known(i64),
    /// `dim_param` (e.g. `batch`)
    Symbolic(&'a str),
    /// neither set
    Unknown,
}

/// `TensorProto`, with its data left in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorProto<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// ONNX element type code.
    pub data_type: i32,
    /// Dimensions as written (checked later).
    pub dims: Vec<i64>,
    /// Where the values are.
    pub data: TensorData<'a>,
}

/// The storage of a `TensorProto`'s values.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData<'a> {
    /// `raw_data` bytes (little-endian).
    Raw(&'a [u8]),
    /// `data_location = EXTERNAL` with its `external_data` entries.
    External {
        /// `location` (relative path of the weights file).
        location: &'a str,
        /// `offset` in bytes (0 when absent).
        offset: u64,
        /// `length` in bytes, when given.
        length: Option<u64>,
    },
    /// `float_data`.
    Floats(Vec<f32>),
    /// `int32_data` (also carries FLOAT16 bits, INT32, BOOL...).
    Int32s(Vec<i32>),
    /// `int64_data`.
    Int64s(Vec<i64>),
    /// `double_data`.
    Doubles(Vec<f64>),
    /// No data fields at all (valid for empty tensors).
    Empty,
}

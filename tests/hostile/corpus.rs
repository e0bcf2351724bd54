//! The hostile corpus: models (and model/weights pairs) built to hurt a loader, each with the
//! outcome a correct runtime gives. Shared, by `#[path]`, by the C ABI's test
//! (`runtime/ffi/tests/hostile_c.rs`) and the command line's (`exporter/tests/hostile_cli.rs`),
//! which run every case in a child process under a time and memory watch.
//!
//! Self-contained on purpose (std only): its protobuf writer, its FNV-1a and its reference
//! arithmetic are independent of the runtime and the exporter they test. The files are written
//! at test time (the node-count bomb alone is 10 MB); nothing here is committed but this source.

#![allow(dead_code)] // each test uses a part

use std::path::{Path, PathBuf};

/// What a correct runtime does with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Loads and runs; output 0 equals [`Case::reference`] (when given).
    Ok,
    /// A resource limit (nodes, depth, folded-constant or scratch bytes, overflowing sizes).
    ResourceLimit,
    /// The weights file does not belong to the model.
    WeightsMismatch,
    /// Malformed or inconsistent model.
    InvalidModel,
    /// An op the runtime lacks.
    Unsupported,
    /// The file cannot be opened as a regular file.
    Io,
    /// Non-finite values (in the inputs or the scores they give).
    NotFinite,
    /// An id outside its table.
    IdOutOfRange,
}

impl Expect {
    /// The C API's status name for this outcome.
    pub fn c_status(self) -> &'static str {
        match self {
            Expect::Ok => "OK",
            Expect::ResourceLimit => "RESOURCE_LIMIT",
            Expect::WeightsMismatch => "WEIGHTS_MISMATCH",
            Expect::InvalidModel => "INVALID_MODEL",
            Expect::Unsupported => "UNSUPPORTED",
            Expect::Io => "IO",
            Expect::NotFinite => "NOT_FINITE",
            Expect::IdOutOfRange => "ID_OUT_OF_RANGE",
        }
    }

    /// A piece of the message the runtime's error gives (and the command line repeats).
    pub fn message(self) -> Option<&'static str> {
        match self {
            Expect::Ok | Expect::InvalidModel | Expect::Io => None,
            Expect::ResourceLimit => Some("resource limit"),
            Expect::WeightsMismatch => Some("does not belong"),
            Expect::Unsupported => Some("unsupported"),
            Expect::NotFinite => Some("non-finite"),
            Expect::IdOutOfRange => Some("outside the table"),
        }
    }
}

/// One model input as the drivers feed it: float inputs get
/// `float_fill * ((i % 7 + 1) / 7)` at flat position `i`, integer ones `id_fill + i % 3`.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub name: String,
    /// `true` for int64 ids, `false` for f32.
    pub ids: bool,
    /// Dimensions after the batch.
    pub dims: Vec<usize>,
}

/// One hostile case, written to `dir/model.onnx` (and `dir/model.weights` when it has one).
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub batch: usize,
    pub float_fill: f32,
    pub id_fill: i64,
    pub inputs: Vec<InputSpec>,
    pub expect: Expect,
    /// Output 0 for `Expect::Ok` cases, computed here in f64 from the construction.
    pub reference: Option<Vec<f32>>,
    /// Big cases (slow under valgrind).
    pub big: bool,
}

impl Case {
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }
}

/// The fill of flat position `i` of a float input.
pub fn float_value(fill: f32, i: usize) -> f32 {
    fill * ((i % 7 + 1) as f32 / 7.0)
}

/// The fill of flat position `i` of an id input.
pub fn id_value(fill: i64, i: usize) -> i64 {
    fill + (i % 3) as i64
}

// ---------------------------------------------------------------------------------------------
// A minimal protobuf writer for the ONNX messages the cases need (field numbers of onnx.proto).

#[derive(Default, Clone)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }
    fn int(mut self, field: u32, v: i64) -> Msg {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn bytes(mut self, field: u32, b: &[u8]) -> Msg {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, field: u32, s: &str) -> Msg {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u32, m: &Msg) -> Msg {
        self.bytes(field, &m.0)
    }
}

const FLOAT: i64 = 1;
const INT64: i64 = 7;

fn tensor(name: &str, dtype: i64, dims: &[i64], raw: &[u8]) -> Msg {
    let mut t = Msg::default();
    for &d in dims {
        t = t.int(1, d);
    }
    t.int(2, dtype).str(8, name).bytes(9, raw)
}

fn tensor_f32(name: &str, dims: &[i64], v: &[f32]) -> Msg {
    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    tensor(name, FLOAT, dims, &raw)
}

fn tensor_i64(name: &str, dims: &[i64], v: &[i64]) -> Msg {
    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    tensor(name, INT64, dims, &raw)
}

fn entry(key: &str, value: &str) -> Msg {
    Msg::default().str(1, key).str(2, value)
}

fn tensor_external(name: &str, dims: &[i64], offset: u64, length: u64) -> Msg {
    let mut t = Msg::default();
    for &d in dims {
        t = t.int(1, d);
    }
    t.int(2, FLOAT)
        .str(8, name)
        .msg(13, &entry("location", "model.weights"))
        .msg(13, &entry("offset", &offset.to_string()))
        .msg(13, &entry("length", &length.to_string()))
        .int(14, 1)
}

enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
    Tensor(&'a str, Msg),
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<Attr<'_>>) -> Msg {
    let mut n = Msg::default();
    for i in inputs {
        n = n.str(1, i);
    }
    for o in outputs {
        n = n.str(2, o);
    }
    n = n.str(3, &format!("{op}_{}", outputs.first().unwrap_or(&"")));
    n = n.str(4, op);
    for a in attrs {
        let m = match a {
            Attr::Int(name, v) => Msg::default().str(1, name).int(3, v).int(20, 2),
            Attr::Ints(name, vs) => {
                let mut m = Msg::default().str(1, name);
                for &v in vs {
                    m = m.int(8, v);
                }
                m.int(20, 7)
            }
            Attr::Tensor(name, t) => Msg::default().str(1, name).msg(5, &t).int(20, 4),
        };
        n = n.msg(5, &m);
    }
    n
}

/// A dimension of a value's type: a number, or the symbolic batch `N`.
#[derive(Clone, Copy)]
enum Dim {
    N,
    V(i64),
    /// Another symbolic dimension.
    P(&'static str),
}

fn value_info(name: &str, elem: i64, dims: &[Dim]) -> Msg {
    let mut shape = Msg::default();
    for d in dims {
        let dim = match d {
            Dim::N => Msg::default().str(2, "N"),
            Dim::P(name) => Msg::default().str(2, name),
            Dim::V(v) => Msg::default().int(1, *v),
        };
        shape = shape.msg(1, &dim);
    }
    let tensor_type = Msg::default().int(1, elem).msg(2, &shape);
    let ty = Msg::default().msg(1, &tensor_type);
    Msg::default().str(1, name).msg(2, &ty)
}

struct Graph {
    nodes: Vec<Msg>,
    inits: Vec<Msg>,
    inputs: Vec<Msg>,
    outputs: Vec<Msg>,
    metadata: Vec<(String, String)>,
}

impl Graph {
    fn new(inputs: Vec<Msg>, outputs: Vec<Msg>) -> Graph {
        Graph {
            nodes: Vec::new(),
            inits: Vec::new(),
            inputs,
            outputs,
            metadata: Vec::new(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut g = Msg::default();
        for n in &self.nodes {
            g = g.msg(1, n);
        }
        g = g.str(2, "hostile");
        for t in &self.inits {
            g = g.msg(5, t);
        }
        for i in &self.inputs {
            g = g.msg(11, i);
        }
        for o in &self.outputs {
            g = g.msg(12, o);
        }
        let opset = Msg::default().str(1, "").int(2, 17);
        let mut m = Msg::default()
            .int(1, 8)
            .str(2, "ctr-edge hostile corpus")
            .msg(7, &g)
            .msg(8, &opset);
        for (k, v) in &self.metadata {
            m = m.msg(14, &entry(k, v));
        }
        m.0
    }
}

/// The FNV-1a 64-bit hash (an independent copy of the artifact contract's definition).
fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// `metadata_props` an exporter-written artifact carries for `weights` (DESIGN's artifact
/// contract: size, sampled identity, full checksum).
fn artifact_metadata(weights: &[u8]) -> Vec<(String, String)> {
    let mut id = fnv1a(FNV_BASIS, &(weights.len() as u64).to_le_bytes());
    if weights.len() <= 4096 * 64 {
        id = fnv1a(id, weights);
    } else {
        let last = weights.len() - 4096;
        for i in 0..64u128 {
            let start = (last as u128 * i / 63) as usize;
            id = fnv1a(id, &weights[start..start + 4096]);
        }
    }
    vec![
        ("ctr_edge.weights_bytes".into(), weights.len().to_string()),
        (
            "ctr_edge.weights_identity".into(),
            format!("fnv1a64-sampled:{id:016x}"),
        ),
        (
            "ctr_edge.weights_checksum".into(),
            format!("fnv1a64:{:016x}", fnv1a(FNV_BASIS, weights)),
        ),
    ]
}

/// A small deterministic value stream in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The cases.

const FEATURES: usize = 4;
const HIDDEN: usize = 8;

/// The weights of the small valid MLP: `x[4] -> W1 [4, 8] + b1 -> Relu -> W2 [8, 1] + b2 ->
/// Sigmoid`, one blob (W1, b1, W2, b2 at 64-byte aligned offsets) and the offsets.
fn mlp_weights(seed: u64) -> (Vec<u8>, [(usize, usize); 4]) {
    let parts = [
        values(FEATURES * HIDDEN, seed),
        values(HIDDEN, seed + 1),
        values(HIDDEN, seed + 2),
        values(1, seed + 3),
    ];
    let mut blob = Vec::new();
    let mut at = [(0, 0); 4];
    for (k, p) in parts.iter().enumerate() {
        while blob.len() % 64 != 0 {
            blob.push(0);
        }
        at[k] = (blob.len(), p.len() * 4);
        blob.extend(p.iter().flat_map(|v| v.to_le_bytes()));
    }
    (blob, at)
}

fn f32s(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

/// The MLP's scores for `batch` rows of the float fill, in f64.
fn mlp_reference(blob: &[u8], at: &[(usize, usize); 4], batch: usize, fill: f32) -> Vec<f32> {
    let part = |k: usize| f32s(&blob[at[k].0..at[k].0 + at[k].1]);
    let (w1, b1, w2, b2) = (part(0), part(1), part(2), part(3));
    (0..batch)
        .map(|r| {
            let x: Vec<f64> = (0..FEATURES)
                .map(|j| f64::from(float_value(fill, r * FEATURES + j)))
                .collect();
            let mut z = b2[0];
            for h in 0..HIDDEN {
                let a: f64 = b1[h]
                    + (0..FEATURES)
                        .map(|j| x[j] * w1[j * HIDDEN + h])
                        .sum::<f64>();
                z += a.max(0.0) * w2[h];
            }
            (1.0 / (1.0 + (-z).exp())) as f32
        })
        .collect()
}

/// The valid MLP with external weights and the artifact metadata of `metadata_for`.
fn mlp_graph(at: &[(usize, usize); 4], metadata_for: &[u8]) -> Graph {
    let mut g = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(FEATURES as i64)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(1)])],
    );
    let dims: [&[i64]; 4] = [
        &[FEATURES as i64, HIDDEN as i64],
        &[HIDDEN as i64],
        &[HIDDEN as i64, 1],
        &[1],
    ];
    for (k, name) in ["w1", "b1", "w2", "b2"].iter().enumerate() {
        g.inits.push(tensor_external(
            name,
            dims[k],
            at[k].0 as u64,
            at[k].1 as u64,
        ));
    }
    g.nodes = vec![
        node("MatMul", &["x", "w1"], &["h0"], vec![]),
        node("Add", &["h0", "b1"], &["h1"], vec![]),
        node("Relu", &["h1"], &["h2"], vec![]),
        node("MatMul", &["h2", "w2"], &["z0"], vec![]),
        node("Add", &["z0", "b2"], &["z1"], vec![]),
        node("Sigmoid", &["z1"], &["y"], vec![]),
    ];
    g.metadata = artifact_metadata(metadata_for);
    g
}

/// A graph `x [N, 1] -> Add(x, folded) -> y` whose constant `c` comes from `nodes` (and
/// `inits`): the runtime folds it at load, so the size it asks for is the folded constant's.
fn folding_graph(nodes: Vec<Msg>, inits: Vec<Msg>) -> Graph {
    let mut g = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1)])],
        vec![value_info("y", FLOAT, &[Dim::P("A"), Dim::N, Dim::P("B")])],
    );
    g.nodes = nodes;
    g.nodes.push(node("Add", &["x", "c"], &["y"], vec![]));
    g.inits = inits;
    g
}

fn x_input() -> Vec<InputSpec> {
    vec![InputSpec {
        name: "x".into(),
        ids: false,
        dims: vec![1],
    }]
}

fn mlp_input() -> Vec<InputSpec> {
    vec![InputSpec {
        name: "x".into(),
        ids: false,
        dims: vec![FEATURES],
    }]
}

/// A chain of `n` `op` nodes from `x` to `y`.
fn chain(op: &str, n: usize) -> Graph {
    let mut g = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(1)])],
    );
    g.nodes = (0..n)
        .map(|i| {
            let input = if i == 0 {
                "x".to_string()
            } else {
                format!("v{}", i - 1)
            };
            let output = if i + 1 == n {
                "y".to_string()
            } else {
                format!("v{i}")
            };
            node(op, &[&input], &[&output], vec![])
        })
        .collect();
    g
}

/// Writes every case under `root` (one folder each) and returns them.
pub fn write_corpus(root: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: &str,
                   files: Vec<(&str, Vec<u8>)>,
                   inputs: Vec<InputSpec>,
                   (batch, float_fill, id_fill): (usize, f32, i64),
                   expect: Expect,
                   reference: Option<Vec<f32>>| {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("case folder");
        let mut big = false;
        for (file, bytes) in files {
            big |= bytes.len() > 1 << 20;
            std::fs::write(dir.join(file), bytes).expect("case file");
        }
        cases.push(Case {
            name: name.into(),
            dir,
            batch,
            float_fill,
            id_fill,
            inputs,
            expect,
            reference,
            big,
        });
    };
    let zeros = (2, 0.0, 0);

    // Folded constants far over any sane size, and sizes whose product overflows.
    let cos = |dims: &[i64]| {
        folding_graph(
            vec![node(
                "ConstantOfShape",
                &["shape"],
                &["c"],
                vec![Attr::Tensor("value", tensor_f32("v", &[1], &[1.0]))],
            )],
            vec![tensor_i64("shape", &[dims.len() as i64], dims)],
        )
        .encode()
    };
    let rl = Expect::ResourceLimit;
    add(
        "const_of_shape_1_5gib",
        vec![("model.onnx", cos(&[20_000, 1, 20_000]))],
        x_input(),
        zeros,
        rl,
        None,
    );
    add(
        "const_of_shape_64gib",
        vec![("model.onnx", cos(&[1 << 17, 1, 1 << 17]))],
        x_input(),
        zeros,
        rl,
        None,
    );
    add(
        "const_of_shape_wraps_to_0",
        vec![("model.onnx", cos(&[1 << 32, 1, 1 << 32]))],
        x_input(),
        zeros,
        rl,
        None,
    );
    add(
        "const_of_shape_u64_max",
        vec![("model.onnx", cos(&[3, 1, 6_148_914_691_236_517_205]))],
        x_input(),
        zeros,
        rl,
        None,
    );
    let tile = folding_graph(
        vec![node("Tile", &["one", "reps"], &["c"], vec![])],
        vec![
            tensor_f32("one", &[1, 1, 1], &[1.0]),
            tensor_i64("reps", &[3], &[50_000, 1, 10_000]),
        ],
    );
    add(
        "tile_2gib",
        vec![("model.onnx", tile.encode())],
        x_input(),
        zeros,
        rl,
        None,
    );
    let expand = folding_graph(
        vec![node("Expand", &["one", "shape"], &["c"], vec![])],
        vec![
            tensor_f32("one", &[1], &[1.0]),
            tensor_i64("shape", &[3], &[30_000, 1, 20_000]),
        ],
    );
    add(
        "expand_2_4gib",
        vec![("model.onnx", expand.encode())],
        x_input(),
        zeros,
        rl,
        None,
    );
    let broadcast = folding_graph(
        vec![
            node("ConstantOfShape", &["s1"], &["a"], vec![]),
            node("ConstantOfShape", &["s2"], &["b"], vec![]),
            node("Add", &["a", "b"], &["c"], vec![]),
        ],
        vec![
            tensor_i64("s1", &[3], &[25_000, 1, 1]),
            tensor_i64("s2", &[3], &[1, 1, 25_000]),
        ],
    );
    add(
        "broadcast_add_2_5gib",
        vec![("model.onnx", broadcast.encode())],
        x_input(),
        zeros,
        rl,
        None,
    );
    // An input whose declared inner dimension makes every plan's scratch enormous.
    let mut wide = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1 << 40)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(1 << 40)])],
    );
    wide.nodes = vec![node("Relu", &["x"], &["y"], vec![])];
    add(
        "input_dim_2_pow_40",
        vec![("model.onnx", wide.encode())],
        x_input(),
        zeros,
        rl,
        None,
    );
    // 400k nodes (10 MB) and a chain deeper than the default depth limit.
    add(
        "nodes_400k",
        vec![("model.onnx", chain("Identity", 400_000).encode())],
        x_input(),
        zeros,
        rl,
        None,
    );
    add(
        "depth_20k",
        vec![("model.onnx", chain("Relu", 20_000).encode())],
        x_input(),
        zeros,
        rl,
        None,
    );

    // Model/weights pairs.
    let (blob, at) = mlp_weights(7);
    let mlp = mlp_graph(&at, &blob).encode();
    let reference = mlp_reference(&blob, &at, 3, 1.5);
    add(
        "mlp_valid",
        vec![("model.onnx", mlp.clone()), ("model.weights", blob.clone())],
        mlp_input(),
        (3, 1.5, 0),
        Expect::Ok,
        Some(reference),
    );
    add(
        "mlp_batch_0",
        vec![("model.onnx", mlp.clone()), ("model.weights", blob.clone())],
        mlp_input(),
        (0, 1.5, 0),
        Expect::Ok,
        Some(Vec::new()),
    );
    let (other, _) = mlp_weights(8); // same layout and size, other values
    add(
        "mlp_other_models_weights",
        vec![("model.onnx", mlp.clone()), ("model.weights", other)],
        mlp_input(),
        (3, 1.5, 0),
        Expect::WeightsMismatch,
        None,
    );
    let noise: Vec<u8> = values(blob.len() / 4, 99)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    add(
        "mlp_same_size_random_weights",
        vec![("model.onnx", mlp.clone()), ("model.weights", noise)],
        mlp_input(),
        (3, 1.5, 0),
        Expect::WeightsMismatch,
        None,
    );
    add(
        "mlp_truncated_weights",
        vec![
            ("model.onnx", mlp.clone()),
            ("model.weights", blob[..blob.len() - 4].to_vec()),
        ],
        mlp_input(),
        (3, 1.5, 0),
        Expect::WeightsMismatch,
        None,
    );
    // Finite inputs whose products overflow f32 inside the MLP: every hidden value is at most
    // ~4e38 (some reach infinity), the scores saturate at 0, as the f64 reference says.
    add(
        "mlp_inputs_3e38",
        vec![("model.onnx", mlp.clone()), ("model.weights", blob.clone())],
        mlp_input(),
        (3, 3e38, 0),
        Expect::Ok,
        Some(mlp_reference(&blob, &at, 3, 3e38)),
    );
    // Finite inputs whose arithmetic gives NaN (x*x - x*x at 3e38 is inf - inf): a typed
    // error, never a NaN score.
    let mut overflow = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(1)])],
    );
    overflow.nodes = vec![
        node("Mul", &["x", "x"], &["sq"], vec![]),
        node("Sub", &["sq", "sq"], &["y"], vec![]),
    ];
    add(
        "inputs_3e38_give_nan",
        vec![("model.onnx", overflow.encode())],
        x_input(),
        (3, 3e38, 0),
        Expect::NotFinite,
        None,
    );
    add(
        "mlp_inputs_nan",
        vec![("model.onnx", mlp.clone()), ("model.weights", blob.clone())],
        mlp_input(),
        (3, f32::NAN, 0),
        Expect::NotFinite,
        None,
    );
    add(
        "mlp_model_truncated",
        vec![
            ("model.onnx", mlp[..mlp.len() / 2].to_vec()),
            ("model.weights", blob.clone()),
        ],
        mlp_input(),
        (3, 1.5, 0),
        Expect::InvalidModel,
        None,
    );
    add(
        "empty_model_file",
        vec![("model.onnx", Vec::new())],
        x_input(),
        zeros,
        Expect::InvalidModel,
        None,
    );
    let garbage: Vec<u8> = values(4096, 5)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    add(
        "random_bytes",
        vec![("model.onnx", garbage)],
        x_input(),
        zeros,
        Expect::InvalidModel,
        None,
    );

    // An embedding table and ids outside it.
    let table = values(10 * 4, 3);
    let mut emb = Graph::new(
        vec![value_info("ids", INT64, &[Dim::N, Dim::V(2)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(2), Dim::V(4)])],
    );
    emb.inits = vec![tensor_f32("table", &[10, 4], &table)];
    emb.nodes = vec![node("Gather", &["table", "ids"], &["y"], vec![])];
    let ids = vec![InputSpec {
        name: "ids".into(),
        ids: true,
        dims: vec![2],
    }];
    let emb_ref: Vec<f32> = (0..2 * 2)
        .flat_map(|i| {
            let row = id_value(4, i) as usize;
            table[row * 4..row * 4 + 4].to_vec()
        })
        .collect();
    add(
        "gather_valid",
        vec![("model.onnx", emb.encode())],
        ids.clone(),
        (2, 0.0, 4),
        Expect::Ok,
        Some(emb_ref),
    );
    add(
        "gather_id_1e6",
        vec![("model.onnx", emb.encode())],
        ids.clone(),
        (2, 0.0, 1_000_000),
        Expect::IdOutOfRange,
        None,
    );
    add(
        "gather_id_min",
        vec![("model.onnx", emb.encode())],
        ids,
        (2, 0.0, i64::MIN),
        Expect::IdOutOfRange,
        None,
    );

    // Broken graphs.
    let mut conv = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1), Dim::V(8)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(1), Dim::V(8)])],
    );
    conv.inits = vec![tensor_f32("w", &[1, 1, 1], &[1.0])];
    conv.nodes = vec![node(
        "Conv",
        &["x", "w"],
        &["y"],
        vec![Attr::Ints("strides", &[0])],
    )];
    let x3 = vec![InputSpec {
        name: "x".into(),
        ids: false,
        dims: vec![1, 8],
    }];
    add(
        "conv_stride_0",
        vec![("model.onnx", conv.encode())],
        x3,
        zeros,
        Expect::InvalidModel,
        None,
    );
    let mut reshape = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(1)])],
    );
    reshape.inits = vec![tensor_i64("s", &[2], &[-1, 7])];
    reshape.nodes = vec![node("Reshape", &["x", "s"], &["y"], vec![])];
    add(
        "reshape_impossible",
        vec![("model.onnx", reshape.encode())],
        x_input(),
        (3, 1.0, 0),
        Expect::InvalidModel,
        None,
    );
    let mut matmul = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(3)])],
    );
    matmul.inits = vec![tensor_f32("w", &[2, 3], &[1.0; 6])];
    matmul.nodes = vec![node("MatMul", &["x", "w"], &["y"], vec![])];
    add(
        "matmul_inner_mismatch",
        vec![("model.onnx", matmul.encode())],
        x_input(),
        zeros,
        Expect::InvalidModel,
        None,
    );
    let mut cycle = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(1)])],
    );
    cycle.nodes = vec![
        node("Add", &["x", "b"], &["a"], vec![]),
        node("Relu", &["a"], &["b"], vec![]),
        node("Identity", &["a"], &["y"], vec![]),
    ];
    add(
        "cycle",
        vec![("model.onnx", cycle.encode())],
        x_input(),
        zeros,
        Expect::InvalidModel,
        None,
    );
    let mut prelu = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(1)])],
    );
    prelu.inits = vec![tensor_f32("slope", &[1], &[0.25])];
    prelu.nodes = vec![node("PRelu", &["x", "slope"], &["y"], vec![])];
    add(
        "prelu_unsupported",
        vec![("model.onnx", prelu.encode())],
        x_input(),
        zeros,
        Expect::Unsupported,
        None,
    );
    let mut huge_init = Graph::new(
        vec![value_info("x", FLOAT, &[Dim::N, Dim::V(1)])],
        vec![value_info("y", FLOAT, &[Dim::N, Dim::V(1)])],
    );
    huge_init.inits = vec![tensor("w", FLOAT, &[1 << 40, 1 << 40], &[])];
    huge_init.nodes = vec![node("Identity", &["x"], &["y"], vec![])];
    add(
        "initializer_dims_2_pow_80",
        vec![("model.onnx", huge_init.encode())],
        x_input(),
        zeros,
        Expect::InvalidModel,
        None,
    );

    cases
}

/// Makes `dir/model.weights` of the valid MLP a FIFO (Unix): openers must refuse it at once
/// instead of blocking. Returns the case, or `None` where `mkfifo` is not available.
pub fn write_fifo_case(root: &Path) -> Option<Case> {
    let dir = root.join("mlp_weights_fifo");
    std::fs::create_dir_all(&dir).ok()?;
    let (blob, at) = mlp_weights(7);
    std::fs::write(dir.join("model.onnx"), mlp_graph(&at, &blob).encode()).ok()?;
    let fifo = dir.join("model.weights");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .ok()?;
    made.success().then(|| Case {
        name: "mlp_weights_fifo".into(),
        dir,
        batch: 3,
        float_fill: 1.5,
        id_fill: 0,
        inputs: mlp_input(),
        expect: Expect::Io,
        reference: None,
        big: false,
    })
}

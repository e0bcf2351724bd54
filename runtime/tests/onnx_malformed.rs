//! Hostile and broken ONNX files: every one must give a typed error (or, where the file is in
//! fact valid, a model), never a panic, an out-of-bounds view or an overflow.
//!
//! - every prefix of a small model (all truncation points);
//! - thousands of random byte mutations (fixed seed) and proptest-generated inputs;
//! - hand-made malformations, each with the error kind and message it must produce; they are
//!   also committed under `tests/corpus/` (see its README) and checked from there.

mod onnx_support;

use std::fmt::Write as _;
use std::path::Path;

use ctr_edge_runtime::onnx::{self, decode_model, external_location, resolve_tensor};
use ctr_edge_runtime::tensor::{ConstData, OwnedData};
use ctr_edge_runtime::Error;
use onnx_support::*;
use proptest::prelude::*;

/// Loads as the runtime would, turning success into the pseudo-kind "ok".
fn outcome(onnx_bytes: &[u8], weights: &[u8]) -> Result<(), Error> {
    load(onnx_bytes, weights).map(|_| ())
}

// ---- truncation and mutation ----

/// The MLP model built field by field, so that the test knows where each top-level field ends.
fn mlp_pieces() -> Vec<Vec<u8>> {
    vec![
        Msg::new().int(1, 8).into_bytes(),
        Msg::new().string(2, "ctr-edge-tests").into_bytes(),
        Msg::new().msg(7, &mlp_graph()).into_bytes(),
        Msg::new()
            .msg(8, &Msg::new().string(1, "").int(2, 13))
            .into_bytes(),
        Msg::new()
            .msg(14, &string_entry("ctr_edge.version", "0.1.0"))
            .into_bytes(),
        Msg::new()
            .msg(14, &string_entry("ctr_edge.method", "none"))
            .into_bytes(),
    ]
}

#[test]
fn every_truncation_point() {
    let pieces = mlp_pieces();
    let bytes: Vec<u8> = pieces.concat();
    assert_eq!(bytes, mlp_bytes());
    // A prefix is a valid model exactly when it ends on a top-level field boundary at or after
    // the end of the graph field.
    let mut valid_ends = Vec::new();
    let mut end = 0;
    for (i, p) in pieces.iter().enumerate() {
        end += p.len();
        if i >= 2 {
            valid_ends.push(end);
        }
    }
    let weights = Weights::mlp();
    for len in 0..=bytes.len() {
        let r = outcome(&bytes[..len], weights.bytes());
        if valid_ends.contains(&len) {
            assert!(r.is_ok(), "prefix of {len} bytes: {r:?}");
        } else {
            assert!(
                matches!(r, Err(Error::Protobuf { .. })),
                "prefix of {len} bytes should be a protobuf error: {r:?}"
            );
        }
    }
}

#[test]
fn every_truncation_point_of_the_python_model() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/reference");
    let bytes = std::fs::read(format!("{dir}/mlp_py.onnx")).unwrap();
    let weights = std::fs::read(format!("{dir}/mlp_py.weights")).unwrap();
    for len in 0..=bytes.len() {
        let _ = outcome(&bytes[..len], &weights);
    }
    assert!(outcome(&bytes, &weights).is_ok());
    // The weights file cut short: the tensors past the cut are errors.
    for len in [0, 1, 383, 384, 700, weights.len() - 1] {
        assert!(matches!(
            outcome(&bytes, &weights[..len]),
            Err(Error::InvalidTensor { .. })
        ));
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let original = mlp_bytes();
    let weights = Weights::mlp();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    for case in 0..6000 {
        let mut bytes = original.clone();
        match case % 4 {
            // overwrite 1..4 bytes with random values
            0 | 1 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.next() as u8;
                }
            }
            // flip one bit
            2 => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            // delete or insert a byte
            _ => {
                let i = rng.below(bytes.len());
                if rng.next() & 1 == 0 {
                    bytes.remove(i);
                } else {
                    bytes.insert(i, rng.next() as u8);
                }
            }
        }
        match outcome(&bytes, weights.bytes()) {
            Ok(()) => ok += 1,
            Err(_) => err += 1,
        }
    }
    // Both outcomes occur (mutating a name or a float keeps the file valid).
    assert!(ok > 0 && err > 0, "ok {ok}, err {err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = outcome(&bytes, &[]);
    }

    #[test]
    fn mlp_with_splices_never_panics(
        at in 0usize..1000,
        cut in 0usize..64,
        insert in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = mlp_bytes();
        let at = at % bytes.len();
        let end = (at + cut).min(bytes.len());
        bytes.splice(at..end, insert);
        let weights = Weights::mlp();
        let _ = outcome(&bytes, weights.bytes());
    }
}

/// A model whose graph nests `depth` If nodes, each holding the next graph as an attribute.
fn nested_ifs(depth: usize) -> Vec<u8> {
    let mut g = graph("leaf", &[], &[], &[], &[]);
    for _ in 0..depth {
        g = graph(
            "",
            &[node("If", "", &[], &[], &[attr_graph("b", &g)])],
            &[],
            &[],
            &[],
        );
    }
    model_bytes(&g)
}

#[test]
fn deep_nesting_bomb_does_not_exhaust_the_stack() {
    let bytes = nested_ifs(2000);
    match decode_model(&bytes) {
        Err(Error::Protobuf { reason, .. }) => assert!(reason.contains("nest deeper"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn misaligned_external_copies_with_correct_values() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "misaligned_external")
        .unwrap();
    let weights = aligned(case.weights.as_deref().unwrap_or(&[]));
    let w = &weights.bytes()[..case.weights.as_ref().unwrap().len()];
    let m = decode_model(&case.onnx).unwrap();
    let c = resolve_tensor(&m.graph.initializers[0], w).unwrap();
    assert_eq!(
        c.data,
        ConstData::Owned(OwnedData::F32(vec![1.0, 2.0, 3.0, 4.0]))
    );
}

#[test]
fn unsafe_locations_rejected_by_external_location_too() {
    for loc in ["../x", "/etc/passwd", "..", ".", "a/b", "a\\b", "C:x", ""] {
        let g = graph(
            "g",
            &[],
            &[tensor_external("w", FLOAT, &[1], loc, 0, None)],
            &[],
            &[],
        );
        let bytes = model_bytes(&g);
        let m = decode_model(&bytes).unwrap();
        assert!(
            matches!(external_location(&m), Err(Error::InvalidTensor { .. })),
            "{loc:?}"
        );
        assert!(onnx::check_location("w", loc).is_err(), "{loc:?}");
    }
    assert!(onnx::check_location("w", "model..weights").is_ok());
}

// ---- the named malformations (also the committed corpus) ----

struct Case {
    name: &'static str,
    onnx: Vec<u8>,
    weights: Option<Vec<u8>>,
    /// Error kind (`Protobuf`, `InvalidTensor`, `UnsupportedDType`, `Weights`) or `ok`.
    kind: &'static str,
    /// A substring of the error's message.
    message: &'static str,
}

fn case(name: &'static str, onnx: Vec<u8>, kind: &'static str, message: &'static str) -> Case {
    Case {
        name,
        onnx,
        weights: None,
        kind,
        message,
    }
}

fn with_init(t: Msg) -> Vec<u8> {
    model_bytes(&graph("g", &[], &[t], &[], &[]))
}

fn with_attr(a: Msg) -> Vec<u8> {
    model_bytes(&graph("g", &[op("Op n: -> ", &[a])], &[], &[], &[]))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Every malformed-model case, in report order.
fn cases() -> Vec<Case> {
    [
        wire_cases(),
        tensor_proto_cases(),
        value_cases(),
        external_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Wire-format and message-structure errors the decoder reports.
fn wire_cases() -> Vec<Case> {
    vec![
        case(
            "varint_overflow",
            Msg::new()
                .raw(&[0x08])
                .raw(&[0xff; 10])
                .raw(&[0x01])
                .into_bytes(),
            "Protobuf",
            "overflows 64 bits",
        ),
        case(
            "varint_eleven_bytes",
            Msg::new().raw(&[0x08]).raw(&[0x80; 11]).into_bytes(),
            "Protobuf",
            "overflows 64 bits",
        ),
        case(
            "truncated_varint",
            vec![0x08, 0x80],
            "Protobuf",
            "truncated varint",
        ),
        case(
            "length_past_end",
            Msg::new()
                .raw(&[0x3a, 0xe8, 0x07])
                .raw(&[0; 10])
                .into_bytes(),
            "Protobuf",
            "runs past the end",
        ),
        case(
            "node_length_past_end",
            model_bytes(&Msg::new().raw(&[0x0a, 0x05, 0x01])),
            "Protobuf",
            "length 5",
        ),
        case(
            "group_wire_type",
            vec![0x0b, 0x0c],
            "Protobuf",
            "deprecated group",
        ),
        case(
            "invalid_wire_type",
            vec![0x0f],
            "Protobuf",
            "invalid wire type 7",
        ),
        case(
            "field_number_zero",
            vec![0x00, 0x00],
            "Protobuf",
            "invalid field number 0",
        ),
        case(
            "bad_utf8_name",
            model_bytes(&graph(
                "g",
                &[op("Op ok: -> ", &[]).bytes(3, &[0xff, 0xfe])],
                &[],
                &[],
                &[],
            )),
            "Protobuf",
            "not valid UTF-8",
        ),
        case(
            "no_graph",
            Msg::new().int(1, 8).into_bytes(),
            "Protobuf",
            "no graph",
        ),
        case(
            "graph_twice",
            model(&graph("a", &[], &[], &[], &[]))
                .msg(7, &graph("b", &[], &[], &[], &[]))
                .into_bytes(),
            "Protobuf",
            "appears twice",
        ),
        case(
            "depth_bomb",
            nested_ifs(40),
            "Protobuf",
            "nest deeper than 32",
        ),
    ]
}

/// TensorProto errors the decoder reports (data fields, data location).
fn tensor_proto_cases() -> Vec<Case> {
    vec![
        case(
            "sparse_initializer",
            model_bytes(&graph("g", &[], &[], &[], &[]).msg(15, &Msg::new())),
            "Protobuf",
            "sparse initializers unsupported",
        ),
        case(
            "packed_float_length",
            with_init(tensor("t", FLOAT, &[1]).bytes(4, &[0, 0, 0x80])),
            "Protobuf",
            "not a multiple of 4",
        ),
        case(
            "data_type_out_of_i32",
            with_init(tensor("t", FLOAT, &[1]).int(2, 1 << 40)),
            "Protobuf",
            "does not fit a 32-bit integer",
        ),
        case(
            "external_and_raw",
            with_init(tensor_external("t", FLOAT, &[1], "w", 0, None).bytes(9, &[0; 4])),
            "Protobuf",
            "EXTERNAL and inline data",
        ),
        case(
            "several_data_fields",
            with_init(tensor_raw("t", FLOAT, &[1], &[0; 4]).packed_floats(4, &[1.0])),
            "Protobuf",
            "several data fields",
        ),
        case(
            "bad_data_location",
            with_init(tensor_raw("t", FLOAT, &[1], &[0; 4]).int(14, 2)),
            "Protobuf",
            "data_location 2",
        ),
        case(
            "external_data_without_location_flag",
            with_init(tensor("t", FLOAT, &[1]).msg(13, &string_entry("location", "w"))),
            "Protobuf",
            "data_location is not EXTERNAL",
        ),
        case(
            "external_without_location",
            with_init(external_t(&[("offset", "0")])),
            "Protobuf",
            "no 'location'",
        ),
        case(
            "external_bad_offset_text",
            with_init(
                tensor_external("t", FLOAT, &[1], "w", 0, None)
                    .msg(13, &string_entry("length", "4x")),
            ),
            "Protobuf",
            "not a decimal byte count",
        ),
        case(
            "external_offset_above_u64",
            with_init(external_t(&[
                ("location", "w"),
                ("offset", "18446744073709551616"),
            ])),
            "Protobuf",
            "not a decimal byte count",
        ),
    ]
}

/// Attribute, dims, dtype, data and location errors.
fn value_cases() -> Vec<Case> {
    vec![
        case(
            "attribute_tensors_type",
            with_attr(
                Msg::new()
                    .string(1, "ts")
                    .msg(10, &tensor_floats("a", &[1], &[1.0]))
                    .int(20, 9),
            ),
            "Protobuf",
            "TENSORS",
        ),
        case(
            "attribute_ref_attr_name",
            with_attr(Msg::new().string(1, "a").string(21, "outer").int(20, 2)),
            "Protobuf",
            "ref_attr_name",
        ),
        case(
            "attribute_without_value",
            with_attr(Msg::new().string(1, "a")),
            "Protobuf",
            "neither a type nor a value",
        ),
        case(
            "tensor_attribute_without_tensor",
            with_attr(Msg::new().string(1, "value").int(20, 4)),
            "Protobuf",
            "without a tensor",
        ),
        case(
            "huge_dims",
            with_init(tensor("t", FLOAT, &[1 << 62])),
            "InvalidTensor",
            "exceed the size limit",
        ),
        case(
            "negative_dims",
            with_init(tensor_raw("t", FLOAT, &[-1, 4], &[])),
            "InvalidTensor",
            "dimension 0 is negative (-1)",
        ),
        case(
            "dims_product_overflow",
            with_init(tensor("t", FLOAT, &[1 << 31, 1 << 31, 1 << 31])),
            "InvalidTensor",
            "exceed the size limit",
        ),
        case(
            "zero_dim_hiding_overflow",
            with_init(tensor("t", FLOAT, &[0, 1 << 62, 1 << 62])),
            "InvalidTensor",
            "exceed the size limit",
        ),
        case(
            "dtype_string",
            with_init(tensor("t", STRING, &[1]).bytes(6, b"hello")),
            "UnsupportedDType",
            "unsupported data type 8 (STRING)",
        ),
        case(
            "dtype_99",
            with_init(tensor_raw("t", 99, &[1], &[0; 4])),
            "UnsupportedDType",
            "unsupported data type 99",
        ),
        case(
            "raw_size_mismatch",
            with_init(tensor_raw("t", FLOAT, &[4], &[0; 12])),
            "InvalidTensor",
            "raw_data has 12 bytes, the dims and data type need 16",
        ),
        case(
            "float_data_count_mismatch",
            with_init(tensor_floats("t", &[3], &[1.0, 2.0])),
            "InvalidTensor",
            "float_data has 2 values, the dims need 3",
        ),
        case(
            "int64_data_for_float",
            with_init(tensor("t", FLOAT, &[1]).packed_varints(7, &[1])),
            "InvalidTensor",
            "int64_data cannot hold values of data type FLOAT",
        ),
        case(
            "missing_data",
            with_init(tensor("t", FLOAT, &[3])),
            "InvalidTensor",
            "has no data",
        ),
        case(
            "bool_value_2",
            with_init(tensor_raw("t", BOOL, &[2], &[1, 2])),
            "InvalidTensor",
            "must be 0 or 1",
        ),
        case(
            "float16_bits_out_of_range",
            with_init(tensor("t", FLOAT16, &[1]).packed_varints(5, &[70000])),
            "InvalidTensor",
            "not a 16-bit FLOAT16 pattern",
        ),
        case(
            "path_traversal",
            with_init(tensor_external("t", FLOAT, &[1], "../x", 0, None)),
            "InvalidTensor",
            "external data location '../x' must be a plain file name",
        ),
        case(
            "absolute_location",
            with_init(tensor_external("t", FLOAT, &[1], "/etc/passwd", 0, None)),
            "InvalidTensor",
            "must be a plain file name",
        ),
        case(
            "dotdot_location",
            with_init(tensor_external("t", FLOAT, &[1], "..", 0, None)),
            "InvalidTensor",
            "is a directory",
        ),
        case(
            "two_weights_files",
            model_bytes(&graph(
                "g",
                &[],
                &[
                    tensor_external("a", FLOAT, &[1], "one.weights", 0, None),
                    tensor_external("b", FLOAT, &[1], "two.weights", 0, None),
                ],
                &[],
                &[],
            )),
            "Weights",
            "different weights files ('one.weights' and 'two.weights')",
        ),
    ]
}

/// External-data tensors checked against a weights file.
fn external_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let ext = |name, dims: &[i64], offset, length, weights: Vec<u8>, kind, message| Case {
        name,
        onnx: with_init(tensor_external(
            "t",
            FLOAT,
            dims,
            "c.weights",
            offset,
            length,
        )),
        weights: Some(weights),
        kind,
        message,
    };
    v.push(ext(
        "external_offset_past_end",
        &[1024],
        1024,
        Some(4096),
        vec![0; 2048],
        "InvalidTensor",
        "external data offset 1024 + length 4096 exceeds the weights file (2048 bytes)",
    ));
    v.push(ext(
        "external_offset_overflow",
        &[1],
        u64::MAX - 1,
        Some(4),
        vec![0; 64],
        "InvalidTensor",
        "exceeds the weights file (64 bytes)",
    ));
    v.push(ext(
        "external_length_mismatch",
        &[4],
        0,
        Some(20),
        vec![0; 64],
        "InvalidTensor",
        "external data length 20 does not match the dims and data type (16 bytes)",
    ));
    let mut w = vec![0u8; 32];
    w[2..18].copy_from_slice(&f32_bytes(&[1.0, 2.0, 3.0, 4.0]));
    v.push(ext("misaligned_external", &[4], 2, Some(16), w, "ok", ""));
    v
}

fn aligned(bytes: &[u8]) -> Weights {
    let mut w = Weights::zeroed(bytes.len().div_ceil(8) * 8);
    w.put_bytes(0, bytes);
    w
}

/// Checks one file against its expectation; returns a description of the mismatch.
fn check(
    name: &str,
    onnx_bytes: &[u8],
    weights: &[u8],
    kind: &str,
    message: &str,
) -> Option<String> {
    // A u64-backed copy: alignment must not depend on how the bytes were allocated.
    let buf = aligned(weights);
    let w = &buf.bytes()[..weights.len()];
    match outcome(onnx_bytes, w) {
        Ok(()) if kind == "ok" => None,
        Ok(()) => Some(format!("{name}: loaded, expected {kind} error '{message}'")),
        Err(e) => {
            let text = e.to_string();
            if error_kind(&e) == kind && text.contains(message) {
                None
            } else {
                Some(format!(
                    "{name}: expected {kind} containing '{message}', got {e:?}"
                ))
            }
        }
    }
}

#[test]
fn named_malformations() {
    let failures: Vec<String> = cases()
        .iter()
        .filter_map(|c| {
            check(
                c.name,
                &c.onnx,
                c.weights.as_deref().unwrap_or(&[]),
                c.kind,
                c.message,
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

/// Reads `EXPECTED.txt`: `name<TAB>kind<TAB>message` per line.
fn manifest() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(Path::new(CORPUS).join("EXPECTED.txt")).unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let mut next = || parts.next().unwrap_or("").to_string();
            (next(), next(), next())
        })
        .collect()
}

#[test]
fn committed_corpus() {
    let expectations = manifest();
    let mut seen = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(CORPUS).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "onnx") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let Some((_, kind, message)) = expectations.iter().find(|(n, _, _)| *n == stem) else {
            failures.push(format!("{stem}: not listed in EXPECTED.txt"));
            continue;
        };
        let onnx_bytes = std::fs::read(&path).unwrap();
        let weights = std::fs::read(path.with_extension("weights")).unwrap_or_default();
        failures.extend(check(&stem, &onnx_bytes, &weights, kind, message));
        seen += 1;
    }
    assert_eq!(
        seen,
        expectations.len(),
        "EXPECTED.txt lists files that are missing"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rewrites `tests/corpus/*.onnx`, `*.weights` and `EXPECTED.txt` from [`cases`]:
/// `cargo test -p ctr-edge-runtime --test onnx_malformed -- --ignored regenerate_corpus`.
#[test]
#[ignore]
fn regenerate_corpus() {
    let mut manifest = String::from(
        "# Expected outcome of each corpus file: name<TAB>error kind (or ok)<TAB>message substring.\n\
         # Generated by `regenerate_corpus` in tests/onnx_malformed.rs; see README.md.\n",
    );
    for c in cases() {
        std::fs::write(Path::new(CORPUS).join(format!("{}.onnx", c.name)), &c.onnx).unwrap();
        if let Some(w) = &c.weights {
            std::fs::write(Path::new(CORPUS).join(format!("{}.weights", c.name)), w).unwrap();
        }
        writeln!(manifest, "{}\t{}\t{}", c.name, c.kind, c.message).unwrap();
    }
    std::fs::write(Path::new(CORPUS).join("EXPECTED.txt"), manifest).unwrap();
}

// ---- standalone tensors (`decode_tensor_file`, the conformance suite's .pb reader) ----

#[test]
fn standalone_tensor_decodes_and_refuses_garbage_with_typed_errors() {
    let good = tensor_floats("x", &[2, 2], &[1.0, -2.0, 3.5, 0.0]).into_bytes();
    let t = onnx::decode_tensor_file(&good).expect("valid tensor");
    assert_eq!((t.name.as_str(), t.shape.as_slice()), ("x", &[2, 2][..]));
    assert_eq!(t.values, OwnedData::F32(vec![1.0, -2.0, 3.5, 0.0]));

    // Outside the runtime's set: DOUBLE is not narrowed here, unlike an initializer.
    let double = tensor("d", DOUBLE, &[1])
        .packed_doubles(10, &[1.0])
        .into_bytes();
    assert!(matches!(
        onnx::decode_tensor_file(&double),
        Err(Error::UnsupportedDType { dtype: 11, .. })
    ));
    // External data cannot be resolved without a weights file.
    let ext = tensor_external("e", FLOAT, &[1], "w.bin", 0, Some(4)).into_bytes();
    assert!(matches!(
        onnx::decode_tensor_file(&ext),
        Err(Error::InvalidTensor { .. } | Error::Weights { .. })
    ));
    // Wrong element count.
    let short = tensor_raw("s", FLOAT, &[3], &[0; 8]).into_bytes();
    assert!(matches!(
        onnx::decode_tensor_file(&short),
        Err(Error::InvalidTensor { .. })
    ));

    // Every truncation and thousands of byte mutations: Ok or a typed error, never a panic.
    for end in 0..good.len() {
        let _ = onnx::decode_tensor_file(&good[..end]);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5000 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % bytes.len();
            bytes[i] = next() as u8;
        }
        let _ = onnx::decode_tensor_file(&bytes);
    }
    for len in [0usize, 1, 7, 64] {
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = onnx::decode_tensor_file(&garbage);
    }
}

/// Float tensor `t` [1] marked EXTERNAL with the given external_data entries.
fn external_t(entries: &[(&str, &str)]) -> Msg {
    entries
        .iter()
        .fold(tensor("t", FLOAT, &[1]), |m, (k, v)| {
            m.msg(13, &string_entry(k, v))
        })
        .int(14, 1)
}

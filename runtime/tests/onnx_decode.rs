//! The ONNX decoder and tensor resolution on valid files: hand-built models (protobuf written
//! by the test's own writer), a model serialized by the Python `onnx` package with its expected
//! dump, and the real exported fixtures when they are present.

mod onnx_support;

use ctr_edge_runtime::onnx::{
    self, decode_model, external_location, resolve_initializers, resolve_tensor, view_f16,
    view_f32, AttrValue, Dim, TensorData,
};
use ctr_edge_runtime::tensor::{ConstData, DType, OwnedData};
use ctr_edge_runtime::Error;
use half::f16;
use onnx_support::*;

#[test]
fn mlp_structure() {
    let bytes = mlp_bytes();
    let m = decode_model(&bytes).unwrap();
    assert_eq!(m.ir_version, 8);
    assert_eq!(m.opset, 13);
    assert_eq!(m.opset_imports, vec![("", 13)]);
    assert_eq!(m.producer_name, "ctr-edge-tests");
    assert_eq!(
        m.metadata,
        vec![("ctr_edge.version", "0.1.0"), ("ctr_edge.method", "none")]
    );
    let g = &m.graph;
    assert_eq!(g.name, "mlp");
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op_type).collect();
    assert_eq!(
        ops,
        ["Flatten", "MatMul", "Add", "Relu", "MatMul", "Add", "Sigmoid", "Constant"]
    );
    let fc1 = &g.nodes[1];
    assert_eq!(
        (fc1.name, fc1.domain, &fc1.inputs[..], &fc1.outputs[..]),
        ("fc1", "", &["xf", "W1"][..], &["h1"][..])
    );
    assert_eq!(g.nodes[0].attr("axis"), Some(&AttrValue::Int(1)));
    assert_eq!(g.nodes[0].attr("missing"), None);
    match g.nodes[7].attr("value") {
        Some(AttrValue::Tensor(t)) => {
            assert_eq!((t.data_type, &t.dims[..]), (INT64, &[2][..]));
            assert_eq!(t.data, TensorData::Int64s(vec![-1, 8]));
        }
        other => panic!("Constant value: {other:?}"),
    }
    assert_eq!(g.inputs.len(), 1);
    assert_eq!(g.inputs[0].name, "x");
    assert_eq!(g.inputs[0].elem_type, FLOAT);
    assert_eq!(
        g.inputs[0].shape,
        Some(vec![Dim::Symbolic("batch"), Dim::Known(4)])
    );
    assert_eq!(
        g.outputs[0].shape,
        Some(vec![Dim::Symbolic("batch"), Dim::Known(1)])
    );
    assert_eq!(g.value_info.len(), 1);
    assert_eq!(g.value_info[0].name, "h1");

    let names: Vec<&str> = g.initializers.iter().map(|t| t.name).collect();
    assert_eq!(names, ["W1", "b1", "W2", "b2"]);
    assert_eq!(
        g.initializers[0].data,
        TensorData::External {
            location: "model.weights",
            offset: 0,
            length: Some(128)
        }
    );
    assert_eq!(
        g.initializers[2].data,
        TensorData::External {
            location: "model.weights",
            offset: W2_OFFSET as u64,
            length: None
        }
    );
    assert!(matches!(g.initializers[1].data, TensorData::Raw(b) if b.len() == 32));
    assert_eq!(g.initializers[3].data, TensorData::Floats(vec![0.125]));
    assert_eq!(external_location(&m), Ok(Some("model.weights")));
}

#[test]
fn mlp_constants_zero_copy() {
    let bytes = mlp_bytes();
    let weights = Weights::mlp();
    let w = weights.bytes();
    let m = decode_model(&bytes).unwrap();
    let consts = resolve_initializers(&m.graph, w).unwrap();
    let (name, w1c) = &consts[0];
    assert_eq!(*name, "W1");
    assert_eq!((w1c.dtype, &w1c.shape[..]), (DType::F32, &[4, 8][..]));
    assert_eq!(
        w1c.data,
        ConstData::Weights {
            offset: 0,
            byte_len: 128
        }
    );
    let ConstData::Weights { offset, byte_len } = consts[2].1.data else {
        panic!(
            "W2 should stay in the weights buffer: {:?}",
            consts[2].1.data
        );
    };
    assert_eq!((offset, byte_len), (W2_OFFSET, 32));
    let view = view_f32(w, offset, byte_len).unwrap();
    assert_eq!(view, &w2()[..]);
    // Zero copy: the view points into the weights buffer.
    let base = w.as_ptr() as usize;
    let p = view.as_ptr() as usize;
    assert!(p >= base && p + byte_len <= base + w.len());
    assert_eq!(p, base + W2_OFFSET);
    assert_eq!(view_f32(w, 0, 128).unwrap(), &w1()[..]);

    assert_eq!(consts[1].1.data, ConstData::Owned(OwnedData::F32(b1())));
    assert_eq!(
        consts[3].1.data,
        ConstData::Owned(OwnedData::F32(vec![0.125]))
    );
    assert_eq!(consts[3].1.shape, vec![1]);

    let AttrValue::Tensor(t) = m.graph.nodes[7].attr("value").unwrap() else {
        panic!()
    };
    let c = resolve_tensor(t, w).unwrap();
    assert_eq!(c.data, ConstData::Owned(OwnedData::I64(vec![-1, 8])));
}

#[test]
fn views_check_range_and_alignment() {
    let weights = Weights::mlp();
    let w = weights.bytes();
    assert!(matches!(view_f32(w, 2, 8), Err(Error::Weights { .. })));
    assert!(matches!(view_f32(w, 0, 6), Err(Error::Weights { .. })));
    assert!(matches!(
        view_f32(w, w.len() - 4, 8),
        Err(Error::Weights { .. })
    ));
    assert!(matches!(
        view_f32(w, usize::MAX, 8),
        Err(Error::Weights { .. })
    ));
    assert_eq!(view_f32(w, w.len(), 0).unwrap(), &[] as &[f32]);
    assert!(onnx::view_i64(w, 0, 16).is_ok());
    assert!(onnx::view_i32(w, 4, 4).is_ok());
}

#[test]
fn misaligned_external_is_copied_with_correct_values() {
    let values = [1.5f32, -2.25, 3.0];
    let mut weights = Weights::zeroed(64);
    weights.put_f32(6, &values); // 6 is not a multiple of 4
    let g = graph(
        "g",
        &[],
        &[tensor_external("w", FLOAT, &[3], "m.weights", 6, Some(12))],
        &[],
        &[],
    );
    let bytes = model_bytes(&g);
    let m = decode_model(&bytes).unwrap();
    let c = resolve_tensor(&m.graph.initializers[0], weights.bytes()).unwrap();
    assert_eq!(c.data, ConstData::Owned(OwnedData::F32(values.to_vec())));
    assert_eq!(c.shape, vec![3]);
}

#[test]
fn alignment_counts_the_buffer_address_not_the_offset() {
    // The same file bytes seen through a buffer whose base is 2 bytes past an aligned address:
    // offset 2 of that slice is 4-aligned in memory.
    let mut weights = Weights::zeroed(64);
    weights.put_f32(4, &[7.0, 8.0]);
    let shifted = &weights.bytes()[2..];
    let g = graph(
        "g",
        &[],
        &[tensor_external("w", FLOAT, &[2], "m.weights", 2, None)],
        &[],
        &[],
    );
    let bytes = model_bytes(&g);
    let m = decode_model(&bytes).unwrap();
    let c = resolve_tensor(&m.graph.initializers[0], shifted).unwrap();
    assert_eq!(
        c.data,
        ConstData::Weights {
            offset: 2,
            byte_len: 8
        }
    );
    assert_eq!(view_f32(shifted, 2, 8).unwrap(), &[7.0, 8.0]);
}

#[test]
fn f16_bool_int32_double_tensors() {
    let halves = [
        f16::from_f32(1.0),
        f16::from_f32(-0.5),
        f16::from_f32(65504.0),
    ];
    let mut weights = Weights::zeroed(128);
    let hb: Vec<u8> = halves
        .iter()
        .flat_map(|h| h.to_bits().to_le_bytes())
        .collect();
    weights.put_bytes(64, &hb);
    let bits: Vec<i64> = halves.iter().map(|h| i64::from(h.to_bits())).collect();
    let inits = [
        tensor_external("h_ext", FLOAT16, &[3], "w", 64, Some(6)),
        tensor("h_bits", FLOAT16, &[3]).packed_varints(5, &bits),
        tensor_raw("h_raw", FLOAT16, &[3], &hb),
        tensor_raw("mask", BOOL, &[3], &[1, 0, 1]),
        tensor("mask32", BOOL, &[2]).packed_varints(5, &[0, 1]),
        tensor_raw("i32", INT32, &[2], &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        tensor("i32_data", INT32, &[2]).packed_varints(5, &[-7, 9]),
        tensor("d", DOUBLE, &[2]).packed_doubles(10, &[0.5, -1e300]),
        tensor_raw("d_raw", DOUBLE, &[1], &2.5f64.to_le_bytes()),
        tensor("empty", FLOAT, &[0, 3]),
        tensor("scalar_i64", INT64, &[]).packed_varints(7, &[42]),
    ];
    let g = graph("g", &[], &inits, &[], &[]);
    let bytes = model_bytes(&g);
    let m = decode_model(&bytes).unwrap();
    let w = weights.bytes();
    let c: Vec<_> = resolve_initializers(&m.graph, w)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(
        c[0].data,
        ConstData::Weights {
            offset: 64,
            byte_len: 6
        }
    );
    assert_eq!(view_f16(w, 64, 6).unwrap(), &halves);
    assert_eq!(c[1].data, ConstData::Owned(OwnedData::F16(halves.to_vec())));
    assert_eq!(c[2].data, ConstData::Owned(OwnedData::F16(halves.to_vec())));
    assert_eq!(
        c[3].data,
        ConstData::Owned(OwnedData::Bool(vec![true, false, true]))
    );
    assert_eq!(
        c[4].data,
        ConstData::Owned(OwnedData::Bool(vec![false, true]))
    );
    assert_eq!(c[5].data, ConstData::Owned(OwnedData::I32(vec![1, -1])));
    assert_eq!(c[6].data, ConstData::Owned(OwnedData::I32(vec![-7, 9])));
    assert_eq!(c[7].dtype, DType::F32);
    assert_eq!(
        c[7].data,
        ConstData::Owned(OwnedData::F32(vec![0.5, f32::NEG_INFINITY]))
    );
    assert_eq!(c[8].data, ConstData::Owned(OwnedData::F32(vec![2.5])));
    assert_eq!(c[9].shape, vec![0, 3]);
    assert_eq!(c[9].numel(), 0);
    assert_eq!(c[10].shape, Vec::<usize>::new());
    assert_eq!(c[10].data, ConstData::Owned(OwnedData::I64(vec![42])));
}

#[test]
fn unpacked_repeated_and_unknown_fields_and_field_order() {
    // dims and float_data written unpacked, fields in reverse order, unknown fields of every
    // wire type sprinkled in every message.
    let unknown = |m: Msg| {
        m.varint(900, 5)
            .fixed32(901, 7)
            .fixed64(902, 9)
            .string(903, "ignored")
            .msg(904, &Msg::new().varint(1, 1))
    };
    let t = unknown(Msg::new())
        .float(4, 1.0)
        .float(4, 2.0)
        .string(8, "t")
        .int(2, 1)
        .int(1, 2)
        .int(1, 1);
    let t = unknown(t);
    let n = unknown(Msg::new())
        .msg(
            5,
            &unknown(Msg::new().int(20, 7).int(8, 3).int(8, -4).string(1, "ks")),
        )
        .string(4, "Op")
        .string(3, "n")
        .string(2, "out")
        .string(1, "in");
    let g = unknown(Msg::new()).msg(5, &t).msg(1, &n).string(2, "rev");
    let mbytes = unknown(Msg::new())
        .msg(7, &g)
        .msg(8, &Msg::new().int(2, 15).string(1, "ai.onnx"))
        .int(1, 9)
        .into_bytes();
    let m = decode_model(&mbytes).unwrap();
    assert_eq!((m.ir_version, m.opset), (9, 15));
    assert_eq!(m.graph.name, "rev");
    let t = &m.graph.initializers[0];
    assert_eq!(t.dims, vec![2, 1]);
    assert_eq!(t.data, TensorData::Floats(vec![1.0, 2.0]));
    let n = &m.graph.nodes[0];
    assert_eq!((n.name, n.op_type), ("n", "Op"));
    assert_eq!(n.attr("ks"), Some(&AttrValue::Ints(vec![3, -4])));
    let c = resolve_tensor(t, &[]).unwrap();
    assert_eq!(c.shape, vec![2, 1]);
}

#[test]
fn attributes_of_every_kind_and_defaults() {
    let attrs = [
        attr_float("f", 0.5),
        attr_int("i", -3),
        attr_string("s", b"\xffbytes"),
        attr_floats("fs", &[1.0, 2.0]),
        attr_ints("is", &[1, -1, i64::MAX]),
        attr_strings("ss", &[b"a", b""]),
        // proto3 omits zero values: INT with no `i` is 0, FLOAT with no `f` is 0.0.
        Msg::new().string(1, "zero_i").int(20, 2),
        Msg::new().string(1, "zero_f").int(20, 1),
        Msg::new().string(1, "empty_ints").int(20, 7),
        // IR version 1 style: no `type`, inferred from the value present.
        Msg::new().string(1, "untyped").int(3, 11),
        Msg::new()
            .string(1, "untyped_g")
            .msg(6, &graph("sub", &[], &[], &[], &[])),
    ];
    let g = graph("g", &[node("Op", "n", &[], &[], &attrs)], &[], &[], &[]);
    let bytes = model_bytes(&g);
    let m = decode_model(&bytes).unwrap();
    let n = &m.graph.nodes[0];
    assert_eq!(n.attr("f"), Some(&AttrValue::Float(0.5)));
    assert_eq!(n.attr("i"), Some(&AttrValue::Int(-3)));
    assert_eq!(n.attr("s"), Some(&AttrValue::String(b"\xffbytes")));
    assert_eq!(n.attr("fs"), Some(&AttrValue::Floats(vec![1.0, 2.0])));
    assert_eq!(n.attr("is"), Some(&AttrValue::Ints(vec![1, -1, i64::MAX])));
    assert_eq!(
        n.attr("ss"),
        Some(&AttrValue::Strings(vec![&b"a"[..], &b""[..]]))
    );
    assert_eq!(n.attr("zero_i"), Some(&AttrValue::Int(0)));
    assert_eq!(n.attr("zero_f"), Some(&AttrValue::Float(0.0)));
    assert_eq!(n.attr("empty_ints"), Some(&AttrValue::Ints(vec![])));
    assert_eq!(n.attr("untyped"), Some(&AttrValue::Int(11)));
    assert!(matches!(n.attr("untyped_g"), Some(AttrValue::Graph(g)) if g.name == "sub"));
}

#[test]
fn nested_subgraphs_within_the_cap() {
    // Depth 32 (the cap) decodes; external tensors inside subgraphs are seen by
    // external_location.
    let mut g = graph(
        "leaf",
        &[],
        &[tensor_external("deep", FLOAT, &[1], "w.bin", 0, None)],
        &[],
        &[],
    );
    for i in 0..onnx::MAX_GRAPH_DEPTH {
        let n = node(
            "If",
            &format!("if{i}"),
            &["c"],
            &[],
            &[attr_graph("then_branch", &g)],
        );
        g = graph(&format!("level{i}"), &[n], &[], &[], &[]);
    }
    let bytes = model_bytes(&g);
    let m = decode_model(&bytes).unwrap();
    assert_eq!(m.graph.name, format!("level{}", onnx::MAX_GRAPH_DEPTH - 1));
    assert_eq!(external_location(&m), Ok(Some("w.bin")));
    // One level more is refused.
    let n = node("If", "top", &["c"], &[], &[attr_graph("then_branch", &g)]);
    let bytes = model_bytes(&graph("top", &[n], &[], &[], &[]));
    match decode_model(&bytes) {
        Err(Error::Protobuf { reason, .. }) => assert!(reason.contains("nest deeper"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_context_names_the_node_and_attribute() {
    let good = node("Relu", "r", &["a"], &["b"], &[]);
    // alpha encoded as a varint where a fixed32 float is required.
    let bad_attr = Msg::new().string(1, "alpha").varint(2, 1).int(20, 1);
    let bad = node(
        "Gemm",
        "Gemm_3",
        &["b", "w"],
        &["c"],
        &[attr_int("transB", 1), bad_attr],
    );
    let g = graph("g", &[good.clone(), good, bad], &[], &[], &[]);
    let bytes = model_bytes(&g);
    match decode_model(&bytes) {
        Err(Error::Protobuf { context, reason }) => {
            assert_eq!(
                context,
                "ModelProto.graph.node[2](name 'Gemm_3').attribute[1](name 'alpha')"
            );
            assert!(reason.contains("field 2"), "{reason}");
            assert!(reason.contains("fixed32"), "{reason}");
        }
        other => panic!("expected a protobuf error, got {other:?}"),
    }
}

/// The model serialized by the Python `onnx` package (protobuf's encoder, external data written
/// by `onnx.save_model`) decodes to exactly the dump that package reads back.
#[test]
fn python_reference_model_matches_its_dump() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/reference");
    let onnx_bytes = std::fs::read(format!("{dir}/mlp_py.onnx")).unwrap();
    let weights_file = std::fs::read(format!("{dir}/mlp_py.weights")).unwrap();
    // Copy into a u64-backed buffer so that alignment does not depend on the allocator.
    let mut weights = Weights::zeroed(weights_file.len().div_ceil(8) * 8);
    weights.put_bytes(0, &weights_file);
    let w = &weights.bytes()[..weights_file.len()];
    let expected = std::fs::read_to_string(format!("{dir}/mlp_py.expected.txt")).unwrap();
    let m = load(&onnx_bytes, w).unwrap();
    assert_eq!(external_location(&m), Ok(Some("mlp_py.weights")));
    let got = dump(&m, w);
    assert_eq!(
        got, expected,
        "decoded dump differs from the Python reference"
    );
    // The large initializers are viewed in place.
    let consts = resolve_initializers(&m.graph, w).unwrap();
    let in_place = consts
        .iter()
        .filter(|(_, c)| matches!(c.data, ConstData::Weights { .. }))
        .count();
    assert_eq!(in_place, 5);
}

/// Real exported models (tests/fixtures/*/model.onnx of the workspace), when present: they
/// decode, their weights file matches, every initializer resolves; where a reference dump made
/// by `make_reference.py --dump` exists for them (`corpus/reference/fixtures/<dir>.expected.txt`),
/// the dump matches.
#[test]
fn real_fixtures_when_present() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");
    let Ok(entries) = std::fs::read_dir(root) else {
        eprintln!("no fixtures at {root}; skipped");
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let model_path = dir.join("model.onnx");
        let Ok(onnx_bytes) = std::fs::read(&model_path) else {
            continue;
        };
        let m =
            decode_model(&onnx_bytes).unwrap_or_else(|e| panic!("{}: {e}", model_path.display()));
        let file = external_location(&m).unwrap();
        let weights_file = match file {
            Some(name) => std::fs::read(dir.join(name)).unwrap(),
            None => Vec::new(),
        };
        let mut weights = Weights::zeroed(weights_file.len().div_ceil(8) * 8);
        weights.put_bytes(0, &weights_file);
        let w = &weights.bytes()[..weights_file.len()];
        load(&onnx_bytes, w).unwrap_or_else(|e| panic!("{}: {e}", model_path.display()));
        let name = entry.file_name();
        let reference = format!(
            "{}/tests/corpus/reference/fixtures/{}.expected.txt",
            env!("CARGO_MANIFEST_DIR"),
            name.to_string_lossy()
        );
        if let Ok(expected) = std::fs::read_to_string(reference) {
            assert_eq!(dump(&m, w), expected, "{}", model_path.display());
        }
    }
}

/// Development check over a folder of `X.onnx` + `X.onnx.expected.txt` pairs written by
/// `make_reference.py --dump` (e.g. every model of the `onnx` package's backend test data):
/// `CTR_EDGE_ONNX_DUMP_DIR=/tmp/dumps cargo test --test onnx_decode -- --ignored dump_dir`.
#[test]
#[ignore]
fn dump_dir_from_env() {
    let dir = std::env::var("CTR_EDGE_ONNX_DUMP_DIR").expect("set CTR_EDGE_ONNX_DUMP_DIR");
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "onnx") {
            continue;
        }
        let Ok(expected) = std::fs::read_to_string(format!("{}.expected.txt", path.display()))
        else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        checked += 1;
        match decode_model(&bytes) {
            Ok(m) if dump(&m, &[]) == expected => {}
            Ok(m) => failures.push(format!(
                "{}: dump differs\n--- got\n{}--- expected\n{expected}",
                path.display(),
                dump(&m, &[])
            )),
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    eprintln!("checked {checked} models");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#!/usr/bin/env python3
"""Reference models and expected dumps for the runtime's ONNX decoder (tests/onnx_decode.rs).

The models are built and serialized by the Python `onnx` package (protobuf's own encoder, with
external data written by `onnx.save_model`), and the expected `.expected.txt` dumps are read back
by that package too: an encoder and a decoder independent of the runtime's.

Usage (from this folder):
    python3 -m venv /tmp/onnxvenv && /tmp/onnxvenv/bin/pip install onnx numpy
    /tmp/onnxvenv/bin/python make_reference.py                 # regenerate mlp_py.*
    /tmp/onnxvenv/bin/python make_reference.py --dump M.onnx   # print the dump of any model

The dump format is mirrored by `dump()` in tests/onnx_support/mod.rs.
"""
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def value_bytes(t, base_dir):
    arr = numpy_helper.to_array(t, base_dir)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.view(np.uint16)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


def dims_str(shape):
    parts = []
    for d in shape.dim:
        if d.HasField("dim_value"):
            parts.append(str(d.dim_value))
        elif d.HasField("dim_param"):
            parts.append(d.dim_param)
        else:
            parts.append("?")
    return "[" + ",".join(parts) + "]"


def dump_value_info(out, indent, what, v):
    elem, shape = 0, "none"
    if v.type.HasField("tensor_type"):
        tt = v.type.tensor_type
        elem = tt.elem_type
        if tt.HasField("shape"):
            shape = dims_str(tt.shape)
    out.append(f"{indent}{what} '{v.name}' elem {elem} shape {shape}")


def dump_tensor(out, indent, what, t, base_dir):
    if t.data_location == TensorProto.EXTERNAL:
        kind = "external"
    elif t.HasField("raw_data"):
        kind = "raw"
    elif len(t.float_data):
        kind = "float_data"
    elif len(t.int32_data):
        kind = "int32_data"
    elif len(t.int64_data):
        kind = "int64_data"
    elif len(t.double_data):
        kind = "double_data"
    else:
        kind = "empty"
    # The runtime computes with FLOAT, INT32, INT64, BOOL, FLOAT16 (and converts DOUBLE).
    if t.data_type in (1, 6, 7, 9, 10, 11):
        h = "%016x" % fnv1a(value_bytes(t, base_dir))
    else:
        h = "unsupported"
    dims = ",".join(str(d) for d in t.dims)
    out.append(f"{indent}{what} '{t.name}' type {t.data_type} dims [{dims}] data {kind} hash {h}")


def fbits(f):
    return "%08x" % struct.unpack("<I", struct.pack("<f", f))[0]


def attribute_value(a):
    """The dump of a scalar or list attribute (`float 3f800000`, `ints [1,2]`...), or None
    for the other types."""
    A = onnx.AttributeProto
    formats = {
        A.FLOAT: lambda: f"float {fbits(a.f)}",
        A.INT: lambda: f"int {a.i}",
        A.STRING: lambda: f"string {a.s.hex()}",
        A.FLOATS: lambda: f"floats [{','.join(fbits(f) for f in a.floats)}]",
        A.INTS: lambda: f"ints [{','.join(str(i) for i in a.ints)}]",
        A.STRINGS: lambda: f"strings [{','.join(s.hex() for s in a.strings)}]",
    }
    format_value = formats.get(a.type)
    return format_value() if format_value else None


def dump_graph(out, indent, g, base_dir):
    out.append(f"{indent}graph '{g.name}'")
    for v in g.input:
        dump_value_info(out, indent, "input", v)
    for v in g.output:
        dump_value_info(out, indent, "output", v)
    for v in g.value_info:
        dump_value_info(out, indent, "value_info", v)
    for t in g.initializer:
        dump_tensor(out, indent, "initializer", t, base_dir)
    for i, n in enumerate(g.node):
        ins = ",".join(f"'{s}'" for s in n.input)
        outs = ",".join(f"'{s}'" for s in n.output)
        out.append(f"{indent}node {i} '{n.name}' op '{n.op_type}' domain '{n.domain}' in [{ins}] out [{outs}]")
        for a in n.attribute:
            head = f"{indent}  attr '{a.name}'"
            A = onnx.AttributeProto
            value = attribute_value(a)
            if value is not None:
                out.append(f"{head} {value}")
            elif a.type == A.TENSOR:
                out.append(f"{head} tensor")
                dump_tensor(out, indent + "    ", "tensor", a.t, base_dir)
            elif a.type == A.GRAPH:
                out.append(f"{head} graph")
                dump_graph(out, indent + "    ", a.g, base_dir)
            else:
                raise SystemExit(f"attribute type {a.type} not in the dump format")


def dump(path):
    m = onnx.load(path, load_external_data=False)
    base_dir = os.path.dirname(os.path.abspath(path))
    out = [f"ir_version {m.ir_version}"]
    for o in m.opset_import:
        out.append(f"opset_import '{o.domain}' {o.version}")
    out.append(f"producer '{m.producer_name}'")
    for p in m.metadata_props:
        out.append(f"metadata '{p.key}' '{p.value}'")
    dump_graph(out, "", m.graph, base_dir)
    return "\n".join(out) + "\n"


def make_mlp_py():
    rng = np.random.default_rng(7)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    inits = [
        numpy_helper.from_array(f32(6, 16), "fc1.weight"),  # external (384 bytes)
        numpy_helper.from_array(f32(16), "fc1.bias"),  # external (64 bytes -> threshold)
        numpy_helper.from_array(f32(16, 8).astype(np.float16), "fc2.weight_f16"),  # external f16
        numpy_helper.from_array(f32(8), "fc2.bias"),
        numpy_helper.from_array(f32(1, 8), "out.weight"),
        numpy_helper.from_array(np.array([0.25], np.float32), "out.bias"),
        numpy_helper.from_array(np.array([-1, 6], np.int64), "shape"),
        numpy_helper.from_array(np.arange(3, dtype=np.int32), "ids_i32"),
        numpy_helper.from_array(np.array([1.5, -2.0], np.float64), "scale_f64"),
        numpy_helper.from_array(np.array([True, False, True]), "mask"),
        # typed-field encodings (not raw_data)
        helper.make_tensor("alpha_vec", TensorProto.FLOAT, [3], [0.5, 1.5, -2.5]),
        helper.make_tensor("half_bits", TensorProto.FLOAT16, [2], np.array([1.0, -2.0], np.float16).view(np.uint16).tolist()),
    ]
    then_g = helper.make_graph(
        [helper.make_node("Constant", [], ["t_out"], name="then_const", value=helper.make_tensor("tv", TensorProto.FLOAT, [1], [1.0]))],
        "then_branch", [], [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [1])])
    else_g = helper.make_graph(
        [helper.make_node("Constant", [], ["e_out"], name="else_const", value_floats=[2.0])],
        "else_branch", [], [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [1])])
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["x2"], name="reshape"),
        helper.make_node("Gemm", ["x2", "fc1.weight", "fc1.bias"], ["h1"], name="Gemm_1", alpha=1.0, beta=1.0, transB=0),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu1"),
        helper.make_node("Cast", ["fc2.weight_f16"], ["fc2.weight"], name="cast_f16", to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["h2", "fc2.weight"], ["h3"], name="fc2"),
        helper.make_node("Add", ["h3", "fc2.bias"], ["h4"], name="fc2_add"),
        helper.make_node("Relu", ["h4"], ["h5"], name="relu2"),
        helper.make_node("Gemm", ["h5", "out.weight", "out.bias"], ["logit"], name="Gemm_3", alpha=0.5, transB=1),
        helper.make_node("Sigmoid", ["logit"], ["y"], name="sigmoid"),
        helper.make_node("ReduceMean", ["logit"], ["m"], name="reduce", axes=[0, 1], keepdims=0),
        helper.make_node("If", ["cond"], ["branch_out"], name="if_node", then_branch=then_g, else_branch=else_g),
        helper.make_node("Custom", ["y"], ["z"], name="custom", domain="com.example", mode="fast",
                         tags=["a", "b"], weights=[0.1, 0.2]),
    ]
    graph = helper.make_graph(
        nodes, "mlp_py",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 3]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1]),
         helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, [None])],
        inits,
        value_info=[helper.make_tensor_value_info("h1", TensorProto.FLOAT, ["batch", 16])],
    )
    model = helper.make_model(graph, producer_name="make_reference.py",
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    helper.set_model_props(model, {"ctr_edge.method": "none", "note": "python reference"})
    onnx_path = os.path.join(HERE, "mlp_py.onnx")
    weights = "mlp_py.weights"
    if os.path.exists(os.path.join(HERE, weights)):
        os.remove(os.path.join(HERE, weights))
    onnx.save_model(model, onnx_path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=weights, size_threshold=64)
    with open(os.path.join(HERE, "mlp_py.expected.txt"), "w") as f:
        f.write(dump(onnx_path))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--dump":
        for p in sys.argv[2:]:
            sys.stdout.write(dump(p))
    else:
        make_mlp_py()

#!/usr/bin/env python3
"""Select the ONNX backend node cases the runtime can run and copy them under cases/.

The supported op set is read from the runtime's code (`SUPPORTED_OPS` in
runtime/src/graph/ops/mod.rs), so this script and the runtime cannot disagree. A case is kept when
every node of its graph (subgraphs included) uses a default-domain op from that set and its
files stay small. A case written at an opset above the runtime's newest (21) is rewritten to
opset 21 when every node means the same there: same inputs, outputs and attributes, but for
attributes only the newer version has and the node leaves unset (opsets 22-28 mostly add
dtypes); the model then carries the metadata entry
`ctr_edge.conformance.opset_from` with its original opset, and the test reports it. Where the installed onnx wheel ships the generated node data
(`onnx/backend/test/data/node/test_*/`), cases are copied from there; otherwise they are
generated from the `onnx.backend.test.case.node` definitions, exactly as onnx's own
`backend-test-tools generate-data` writes them.

Writes only cases/<case>/model.onnx and cases/<case>/test_data_set_0/{input,output}_N.pb, and
prints what it wrote. Usage (from the repository root):

    python runtime/tests/conformance/select.py
"""

from __future__ import annotations

import os
import sys

# This file's name shadows the standard `select` module that onnx imports indirectly: drop the
# script's folder from the import path before importing anything else.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import re  # noqa: E402
import shutil  # noqa: E402

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
OP_RS = os.path.join(HERE, "..", "..", "src", "graph", "ops", "mod.rs")
# The newest default-domain opset the runtime accepts (OPSET_RANGE in runtime/src/graph/mod.rs).
OPSET_MAX = 21
# Per-case size cap (bytes) so the committed corpus stays small.
MAX_CASE_BYTES = 200 * 1024


def supported_ops() -> set[str]:
    src = open(OP_RS, encoding="utf-8").read()
    m = re.search(r"pub const SUPPORTED_OPS: &\[&str\] = &\[(.*?)\];", src, re.S)
    if not m:
        sys.exit(f"SUPPORTED_OPS not found in {OP_RS}")
    return set(re.findall(r'"([A-Za-z0-9_]+)"', m.group(1)))


def graph_ops(graph: onnx.GraphProto) -> set[tuple[str, str]]:
    ops = set()
    for node in graph.node:
        ops.add((node.domain, node.op_type))
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                ops |= graph_ops(attr.g)
            for g in attr.graphs:
                ops |= graph_ops(g)
    return ops


def op_signature(schema) -> tuple:
    """An op definition without its type constraints: attributes, inputs and outputs."""
    attrs = tuple(
        sorted(
            (a.name, int(a.type), a.required, a.default_value.SerializeToString())
            for a in schema.attributes.values()
        )
    )
    ios = tuple(
        (p.name, int(p.option), p.is_homogeneous) for p in list(schema.inputs) + list(schema.outputs)
    )
    return attrs, ios, len(schema.inputs), len(schema.outputs)


def graph_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from graph_nodes(attr.g)


def same_definition(node: onnx.NodeProto, version: int) -> bool:
    """Whether `node` means the same at OPSET_MAX as at `version`: same inputs and outputs, and
    the same attributes, except attributes that only the newer version has and the node
    leaves at their default (Cast's round_mode, used only by float8 types)."""
    new = onnx.defs.get_schema(node.op_type, version, "")
    old = onnx.defs.get_schema(node.op_type, OPSET_MAX, "")
    if new.since_version == old.since_version:
        return True
    if op_signature(new)[1:] != op_signature(old)[1:]:
        return False
    set_here = {a.name for a in node.attribute}
    for name, a in new.attributes.items():
        b = old.attributes.get(name)
        if b is None:
            if name in set_here:
                return False
        elif (int(a.type), a.required, a.default_value.SerializeToString()) != (
            int(b.type),
            b.required,
            b.default_value.SerializeToString(),
        ):
            return False
    return all(name in new.attributes for name in old.attributes)


def downgrade(model: onnx.ModelProto) -> int | None:
    """Rewrites a case written at an opset above the runtime's newest (OPSET_MAX) to OPSET_MAX
    when every node means the same there ([`same_definition`]; opsets 22-28 mostly add dtypes).
    Returns the original opset when it rewrote, else None."""
    imports = [i for i in model.opset_import if i.domain in ("", "ai.onnx")]
    if len(imports) != 1 or imports[0].version <= OPSET_MAX:
        return None
    version = imports[0].version
    if not all(same_definition(n, version) for n in graph_nodes(model.graph)):
        return None
    imports[0].version = OPSET_MAX
    # Recorded in the model so the test can report it.
    entry = model.metadata_props.add()
    entry.key, entry.value = "ctr_edge.conformance.opset_from", str(version)
    return version


def runnable(model: onnx.ModelProto, ops: set[str]) -> bool:
    return all(d in ("", "ai.onnx") and o in ops for d, o in graph_ops(model.graph))


def tensor_bytes(value, info: onnx.ValueInfoProto) -> bytes | None:
    """Serialized TensorProto of an input/output value; None for non-tensor values."""
    if not info.type.HasField("tensor_type"):
        return None
    if isinstance(value, onnx.TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(value, info.name).SerializeToString()


def shipped_cases():
    """(name, model bytes, [(file name, bytes)]) from the wheel's generated data."""
    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
    for name in sorted(os.listdir(root)):
        case = os.path.join(root, name)
        data = os.path.join(case, "test_data_set_0")
        if not os.path.isdir(data):
            continue
        model = open(os.path.join(case, "model.onnx"), "rb").read()
        files = [
            (f, open(os.path.join(data, f), "rb").read()) for f in sorted(os.listdir(data))
        ]
        yield name, model, files


def generated_cases():
    """The same triples, generated from the node case definitions."""
    import warnings

    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        # Some case definitions overflow or divide by zero on purpose.
        warnings.simplefilter("ignore", RuntimeWarning)
        cases = node.collect_testcases()
    for case in sorted(cases, key=lambda c: c.name):
        if case.model is None or not case.data_sets:
            continue
        inputs, outputs = case.data_sets[0]
        files = []
        ok = True
        for prefix, values, infos in (
            ("input", inputs, case.model.graph.input),
            ("output", outputs, case.model.graph.output),
        ):
            for j, value in enumerate(values):
                b = tensor_bytes(value, infos[j])
                if b is None:
                    ok = False
                    break
                files.append((f"{prefix}_{j}.pb", b))
        if ok:
            yield case.name, case.model.SerializeToString(), files


def main() -> None:
    ops = supported_ops()
    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
    source = shipped_cases() if os.path.isdir(root) else generated_cases()
    if os.path.isdir(CASES):
        shutil.rmtree(CASES)
    kept = total = 0
    for name, model_bytes, files in source:
        model = onnx.load_from_string(model_bytes)
        if not runnable(model, ops):
            continue
        original = downgrade(model)
        if original is not None:
            model_bytes = model.SerializeToString()
        size = len(model_bytes) + sum(len(b) for _, b in files)
        if size > MAX_CASE_BYTES:
            print(f"skip {name}: {size} bytes > {MAX_CASE_BYTES}")
            continue
        data = os.path.join(CASES, name, "test_data_set_0")
        os.makedirs(data)
        with open(os.path.join(CASES, name, "model.onnx"), "wb") as f:
            f.write(model_bytes)
        for fname, b in files:
            with open(os.path.join(data, fname), "wb") as f:
                f.write(b)
        kept += 1
        total += size
        note = f", opset {original} -> {OPSET_MAX}" if original is not None else ""
        print(f"copied {name} ({size} bytes{note})")
    print(f"{kept} cases, {total} bytes, onnx {onnx.__version__}")


if __name__ == "__main__":
    main()

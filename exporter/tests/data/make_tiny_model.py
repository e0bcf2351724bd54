#!/usr/bin/env python3
"""Regenerate the tiny CTR model and its reference outputs used by the exporter's CLI tests.

    /tmp/npvenv/bin/pip install numpy scikit-learn onnx onnxruntime
    /tmp/npvenv/bin/python exporter/tests/data/make_tiny_model.py

The model has two inputs, like a CTR model: dense features and categorical ids.
    dense f32 [N, 4], ids i64 [N, 2]
    emb  = Reshape(Gather(E[10, 3], ids), [-1, 6])            -> [N, 6]
    h    = Relu(Concat(dense, emb) @ W1[10, 3] + b1)           -> [N, 3]
    prob = Sigmoid(h @ W2[3, 1] + b2)                          -> [N, 1]

Writes, next to this script:
- tiny.onnx           the model (opset 13, batch dimension 'N', checked by onnx.checker)
- tiny_fixed_batch.onnx  the same model exported with a fixed batch of 1 (inputs, outputs and
                      value infos), as some exporters write it: tools must still run any batch
- tiny_data.npz       dense, ids and label (i64 0/1) for 200 rows
- tiny_expected.npz   prob as computed by onnxruntime (checked against a numpy forward pass)
- tiny_expected.json  rows, AUC and LogLoss of prob by scikit-learn, positives rate
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.metrics import log_loss, roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = 200
rng = np.random.default_rng(7)


def path(name):
    return os.path.join(HERE, name)


E = rng.standard_normal((10, 3)).astype(np.float32)
W1 = rng.standard_normal((10, 3)).astype(np.float32)
b1 = rng.standard_normal(3).astype(np.float32) * 0.1
W2 = rng.standard_normal((3, 1)).astype(np.float32)
b2 = np.array([-0.2], dtype=np.float32)

inits = [
    numpy_helper.from_array(E, "E"),
    numpy_helper.from_array(W1, "W1"),
    numpy_helper.from_array(b1, "b1"),
    numpy_helper.from_array(W2, "W2"),
    numpy_helper.from_array(b2, "b2"),
    numpy_helper.from_array(np.array([-1, 6], dtype=np.int64), "emb_shape"),
]
nodes = [
    helper.make_node("Gather", ["E", "ids"], ["emb3"], name="embedding", axis=0),
    helper.make_node("Reshape", ["emb3", "emb_shape"], ["emb"], name="flatten"),
    helper.make_node("Concat", ["dense", "emb"], ["x"], name="concat", axis=1),
    helper.make_node("MatMul", ["x", "W1"], ["h0"], name="fc1"),
    helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
    helper.make_node("Relu", ["h1"], ["h"], name="relu"),
    helper.make_node("MatMul", ["h", "W2"], ["z0"], name="fc2"),
    helper.make_node("Add", ["z0", "b2"], ["z"], name="fc2_bias"),
    helper.make_node("Sigmoid", ["z"], ["prob"], name="sigmoid"),
]
graph = helper.make_graph(
    nodes,
    "tiny_ctr",
    [
        helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["N", 4]),
        helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 2]),
    ],
    [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                          producer_name="ctr-edge make_tiny_model.py")
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, path("tiny.onnx"))

# The same graph with every batch dimension fixed to 1, value infos included.
fixed = helper.make_graph(
    nodes,
    "tiny_ctr_fixed_batch",
    [
        helper.make_tensor_value_info("dense", TensorProto.FLOAT, [1, 4]),
        helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 2]),
    ],
    [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1])],
    inits,
    value_info=[
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10]),
        helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 3]),
    ],
)
fixed_model = helper.make_model(fixed, opset_imports=[helper.make_opsetid("", 13)],
                                producer_name="ctr-edge make_tiny_model.py")
fixed_model.ir_version = 8
onnx.checker.check_model(fixed_model, full_check=True)
onnx.save(fixed_model, path("tiny_fixed_batch.onnx"))

dense = rng.standard_normal((ROWS, 4)).astype(np.float32)
ids = rng.integers(0, 10, size=(ROWS, 2), dtype=np.int64)

sess = ort.InferenceSession(path("tiny.onnx"), providers=["CPUExecutionProvider"])
(prob,) = sess.run(None, {"dense": dense, "ids": ids})


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


x = np.concatenate([dense, E[ids].reshape(ROWS, 6)], axis=1).astype(np.float64)
reference = sigmoid(np.maximum(x @ W1 + b1, 0) @ W2 + b2)
assert np.allclose(prob, reference, atol=1e-6), "onnxruntime and numpy disagree"

# Labels drawn from a noisy copy of the model: informative but imperfect (AUC well inside
# (0.5, 1)).
noisy = sigmoid(np.log(reference / (1 - reference)) + rng.standard_normal((ROWS, 1)))
label = (rng.uniform(size=(ROWS, 1)) < noisy).astype(np.int64).reshape(ROWS)

np.savez(path("tiny_data.npz"), dense=dense, ids=ids, label=label)
np.savez(path("tiny_expected.npz"), prob=prob)
scores = prob.astype(np.float64).reshape(ROWS)
expected = {
    "rows": ROWS,
    "auc": float(roc_auc_score(label, scores)),
    "logloss": float(log_loss(label, np.clip(scores, 1e-15, 1 - 1e-15))),
    "positives_rate": float(label.mean()),
}
with open(path("tiny_expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
    f.write("\n")
print(expected)

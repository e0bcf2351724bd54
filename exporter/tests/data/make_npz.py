#!/usr/bin/env python3
"""Regenerate the .npy/.npz and metric fixtures of the exporter's tests.

Run from anywhere with a Python that has numpy and scikit-learn:
    python3 -m venv /tmp/npvenv && /tmp/npvenv/bin/pip install numpy scikit-learn
    /tmp/npvenv/bin/python exporter/tests/data/make_npz.py

Writes, next to this script:
- arrays.npz             np.savez (stored members): one array per supported dtype
- arrays_compressed.npz  np.savez_compressed (deflate members): the same arrays
- arrays_expected.json   for each array: dtype, shape and the values, flattened (C order)
- v2.npy, v3.npy         an f32 array saved with format versions 2.0 and 3.0
- fortran.npy            a Fortran-ordered array (the reader must refuse it)
- bigendian.npy          a big-endian '>f4' array (the reader must refuse it)
- metrics_expected.json  score/label cases with scikit-learn's roc_auc_score and log_loss
"""
import json
import os

import numpy as np
import sklearn
from sklearn.metrics import log_loss, roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240527)


def path(name):
    return os.path.join(HERE, name)


arrays = {
    "dense_f32": rng.standard_normal((3, 4)).astype(np.float32),
    "vector_f64": np.array([0.1, -2.5, 1e300, -0.0, 3.0], dtype=np.float64),
    "ids_i64": np.array([[0, -1, 2**62], [7, 8, -(2**63)]], dtype=np.int64),
    "ids_i32": np.array([1, -2, 2**31 - 1, -(2**31)], dtype=np.int32),
    "mask_bool": np.array([True, False, False, True, True, False]),
    "half_f16": np.array([0.5, -1.25, 65504.0], dtype=np.float16),
    "scalar_f64": np.float64(42.5) * np.ones((), dtype=np.float64),
    "empty_f32": np.zeros((0, 2), dtype=np.float32),
    "cube_f32": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8,
}
np.savez(path("arrays.npz"), **arrays)
np.savez_compressed(path("arrays_compressed.npz"), **arrays)
expected = {
    name: {
        "dtype": a.dtype.str,
        "shape": list(a.shape),
        # float(x) of an f32/f16 value is its exact f64 value: compare for equality.
        "values": [bool(v) if a.dtype == np.bool_ else (int(v) if a.dtype.kind == "i" else float(v))
                   for v in a.reshape(-1)],
    }
    for name, a in arrays.items()
}
# The order of the members in the archive (file order).
expected = {"order": list(arrays), "arrays": expected}
with open(path("arrays_expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
    f.write("\n")

versioned = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
for version in [(2, 0), (3, 0)]:
    with open(path(f"v{version[0]}.npy"), "wb") as f:
        np.lib.format.write_array(f, versioned, version=version)
np.save(path("fortran.npy"), np.asfortranarray(versioned))
np.save(path("bigendian.npy"), versioned.astype(">f4"))

# Metric cases. LogLoss is computed on probabilities clipped to [1e-15, 1 - 1e-15] (the
# exporter's documented clipping; sklearn >= 1.5 clips at float64 eps, which changes nothing
# once the input is clipped like this).
EPS = 1e-15


def case(name, scores, labels):
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    return {
        "name": name,
        "scores": scores.tolist(),
        "labels": labels.astype(int).tolist(),
        "auc": float(roc_auc_score(labels, scores)),
        "logloss": float(log_loss(labels, np.clip(scores, EPS, 1 - EPS))),
    }


n = 150
p = rng.uniform(size=n)
y = (rng.uniform(size=n) < p).astype(int)
cases = [
    case("continuous", np.round(p, 6), y),
    # One decimal: many tied scores across both classes.
    case("ties", np.round(p, 1), y),
    case("all_tied", [0.3] * 6, [0, 1, 0, 1, 1, 0]),
    case("perfect", [0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1]),
    case("sklearn_doc", [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]),
    # Probabilities of exactly 0 and 1 exercise the clipping.
    case("extremes", [0.0, 1.0, 1.0, 0.0, 0.5, 1e-20], [0, 1, 0, 1, 1, 0]),
]
with open(path("metrics_expected.json"), "w") as f:
    json.dump({"sklearn_version": sklearn.__version__, "logloss_eps": EPS, "cases": cases}, f)
    f.write("\n")
print("wrote fixtures to", HERE)

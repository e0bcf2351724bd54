#!/usr/bin/env python3
"""Independent check of a compressed ctr-edge artifact with the ONNX reference tools.

    ort_check.py OUT_DIR/model.onnx DATA.npz EXPECTED.npz [--tol 1e-4]

1. `onnx.checker.check_model(path, full_check=True)` on the model file (external data
   resolved from its folder), and its opset must be in 13..18;
2. onnxruntime (CPU, one thread) runs the model on the arrays of DATA.npz named as the model
   inputs;
3. every model output must match the array of the same name in EXPECTED.npz (written by the
   Rust test from tract's outputs) within the tolerance, absolute or relative.

Prints one line per output and exits non-zero on any failure. Needs onnx, onnxruntime, numpy
(`pip install onnx onnxruntime numpy`).
"""

import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("expected")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    onnx.checker.check_model(args.model, full_check=True)
    model = onnx.load(args.model, load_external_data=False)
    opset = next(
        (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None
    )
    if opset is None or not 13 <= opset <= 18:
        print(f"FAIL opset {opset} is outside 13..18")
        return 1

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        args.model, sess_options=options, providers=["CPUExecutionProvider"]
    )
    data = np.load(args.data)
    feeds = {i.name: data[i.name] for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(names, feeds)
    expected = np.load(args.expected)

    ok = True
    for name, got in zip(names, outputs):
        if name not in expected:
            print(f"FAIL output {name}: not in {args.expected}")
            ok = False
            continue
        want = expected[name]
        if got.shape != want.shape:
            print(f"FAIL output {name}: shape {got.shape}, expected {want.shape}")
            ok = False
            continue
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        bound = args.tol * np.maximum(1.0, np.abs(want.astype(np.float64)))
        worst = float(diff.max()) if diff.size else 0.0
        if np.any(diff > bound) or not np.all(np.isfinite(got)):
            print(f"FAIL output {name}: max |onnxruntime - tract| = {worst:.3e} > {args.tol}")
            ok = False
        else:
            print(f"ok   output {name} {list(got.shape)}: max |onnxruntime - tract| = {worst:.3e}")
    print(f"checker ok, opset {opset}, onnxruntime {ort.__version__}, onnx {onnx.__version__}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

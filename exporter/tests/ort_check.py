#!/usr/bin/env python3
"""Independent check of compressed ctr-edge artifacts with the ONNX reference tools.

    ort_check.py OUT_DIR/model.onnx DATA.npz EXPECTED.npz [--tol 1e-4] [--write ORT.npz]
    ort_check.py --jobs JOBS.tsv

For each model:
1. `onnx.checker.check_model(path, full_check=True)` on the model file (external data
   resolved from its folder), and its opset must be in 13..18;
2. onnxruntime (CPU, one thread) runs the model on the arrays of DATA.npz named as the model
   inputs;
3. with EXPECTED.npz (`-` for none): every model output must match the array of the same name
   (written by the Rust test from tract's outputs) within the tolerance, absolute or relative;
4. with `--write`: onnxruntime's outputs are saved there (one array per output name), for the
   Rust tests to compare the native runtime against.

`--jobs` reads one model per line, tab-separated: MODEL DATA EXPECTED|- TOL WRITE|- (one
process for many models: importing onnxruntime once saves a second per model).

Prints one line per output and exits non-zero on any failure. Needs onnx, onnxruntime, numpy
(`pip install onnx onnxruntime numpy`).
"""

import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort


def check(model_path, data_path, expected_path, tol, write_path) -> bool:
    prefix = f"{model_path}:"
    try:
        onnx.checker.check_model(model_path, full_check=True)
    except Exception as e:  # the checker raises several exception types
        print(f"FAIL {prefix} onnx.checker: {e}")
        return False
    model = onnx.load(model_path, load_external_data=False)
    opset = next(
        (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None
    )
    if opset is None or not 13 <= opset <= 18:
        print(f"FAIL {prefix} opset {opset} is outside 13..18")
        return False

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        model_path, sess_options=options, providers=["CPUExecutionProvider"]
    )
    data = np.load(data_path)
    feeds = {i.name: data[i.name] for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(names, feeds)
    if write_path:
        np.savez(write_path, **dict(zip(names, outputs)))

    ok = True
    for name, got in zip(names, outputs):
        if not np.all(np.isfinite(got)):
            print(f"FAIL {prefix} output {name}: not finite")
            ok = False
            continue
        if not expected_path:
            print(f"ok   {prefix} output {name} {list(got.shape)} written")
            continue
        expected = np.load(expected_path)
        if name not in expected:
            print(f"FAIL {prefix} output {name}: not in {expected_path}")
            ok = False
            continue
        want = expected[name]
        if got.shape != want.shape:
            print(f"FAIL {prefix} output {name}: shape {got.shape}, expected {want.shape}")
            ok = False
            continue
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        bound = tol * np.maximum(1.0, np.abs(want.astype(np.float64)))
        worst = float(diff.max()) if diff.size else 0.0
        if np.any(diff > bound):
            print(f"FAIL {prefix} output {name}: max |onnxruntime - tract| = {worst:.3e} > {tol}")
            ok = False
        else:
            print(f"ok   {prefix} output {name} {list(got.shape)}: max |onnxruntime - tract| = {worst:.3e}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("data", nargs="?")
    ap.add_argument("expected", nargs="?")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--write")
    ap.add_argument("--jobs")
    args = ap.parse_args()

    jobs = []
    if args.jobs:
        with open(args.jobs, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line:
                    continue
                fields = line.split("\t")
                if len(fields) != 5:
                    print(f"FAIL {args.jobs}:{n}: expected 5 tab-separated fields, got {len(fields)}")
                    return 2
                model, data, expected, tol, write = fields
                jobs.append((model, data, None if expected == "-" else expected, float(tol),
                             None if write == "-" else write))
    elif args.model and args.data:
        expected = None if args.expected in (None, "-") else args.expected
        jobs.append((args.model, args.data, expected, args.tol, args.write))
    else:
        ap.error("give MODEL DATA [EXPECTED] or --jobs FILE")

    failed = sum(not check(*job) for job in jobs)
    print(f"{len(jobs) - failed}/{len(jobs)} models ok; onnxruntime {ort.__version__}, onnx {onnx.__version__}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

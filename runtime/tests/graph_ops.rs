//! Op semantics on small graphs, each compared with a straightforward reference written here
//! (plain loops over explicit indices), independent of the runtime's kernels and planner.

mod onnx_support;

use ctr_edge_runtime::session::{InputData, OutputData};
use ctr_edge_runtime::{Error, Input, Model};
use onnx_support::*;

fn run1(model: &[u8], inputs: &[(&str, &[usize], &[f32])]) -> (Vec<usize>, Vec<f32>) {
    let m = Model::from_bytes(model, &[]).expect("model loads");
    let mut s = m.session();
    let ins: Vec<Input<'_>> = inputs
        .iter()
        .map(|(n, sh, d)| input(n, sh, InputData::F32(d)))
        .collect();
    s.run(&ins).expect("runs");
    let o = s.output(0).expect("output");
    (o.shape.to_vec(), o.data.to_vec())
}

/// Graph `g` of one node `spec` reading `X` and an int64 initializer `param`, writing `Y`
/// (both of dtype `dtype`).
fn one_param_graph(spec: &str, param: (&str, &[i64]), dtype: i32, x: &[usize], y: &[usize]) -> Msg {
    graph(
        "g",
        &[op(spec, &[])],
        &[tensor_int64s(param.0, &[param.1.len() as i64], param.1)],
        &[value_info("X", dtype, &dims(x))],
        &[value_info("Y", dtype, &dims(y))],
    )
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}"
        );
    }
}

fn dims(s: &[usize]) -> Vec<D<'static>> {
    s.iter().map(|&d| D::V(d as i64)).collect()
}

#[test]
fn gemm_all_attributes_match_reference() {
    // Y = alpha * A^T * B^T + beta * C, A stored [k, m], B stored [n, k], C broadcast [m, 1].
    let (m, k, n) = (3usize, 5usize, 4usize);
    let a = vals(k * m, 1);
    let b = vals(n * k, 2);
    let c = vals(m, 3);
    let (alpha, beta) = (0.5f32, 2.0f32);
    let g = graph(
        "g",
        &[op(
            "Gemm gemm: A B C -> Y",
            &[
                attr_float("alpha", alpha),
                attr_float("beta", beta),
                attr_int("transA", 1),
                attr_int("transB", 1),
            ],
        )],
        &[
            tensor_floats("B", &[n as i64, k as i64], &b),
            tensor_floats("C", &[m as i64, 1], &c),
        ],
        &[value_info("A", FLOAT, &dims(&[k, m]))],
        &[value_info("Y", FLOAT, &dims(&[m, n]))],
    );
    let (shape, y) = run1(&model_bytes(&g), &[("A", &[k, m], &a)]);
    assert_eq!(shape, [m, n]);
    let mut want = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for p in 0..k {
                s += a[p * m + i] as f64 * b[j * k + p] as f64;
            }
            want[i * n + j] = (alpha as f64 * s + beta as f64 * c[i] as f64) as f32;
        }
    }
    assert_close(&y, &want, 1e-5);
}

#[test]
fn gemm_linear_layer_with_symbolic_batch() {
    // The PyTorch Linear export: Gemm(X, W[n,k], b[n], transB=1), batch symbolic.
    let (k, n) = (17usize, 9usize);
    let w = vals(n * k, 4);
    let bias = vals(n, 5);
    let g = graph(
        "g",
        &[op("Gemm fc: X W b -> Y", &[attr_int("transB", 1)])],
        &[
            tensor_floats("W", &[n as i64, k as i64], &w),
            tensor_floats("b", &[n as i64], &bias),
        ],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(k as i64)])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(n as i64)])],
    );
    let bytes = model_bytes(&g);
    for batch in [1usize, 3, 64] {
        let x = vals(batch * k, 6 + batch as u64);
        let (shape, y) = run1(&bytes, &[("X", &[batch, k], &x)]);
        assert_eq!(shape, [batch, n]);
        let mut want = vec![0f32; batch * n];
        for r in 0..batch {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|p| x[r * k + p] as f64 * w[j * k + p] as f64)
                    .sum();
                want[r * n + j] = (s + bias[j] as f64) as f32;
            }
        }
        assert_close(&y, &want, 1e-5);
    }
}

#[test]
fn batched_matmul_broadcasts_batch_dims() {
    // [2,3,4] x [4,5] and [2,3,4] x [2,4,5].
    let a = vals(2 * 3 * 4, 7);
    for shared in [true, false] {
        let bshape: Vec<usize> = if shared { vec![4, 5] } else { vec![2, 4, 5] };
        let b = vals(bshape.iter().product(), 8);
        let g = graph(
            "g",
            &[op("MatMul mm: A B -> Y", &[])],
            &[tensor_floats(
                "B",
                &bshape.iter().map(|&d| d as i64).collect::<Vec<_>>(),
                &b,
            )],
            &[value_info("A", FLOAT, &dims(&[2, 3, 4]))],
            &[value_info("Y", FLOAT, &dims(&[2, 3, 5]))],
        );
        let (shape, y) = run1(&model_bytes(&g), &[("A", &[2, 3, 4], &a)]);
        assert_eq!(shape, [2, 3, 5]);
        let mut want = vec![0f32; 30];
        for bt in 0..2 {
            for i in 0..3 {
                for j in 0..5 {
                    let boff = if shared { 0 } else { bt * 20 };
                    let s: f64 = (0..4)
                        .map(|p| a[bt * 12 + i * 4 + p] as f64 * b[boff + p * 5 + j] as f64)
                        .sum();
                    want[bt * 15 + i * 5 + j] = s as f32;
                }
            }
        }
        assert_close(&y, &want, 1e-5);
    }
}

#[test]
fn binary_ops_broadcast_numpy_style() {
    // [2,1,3] op [4,1] -> [2,4,3]
    let a = vals(6, 9);
    let b: Vec<f32> = vals(4, 10).iter().map(|v| v + 2.0).collect(); // away from 0 for Div
    for (op, f) in [
        ("Add", (|x, y| x + y) as fn(f32, f32) -> f32),
        ("Sub", |x, y| x - y),
        ("Mul", |x, y| x * y),
        ("Div", |x, y| x / y),
    ] {
        let g = graph(
            "g",
            &[node(op, "op", &["A", "B"], &["Y"], &[])],
            &[tensor_floats("B", &[4, 1], &b)],
            &[value_info("A", FLOAT, &dims(&[2, 1, 3]))],
            &[value_info("Y", FLOAT, &dims(&[2, 4, 3]))],
        );
        let (shape, y) = run1(&model_bytes(&g), &[("A", &[2, 1, 3], &a)]);
        assert_eq!(shape, [2, 4, 3], "{op}");
        let mut want = Vec::new();
        for i in 0..2 {
            for bj in &b {
                for l in 0..3 {
                    want.push(f(a[i * 3 + l], *bj));
                }
            }
        }
        assert_close(&y, &want, 1e-6);
    }
}

#[test]
fn pow_reduce_and_transpose_like_an_fm_layer() {
    // FM second-order term: 0.5 * sum_k ((sum_f e)^2 - sum_f e^2), e: [N, F, K]
    let (n, f, k) = (3usize, 4usize, 5usize);
    let e = vals(n * f * k, 11);
    let g = graph(
        "g",
        &[
            op("ReduceSum s: E ax1 -> S", &[attr_int("keepdims", 1)]),
            op("Pow sq: S two -> SQ", &[]),
            op("Mul ee: E E -> EE", &[]),
            op("ReduceSum s2: EE ax1 -> S2", &[attr_int("keepdims", 1)]),
            op("Sub d: SQ S2 -> DF", &[]),
            op("Transpose t: DF -> T", &[attr_ints("perm", &[0, 2, 1])]),
            op("ReduceSum s3: T ax1 -> R", &[attr_int("keepdims", 0)]),
            op("Mul h: R half -> Y", &[]),
        ],
        &[
            tensor_int64s("ax1", &[1], &[1]),
            tensor_floats("two", &[], &[2.0]),
            tensor_floats("half", &[], &[0.5]),
        ],
        &[value_info(
            "E",
            FLOAT,
            &[D::P("N"), D::V(f as i64), D::V(k as i64)],
        )],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(1)])],
    );
    let (shape, y) = run1(&model_bytes(&g), &[("E", &[n, f, k], &e)]);
    assert_eq!(shape, [n, 1]);
    for r in 0..n {
        let mut want = 0f64;
        for kk in 0..k {
            let s: f64 = (0..f).map(|ff| e[r * f * k + ff * k + kk] as f64).sum();
            let s2: f64 = (0..f)
                .map(|ff| (e[r * f * k + ff * k + kk] as f64).powi(2))
                .sum();
            want += s * s - s2;
        }
        assert!(
            (y[r] as f64 - 0.5 * want).abs() < 1e-5,
            "row {r}: {} vs {}",
            y[r],
            0.5 * want
        );
    }
}

#[test]
fn pytorch_reshape_shape_chain_is_folded_for_any_batch() {
    // Shape(X) -> Gather(0) -> Unsqueeze -> Concat([-1 as batch, 6]) -> Reshape(X).
    let g = graph(
        "g",
        &[
            op("Shape shape: X -> s", &[]),
            op("Gather g0: s zero -> n", &[attr_int("axis", 0)]),
            op("Unsqueeze u: n axes0 -> n1", &[]),
            op("Concat c: n1 six -> target", &[attr_int("axis", 0)]),
            op("Reshape r: X target -> R", &[]),
            op("Slice sl: R st en ax step -> Y", &[]),
        ],
        &[
            tensor_int64s("zero", &[], &[0]),
            tensor_int64s("axes0", &[1], &[0]),
            tensor_int64s("six", &[1], &[6]),
            tensor_int64s("st", &[1], &[-1]),
            tensor_int64s("en", &[1], &[-7]),
            tensor_int64s("ax", &[1], &[1]),
            tensor_int64s("step", &[1], &[-2]),
        ],
        &[value_info("X", FLOAT, &[D::P("batch"), D::V(2), D::V(3)])],
        &[value_info("Y", FLOAT, &[D::P("batch"), D::V(3)])],
    );
    let bytes = model_bytes(&g);
    for batch in [1usize, 2, 5] {
        let x = vals(batch * 6, 12);
        let (shape, y) = run1(&bytes, &[("X", &[batch, 2, 3], &x)]);
        assert_eq!(shape, [batch, 3]);
        // Reverse every other column of each row: columns 5, 3, 1.
        let want: Vec<f32> = (0..batch)
            .flat_map(|r| [5, 3, 1].map(|c| x[r * 6 + c]))
            .collect();
        assert_eq!(y, want);
    }
}

#[test]
fn f16_weights_through_cast_are_used_directly() {
    let (k, n) = (33usize, 7usize);
    let w = vals(k * n, 13);
    let w16: Vec<u8> = w
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let g = graph(
        "g",
        &[
            op("Cast cast: W16 -> W", &[attr_int("to", FLOAT as i64)]),
            op("MatMul mm: X W -> Y", &[]),
        ],
        &[tensor_raw("W16", FLOAT16, &[k as i64, n as i64], &w16)],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(k as i64)])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(n as i64)])],
    );
    let x = vals(2 * k, 14);
    let (_, y) = run1(&model_bytes(&g), &[("X", &[2, k], &x)]);
    for r in 0..2 {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|p| x[r * k + p] as f64 * half::f16::from_f32(w[p * n + j]).to_f64())
                .sum();
            assert!((y[r * n + j] as f64 - s).abs() < 1e-5, "({r},{j})");
        }
    }
}

fn embedding_model() -> Vec<u8> {
    // X f32 [N, 2] -> Slice column 1 -> Cast int64 -> Gather(E[10, 4]) -> ReduceSum(axis 1).
    let e = vals(40, 15);
    let g = graph(
        "g",
        &[
            op("Slice sl: X s e a -> col", &[]),
            op("Cast cast: col -> ids", &[attr_int("to", INT64 as i64)]),
            op("Gather emb: E ids -> G", &[attr_int("axis", 0)]),
            op("ReduceSum rs: G a -> Y", &[attr_int("keepdims", 0)]),
        ],
        &[
            tensor_floats("E", &[10, 4], &e),
            tensor_int64s("s", &[1], &[1]),
            tensor_int64s("e", &[1], &[2]),
            tensor_int64s("a", &[1], &[1]),
        ],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(2)])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(4)])],
    );
    model_bytes(&g)
}

#[test]
fn gather_ids_and_out_of_range_error() {
    let bytes = embedding_model();
    let e = vals(40, 15);
    // In range, including a negative id (ONNX: counts from the end).
    let x = [0.0, 3.0, 0.0, -1.0];
    let (_, y) = run1(&bytes, &[("X", &[2, 2], &x)]);
    assert_eq!(&y[..4], &e[12..16]);
    assert_eq!(&y[4..], &e[36..40]);
    // Out of range: a typed error naming the input, the row and the table size.
    let m = Model::from_bytes(&bytes, &[]).unwrap();
    let mut s = m.session();
    let x = [0.0, 3.0, 0.0, 10.0];
    let err = s
        .run(&[input("X", &[2, 2], InputData::F32(&x))])
        .unwrap_err();
    assert!(
        matches!(&err, Error::IndexOutOfRange { input, row: 1, index: 10, table_rows: 10 } if input == "X"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("'X'") && msg.contains("row 1") && msg.contains("10 rows"),
        "{msg}"
    );
    // NaN id: an error, not row 0.
    let x = [0.0, f32::NAN, 0.0, 1.0];
    let err = s
        .run(&[input("X", &[2, 2], InputData::F32(&x))])
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFinite { input, position: 1 } if input == "X"),
        "{err:?}"
    );
    // The session still works after errors.
    let x = [0.0, 3.0, 0.0, 2.0];
    s.run(&[input("X", &[2, 2], InputData::F32(&x))]).unwrap();
    assert_eq!(s.output(0).unwrap().data[4..], e[8..12]);
}

#[test]
fn input_mismatch_names_input_and_shapes() {
    let bytes = embedding_model();
    let m = Model::from_bytes(&bytes, &[]).unwrap();
    let mut s = m.session();
    let x = [0.0f32; 6];
    let err = s
        .run(&[input("X", &[2, 3], InputData::F32(&x))])
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::InputMismatch { .. })
            && msg.contains("'X'")
            && msg.contains("[N, 2]")
            && msg.contains("[2, 3]"),
        "{msg}"
    );
    let ids = [0i64; 4];
    let err = s
        .run(&[input("X", &[2, 2], InputData::I64(&ids))])
        .unwrap_err();
    assert!(err.to_string().contains("i64"), "{err}");
    let err = s
        .run(&[input("Z", &[2, 2], InputData::F32(&x[..4]))])
        .unwrap_err();
    assert!(err.to_string().contains("'Z'"), "{err}");
    let err = s.run(&[]).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    // The same input twice (once first-wins, silently) is refused.
    let twice = input("X", &[2, 2], InputData::F32(&x[..4]));
    s.run(&[twice]).expect("one X runs");
    let err = s.run(&[twice, twice]).unwrap_err();
    assert!(
        matches!(err, Error::InputMismatch { .. }) && err.to_string().contains("twice"),
        "{err}"
    );
}

/// The error of loading a graph of `nodes` from input X to output Y (both f32 [1, 2]).
fn load_error(nodes: &[Msg]) -> Error {
    let g = graph(
        "g",
        nodes,
        &[],
        &[value_info("X", FLOAT, &dims(&[1, 2]))],
        &[value_info("Y", FLOAT, &dims(&[1, 2]))],
    );
    Model::from_bytes(&model_bytes(&g), &[]).unwrap_err()
}

#[test]
fn unsupported_op_and_cycles_fail_at_load() {
    let err = load_error(&[op("LSTM my_lstm: X -> Y", &[])]);
    assert!(
        matches!(&err, Error::UnsupportedOp { op, node } if op == "LSTM" && node == "my_lstm"),
        "{err:?}"
    );
    let err = load_error(&[
        op("Relu a: B -> A", &[]),
        op("Relu b: A -> B", &[]),
        op("Add c: X A -> Y", &[]),
    ]);
    assert!(
        matches!(err, Error::InvalidGraph { .. }) && err.to_string().contains("cycle"),
        "{err}"
    );
    // A value nobody produces.
    let err = load_error(&[op("Add c: X ghost -> Y", &[])]);
    assert!(err.to_string().contains("ghost"), "{err}");
    // Shapes that cannot work fail at load (validation plan), naming the node.
    let g = graph(
        "g",
        &[op("MatMul bad_mm: X W -> Y", &[])],
        &[tensor_floats("W", &[3, 2], &[0.0; 6])],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(4)])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(2)])],
    );
    let err = Model::from_bytes(&model_bytes(&g), &[]).unwrap_err();
    assert!(err.to_string().contains("bad_mm"), "{err}");
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The multi-index of flat position `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for i in (0..shape.len()).rev() {
        idx[i] = flat % shape[i];
        flat /= shape[i];
    }
    idx
}

/// Flat position in `shape` of `out_idx` (an index of a larger broadcast shape): right-aligned,
/// size-1 dims read index 0.
fn bcast_at(out_idx: &[usize], shape: &[usize]) -> usize {
    let off = out_idx.len() - shape.len();
    let st = strides(shape);
    (0..shape.len())
        .map(|i| {
            if shape[i] == 1 {
                0
            } else {
                out_idx[off + i] * st[i]
            }
        })
        .sum()
}

fn load_err(g: &Msg) -> Error {
    Model::from_bytes(&model_bytes(g), &[]).expect_err("load must fail")
}

fn bool_tensor(name: &str, dims: &[i64], v: &[bool]) -> Msg {
    let raw: Vec<u8> = v.iter().map(|&b| u8::from(b)).collect();
    tensor_raw(name, BOOL, dims, &raw)
}

#[test]
fn expand_broadcasts_both_ways() {
    // X [3, 1] expanded with shape [2, 1, 4]: bidirectional, output [2, 3, 4].
    let x = vals(3, 11);
    let g = one_param_graph(
        "Expand ex: X S -> Y",
        ("S", &[2, 1, 4]),
        FLOAT,
        &[3, 1],
        &[2, 3, 4],
    );
    let (shape, y) = run1(&model_bytes(&g), &[("X", &[3, 1], &x)]);
    assert_eq!(shape, [2, 3, 4]);
    let want: Vec<f32> = (0..24)
        .map(|f| x[bcast_at(&unravel(f, &[2, 3, 4]), &[3, 1])])
        .collect();
    assert_eq!(y, want);

    // int64, shape smaller than the input's rank: [2, 3] with shape [3] keeps [2, 3].
    let g = one_param_graph("Expand ex: X S -> Y", ("S", &[3]), INT64, &[2, 1], &[2, 3]);
    let m = Model::from_bytes(&model_bytes(&g), &[]).unwrap();
    let mut s = m.session();
    s.run(&[input("X", &[2, 1], InputData::I64(&[7, -3]))])
        .unwrap();
    let o = s.output_typed(0).unwrap();
    assert_eq!(o.shape, [2, 3]);
    assert!(matches!(o.data, OutputData::I64(v) if v == [7, 7, 7, -3, -3, -3]));

    // Shapes that do not broadcast and negative dims are typed errors naming the node.
    for (target, what) in [(vec![2i64, 5], "broadcast"), (vec![-1, 1], "invalid shape")] {
        let g = graph(
            "g",
            &[op("Expand bad_ex: X S -> Y", &[])],
            &[tensor_int64s("S", &[2], &target)],
            &[value_info("X", FLOAT, &dims(&[3, 1]))],
            &[value_info("Y", FLOAT, &dims(&[3, 5]))],
        );
        let err = load_err(&g);
        assert!(
            matches!(&err, Error::InvalidNode { node, reason, .. }
                if node == "bad_ex" && reason.contains(what)),
            "{err:?}"
        );
    }
    // A shape computed at run time is refused at load.
    let g = graph(
        "g",
        &[op("Expand ex: X S -> Y", &[])],
        &[],
        &[
            value_info("X", FLOAT, &dims(&[3, 1])),
            value_info("S", INT64, &dims(&[2])),
        ],
        &[value_info("Y", FLOAT, &dims(&[3, 4]))],
    );
    let err = load_err(&g);
    assert!(err.to_string().contains("constant"), "{err}");
}

#[test]
fn where_broadcasts_condition_x_and_y() {
    // cond [1, 4] (input), X [3, 1] (input), Y scalar (initializer): output [3, 4].
    let cond = [true, false, false, true];
    let x = vals(3, 12);
    let g = graph(
        "g",
        &[op("Where w: C X Yc -> Y", &[])],
        &[tensor_floats("Yc", &[], &[-9.5])],
        &[
            value_info("C", BOOL, &dims(&[1, 4])),
            value_info("X", FLOAT, &dims(&[3, 1])),
        ],
        &[value_info("Y", FLOAT, &dims(&[3, 4]))],
    );
    let m = Model::from_bytes(&model_bytes(&g), &[]).unwrap();
    let mut s = m.session();
    s.run(&[
        input("C", &[1, 4], InputData::Bool(&cond)),
        input("X", &[3, 1], InputData::F32(&x)),
    ])
    .unwrap();
    let o = s.output(0).unwrap();
    assert_eq!(o.shape, [3, 4]);
    let mut want = vec![0f32; 12];
    for i in 0..3 {
        for j in 0..4 {
            want[i * 4 + j] = if cond[j] { x[i] } else { -9.5 };
        }
    }
    assert_eq!(o.data, want.as_slice());

    // int64 values, all three full-shaped except X, which is [2].
    let g = graph(
        "g",
        &[op("Where w: C X Yv -> Y", &[])],
        &[
            bool_tensor("C", &[2, 2], &[true, false, false, true]),
            tensor_int64s("Yv", &[2, 2], &[10, 11, 12, 13]),
        ],
        &[value_info("X", INT64, &dims(&[2]))],
        &[value_info("Y", INT64, &dims(&[2, 2]))],
    );
    let m = Model::from_bytes(&model_bytes(&g), &[]).unwrap();
    let mut s = m.session();
    s.run(&[input("X", &[2], InputData::I64(&[1, 2]))]).unwrap();
    let o = s.output_typed(0).unwrap();
    assert!(matches!(o.data, OutputData::I64(v) if v == [1, 11, 12, 2]));

    // A non-bool condition and mismatched X/Y dtypes are typed errors.
    let g = graph(
        "g",
        &[op("Where bad_w: X X X -> Y", &[])],
        &[],
        &[value_info("X", FLOAT, &dims(&[2]))],
        &[value_info("Y", FLOAT, &dims(&[2]))],
    );
    let err = load_err(&g);
    assert!(
        matches!(&err, Error::InvalidNode { node, reason, .. } if node == "bad_w" && reason.contains("bool")),
        "{err:?}"
    );
    let g = graph(
        "g",
        &[op("Where bad_w: C X I -> Y", &[])],
        &[
            bool_tensor("C", &[2], &[true, false]),
            tensor_int64s("I", &[2], &[1, 2]),
        ],
        &[value_info("X", FLOAT, &dims(&[3]))],
        &[value_info("Y", FLOAT, &dims(&[3]))],
    );
    let err = load_err(&g);
    assert!(
        matches!(&err, Error::InvalidNode { node, .. } if node == "bad_w"),
        "{err:?}"
    );
}

#[test]
fn tile_repeats_each_dimension() {
    let x = vals(6, 13);
    let g = one_param_graph(
        "Tile t: X R -> Y",
        ("R", &[2, 1, 3]),
        FLOAT,
        &[2, 1, 3],
        &[4, 1, 9],
    );
    let (shape, y) = run1(&model_bytes(&g), &[("X", &[2, 1, 3], &x)]);
    assert_eq!(shape, [4, 1, 9]);
    let mut want = Vec::new();
    for i in 0..4 {
        for j in 0..9 {
            want.push(x[(i % 2) * 3 + j % 3]);
        }
    }
    assert_eq!(y, want);

    // int64 and a zero repeat (empty output).
    for (reps, out_shape, want) in [
        (
            vec![1i64, 2],
            vec![2usize, 4],
            vec![1i64, 2, 1, 2, 3, 4, 3, 4],
        ),
        (vec![0, 2], vec![0, 4], vec![]),
    ] {
        let g = graph(
            "g",
            &[op("Tile t: X R -> Y", &[])],
            &[tensor_int64s("R", &[2], &reps)],
            &[value_info("X", INT64, &dims(&[2, 2]))],
            &[value_info("Y", INT64, &dims(&out_shape))],
        );
        let m = Model::from_bytes(&model_bytes(&g), &[]).unwrap();
        let mut s = m.session();
        s.run(&[input("X", &[2, 2], InputData::I64(&[1, 2, 3, 4]))])
            .unwrap();
        let o = s.output_typed(0).unwrap();
        assert_eq!(o.shape, out_shape.as_slice());
        assert!(matches!(o.data, OutputData::I64(v) if v == want.as_slice()));
    }

    // repeats of the wrong length or negative: typed errors naming the node.
    for reps in [vec![2i64], vec![1, -1]] {
        let g = graph(
            "g",
            &[op("Tile bad_t: X R -> Y", &[])],
            &[tensor_int64s("R", &[reps.len() as i64], &reps)],
            &[value_info("X", FLOAT, &dims(&[2, 2]))],
            &[value_info("Y", FLOAT, &dims(&[2, 2]))],
        );
        let err = load_err(&g);
        assert!(
            matches!(&err, Error::InvalidNode { node, reason, .. } if node == "bad_t" && reason.contains("repeat")),
            "{err:?}"
        );
    }
}

/// LayerNormalization reference: normalize over dims `axis..`, f64 throughout.
fn layer_norm_ref(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    eps: f32,
    scale: (&[f32], &[usize]),
    bias: Option<(&[f32], &[usize])>,
) -> Vec<f32> {
    let inner: usize = shape[axis..].iter().product();
    let norm = &shape[axis..];
    let mut out = vec![0f32; x.len()];
    for row in 0..x.len() / inner {
        let xs = &x[row * inner..(row + 1) * inner];
        let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / inner as f64;
        let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / inner as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for j in 0..inner {
            let idx = unravel(j, norm);
            let g = scale.0[bcast_at(&idx, scale.1)] as f64;
            let b = bias.map_or(0.0, |(b, bs)| b[bcast_at(&idx, bs)] as f64);
            out[row * inner + j] = ((xs[j] as f64 - mean) * inv * g + b) as f32;
        }
    }
    out
}

#[test]
fn layer_normalization_matches_reference() {
    let shape = [2usize, 3, 4];
    let x: Vec<f32> = vals(24, 14).iter().map(|v| v * 3.0 + 0.5).collect();
    // axis 1, epsilon 1e-3, Scale [3, 4], B [4] (broadcast over the normalized shape).
    let scale = vals(12, 15);
    let bias = vals(4, 16);
    let g = graph(
        "g",
        &[op(
            "LayerNormalization ln: X S B -> Y",
            &[attr_int("axis", 1), attr_float("epsilon", 1e-3)],
        )],
        &[
            tensor_floats("S", &[3, 4], &scale),
            tensor_floats("B", &[4], &bias),
        ],
        &[value_info("X", FLOAT, &dims(&shape))],
        &[value_info("Y", FLOAT, &dims(&shape))],
    );
    let (s, y) = run1(&model_bytes(&g), &[("X", &shape, &x)]);
    assert_eq!(s, shape);
    let want = layer_norm_ref(&x, &shape, 1, 1e-3, (&scale, &[3, 4]), Some((&bias, &[4])));
    assert_close(&y, &want, 1e-5);

    // Defaults: axis -1, epsilon 1e-5, no B, an empty trailing output name for Mean.
    let scale = vals(4, 17);
    let g = graph(
        "g",
        &[op("LayerNormalization ln: X S -> Y _", &[])],
        &[tensor_floats("S", &[4], &scale)],
        &[value_info("X", FLOAT, &dims(&shape))],
        &[value_info("Y", FLOAT, &dims(&shape))],
    );
    let (_, y) = run1(&model_bytes(&g), &[("X", &shape, &x)]);
    let want = layer_norm_ref(&x, &shape, 2, 1e-5, (&scale, &[4]), None);
    assert_close(&y, &want, 1e-5);

    // Mean / InvStdDev outputs and other stash types are refused at load, naming them.
    for (outs, attrs, what) in [
        (vec!["Y", "M"], vec![], "'Mean'"),
        (vec!["Y", "", "I"], vec![], "'InvStdDev'"),
        (vec!["Y"], vec![attr_int("stash_type", 11)], "'stash_type'"),
    ] {
        let g = graph(
            "g",
            &[node(
                "LayerNormalization",
                "bad_ln",
                &["X", "S"],
                &outs,
                &attrs,
            )],
            &[tensor_floats("S", &[4], &scale)],
            &[value_info("X", FLOAT, &dims(&shape))],
            &[value_info("Y", FLOAT, &dims(&shape))],
        );
        let err = load_err(&g);
        assert!(
            matches!(&err, Error::InvalidNode { node, reason, .. } if node == "bad_ln" && reason.contains(what)),
            "{err:?}"
        );
    }
    // A Scale that does not fit the normalized shape is a typed error, not a panic.
    let g = graph(
        "g",
        &[op("LayerNormalization bad_ln: X S -> Y", &[])],
        &[tensor_floats("S", &[3], &[1.0; 3])],
        &[value_info("X", FLOAT, &dims(&shape))],
        &[value_info("Y", FLOAT, &dims(&shape))],
    );
    let err = load_err(&g);
    assert!(
        matches!(&err, Error::InvalidNode { node, reason, .. } if node == "bad_ln" && reason.contains("Scale")),
        "{err:?}"
    );
}

#[test]
fn dropout_training_mode_constant_false_is_inference() {
    let x = vals(6, 18);
    let dropout = |inits: Vec<Msg>, extra: Vec<Msg>, inputs: Vec<Msg>| {
        let mut nodes = extra;
        nodes.push(op("Dropout drop: X ratio T -> Y", &[]));
        let mut ins = vec![value_info("X", FLOAT, &dims(&[2, 3]))];
        ins.extend(inputs);
        let mut all_inits = vec![tensor_floats("ratio", &[], &[0.5])];
        all_inits.extend(inits);
        graph(
            "g",
            &nodes,
            &all_inits,
            &ins,
            &[value_info("Y", FLOAT, &dims(&[2, 3]))],
        )
    };
    // False as an initializer and as a Constant node: Dropout is the identity.
    let as_init = dropout(vec![bool_tensor("T", &[], &[false])], vec![], vec![]);
    let as_constant = dropout(
        vec![],
        vec![op(
            "Constant c: -> T",
            &[attr_tensor("value", &bool_tensor("", &[], &[false]))],
        )],
        vec![],
    );
    for g in [as_init, as_constant] {
        let (shape, y) = run1(&model_bytes(&g), &[("X", &[2, 3], &x)]);
        assert_eq!(shape, [2, 3]);
        assert_eq!(y, x);
    }
    // True, or a run-time value: refused at load naming training_mode.
    let as_true = dropout(vec![bool_tensor("T", &[], &[true])], vec![], vec![]);
    let as_input = dropout(vec![], vec![], vec![value_info("T", BOOL, &[])]);
    for g in [as_true, as_input] {
        let err = load_err(&g);
        assert!(
            matches!(&err, Error::InvalidNode { node, op, reason }
                if node == "drop" && op == "Dropout" && reason.contains("'training_mode'")),
            "{err:?}"
        );
    }
}

/// A batch of 0 rows: broadcast batched MatMul (a 1 takes the other side's dim, even 0) and a
/// Reshape with -1 (the -1 is what any non-empty batch gives) yield empty outputs of the
/// shapes NumPy's broadcasting rule and the non-empty case give.
#[test]
fn zero_rows_give_empty_outputs() {
    // A [N, 1, 2, 3] x B [5, 3, 4] -> [N, 5, 2, 4]; then Reshape to [0 (copy), 5, -1].
    let b = vals(5 * 3 * 4, 9);
    let g = graph(
        "g",
        &[
            op("MatMul mm: A B -> P", &[]),
            op("Reshape rs: P S -> Y", &[]),
        ],
        &[
            tensor_floats("B", &[5, 3, 4], &b),
            tensor_int64s("S", &[3], &[0, 5, -1]),
        ],
        &[value_info(
            "A",
            FLOAT,
            &[D::P("N"), D::V(1), D::V(2), D::V(3)],
        )],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(5), D::V(8)])],
    );
    let bytes = model_bytes(&g);
    for n in [0usize, 2, 0] {
        let a = vals(n * 6, 10);
        let (shape, y) = run1(&bytes, &[("A", &[n, 1, 2, 3], &a)]);
        assert_eq!(shape, [n, 5, 8]);
        assert_eq!(y.len(), n * 40);
    }
}

/// Conv with a stride or dilation of 0 is an error naming them (it was once taken as 1); the
/// same graph with 1s runs.
#[test]
fn conv_strides_and_dilations_of_zero_are_refused() {
    let conv = |attr: &str, v: i64| {
        let g = graph(
            "g",
            &[op("Conv c: X W -> Y", &[attr_ints(attr, &[v])])],
            &[tensor_floats("W", &[1, 1, 2], &[1.0, -1.0])],
            &[value_info("X", FLOAT, &dims(&[1, 1, 4]))],
            &[value_info("Y", FLOAT, &[D::P("a"), D::P("b"), D::P("c")])],
        );
        let x = vals(4, 5);
        Model::from_bytes(&model_bytes(&g), &[]).and_then(|m| {
            let mut s = m.session();
            s.run(&[input("X", &[1, 1, 4], InputData::F32(&x))])?;
            Ok(s.output(0).expect("an output").shape.to_vec())
        })
    };
    for attr in ["strides", "dilations"] {
        assert_eq!(conv(attr, 1).expect("1 is valid"), [1, 1, 3], "{attr}");
        let e = conv(attr, 0).expect_err("0 must be refused").to_string();
        assert!(e.contains("must be at least 1"), "{attr}: {e}");
    }
}

/// A long f32 sum keeps growing past 2^24 (in f32, adding 1 to 2^24 gives 2^24: a sum of
/// 2^24 + 4999 ones stopped there once); an int64 sum beyond the range is an error naming
/// the node, not a wrapped value.
#[test]
fn reduce_sum_long_f32_and_int64_overflow() {
    let n = 5000usize;
    let mut x = vec![1.0f32; n];
    x[0] = 16_777_216.0;
    for (kind, div) in [("ReduceSum", 1.0f64), ("ReduceMean", n as f64)] {
        let g = one_param_graph(
            &format!("{kind} r: X ax -> Y"),
            ("ax", &[1]),
            FLOAT,
            &[1, n],
            &[1, 1],
        );
        let (shape, y) = run1(&model_bytes(&g), &[("X", &[1, n], &x)]);
        assert_eq!(shape, [1, 1]);
        let want: f64 = x.iter().map(|&v| f64::from(v)).sum::<f64>() / div;
        assert_close(&y, &[want as f32], 1e-7);
    }
    // Over the first axis of [n, 2] (strided, two outputs): column 1 is column 0 reversed.
    let cols: Vec<f32> = (0..2 * n)
        .map(|i| x[if i % 2 == 0 { i / 2 } else { n - 1 - i / 2 }])
        .collect();
    let g = one_param_graph(
        "ReduceSum c: X ax -> Y",
        ("ax", &[0]),
        FLOAT,
        &[n, 2],
        &[1, 2],
    );
    let (shape, y) = run1(&model_bytes(&g), &[("X", &[n, 2], &cols)]);
    assert_eq!(shape, [1, 2]);
    let want: Vec<f32> = (0..2)
        .map(|c| (0..n).map(|r| f64::from(cols[r * 2 + c])).sum::<f64>() as f32)
        .collect();
    assert_close(&y, &want, 1e-7);
    let g = one_param_graph(
        "ReduceSum big: X ax -> Y",
        ("ax", &[1]),
        INT64,
        &[1, 2],
        &[1, 1],
    );
    let m = Model::from_bytes(&model_bytes(&g), &[]).unwrap();
    let mut s = m.session();
    s.run(&[input("X", &[1, 2], InputData::I64(&[i64::MAX - 1, 1]))])
        .expect("the largest int64 sums");
    assert!(matches!(s.output_typed(0).unwrap().data, OutputData::I64(v) if v == [i64::MAX]));
    let err = s
        .run(&[input("X", &[1, 2], InputData::I64(&[i64::MAX, 1]))])
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("big") && msg.contains("out of range"), "{msg}");
}

/// Runs flush denormals to zero by default (a product below f32's normal range is 0 on
/// x86-64 and aarch64), and keep IEEE denormals with the flush off; the caller's own
/// floating-point mode is back after each run.
#[test]
fn runs_flush_denormals_unless_told_not_to() {
    let g = graph(
        "g",
        &[op("Mul m: X half -> Y", &[])],
        &[tensor_floats("half", &[], &[0.5])],
        &[value_info("X", FLOAT, &dims(&[1, 2]))],
        &[value_info("Y", FLOAT, &dims(&[1, 2]))],
    );
    let bytes = model_bytes(&g);
    let m = Model::from_bytes(&bytes, &[]).unwrap();
    let mut s = m.session();
    assert!(s.flush_denormals());
    let x = [f32::MIN_POSITIVE, 1.0];
    let run = |s: &mut ctr_edge_runtime::Session<'_, '_>| {
        s.run(&[input("X", &[1, 2], InputData::F32(&x))]).unwrap();
        s.output(0).unwrap().data.to_vec()
    };
    let ieee = f32::MIN_POSITIVE / 2.0; // 2^-127, a denormal
    assert!(ieee.is_subnormal());
    let flushed = run(&mut s);
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        assert_eq!(flushed, [0.0, 0.5]);
    }
    // The caller's mode is back: this division is done here, not in a run.
    let here = std::hint::black_box(f32::MIN_POSITIVE) / std::hint::black_box(2.0f32);
    assert!(here.is_subnormal(), "{here:e}");
    s.set_flush_denormals(false);
    assert_eq!(run(&mut s), [ieee, 0.5]);
}

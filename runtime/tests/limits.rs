//! Open-time resource limits ([`Limits`]) and checked size arithmetic: hostile models of a few
//! hundred bytes that ask for gigabytes, shapes whose element count overflows, graphs with too
//! many nodes or too long a chain, a batch whose scratch is over the limit. Each must be a typed
//! [`Error::ResourceLimit`] (the sizes it reports are computed here, from the model's numbers),
//! never an allocation of that size, a hang or a panic; and every committed fixture must still
//! open and run with the default limits.

mod onnx_support;

use std::path::{Path, PathBuf};

use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{DType, Error, Input, Limits, Model, OpenOptions, Verify};
use onnx_support::*;

const GIB: u64 = 1 << 30;

fn options(limits: Limits) -> OpenOptions {
    OpenOptions::new().limits(limits)
}

fn open(bytes: &[u8], limits: Limits) -> Result<Model<'static>, Error> {
    Model::from_bytes_with(bytes, &[], &options(limits))
}

/// The fields of the `ResourceLimit` error `r` (panics, naming `what`, on anything else).
fn resource_limit(
    r: Result<Model<'static>, Error>,
    what: &str,
) -> (String, &'static str, u64, u64) {
    match r {
        Err(Error::ResourceLimit {
            node,
            limit,
            requested,
            allowed,
        }) => (node, limit, requested, allowed),
        Err(e) => panic!("{what}: expected ResourceLimit, got {e}"),
        Ok(_) => panic!("{what}: the model opened"),
    }
}

/// Node `spec` (the onnx_support `op` syntax) computing `Y` from int64 initializers `consts`;
/// no graph input, so everything folds at open.
fn const_model(nodes: &[Msg], consts: &[(&str, &[i64])]) -> Vec<u8> {
    let inits: Vec<Msg> = consts
        .iter()
        .map(|(n, v)| tensor_int64s(n, &[v.len() as i64], v))
        .collect();
    let g = graph(
        "g",
        nodes,
        &inits,
        &[],
        &[value_info("Y", FLOAT, &[D::P("a"), D::P("b")])],
    );
    model_bytes(&g)
}

/// `Y = ConstantOfShape(shape)` (f32 zeros).
fn constant_of_shape(shape: &[i64]) -> Vec<u8> {
    const_model(&[op("ConstantOfShape cos: S -> Y", &[])], &[("S", shape)])
}

fn f32_bytes(shape: &[i64]) -> u64 {
    shape.iter().map(|&d| d as u64).product::<u64>() * 4
}

/// [384, 2^20] f32: 1.5 GiB.
const HUGE: [i64; 2] = [384, 1 << 20];

#[test]
fn constant_of_shape_of_1_5_gib_is_refused_before_allocating() {
    let bytes = constant_of_shape(&HUGE);
    assert!(bytes.len() < 300, "model of {} bytes", bytes.len());
    let (node, limit, requested, allowed) =
        resource_limit(open(&bytes, Limits::DEFAULT), "ConstantOfShape");
    assert_eq!((node.as_str(), limit), ("cos", "max_folded_bytes"));
    assert_eq!(requested, 3 * GIB / 2);
    assert_eq!(allowed, Limits::DEFAULT.max_folded_bytes as u64);
}

#[test]
fn tile_of_1_5_gib_is_refused() {
    // One f32 repeated 3 * 2^27 times.
    let g = graph(
        "g",
        &[op("Tile tile: X R -> Y", &[])],
        &[
            tensor_floats("X", &[1], &[1.0]),
            tensor_int64s("R", &[1], &[3 << 27]),
        ],
        &[],
        &[value_info("Y", FLOAT, &[D::P("a")])],
    );
    let bytes = model_bytes(&g);
    assert!(bytes.len() < 300, "model of {} bytes", bytes.len());
    let (node, limit, requested, _) = resource_limit(open(&bytes, Limits::DEFAULT), "Tile");
    assert_eq!((node.as_str(), limit), ("tile", "max_folded_bytes"));
    assert_eq!(requested, 3 * GIB / 2);
}

#[test]
fn expand_of_1_5_gib_is_refused() {
    let g = graph(
        "g",
        &[op("Expand ex: X S -> Y", &[])],
        &[
            tensor_floats("X", &[1], &[1.0]),
            tensor_int64s("S", &[2], &HUGE),
        ],
        &[],
        &[value_info("Y", FLOAT, &[D::P("a"), D::P("b")])],
    );
    let bytes = model_bytes(&g);
    assert!(bytes.len() < 300, "model of {} bytes", bytes.len());
    let (node, limit, requested, _) = resource_limit(open(&bytes, Limits::DEFAULT), "Expand");
    assert_eq!((node.as_str(), limit), ("ex", "max_folded_bytes"));
    assert_eq!(requested, 3 * GIB / 2);
}

#[test]
fn broadcast_add_of_two_constants_to_1_5_gib_is_refused() {
    // [384, 1] + [1, 2^20]: both operands are small folded constants (the second 4 MiB).
    let bytes = const_model(
        &[
            op("ConstantOfShape a: SA -> A", &[]),
            op("ConstantOfShape b: SB -> B", &[]),
            op("Add add: A B -> Y", &[]),
        ],
        &[("SA", &[384, 1]), ("SB", &[1, 1 << 20])],
    );
    assert!(bytes.len() < 300, "model of {} bytes", bytes.len());
    let (node, limit, requested, _) = resource_limit(open(&bytes, Limits::DEFAULT), "Add");
    assert_eq!((node.as_str(), limit), ("add", "max_folded_bytes"));
    // The running total: A (384 floats) and B (2^20 floats) are folded before Y.
    assert_eq!(requested, 3 * GIB / 2 + 384 * 4 + (1 << 20) * 4);
}

#[test]
fn requests_of_4_to_128_gib_are_refused_with_their_size() {
    for gib in [4i64, 16, 64, 128] {
        let shape = [gib, 1 << 28]; // gib * 2^28 floats = gib GiB
        let (node, limit, requested, allowed) = resource_limit(
            open(&constant_of_shape(&shape), Limits::DEFAULT),
            &format!("{gib} GiB"),
        );
        assert_eq!((node.as_str(), limit), ("cos", "max_folded_bytes"));
        assert_eq!(requested, f32_bytes(&shape));
        assert_eq!(requested, gib as u64 * GIB);
        assert_eq!(allowed, 64 << 20);
        // A folded-bytes limit large enough refuses nothing else: the same request is still
        // over a limit of one byte less.
        let mut limits = Limits::DEFAULT;
        limits.max_folded_bytes = requested as usize - 1;
        let (_, _, again, allowed) = resource_limit(open(&constant_of_shape(&shape), limits), "");
        assert_eq!((again, allowed), (requested, requested - 1));
    }
}

#[test]
fn a_shape_whose_element_count_wraps_to_zero_is_an_overflow() {
    // 2^32 * 2^32 = 2^64 is 0 in wrapping u64 arithmetic: it must not become an empty tensor.
    for limits in [Limits::DEFAULT, Limits::UNLIMITED] {
        let (node, limit, requested, _) = resource_limit(
            open(&constant_of_shape(&[1 << 32, 1 << 32]), limits),
            "[2^32, 2^32]",
        );
        assert_eq!((node.as_str(), limit), ("cos", "max_folded_bytes"));
        assert_eq!(requested, u64::MAX, "an overflow reports u64::MAX");
    }
    let e = open(&constant_of_shape(&[1 << 32, 1 << 32]), Limits::UNLIMITED).err();
    let msg = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("overflows") && msg.contains("cos"), "{msg}");
}

#[test]
fn a_product_of_2_pow_64_minus_1_is_an_overflow_not_a_capacity_panic() {
    // 3 * 5 * 17 * 257 * 641 * 65537 * 6700417 = 2^64 - 1.
    let factors: [i64; 7] = [3, 5, 17, 257, 641, 65537, 6700417];
    assert_eq!(
        factors.iter().map(|&f| f as u128).product::<u128>(),
        u64::MAX as u128
    );
    for limits in [Limits::DEFAULT, Limits::UNLIMITED] {
        let (_, limit, requested, _) =
            resource_limit(open(&constant_of_shape(&factors), limits), "2^64-1");
        assert_eq!((limit, requested), ("max_folded_bytes", u64::MAX));
    }
    // The same product reached by Tile (repeats multiplying a dimension past usize).
    let g = graph(
        "g",
        &[op("Tile tile: X R -> Y", &[])],
        &[
            tensor_floats("X", &[2], &[1.0, 2.0]),
            tensor_int64s("R", &[1], &[i64::MAX]),
        ],
        &[],
        &[value_info("Y", FLOAT, &[D::P("a")])],
    );
    let (node, _, requested, _) = resource_limit(open(&model_bytes(&g), Limits::UNLIMITED), "Tile");
    assert_eq!((node.as_str(), requested), ("tile", u64::MAX));
}

#[test]
fn an_overflowing_shape_of_a_run_time_value_is_a_scratch_overflow() {
    // Y = Expand(X, [2^40, 2^40]) with X a graph input: a session buffer, not a constant.
    let g = graph(
        "g",
        &[op("Expand ex: X S -> Y", &[])],
        &[tensor_int64s("S", &[2], &[1 << 40, 1 << 40])],
        &[value_info("X", FLOAT, &[D::V(1), D::V(1)])],
        &[value_info("Y", FLOAT, &[D::P("a"), D::P("b")])],
    );
    let (node, limit, requested, _) =
        resource_limit(open(&model_bytes(&g), Limits::UNLIMITED), "Expand");
    assert_eq!(
        (node.as_str(), limit, requested),
        ("ex", "max_scratch_bytes", u64::MAX)
    );
}

#[test]
fn zero_element_shapes_with_overflowing_rows_are_refused() {
    // [0, 2^40, 2^40] holds no element, but its rows would be 2^80 long: every later product
    // of its dims (strides, row sizes) would overflow.
    let (_, _, requested, _) = resource_limit(
        open(
            &constant_of_shape(&[0, 1 << 40, 1 << 40]),
            Limits::UNLIMITED,
        ),
        "[0, 2^40, 2^40]",
    );
    assert_eq!(requested, u64::MAX);
    // An empty constant with reasonable dims is fine.
    let m = open(&constant_of_shape(&[0, 1 << 20]), Limits::DEFAULT).expect("opens");
    assert_eq!(m.outputs().len(), 1);
}

#[test]
fn an_initializer_whose_dims_overflow_is_a_typed_error() {
    // Declared [2^40, 2^40] with no data, read by a Gather.
    let g = graph(
        "g",
        &[op("Gather gather: T I -> Y", &[])],
        &[tensor("T", FLOAT, &[1 << 40, 1 << 40])],
        &[value_info("I", INT64, &[D::P("N")])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(1 << 40)])],
    );
    match open(&model_bytes(&g), Limits::UNLIMITED) {
        Err(Error::InvalidTensor { tensor, reason }) => {
            assert_eq!(tensor, "T");
            assert!(reason.contains("exceed"), "{reason}");
        }
        other => panic!("expected InvalidTensor, got {:?}", other.err()),
    }
}

/// A chain `X -> Relu n0 -> ... -> Relu n{len-1} -> Y`.
fn chain(len: usize) -> Vec<u8> {
    let name = |i: usize| {
        if i == 0 {
            "X".to_string()
        } else if i == len {
            "Y".to_string()
        } else {
            format!("v{i}")
        }
    };
    let nodes: Vec<Msg> = (0..len)
        .map(|i| node("Relu", &format!("n{i}"), &[&name(i)], &[&name(i + 1)], &[]))
        .collect();
    let g = graph(
        "g",
        &nodes,
        &[],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(4)])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(4)])],
    );
    model_bytes(&g)
}

#[test]
fn a_graph_of_400k_nodes_is_over_max_nodes_by_default() {
    let bytes = chain(400_000);
    let (node, limit, requested, allowed) =
        resource_limit(open(&bytes, Limits::DEFAULT), "400k nodes");
    assert_eq!((node.as_str(), limit), ("graph", "max_nodes"));
    assert_eq!((requested, allowed), (400_000, 100_000));
}

#[test]
fn node_and_depth_limits_hold_exactly() {
    let bytes = chain(50);
    let mut limits = Limits::DEFAULT;
    limits.max_nodes = 49;
    let (node, limit, requested, allowed) = resource_limit(open(&bytes, limits), "49 nodes");
    assert_eq!(
        (node.as_str(), limit, requested, allowed),
        ("graph", "max_nodes", 50, 49)
    );
    limits.max_nodes = 50;
    limits.max_depth = 20;
    // The 21st node of the chain (n20) is the first one 21 deep.
    let (node, limit, requested, allowed) = resource_limit(open(&bytes, limits), "depth 20");
    assert_eq!(
        (node.as_str(), limit, requested, allowed),
        ("n20", "max_depth", 21, 20)
    );
    limits.max_depth = 50;
    let m = open(&bytes, limits).expect("a chain of 50 within both limits opens");
    let mut s = m.session();
    let x = [-1.0f32, 2.0, -3.0, 4.0];
    s.run(&[input("X", &[1, 4], InputData::F32(&x))])
        .expect("runs");
    assert_eq!(s.output(0).expect("output").data, [0.0, 2.0, 0.0, 4.0]);
}

#[test]
fn depth_is_the_longest_chain_not_the_node_count() {
    // 30 nodes all reading X directly: depth 1.
    let nodes: Vec<Msg> = (0..30)
        .map(|i| {
            let out = if i == 29 {
                "Y".to_string()
            } else {
                format!("v{i}")
            };
            node("Relu", &format!("n{i}"), &["X"], &[&out], &[])
        })
        .collect();
    let g = graph(
        "g",
        &nodes,
        &[],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(4)])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(4)])],
    );
    let mut limits = Limits::DEFAULT;
    limits.max_depth = 1;
    open(&model_bytes(&g), limits).expect("30 parallel nodes are 1 deep");
    limits.max_depth = 0;
    let (node, limit, requested, _) = resource_limit(open(&model_bytes(&g), limits), "depth 0");
    assert_eq!((node.as_str(), limit, requested), ("n0", "max_depth", 1));
}

#[test]
fn split_outputs_count_as_nodes() {
    // One Split node of 8 outputs is 8 nodes once expanded.
    let outs: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    let out_refs: Vec<&str> = outs.iter().map(|s| s.as_str()).collect();
    let g = graph(
        "g",
        &[
            node("Split", "sp", &["X"], &out_refs, &[attr_int("axis", 1)]),
            node("Identity", "id", &["p0"], &["Y"], &[]),
        ],
        &[],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(8)])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(1)])],
    );
    let mut limits = Limits::DEFAULT;
    limits.max_nodes = 8;
    let (node, limit, requested, _) = resource_limit(open(&model_bytes(&g), limits), "Split");
    assert_eq!((node.as_str(), limit, requested), ("id", "max_nodes", 9));
    limits.max_nodes = 9;
    open(&model_bytes(&g), limits).expect("9 nodes within 9");
}

#[test]
fn scratch_over_the_limit_at_a_big_batch_is_refused_and_the_session_stays_usable() {
    let g = graph(
        "g",
        &[op("Relu relu: X -> Y", &[])],
        &[],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(64)])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(64)])],
    );
    let mut limits = Limits::DEFAULT;
    limits.max_scratch_bytes = 1 << 20;
    let m = open(&model_bytes(&g), limits).expect("opens (batch 2 is small)");
    let mut s = m.session();
    let big = vals(4096 * 64, 1);
    let small = vals(8 * 64, 2);
    for _ in 0..2 {
        // Input and output buffers of 4096 x 64 f32: 1 MiB each.
        match s.run(&[input("X", &[4096, 64], InputData::F32(&big))]) {
            Err(Error::ResourceLimit {
                node,
                limit,
                requested,
                allowed,
            }) => {
                assert_eq!((node.as_str(), limit), ("relu", "max_scratch_bytes"));
                assert_eq!((requested, allowed), (2 * 4096 * 64 * 4, 1 << 20));
            }
            other => panic!("expected ResourceLimit, got {other:?}"),
        }
        assert!(s.output(0).is_none(), "no output after a failed run");
        s.run(&[input("X", &[8, 64], InputData::F32(&small))])
            .expect("a small batch still runs");
        let want: Vec<f32> = small.iter().map(|&v| v.max(0.0)).collect();
        assert_eq!(s.output(0).expect("output").data, want.as_slice());
    }
    // 2048 rows: exactly 1 MiB in all.
    s.run(&[input("X", &[2048, 64], InputData::F32(&big[..2048 * 64]))])
        .expect("a plan of exactly max_scratch_bytes runs");
    assert_eq!(s.plan_stats().expect("stats").buffer_bytes, 1 << 20);
}

// ---- the committed fixtures ----

fn fixture_models() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path().join("model.onnx"))
        .filter(|p| p.is_file())
        .collect();
    models.sort();
    assert!(
        models.len() >= 10,
        "expected the fixtures, found {}",
        models.len()
    );
    models
}

/// Inputs of `rows` rows for `m`: zeros (id 0 is in every table), as owned buffers.
enum Column {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
}

fn zero_inputs(m: &Model<'_>, rows: usize) -> Vec<(String, Vec<usize>, Column)> {
    m.inputs()
        .iter()
        .map(|info| {
            let shape: Vec<usize> = info.shape.iter().map(|d| d.unwrap_or(rows)).collect();
            let n = shape.iter().product();
            let col = match info.dtype {
                DType::F32 => Column::F32(vec![0.0; n]),
                DType::I64 => Column::I64(vec![0; n]),
                DType::I32 => Column::I32(vec![0; n]),
                d => panic!("input '{}' of dtype {}", info.name, d.name()),
            };
            (info.name.clone(), shape, col)
        })
        .collect()
}

/// Runs `m` on `rows` zero rows; the first output's values.
fn run_zeros(m: &Model<'_>, rows: usize) -> Result<Vec<f32>, Error> {
    let cols = zero_inputs(m, rows);
    let inputs: Vec<Input<'_>> = cols
        .iter()
        .map(|(name, shape, col)| {
            let data = match col {
                Column::F32(v) => InputData::F32(v),
                Column::I64(v) => InputData::I64(v),
                Column::I32(v) => InputData::I32(v),
            };
            input(name, shape, data)
        })
        .collect();
    let mut s = m.session();
    s.run(&inputs)?;
    Ok(s.output(0).expect("output").data.to_vec())
}

fn open_fixture(path: &Path, limits: Limits) -> Result<Model<'static>, Error> {
    Model::open_options(path, &options(limits).verify(Verify::Identity))
}

#[test]
fn every_fixture_opens_and_runs_a_big_batch_with_the_default_limits() {
    const ROWS: usize = 4096;
    for path in fixture_models() {
        let m = open_fixture(&path, Limits::DEFAULT)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Two rows, not one: DCNMix squeezes a batch of 1 away (see native_fixtures).
        let two = run_zeros(&m, 2).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let many = run_zeros(&m, ROWS).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let one = &two[..two.len() / 2];
        // Every row is the same zero row: every row's scores are those of the small batch.
        assert_eq!(many.len(), ROWS * one.len(), "{}", path.display());
        for (i, row) in many.chunks(one.len()).enumerate() {
            for (g, w) in row.iter().zip(one) {
                assert!(
                    g.is_finite() && (g - w).abs() <= 1e-5,
                    "{}: row {i} scores {g}, the single row {w}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn a_limit_just_below_a_fixtures_measured_need_is_refused_and_the_need_passes() {
    const ROWS: usize = 256;
    for path in fixture_models() {
        let what = path.display();
        let m = open_fixture(&path, Limits::DEFAULT).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut s = m.session();
        let cols = zero_inputs(&m, ROWS);
        let inputs: Vec<Input<'_>> = cols
            .iter()
            .map(|(name, shape, col)| {
                let data = match col {
                    Column::F32(v) => InputData::F32(v),
                    Column::I64(v) => InputData::I64(v),
                    Column::I32(v) => InputData::I32(v),
                };
                input(name, shape, data)
            })
            .collect();
        s.run(&inputs).unwrap_or_else(|e| panic!("{what}: {e}"));
        let stats = s.plan_stats().expect("stats");
        // The need at ROWS rows is over the open-time plan's (2 rows): a limit just below it
        // lets the model open and refuses the batch.
        let mut limits = Limits::DEFAULT;
        limits.max_scratch_bytes = stats.buffer_bytes - 1;
        let tight = open_fixture(&path, limits).unwrap_or_else(|e| panic!("{what}: {e}"));
        match run_zeros(&tight, ROWS) {
            Err(Error::ResourceLimit {
                limit: "max_scratch_bytes",
                requested,
                ..
            }) => assert_eq!(requested, stats.buffer_bytes as u64, "{what}"),
            other => panic!("{what}: expected a scratch ResourceLimit, got {other:?}"),
        }
        limits.max_scratch_bytes = stats.buffer_bytes;
        let exact = open_fixture(&path, limits).unwrap_or_else(|e| panic!("{what}: {e}"));
        run_zeros(&exact, ROWS).unwrap_or_else(|e| panic!("{what} at its measured need: {e}"));
        // Folded constants: the same at the limit, refused one byte below (at open or at the
        // batch, wherever the total first passes it).
        if stats.folded_bytes > 0 {
            let mut limits = Limits::DEFAULT;
            limits.max_folded_bytes = stats.folded_bytes - 1;
            let refused = open_fixture(&path, limits).and_then(|m| run_zeros(&m, ROWS).map(|_| m));
            match refused {
                Err(Error::ResourceLimit {
                    limit: "max_folded_bytes",
                    ..
                }) => {}
                other => panic!(
                    "{what}: expected a folded ResourceLimit, got {:?}",
                    other.err()
                ),
            }
            limits.max_folded_bytes = stats.folded_bytes;
            let exact = open_fixture(&path, limits).unwrap_or_else(|e| panic!("{what}: {e}"));
            run_zeros(&exact, ROWS).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

#[test]
fn a_declared_input_too_large_for_scratch_is_refused_at_open() {
    // X fixed at [2^20, 2^20] f32 (4 TiB) and Relu's output as much again.
    let g = graph(
        "g",
        &[op("Relu relu: X -> Y", &[])],
        &[],
        &[value_info("X", FLOAT, &[D::V(1 << 20), D::V(1 << 20)])],
        &[value_info("Y", FLOAT, &[D::V(1 << 20), D::V(1 << 20)])],
    );
    let (node, limit, requested, _) =
        resource_limit(open(&model_bytes(&g), Limits::DEFAULT), "4 TiB input");
    assert_eq!((node.as_str(), limit), ("X", "max_scratch_bytes"));
    assert_eq!(requested, 2 * (1u64 << 40) * 4);
}

#[test]
fn concatenating_empty_tensors_past_usize_is_an_overflow() {
    // Each [0, 2^61 - 1] holds nothing and has a size; nine of them along axis 1 do not.
    let d = (1i64 << 61) - 1;
    let ins: Vec<&str> = vec!["C"; 9];
    let bytes = const_model(
        &[
            op("ConstantOfShape cos: S -> C", &[]),
            node("Concat", "cat", &ins, &["Y"], &[attr_int("axis", 1)]),
        ],
        &[("S", &[0, d])],
    );
    let (node, _, requested, _) = resource_limit(open(&bytes, Limits::UNLIMITED), "Concat");
    assert_eq!((node.as_str(), requested), ("cat", u64::MAX));
}

/// `Y = Slice(X, starts, ends, axes 0, steps)` of the constant X = [1, 2, 3, 4], folded.
fn slice_model(start: i64, end: i64, step: i64) -> Vec<u8> {
    let g = graph(
        "g",
        &[op("Slice sl: X B E A P -> Y", &[])],
        &[
            tensor_floats("X", &[4], &[1.0, 2.0, 3.0, 4.0]),
            tensor_int64s("B", &[1], &[start]),
            tensor_int64s("E", &[1], &[end]),
            tensor_int64s("A", &[1], &[0]),
            tensor_int64s("P", &[1], &[step]),
        ],
        &[],
        &[value_info("Y", FLOAT, &[D::P("n")])],
    );
    model_bytes(&g)
}

#[test]
fn slice_steps_of_extreme_size_take_one_element() {
    // ONNX: a step past the dimension takes the start element only.
    for (start, end, step, want) in [
        (0, 4, i64::MAX, 1.0f32),
        (1, i64::MAX, i64::MAX, 2.0),
        (3, i64::MIN, i64::MIN, 4.0),
        (-1, -5, i64::MIN + 1, 4.0),
    ] {
        let m = open(&slice_model(start, end, step), Limits::DEFAULT)
            .unwrap_or_else(|e| panic!("step {step}: {e}"));
        let mut s = m.session();
        s.run(&[]).expect("runs");
        assert_eq!(s.output(0).expect("output").data, [want], "step {step}");
    }
}

#[test]
fn split_sizes_summing_past_i64_are_a_typed_error() {
    let g = graph(
        "g",
        &[node(
            "Split",
            "sp",
            &["X"],
            &["A", "B", "C"],
            &[
                attr_int("axis", 1),
                attr_ints("split", &[i64::MAX, i64::MAX, 4]),
            ],
        )],
        &[],
        &[value_info("X", FLOAT, &[D::P("N"), D::V(4)])],
        &[value_info("A", FLOAT, &[D::P("N"), D::V(4)])],
    );
    match open(&model_bytes(&g), Limits::DEFAULT) {
        Err(Error::InvalidNode { node, reason, .. }) => {
            assert!(node.starts_with("sp"), "{node}");
            assert!(reason.contains("split sizes"), "{reason}");
        }
        other => panic!("expected InvalidNode, got {:?}", other.err()),
    }
}

#[test]
fn conv_dilations_and_pads_that_overflow_are_a_typed_error() {
    for attrs in [
        vec![attr_ints("dilations", &[i64::MAX])],
        vec![attr_ints("pads", &[i64::MAX, i64::MAX])],
    ] {
        let g = graph(
            "g",
            &[op("Conv conv: X W -> Y", &attrs)],
            // 5 taps: a dilation of i64::MAX spans 4 * (2^63 - 1) + 1, past u64.
            &[tensor_floats("W", &[1, 1, 5], &[1.0; 5])],
            &[value_info("X", FLOAT, &[D::P("N"), D::V(1), D::V(8)])],
            &[value_info("Y", FLOAT, &[D::P("N"), D::V(1), D::V(6)])],
        );
        match open(&model_bytes(&g), Limits::UNLIMITED) {
            Err(Error::InvalidNode { node, reason, .. }) => {
                assert_eq!(node, "conv");
                assert!(reason.contains("overflow"), "{reason}");
            }
            other => panic!("expected InvalidNode, got {:?}", other.err()),
        }
    }
}

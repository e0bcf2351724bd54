//! Fused plans keep the allocation promise: after the first run at a batch size, runs of a
//! model with every kind of fused step (gather + projection, a factorized pair, dense layers
//! with epilogues; their tile scratch preallocated at plan time) do not allocate. A counting
//! global allocator counts the allocations of the test's own thread only.

#[path = "support/alloc_counter.rs"]
mod alloc_counter;
mod onnx_support;

use alloc_counter::allocations_in;
use ctr_edge_runtime::graph::FusionKind;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Model, Session};
use onnx_support::*;

const FIELDS: usize = 3;
const TABLE_ROWS: usize = 40;
const K: usize = 4;
const D: usize = 8;

/// ids [N, 3] -> Gather(E [40, 4]) -> MatMul(P [4, 8]) -> Add(mu) -> Reshape [N, 24]
/// -> MatMul(A [24, 3]) -> MatMul(B [3, 16]) -> Add(c) -> Relu -> Gemm(W [1, 16], transB) + Sigmoid.
fn model() -> Vec<u8> {
    let g = graph(
        "g",
        &[
            op("Gather gather: E ids -> g", &[]),
            op("MatMul proj: g P -> p", &[]),
            op("Add mu: p mu -> e", &[]),
            op("Reshape flat: e shape -> x", &[]),
            op("MatMul first: x A -> h", &[]),
            op("MatMul second: h B -> z", &[]),
            op("Add bias: z c -> zb", &[]),
            op("Relu relu: zb -> r", &[]),
            op("Gemm head: r W -> logit", &[attr_int("transB", 1)]),
            op("Sigmoid prob: logit -> Y", &[]),
        ],
        &[
            tensor_floats(
                "E",
                &[TABLE_ROWS as i64, K as i64],
                &vals(TABLE_ROWS * K, 1),
            ),
            tensor_floats("P", &[K as i64, D as i64], &vals(K * D, 2)),
            tensor_floats("mu", &[D as i64], &vals(D, 3)),
            tensor_int64s("shape", &[2], &[-1, (FIELDS * D) as i64]),
            tensor_floats("A", &[(FIELDS * D) as i64, 3], &vals(FIELDS * D * 3, 4)),
            tensor_floats("B", &[3, 16], &vals(48, 5)),
            tensor_floats("c", &[16], &vals(16, 6)),
            tensor_floats("W", &[1, 16], &vals(16, 7)),
        ],
        &[value_info("ids", INT64, &[D::P("N"), D::V(FIELDS as i64)])],
        &[value_info("Y", FLOAT, &[D::P("N"), D::V(1)])],
    );
    model_bytes(&g)
}

fn score(session: &mut Session<'_, '_>, ids: &[i64]) -> f32 {
    session
        .run(&[input(
            "ids",
            &[ids.len() / FIELDS, FIELDS],
            InputData::I64(ids),
        )])
        .expect("run");
    session.output(0).expect("output").data.iter().sum()
}

// One test in this binary: the counter is global.
#[test]
fn fused_runs_after_the_first_at_a_batch_size_do_not_allocate() {
    let bytes = model();
    let m = Model::from_bytes(&bytes, &[]).expect("loads");
    let ids: Vec<i64> = (0..300 * FIELDS)
        .map(|i| (i * 7 % TABLE_ROWS) as i64)
        .collect();
    // 300 rows: several tiles of the gather and the pair.
    let (big, small) = (&ids[..], &ids[..FIELDS]);
    let mut s = m.session();
    let first = allocations_in(|| {
        score(&mut s, big);
    });
    assert!(first > 0, "the first run plans and allocates");
    let stats = s.plan_stats().expect("stats");
    for kind in [
        FusionKind::GatherProjection,
        FusionKind::FactorizedPair,
        FusionKind::DenseEpilogue,
    ] {
        assert_eq!(stats.count(kind), 1, "{kind:?} in {stats:?}");
    }
    assert!(stats.fused.iter().all(|f| f.tile_rows < 300 * FIELDS));
    for i in 2..=3 {
        let n = allocations_in(|| {
            score(&mut s, big);
        });
        assert_eq!(n, 0, "run {i} at batch 300 allocated {n} times");
    }
    let n = allocations_in(|| {
        score(&mut s, small);
    });
    assert!(n > 0, "the first run at batch 1 plans");
    for (what, ids) in [("300", big), ("1", small), ("300", big)] {
        let n = allocations_in(|| {
            score(&mut s, ids);
        });
        assert_eq!(n, 0, "back to batch {what} allocated {n} times");
    }
    // An out-of-range id fails the run (its error message allocates); the next run at that
    // batch size still does not.
    let mut bad = big.to_vec();
    bad[500] = TABLE_ROWS as i64;
    assert!(s
        .run(&[input("ids", &[300, FIELDS], InputData::I64(&bad))])
        .is_err());
    let n = allocations_in(|| {
        score(&mut s, big);
    });
    assert_eq!(n, 0, "after an error, batch 300 allocated {n} times");
}

//! Criterion benches of the hot kernels, at the matrix shapes of the fixtures' dense layers
//! (DeepCTR MLPs: 128 -> 400 -> 400 -> 1 at batch 256) and of a factorized 400 -> 400 layer
//! (rank 32: 400 -> 32 -> 400), with f32 and f16 weights, best kernel table vs scalar.
//!
//! Run with `cargo bench -p ctr-edge-bench --bench kernels`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ctr_edge_runtime::kernels::{self, BLayout, Kernels, MatMulDims};
use half::f16;

/// Rows of A: the batch size of the shapes.
const BATCH: usize = 256;

/// `(name, [(k, n), ...])`: one product, or a chain (the factorized pair).
const SHAPES: [(&str, &[(usize, usize)]); 4] = [
    ("128x400", &[(128, 400)]),
    ("400x400", &[(400, 400)]),
    ("400x1", &[(400, 1)]),
    ("400x32x400", &[(400, 32), (32, 400)]),
];

/// Deterministic values in [-1, 1).
fn pattern(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i.wrapping_mul(7919).wrapping_add(seed) % 2000) as f32) / 1000.0 - 1.0)
        .collect()
}

/// The kernel tables to compare: scalar and, when this CPU has one, the best SIMD table.
fn tables() -> Vec<&'static Kernels> {
    let mut t = vec![kernels::scalar()];
    if kernels::best().variant != kernels::scalar().variant {
        t.push(kernels::best());
    }
    t
}

/// One product of a chain: its dims, its weights (n x k, PyTorch `Linear` layout) in f32 and
/// f16, and its output.
type Layer = (MatMulDims, Vec<f32>, Vec<f16>, Vec<f32>);

/// Buffers of one chain of products: the input and the layers.
struct Chain {
    input: Vec<f32>,
    layers: Vec<Layer>,
}

impl Chain {
    fn new(dims: &[(usize, usize)]) -> Chain {
        let input = pattern(BATCH * dims[0].0, 1);
        let layers = dims
            .iter()
            .enumerate()
            .map(|(ix, &(k, n))| {
                let w = pattern(n * k, ix + 2);
                let w16 = w.iter().map(|&x| f16::from_f32(x)).collect();
                let dims = MatMulDims { m: BATCH, k, n };
                (dims, w, w16, vec![0.0; BATCH * n])
            })
            .collect();
        Chain { input, layers }
    }

    /// Multiply-adds of the whole chain.
    fn macs(&self) -> u64 {
        self.layers
            .iter()
            .map(|(d, ..)| (d.m * d.k * d.n) as u64)
            .sum()
    }

    fn run(&mut self, table: &Kernels, f16_weights: bool) {
        for ix in 0..self.layers.len() {
            // Each product reads the previous one's output (the chain's input first).
            let (done, rest) = self.layers.split_at_mut(ix);
            let a = done.last().map_or(&self.input, |prev| &prev.3);
            let (dims, w, w16, out) = &mut rest[0];
            if f16_weights {
                (table.matmul_f16)(*dims, a, w16, BLayout::NxK, out, false);
            } else {
                (table.matmul_f32)(*dims, a, w, BLayout::NxK, out, false);
            }
        }
        black_box(self.layers.last().map(|l| l.3[0]));
    }
}

fn matmul(c: &mut Criterion) {
    for (name, dims) in SHAPES {
        let mut chain = Chain::new(dims);
        let mut group = c.benchmark_group(format!("matmul/{BATCH}x{name}"));
        group.throughput(Throughput::Elements(chain.macs()));
        for table in tables() {
            for (wname, f16_weights) in [("f32", false), ("f16", true)] {
                let id = BenchmarkId::new(wname, table.variant.name());
                group.bench_function(id, |b| b.iter(|| chain.run(table, black_box(f16_weights))));
            }
        }
        group.finish();
    }
}

criterion_group!(benches, matmul);
criterion_main!(benches);

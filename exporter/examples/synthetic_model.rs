//! Writes a synthetic embedding-heavy CTR model at a realistic size, for open-time, resident
//! memory and speed measurements (its output is not committed: it is ~70 MiB):
//!
//! ```sh
//! cargo run --release -p ctr-edge-exporter --example synthetic_model -- /tmp/synth
//! ctr-edge bench /tmp/synth/model.onnx --vs tract    # open time, RSS, latency
//! ctr-edge eval /tmp/synth/model.onnx --data /tmp/synth/data.npz --backend native
//! ```
//!
//! The model has the shape of a DeepCTR export: one float input `X [N, F]` holding ids, each
//! column `Gather`ed out, cast to int64 and looked up in its field's table; the lookups are
//! concatenated and fed to an MLP (256-128-1, ReLU, sigmoid). Field 0's table has 10^6 rows
//! (`--rows`), the other fields' 10^4, all of width 16, so the tables hold over 99% of the
//! parameters. Weights are random (Xavier-uniform scale, fixed seed): speed and memory do not
//! depend on training, and AUC is meaningless here. `data.npz` holds `--samples` rows of ids
//! drawn from a Zipf distribution (exponent `--zipf`, default 1.05) over each table, as real
//! id traffic is: a few hot rows and a long tail that misses the caches, and a 0/1 `label`
//! (more positives on field 0's hot ids) so that `ctr-edge eval` runs.
//!
//! Options: `--rows N` (10^6), `--fields F` (8), `--dim D` (16), `--samples S` (65536),
//! `--zipf S` (1.05), `--seed N` (1).

use std::path::PathBuf;

use ctr_edge_exporter::artifact::write_artifact;
use ctr_edge_exporter::npz::{write_npz, ArrayData, NpyArray};
use ctr_edge_exporter::onnx_build::{attr_int, model, node, tensor_f32, tensor_i64, value_info};
use ctr_edge_exporter::rng::SplitMix64;
use tract_onnx::pb::tensor_proto::DataType;

/// `n` values uniform in `[-bound, bound)`.
fn uniform(rng: &mut SplitMix64, n: usize, bound: f32) -> Vec<f32> {
    (0..n)
        .map(|_| ((2.0 * rng.unit() - 1.0) as f32) * bound)
        .collect()
}

/// Zipf(s) over 0..n by inverting the cumulative weights (binary search in a table).
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf(cdf)
    }

    fn draw(&self, rng: &mut SplitMix64) -> usize {
        let u = rng.unit();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

fn main() {
    let mut out: Option<PathBuf> = None;
    let (mut rows, mut fields, mut dim, mut samples, mut zipf, mut seed) =
        (1_000_000usize, 8usize, 16usize, 65_536usize, 1.05f64, 1u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{what} takes a value"))
        };
        match a.as_str() {
            "--rows" => rows = value("--rows").parse().expect("--rows N"),
            "--fields" => fields = value("--fields").parse().expect("--fields F"),
            "--dim" => dim = value("--dim").parse().expect("--dim D"),
            "--samples" => samples = value("--samples").parse().expect("--samples S"),
            "--zipf" => zipf = value("--zipf").parse().expect("--zipf S"),
            "--seed" => seed = value("--seed").parse().expect("--seed N"),
            _ if out.is_none() && !a.starts_with('-') => out = Some(PathBuf::from(a)),
            _ => panic!("unknown argument {a} (usage: synthetic_model OUT_DIR [--rows N] ...)"),
        }
    }
    let out = out.expect("usage: synthetic_model OUT_DIR [--rows N] [--fields F] ...");
    assert!(
        fields >= 1 && rows >= 1 && dim >= 1,
        "sizes must be positive"
    );
    let mut rng = SplitMix64::new(seed);
    let table_rows: Vec<usize> = (0..fields)
        .map(|f| if f == 0 { rows } else { rows.min(10_000) })
        .collect();

    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut lookups = Vec::new();
    for (f, &n) in table_rows.iter().enumerate() {
        let (col, ids, emb, table) = (
            format!("col{f}"),
            format!("ids{f}"),
            format!("emb{f}"),
            format!("table{f}"),
        );
        inits.push(tensor_i64(&format!("index{f}"), &[], &[f as i64]));
        nodes.push(node(
            "Gather",
            &["X", &format!("index{f}")],
            &[&col],
            vec![attr_int("axis", 1)],
        ));
        nodes.push(node(
            "Cast",
            &[&col],
            &[&ids],
            vec![attr_int("to", DataType::Int64 as i64)],
        ));
        let bound = (6.0 / (n + dim) as f32).sqrt().max(0.01);
        inits.push(tensor_f32(
            &table,
            &[n, dim],
            &uniform(&mut rng, n * dim, bound),
        ));
        nodes.push(node("Gather", &[&table, &ids], &[&emb], vec![]));
        lookups.push(emb);
    }
    let refs: Vec<&str> = lookups.iter().map(String::as_str).collect();
    nodes.push(node("Concat", &refs, &["h0"], vec![attr_int("axis", 1)]));
    let widths = [fields * dim, 256, 128, 1];
    for l in 0..3 {
        let (i, o) = (widths[l], widths[l + 1]);
        let bound = (6.0 / (i + o) as f32).sqrt();
        let (w, b) = (format!("w{l}"), format!("b{l}"));
        inits.push(tensor_f32(&w, &[i, o], &uniform(&mut rng, i * o, bound)));
        inits.push(tensor_f32(&b, &[o], &uniform(&mut rng, o, 0.05)));
        let y = format!("y{l}");
        nodes.push(node("Gemm", &[&format!("h{l}"), &w, &b], &[&y], vec![]));
        let next = if l == 2 {
            "prob".to_string()
        } else {
            format!("h{}", l + 1)
        };
        nodes.push(node(
            if l == 2 { "Sigmoid" } else { "Relu" },
            &[&y],
            &[&next],
            vec![],
        ));
    }
    let params: usize = table_rows.iter().map(|n| n * dim).sum::<usize>()
        + (0..3)
            .map(|l| widths[l] * widths[l + 1] + widths[l + 1])
            .sum::<usize>();
    let table_share = table_rows.iter().map(|n| n * dim).sum::<usize>() as f64 / params as f64;
    let m = model(
        nodes,
        inits,
        vec![value_info(
            "X",
            DataType::Float,
            &[None, Some(fields as i64)],
        )],
        vec![value_info("prob", DataType::Float, &[None, Some(1)])],
    );
    // The artifact writer replaces a folder holding only an artifact: drop this example's own
    // data file of an earlier run first (it is written again below).
    let _ = std::fs::remove_file(out.join("data.npz"));
    let info = write_artifact(
        m,
        &out,
        &[(
            "ctr_edge.synthetic".into(),
            "embedding-heavy benchmark model".into(),
        )],
    )
    .expect("artifact written");

    let dists: Vec<Zipf> = table_rows.iter().map(|&n| Zipf::new(n, zipf)).collect();
    let mut x = Vec::with_capacity(samples * fields);
    for _ in 0..samples {
        for d in &dists {
            x.push(d.draw(&mut rng) as f32);
        }
    }
    // Labels: 20% positives, more likely for hot ids of field 0 (any 0/1 labels would do).
    let label: Vec<f32> = x
        .chunks(fields)
        .map(|r| {
            let p = 0.35 / (1.0 + (r[0] as f64).ln_1p() / 4.0);
            f32::from(u8::from(rng.unit() < p))
        })
        .collect();
    write_npz(
        &out.join("data.npz"),
        &[
            NpyArray {
                name: "X".into(),
                shape: vec![samples, fields],
                data: ArrayData::F32(x),
            },
            NpyArray {
                name: "label".into(),
                shape: vec![samples],
                data: ArrayData::F32(label),
            },
        ],
    )
    .expect("data.npz written");
    println!(
        "wrote {} ({} B) and {} ({:.1} MiB): {params} parameters, {:.1}% in {fields} tables \
         (field 0: {rows} rows), MLP {}-256-128-1; {} ({samples} rows, Zipf {zipf} ids)",
        info.model_path.display(),
        info.model_bytes,
        info.weights_path.display(),
        info.weights_bytes as f64 / (1u64 << 20) as f64,
        100.0 * table_share,
        fields * dim,
        out.join("data.npz").display(),
    );
}

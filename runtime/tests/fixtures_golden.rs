//! Golden tests on the real fixture models (`tests/fixtures/*`, DeepCTR-Torch exports): the
//! runtime's scores on the first rows of `test.npz` match onnxruntime's (`ref.npz`) within
//! 1e-5. This file depends on nothing but the runtime and the workspace's .npz reader
//! (`ctr-edge-npz`: std and zip, no exporter or tract), so it also runs on aarch64 under qemu,
//! where the NEON kernels compute.
//!
//! The compressed artifacts (AFM and SVD at 4x, f16 weights) are written by the exporter's
//! `compress_fixtures` test on the host; with `CTR_EDGE_GOLDEN_OUT=DIR` that test copies them
//! to DIR with onnxruntime's outputs, and with `CTR_EDGE_GOLDEN_DIR=DIR`
//! `compressed_artifacts_match_onnxruntime` below runs them on this target (CI: under qemu).

use std::path::{Path, PathBuf};

use ctr_edge_npz::ArrayData;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Input, Model};

/// A float32 array from an .npz member.
struct F32Array {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Reads the f32 array named `name` from an .npz file.
fn read_npz_f32(path: &Path, name: &str) -> F32Array {
    let arrays = ctr_edge_npz::read_npz(path).unwrap_or_else(|e| panic!("{e}"));
    let array = arrays
        .into_iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("{}: no array '{name}'", path.display()));
    match array.data {
        ArrayData::F32(data) => F32Array {
            shape: array.shape,
            data,
        },
        other => panic!("{}: '{name}' is {}, not f32", path.display(), other.dtype()),
    }
}

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").is_file() && p.join("ref.npz").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn runtime_matches_onnxruntime_on_fixture_rows() {
    let dirs = fixture_dirs();
    assert!(
        dirs.len() >= 10,
        "expected the committed fixtures, found {}",
        dirs.len()
    );
    let variant = ctr_edge_runtime::kernels::best().variant;
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let model = Model::open(dir.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let x = read_npz_f32(&dir.join("test.npz"), "X");
        let reference = read_npz_f32(&dir.join("ref.npz"), &model.outputs()[0].name);
        let row = x.shape[1];
        let mut session = model.session();
        // One large and one odd batch size (tails of every kernel).
        for (start, rows) in [(0usize, 256usize), (256, 3)] {
            let shape = [rows, row];
            let data = &x.data[start * row..(start + rows) * row];
            session
                .run(&[Input {
                    name: "X",
                    shape: &shape,
                    data: InputData::F32(data),
                }])
                .unwrap_or_else(|e| panic!("{name} batch {rows}: {e}"));
            let out = session.output(0).unwrap();
            let want = &reference.data[start..start + rows];
            let diff = out
                .data
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                diff <= 1e-5,
                "{name} batch {rows} ({variant:?}): max |diff| {diff:e}"
            );
        }
        println!("{name:<28} {variant:?}: matches onnxruntime");
    }
}

/// Scores `x` (rows of `row` values) in batches of at most 256 rows; returns output 0.
fn score(model: &Model, x: &F32Array, name: &str) -> Vec<f32> {
    let row = x.shape[1];
    let mut session = model.session();
    let mut scores = Vec::with_capacity(x.shape[0]);
    for chunk in x.data.chunks(256 * row) {
        let shape = [chunk.len() / row, row];
        session
            .run(&[Input {
                name: "X",
                shape: &shape,
                data: InputData::F32(chunk),
            }])
            .unwrap_or_else(|e| panic!("{name} batch {}: {e}", shape[0]));
        scores.extend_from_slice(session.output(0).unwrap().data);
    }
    scores
}

#[test]
fn compressed_artifacts_match_onnxruntime() {
    let Some(golden) = std::env::var_os("CTR_EDGE_GOLDEN_DIR").map(PathBuf::from) else {
        println!(
            "CTR_EDGE_GOLDEN_DIR is not set: no compressed artifacts to check (the exporter's \
             compress_fixtures test writes them with CTR_EDGE_GOLDEN_OUT)"
        );
        return;
    };
    let manifest = golden.join("manifest.txt");
    let listed = std::fs::read_to_string(&manifest).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run the exporter's compress_fixtures test with CTR_EDGE_GOLDEN_OUT and \
             CTR_EDGE_PYTHON set first)",
            manifest.display()
        )
    });
    let variant = ctr_edge_runtime::kernels::best().variant;
    let mut checked = 0;
    let mut architectures = std::collections::BTreeSet::new();
    for line in listed.lines().filter(|l| !l.is_empty()) {
        let (folder, tolerance) = line.split_once('\t').expect("folder<TAB>tolerance");
        let tolerance: f32 = tolerance.parse().expect("tolerance");
        let dir = golden.join(folder);
        let model = Model::open(dir.join("model.onnx")).unwrap_or_else(|e| panic!("{folder}: {e}"));
        let x = read_npz_f32(&dir.join("inputs.npz"), "X");
        let reference = read_npz_f32(&dir.join("ort_outputs.npz"), &model.outputs()[0].name);
        let scores = score(&model, &x, folder);
        assert_eq!(
            scores.len(),
            reference.data.len(),
            "{folder}: output length"
        );
        let diff = scores
            .iter()
            .zip(&reference.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff <= tolerance,
            "{folder} ({variant:?}): max |native - onnxruntime| {diff:e} > {tolerance:e}"
        );
        println!(
            "{folder:<36} {variant:?}: max |diff| {diff:.2e} over {} rows",
            scores.len()
        );
        checked += 1;
        // `<data>_<arch>-<variant>`
        let arch = folder.split('-').next().unwrap().split('_').nth(1).unwrap();
        architectures.insert(arch.to_string());
    }
    // Every fixture architecture, each in three compressed forms.
    assert!(
        architectures.len() >= 10 && checked >= 3 * architectures.len(),
        "only {checked} artifacts of {architectures:?} in {}",
        manifest.display()
    );
}

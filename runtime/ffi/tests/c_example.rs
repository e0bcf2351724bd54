//! Builds `targets/examples/score.c` against the static library of this build, runs it on the
//! first rows of the bundled example's `test.npz` and compares its scores with the Rust API's.
//!
//! The rows are committed as `targets/examples/movielens_deepfm_rows.f32` (raw little-endian
//! f32, so the C example and the aarch64 qemu script need no NumPy reader); this test checks
//! that file against `test.npz` and rewrites it with `CTR_EDGE_UPDATE_EXAMPLE_DATA=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Input, Model};

/// Rows of `test.npz` in the committed example input.
const ROWS: usize = 64;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture() -> PathBuf {
    workspace_root().join("tests/fixtures/movielens_deepfm")
}

/// `X` of the fixture's `test.npz`: (values, n_features).
fn test_npz_x() -> (Vec<f32>, usize) {
    let path = fixture().join("test.npz");
    let arrays = ctr_edge_npz::read_npz(&path).unwrap_or_else(|e| panic!("{e}"));
    let x = arrays
        .into_iter()
        .find(|a| a.name == "X")
        .expect("test.npz holds X");
    assert_eq!(x.shape.len(), 2, "X is 2-D: {}", x.describe());
    match x.data {
        ctr_edge_npz::ArrayData::F32(values) => (values, x.shape[1]),
        other => panic!("X is f32, not {}", other.dtype()),
    }
}

/// The committed example rows, checked against (or, on request, rewritten from) `test.npz`.
fn example_rows() -> (PathBuf, Vec<f32>, usize) {
    let (x, n_features) = test_npz_x();
    let rows = &x[..ROWS * n_features];
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let path = workspace_root().join("targets/examples/movielens_deepfm_rows.f32");
    if std::env::var_os("CTR_EDGE_UPDATE_EXAMPLE_DATA").is_some() {
        std::fs::write(&path, &bytes).expect("rows written");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == bytes,
        "{} is not the first {ROWS} rows of test.npz; rewrite it with\n  \
         CTR_EDGE_UPDATE_EXAMPLE_DATA=1 cargo test -p ctr-edge-ffi --test c_example",
        path.display()
    );
    (path, rows.to_vec(), n_features)
}

/// `libctr_edge.a` of the build this test belongs to (`<target>/<profile>/deps/<test>` runs).
fn static_library() -> PathBuf {
    // `cargo test` leaves the staticlib beside the test binaries in `deps/`; `cargo build`
    // also copies it up to the profile folder.
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    let candidates = [
        deps.join("libctr_edge.a"),
        deps.parent().expect("profile folder").join("libctr_edge.a"),
    ];
    let found = candidates.iter().find(|p| p.is_file()).cloned();
    found.unwrap_or_else(|| panic!("libctr_edge.a not built (looked at {candidates:?})"))
}

#[test]
fn c_example_scores_match_rust_api() {
    let (rows_path, rows, n_features) = example_rows();
    let model_path = fixture().join("model.onnx");

    // The Rust API's scores.
    let model = Model::open(&model_path).expect("model opens");
    let mut session = model.session();
    let name = model.inputs()[0].name.clone();
    let shape = [ROWS, n_features];
    session
        .run(&[Input {
            name: &name,
            shape: &shape,
            data: InputData::F32(&rows),
        }])
        .expect("Rust run");
    let expected = session.output(0).expect("output 0").data.to_vec();
    assert_eq!(expected.len(), ROWS);

    // Build and run the C example, when the C compiler builds for this test's architecture
    // (not in a cross test under qemu: run-c-example.sh covers aarch64).
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let machine = Command::new(&cc)
        .arg("-dumpmachine")
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    let machine = String::from_utf8_lossy(&machine.stdout);
    if !machine.starts_with(std::env::consts::ARCH) {
        eprintln!(
            "skipping the C build: {cc} targets {}, this test runs on {}",
            machine.trim(),
            std::env::consts::ARCH
        );
        return;
    }
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_example");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join("score");
    let root = workspace_root();
    let status = Command::new(&cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O1",
            "-I",
        ])
        .arg(root.join("runtime/ffi/include"))
        .arg(root.join("targets/examples/score.c"))
        .arg(static_library())
        .args(["-lm", "-lpthread", "-ldl", "-o"])
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(status.success(), "{cc} failed to build score.c");
    let output = Command::new(&exe)
        .arg(&model_path)
        .arg(&rows_path)
        .output()
        .expect("score runs");
    assert!(
        output.status.success(),
        "score failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let scores: Vec<f32> = String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| l.parse().expect("one score per line"))
        .collect();
    assert_eq!(scores.len(), ROWS, "one score per row");
    for (i, (c, r)) in scores.iter().zip(&expected).enumerate() {
        assert!((c - r).abs() <= 1e-6, "row {i}: C {c} vs Rust {r}");
    }

    // A row limit scores a prefix of the batch.
    let output = Command::new(&exe)
        .arg(&model_path)
        .arg(&rows_path)
        .arg("5")
        .output()
        .expect("score runs");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 5);
}

//! Helpers shared by the exporter's integration tests: the bundled data, scratch folders and
//! running the `ctr-edge` binary. (Each test crate uses a part of them.)
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file of `exporter/tests/data`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `name` in the scratch folder `folder` of this test build (the folder is created).
pub fn scratch_in(folder: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(folder);
    fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs the `ctr-edge` binary of this build.
pub fn ctr_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctr-edge"))
        .args(args)
        .output()
        .expect("the ctr-edge binary runs")
}

/// A path as a command-line argument.
pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The standard output of a run, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The standard error of a run, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `text` contains every one of `needles`.
pub fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

/// The largest |a[i] - b[i]|, in f64 (the slices must be as long).
pub fn max_abs_diff<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x.into() - y.into()).abs())
        .fold(0.0, f64::max)
}

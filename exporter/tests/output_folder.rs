//! `ctr-edge` and the files of an artifact, from the command line on the bundled MovieLens
//! DeepFM fixture: a model.onnx paired with another artifact's weights, or with a corrupted
//! byte, is refused by every command that loads it; `compress` writes its output folder as a
//! unit (old artifact or new one, report included, even after a crash), never over its own
//! input, over another artifact without `--overwrite` or over files that are not an
//! artifact's, and cleans up what crashed runs left.
//!
//! References independent of the code under test: file sizes from the file system, the
//! metadata read with prost, and FNV-1a computed here from its definition.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use prost::Message;
use tract_onnx::pb::ModelProto;

mod common;

use common::{ctr_edge, path_str as s, stderr, stdout};

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/movielens_deepfm")
        .join(file)
}

/// A fresh, empty scratch folder.
fn scratch(name: &str) -> PathBuf {
    let p = common::scratch_in("output-folder", name);
    let _ = fs::remove_dir_all(&p);
    fs::create_dir_all(&p).unwrap();
    p
}

/// `compress` of the fixture without factorization (fast), f32 or f16 weights: two different
/// artifacts.
fn compress_args<'a>(out: &'a Path, weights: &'a str, extra: &[&'a str]) -> Vec<String> {
    let model = fixture("model.onnx");
    let mut args: Vec<String> = ["compress", s(&model), "--method", "none", "--weights"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.extend([weights.to_string(), "-o".into(), s(out).to_string()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn run(args: &[String], env: Option<(&str, &str)>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctr-edge"));
    cmd.args(args);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    cmd.output().expect("the ctr-edge binary runs")
}

/// Writes an artifact of the fixture into `out` (which must be new or empty).
fn artifact(out: &Path, weights: &str) {
    let o = run(&compress_args(out, weights, &[]), None);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// FNV-1a 64 from its definition, in the checksum's text form.
fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

/// A `metadata_props` value of an ONNX file.
fn metadata(model: &Path, key: &str) -> Option<String> {
    let m = ModelProto::decode(fs::read(model).unwrap().as_slice()).unwrap();
    m.metadata_props
        .into_iter()
        .find(|e| e.key == key)
        .map(|e| e.value)
}

/// The files of a folder with their bytes, sorted by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// The names in `dir` that start with `.NAME.` (temporaries of the folder NAME).
fn temporaries(dir: &Path, name: &str) -> Vec<String> {
    let prefix = format!(".{name}.");
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    v.sort();
    v
}

/// Checks that `dir` holds one consistent artifact with its report: the weights hash to the
/// checksum the model records, and the report describes that model. Returns the checksum.
fn consistent(dir: &Path) -> String {
    let model = dir.join("model.onnx");
    let weights = fs::read(dir.join("model.weights")).unwrap();
    let recorded = metadata(&model, "ctr_edge.weights_checksum").unwrap();
    assert_eq!(fnv1a64(&weights), recorded, "{}", dir.display());
    assert_eq!(
        metadata(&model, "ctr_edge.weights_bytes").unwrap(),
        weights.len().to_string()
    );
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["artifact"]["weights_checksum"], recorded.as_str());
    assert_eq!(
        report["weights"].as_str(),
        metadata(&model, "ctr_edge.weights").as_deref()
    );
    recorded
}

/// `run` on the calibration data: succeeds, or fails with a message holding every word.
fn run_model(model: &Path, words: &[&str]) {
    let calib = fixture("calib.npz");
    for backend in ["native", "tract"] {
        let o = ctr_edge(&["run", s(model), "--data", s(&calib), "--backend", backend]);
        if words.is_empty() {
            assert!(o.status.success(), "{backend}: {}", stderr(&o));
        } else {
            assert!(
                !o.status.success(),
                "{backend} accepted {}",
                model.display()
            );
            common::assert_contains_all(&stderr(&o), words);
        }
    }
}

/// Every command that loads `model` refuses it with a message holding every word; `compress`
/// writes nothing.
fn refused_everywhere(model: &Path, words: &[&str]) {
    run_model(model, words);
    let valid = fixture("valid.npz");
    let o = ctr_edge(&["eval", s(model), "--data", s(&valid)]);
    assert!(!o.status.success(), "eval: {}", stdout(&o));
    common::assert_contains_all(&stderr(&o), words);
    let bench = [
        "bench",
        s(model),
        "--batch",
        "1",
        "--iters",
        "1",
        "--warmup",
        "0",
    ];
    let o = ctr_edge(&[&bench[..], &["--open-reps", "1"]].concat());
    assert!(!o.status.success(), "bench: {}", stdout(&o));
    common::assert_contains_all(&stderr(&o), words);
    let o = ctr_edge(&["inspect", s(model)]);
    assert!(!o.status.success(), "inspect: {}", stdout(&o));
    common::assert_contains_all(&stderr(&o), words);
    let out = model.with_file_name("recompressed");
    let o = ctr_edge(&["compress", s(model), "--method", "none", "-o", s(&out)]);
    assert!(!o.status.success(), "compress: {}", stdout(&o));
    common::assert_contains_all(&stderr(&o), words);
    assert!(!out.exists());
}

#[test]
fn a_mismatched_pair_is_refused_by_every_command() {
    let root = scratch("mismatch");
    let (a, b, mixed) = (root.join("a"), root.join("b"), root.join("mixed"));
    artifact(&a, "f32");
    artifact(&b, "f16");
    fs::create_dir_all(&mixed).unwrap();
    fs::copy(a.join("model.onnx"), mixed.join("model.onnx")).unwrap();
    fs::copy(b.join("model.weights"), mixed.join("model.weights")).unwrap();
    // Each artifact alone is fine.
    run_model(&a.join("model.onnx"), &[]);
    run_model(&b.join("model.onnx"), &[]);

    let recorded = metadata(&a.join("model.onnx"), "ctr_edge.weights_bytes").unwrap();
    let found = fs::metadata(b.join("model.weights")).unwrap().len();
    assert_ne!(recorded, found.to_string());
    let (recorded, found) = (format!("{recorded} bytes"), format!("{found} bytes"));
    let weights = mixed.join("model.weights");
    let model = mixed.join("model.onnx");
    refused_everywhere(
        &model,
        &[
            s(&weights),
            s(&model),
            "does not belong",
            "size",
            &recorded,
            &found,
        ],
    );
}

#[test]
fn a_corrupted_byte_is_refused_by_the_full_check() {
    let root = scratch("corrupt");
    let (a, bad) = (root.join("a"), root.join("bad"));
    artifact(&a, "f32");
    fs::create_dir_all(&bad).unwrap();
    fs::copy(a.join("model.onnx"), bad.join("model.onnx")).unwrap();
    let mut weights = fs::read(a.join("model.weights")).unwrap();
    let middle = weights.len() / 2 + 1;
    weights[middle] ^= 0x01;
    fs::write(bad.join("model.weights"), &weights).unwrap();
    let recorded = metadata(&a.join("model.onnx"), "ctr_edge.weights_checksum").unwrap();
    let found = fnv1a64(&weights);
    let model = bad.join("model.onnx");
    refused_everywhere(&model, &["checksum", &recorded, &found, "model.weights"]);
}

#[test]
fn the_source_folder_is_never_the_output() {
    let root = scratch("source");
    let src = root.join("src");
    artifact(&src, "f32");
    let before = snapshot(&src);
    let model = src.join("model.onnx");
    let spellings = [
        src.clone(),
        src.join("."),
        root.join("src/../src"),
        PathBuf::from(format!("{}/", s(&src))),
    ];
    for out in &spellings {
        for extra in [&[][..], &["--overwrite"][..]] {
            let mut args = vec!["compress", s(&model), "--method", "none", "-o", s(out)];
            args.extend_from_slice(extra);
            let o = ctr_edge(&args);
            assert!(!o.status.success(), "{args:?}: {}", stdout(&o));
            common::assert_contains_all(&stderr(&o), &["holds the input", s(&model)]);
            assert_eq!(snapshot(&src), before, "{args:?} changed the source");
        }
    }
    // A folder that holds the input deeper down is refused as well.
    let o = ctr_edge(&[
        "compress",
        s(&model),
        "--method",
        "none",
        "-o",
        s(&root),
        "--overwrite",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("holds the input"), "{}", stderr(&o));
    assert_eq!(snapshot(&src), before);
}

#[test]
fn an_existing_artifact_is_replaced_only_with_overwrite() {
    let root = scratch("overwrite");
    let out = root.join("out");
    artifact(&out, "f32");
    let first = consistent(&out);
    let before = snapshot(&out);

    let o = run(&compress_args(&out, "f16", &[]), None);
    assert!(!o.status.success());
    common::assert_contains_all(&stderr(&o), &[s(&out), "already holds", "--overwrite"]);
    assert_eq!(snapshot(&out), before);

    let o = run(&compress_args(&out, "f16", &["--overwrite"]), None);
    assert!(o.status.success(), "{}", stderr(&o));
    let second = consistent(&out);
    assert_ne!(first, second);
    assert_eq!(
        metadata(&out.join("model.onnx"), "ctr_edge.weights").as_deref(),
        Some("f16")
    );
    run_model(&out.join("model.onnx"), &[]);
    assert!(
        temporaries(&root, "out").is_empty(),
        "{:?}",
        temporaries(&root, "out")
    );
    let names: Vec<String> = snapshot(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["model.onnx", "model.weights", "report.json"]);
}

#[test]
fn a_folder_with_other_files_is_never_replaced() {
    let root = scratch("foreign");
    let out = root.join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("notes.txt"), b"mine").unwrap();
    fs::write(out.join("model.onnx"), b"not an artifact").unwrap();
    let before = snapshot(&out);
    for extra in [&[][..], &["--overwrite"][..]] {
        let o = run(&compress_args(&out, "f32", extra), None);
        assert!(!o.status.success());
        common::assert_contains_all(&stderr(&o), &[s(&out), "notes.txt", "another folder"]);
        assert_eq!(snapshot(&out), before);
    }
    assert!(temporaries(&root, "out").is_empty());
    // An empty folder is fine.
    let empty = root.join("empty");
    fs::create_dir_all(&empty).unwrap();
    artifact(&empty, "f32");
    consistent(&empty);
}

/// The id of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn leftovers_of_crashed_runs_are_cleaned() {
    let root = scratch("stale");
    let out = root.join("out");
    artifact(&out, "f32");
    let dead = dead_pid();
    let stale_tmp = root.join(format!(".out.tmp-{dead}-0"));
    let stale_old = root.join(format!(".out.old-{dead}-1"));
    let with_user_file = root.join(format!(".out.tmp-{dead}-2"));
    let live = root.join(format!(".out.tmp-{}-3", std::process::id()));
    let stale_file = root.join(format!(".other.npz.{dead}.4.tmp"));
    for dir in [&stale_tmp, &stale_old, &with_user_file, &live] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("model.onnx"), b"half written").unwrap();
    }
    fs::write(with_user_file.join("user.txt"), b"not ours").unwrap();
    fs::write(&stale_file, b"half").unwrap();

    let o = run(&compress_args(&out, "f16", &["--overwrite"]), None);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    common::assert_contains_all(
        &err,
        &[
            "interrupted run",
            &format!("process {dead}"),
            s(&stale_tmp),
            s(&stale_old),
        ],
    );
    assert!(!stale_tmp.exists() && !stale_old.exists() && !stale_file.exists());
    // A file that is not ours is never deleted; a live process's folder is left alone.
    assert_eq!(
        fs::read(with_user_file.join("user.txt")).unwrap(),
        b"not ours"
    );
    assert!(err.contains("user.txt"), "{err}");
    assert!(live.join("model.onnx").is_file());
    consistent(&out);
}

/// Old artifact in `out`, then `compress` of another one with `--overwrite` crashing after
/// `stage`. Returns the old artifact's files and what the crashed run printed.
fn crash_after(name: &str, stage: &str) -> (PathBuf, Vec<(String, Vec<u8>)>) {
    let root = scratch(name);
    let out = root.join("out");
    artifact(&out, "f32");
    let old = snapshot(&out);
    let env = ("CTR_EDGE_TEST_CRASH_AFTER", stage);
    let o = run(&compress_args(&out, "f16", &["--overwrite"]), Some(env));
    assert!(!o.status.success(), "no crash after {stage}");
    assert!(stderr(&o).contains("aborting"), "{}", stderr(&o));
    (out, old)
}

#[test]
fn a_crash_leaves_the_old_artifact_or_the_new_one() {
    if !cfg!(debug_assertions) {
        // The crash hook exists in debug builds only (and the binary is built as the tests).
        eprintln!("skipped: release build");
        return;
    }
    let new_one = {
        let dir = scratch("crash-reference").join("out");
        artifact(&dir, "f16");
        consistent(&dir)
    };

    // Files staged, nothing renamed: the old artifact, untouched; the staged folder is cleaned
    // by the next run.
    let (out, old) = crash_after("crash-staged", "staged");
    assert_eq!(snapshot(&out), old);
    run_model(&out.join("model.onnx"), &[]);
    let root = out.parent().unwrap();
    assert_eq!(temporaries(root, "out").len(), 1);
    let o = run(&compress_args(&out, "f16", &["--overwrite"]), None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted run"), "{}", stderr(&o));
    assert!(temporaries(root, "out").is_empty());
    assert_eq!(consistent(&out), new_one);

    // Between the two renames: the folder is absent and the old one complete beside it; the
    // next run puts it back (and, without --overwrite, keeps it).
    let (out, old) = crash_after("crash-aside", "moved-aside");
    let root = out.parent().unwrap();
    assert!(!out.exists());
    let aside = temporaries(root, "out");
    let aside: Vec<&String> = aside.iter().filter(|n| n.contains(".old-")).collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(snapshot(&root.join(aside[0])), old);
    let o = run(&compress_args(&out, "f16", &[]), None);
    assert!(!o.status.success());
    common::assert_contains_all(&stderr(&o), &["restored", "--overwrite"]);
    assert_eq!(snapshot(&out), old);
    assert!(temporaries(root, "out").is_empty());
    run_model(&out.join("model.onnx"), &[]);

    // New folder in place, old one not yet removed: the new artifact, whole.
    let (out, _) = crash_after("crash-replaced", "replaced");
    assert_eq!(consistent(&out), new_one);
    run_model(&out.join("model.onnx"), &[]);
    let root = out.parent().unwrap();
    assert_eq!(temporaries(root, "out").len(), 1);
    let o = run(&compress_args(&out, "f32", &["--overwrite"]), None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(temporaries(root, "out").is_empty());
    consistent(&out);
}

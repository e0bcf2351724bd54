//! `ctr_edge_model_open` on the C library (open, fstat, mmap): a model with external weights
//! scores like its reference and keeps its weights file mapped exactly while it lives; every
//! path that cannot be opened is `CTR_EDGE_STATUS_IO` with std's wording of the OS error; the
//! last-error message is per thread.

mod common;

use std::ffi::CString;
#[cfg(unix)]
use std::os::unix::{ffi::OsStrExt, fs::PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;

use common::tiny_model;
use common::*;
use ctr_edge::*;

/// Opens `path` (any bytes) through the C API: the status and the model (NULL on failure).
fn open_bytes_path(path: &[u8]) -> (ctr_edge_status, *mut ctr_edge_model) {
    let path = CString::new(path).unwrap();
    // Not NULL before the call: the call must overwrite it.
    let mut model = std::ptr::dangling_mut();
    // SAFETY: a valid C string and out pointer.
    let status = unsafe { ctr_edge_model_open(path.as_ptr(), &mut model) };
    (status, model)
}

fn open(path: &Path) -> (ctr_edge_status, *mut ctr_edge_model) {
    open_bytes_path(path.to_str().unwrap().as_bytes())
}

/// Scores of rows of the tiny model (`tiny_model::K` values a row) through the C API.
fn tiny_scores(model: *const ctr_edge_model, x: &[f32]) -> Vec<f32> {
    let session = new_session(model);
    let name = c("X");
    let shape = [x.len() / tiny_model::K, tiny_model::K];
    let mut out = vec![f32::NAN; shape[0]];
    let (status, written) = run(session, &[x_input(&name, &shape, x)], &mut out);
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    assert_eq!(written, shape[0]);
    // SAFETY: the session just created, freed once.
    unsafe { ctr_edge_session_free(session) };
    out
}

/// Removes its folder when dropped.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tiny model written to a fresh folder named after `tag`: (folder, model path, the guard
/// that removes the folder).
fn tiny_artifact(tag: &str) -> (PathBuf, PathBuf, RemovedOnDrop) {
    let dir = tiny_model::temp_dir(tag);
    let path = tiny_model::write(&dir);
    (dir.clone(), path, RemovedOnDrop(dir))
}

/// Asserts that an open succeeded, and frees the model.
#[track_caller]
fn assert_opened((status, model): (ctr_edge_status, *mut ctr_edge_model)) {
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    // SAFETY: the model just opened, freed once.
    unsafe { ctr_edge_model_free(model) };
}

/// The failure `open` must report for `path`: Io, and std's message for the same file.
#[track_caller]
fn assert_io_error(status: ctr_edge_status, model: *mut ctr_edge_model, path: &Path) {
    let std_error = std::fs::read(path).expect_err("std fails to read it too");
    assert_eq!(status, ctr_edge_status::Io, "{}", last_error());
    assert!(model.is_null(), "out is NULL after a failure");
    assert_eq!(
        last_error(),
        format!("ctr_edge_model_open: {}: {std_error}", path.display())
    );
}

#[test]
fn external_weights_are_mapped_while_the_model_lives() {
    let (dir, path, _removed) = tiny_artifact("open-mapped");
    let weights_path = dir.join(tiny_model::WEIGHTS_FILE);
    let (status, model) = open(&path);
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    assert_eq!(last_error(), "");

    let x: Vec<f32> = (0..5 * tiny_model::K)
        .map(|i| i as f32 * 0.25 - 2.0)
        .collect();
    let scores = tiny_scores(model, &x);
    for (got, want) in scores.iter().zip(tiny_model::reference(&x)) {
        assert!((got - want).abs() <= 1e-6, "{got} vs {want}");
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // The model owns a mapping of the weights file (and of nothing else: the ONNX file is
        // unmapped after decoding).
        assert!(!tiny_model::mappings_of(&weights_path).is_empty());
        assert!(tiny_model::mappings_of(&path).is_empty());
    }
    // SAFETY: freed once.
    unsafe { ctr_edge_model_free(model) };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert!(tiny_model::mappings_of(&weights_path).is_empty());

    // An empty weights file is no mapping, and the model's tensors then fall outside it.
    std::fs::write(&weights_path, []).unwrap();
    let (status, model) = open(&path);
    assert_eq!(status, ctr_edge_status::InvalidModel, "{}", last_error());
    assert!(model.is_null());
}

#[test]
fn paths_that_cannot_be_opened_are_io_errors_in_std_words() {
    let (dir, path, _removed) = tiny_artifact("open-errors");

    let missing = dir.join("missing.onnx");
    let (status, model) = open(&missing);
    assert_io_error(status, model, &missing);

    // A directory opens (O_RDONLY) but is no file to map.
    let (status, model) = open(&dir);
    assert_io_error(status, model, &dir);

    // A path through a regular file (ENOTDIR).
    let through_file = path.join("model.onnx");
    let (status, model) = open(&through_file);
    assert_io_error(status, model, &through_file);

    // The model opens, its weights file is missing: the message names the weights file.
    let weights_path = dir.join(tiny_model::WEIGHTS_FILE);
    std::fs::remove_file(&weights_path).unwrap();
    let (status, model) = open(&path);
    assert_io_error(status, model, &weights_path);
}

#[cfg(unix)]
#[test]
fn unreadable_files_are_io_errors_unless_root_reads_them() {
    let (_dir, path, _removed) = tiny_artifact("open-unreadable");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let (status, model) = open(&path);
    if std::fs::read(&path).is_ok() {
        // Root reads any file: then so does the library.
        eprintln!("running as root: the unreadable-file case reads as readable");
        assert_opened((status, model));
    } else {
        assert_io_error(status, model, &path);
    }
}

#[cfg(unix)]
#[test]
fn paths_are_bytes_not_utf8() {
    let (dir, path, _removed) = tiny_artifact("open-bytes");
    let mut odd = dir.as_os_str().as_bytes().to_vec();
    odd.extend_from_slice(b"/model-\xff.onnx");
    std::fs::rename(&path, std::ffi::OsStr::from_bytes(&odd)).unwrap();
    assert_opened(open_bytes_path(&odd));
}

/// Fails a call on this thread with a message naming `tag`.
fn fail_with(tag: &str) {
    let missing = c(&format!("/nonexistent/ctr-edge/{tag}.onnx"));
    let mut model = null_mut();
    // SAFETY: a valid C string and out pointer.
    let status = unsafe { ctr_edge_model_open(missing.as_ptr(), &mut model) };
    assert_eq!(status, ctr_edge_status::Io);
}

#[test]
fn the_last_error_is_per_thread() {
    // Two threads interleaved by a barrier; each records what it read, asserted after both
    // finish (an assertion failing in one thread must not leave the other at the barrier).
    let barrier = std::sync::Barrier::new(2);
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| {
            fail_with("first");
            let own = last_error();
            barrier.wait(); // the second thread reads, then fails, now
            barrier.wait();
            (own, last_error())
        });
        let second = s.spawn(|| {
            barrier.wait(); // the first thread has its message
            let before = last_error();
            fail_with("second");
            let own = last_error();
            barrier.wait();
            (before, own)
        });
        (first.join().unwrap(), second.join().unwrap())
    });
    assert!(first.0.contains("first.onnx"), "{first:?}");
    assert_eq!(
        second.0, "",
        "the first thread's message leaked to the second"
    );
    assert!(second.1.contains("second.onnx"), "{second:?}");
    assert!(
        first.1.contains("first.onnx"),
        "the second thread's failure replaced the first's message: {first:?}"
    );
    // This thread made no call yet.
    assert_eq!(last_error(), "");
}

/// `open` of `path` on another thread, given 10 s: a FIFO without a writer must not block.
fn open_within_10s(path: &Path) -> (ctr_edge_status, String) {
    let path = path.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (status, model) = open(&path);
        if !model.is_null() {
            // SAFETY: the model just opened, freed once.
            unsafe { ctr_edge_model_free(model) };
        }
        let _ = tx.send((status, last_error()));
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("ctr_edge_model_open blocked on a FIFO")
}

#[cfg(unix)]
#[test]
fn fifos_are_refused_without_blocking() {
    let (dir, path, _removed) = tiny_artifact("open-fifo");
    // model.onnx replaced by a FIFO with no writer.
    let onnx_bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let fifo = |p: &Path| {
        let c_path = c(p.to_str().unwrap());
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    };
    fifo(&path);
    let (status, message) = open_within_10s(&path);
    assert_eq!(status, ctr_edge_status::Io, "{message}");
    assert!(message.contains("not a regular file"), "{message}");
    // A regular model.onnx beside a FIFO named model.weights.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, onnx_bytes).unwrap();
    let weights = dir.join(tiny_model::WEIGHTS_FILE);
    std::fs::remove_file(&weights).unwrap();
    fifo(&weights);
    let (status, message) = open_within_10s(&path);
    assert_eq!(status, ctr_edge_status::Io, "{message}");
    assert!(message.contains("not a regular file"), "{message}");
    assert!(message.contains(tiny_model::WEIGHTS_FILE), "{message}");
}

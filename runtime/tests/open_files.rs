//! `Model::open` on files that are not regular files: a FIFO (no writer) as `model.onnx` or as
//! `model.weights` is an I/O error "not a regular file", returned at once (a plain open of a
//! FIFO blocks until a writer appears), and a folder reads as "Is a directory".

#![cfg(unix)]

mod onnx_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ctr_edge_runtime::{Error, Model};
use onnx_support::*;

/// A fresh folder for this test process.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctr-edge-open-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A FIFO at `path` (the system's `mkfifo`, independent of the code under test).
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

/// `Model::open(path)` on another thread, given 10 s: the error's message.
fn open_error_within_10s(path: &Path) -> String {
    let path = path.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(
            Model::open(&path)
                .err()
                .map(|e| (matches!(e, Error::Io { .. }), e.to_string())),
        );
    });
    let result = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("Model::open blocked");
    let (is_io, message) = result.expect("opened a FIFO");
    assert!(is_io, "{message}");
    message
}

/// Y = X + W with W [1] stored in `model.weights` at offset 0.
fn model_with_external_weights() -> Vec<u8> {
    let g = graph(
        "g",
        &[op("Add add: X W -> Y", &[])],
        &[tensor_external(
            "W",
            FLOAT,
            &[1],
            "model.weights",
            0,
            Some(4),
        )],
        &[value_info("X", FLOAT, &[D::V(1)])],
        &[value_info("Y", FLOAT, &[D::V(1)])],
    );
    model_bytes(&g)
}

#[test]
fn fifos_and_folders_are_refused_without_blocking() {
    let dir = temp_dir("fifo");
    let onnx = dir.join("model.onnx");
    let weights = dir.join("model.weights");

    // The model itself a FIFO.
    mkfifo(&onnx);
    let message = open_error_within_10s(&onnx);
    assert!(message.contains("not a regular file"), "{message}");
    std::fs::remove_file(&onnx).unwrap();

    // A regular model whose weights file is a FIFO; first check it opens with a real one.
    std::fs::write(&onnx, model_with_external_weights()).unwrap();
    std::fs::write(&weights, 1.5f32.to_le_bytes()).unwrap();
    Model::open(&onnx).expect("the model opens with regular weights");
    std::fs::remove_file(&weights).unwrap();
    mkfifo(&weights);
    let message = open_error_within_10s(&onnx);
    assert!(message.contains("not a regular file"), "{message}");
    assert!(message.contains("model.weights"), "{message}");

    // A folder as the model: std's words for reading one.
    let message = open_error_within_10s(&dir);
    let std_words = std::fs::read(&dir).unwrap_err().to_string();
    assert!(message.contains(&std_words), "{message} vs {std_words}");
    std::fs::remove_dir_all(&dir).unwrap();
}

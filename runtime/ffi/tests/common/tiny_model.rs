//! A tiny ONNX model whose weights live in an external file, written field by field (no
//! protobuf library): `Y = MatMul(X, W)` with `X` f32 `[N, 4]` and the initializer `W` f32
//! `[4, 1]` stored as the whole of `tiny.weights`. Its reference scores are plain dot products.
//! (Shared by the integration tests and, through `#[path]`, the crate's unit tests.)
#![allow(dead_code)]

extern crate std;

use std::path::{Path, PathBuf};
use std::vec::Vec;

/// Values per row of `X`.
pub const K: usize = 4;
/// `W`, the contents of the weights file (little-endian f32).
pub const W: [f32; K] = [0.5, -1.25, 2.0, 0.125];
/// The weights file the model names.
pub const WEIGHTS_FILE: &str = "tiny.weights";
/// The model file written by [`write`].
pub const MODEL_FILE: &str = "tiny.onnx";

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn int_field(out: &mut Vec<u8>, number: u64, v: u64) {
    varint(out, number << 3);
    varint(out, v);
}

fn bytes_field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, (number << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `ValueInfoProto` of an f32 tensor; `None` dimensions are the symbolic `N`.
fn value_info(name: &str, dims: &[Option<u64>]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Some(v) => int_field(&mut dim, 1, *v),
            None => bytes_field(&mut dim, 2, b"N"),
        }
        bytes_field(&mut shape, 1, &dim);
    }
    let mut tensor_type = Vec::new();
    int_field(&mut tensor_type, 1, 1); // FLOAT
    bytes_field(&mut tensor_type, 2, &shape);
    let mut type_proto = Vec::new();
    bytes_field(&mut type_proto, 1, &tensor_type);
    let mut info = Vec::new();
    bytes_field(&mut info, 1, name.as_bytes());
    bytes_field(&mut info, 2, &type_proto);
    info
}

/// `StringStringEntryProto`.
fn entry(key: &str, value: &str) -> Vec<u8> {
    let mut e = Vec::new();
    bytes_field(&mut e, 1, key.as_bytes());
    bytes_field(&mut e, 2, value.as_bytes());
    e
}

/// The ONNX file (`ModelProto`).
pub fn onnx() -> Vec<u8> {
    let mut node = Vec::new();
    bytes_field(&mut node, 1, b"X");
    bytes_field(&mut node, 1, b"W");
    bytes_field(&mut node, 2, b"Y");
    bytes_field(&mut node, 3, b"mm");
    bytes_field(&mut node, 4, b"MatMul");

    let mut w = Vec::new();
    int_field(&mut w, 1, K as u64); // dims
    int_field(&mut w, 1, 1);
    int_field(&mut w, 2, 1); // FLOAT
    bytes_field(&mut w, 8, b"W");
    bytes_field(&mut w, 13, &entry("location", WEIGHTS_FILE));
    bytes_field(&mut w, 13, &entry("offset", "0"));
    bytes_field(&mut w, 13, &entry("length", &std::format!("{}", 4 * K)));
    int_field(&mut w, 14, 1); // EXTERNAL

    let mut graph = Vec::new();
    bytes_field(&mut graph, 1, &node);
    bytes_field(&mut graph, 2, b"tiny");
    bytes_field(&mut graph, 5, &w);
    bytes_field(&mut graph, 11, &value_info("X", &[None, Some(K as u64)]));
    bytes_field(&mut graph, 12, &value_info("Y", &[None, Some(1)]));

    let mut opset = Vec::new();
    bytes_field(&mut opset, 1, b"");
    int_field(&mut opset, 2, 13);

    let mut model = Vec::new();
    int_field(&mut model, 1, 8); // ir_version
    bytes_field(&mut model, 8, &opset);
    bytes_field(&mut model, 7, &graph);
    model
}

/// The weights file's bytes.
pub fn weights() -> Vec<u8> {
    W.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Writes `tiny.onnx` and `tiny.weights` into `dir` (created); returns the model's path.
pub fn write(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(WEIGHTS_FILE), weights()).unwrap();
    let model = dir.join(MODEL_FILE);
    std::fs::write(&model, onnx()).unwrap();
    model
}

/// The reference scores of rows of `x` (`K` values a row): `x . W` in f64, rounded.
pub fn reference(x: &[f32]) -> Vec<f32> {
    x.chunks_exact(K)
        .map(|row| {
            row.iter()
                .zip(W)
                .map(|(a, b)| f64::from(*a) * f64::from(b))
                .sum::<f64>() as f32
        })
        .collect()
}

/// A fresh folder under the system temporary folder, unique to this process and `tag`.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(std::format!("ctr-edge-ffi-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Address ranges of the mappings of `path` in `/proc/self/maps`: the kernel's record of what
/// this process maps, independent of the code under test. The file is read as bytes: another
/// test running beside this one may map a file whose name is not UTF-8.
pub fn mappings_of(path: &Path) -> Vec<(usize, usize)> {
    use std::os::unix::ffi::OsStrExt;
    let maps = std::fs::read("/proc/self/maps").unwrap();
    let path = path.as_os_str().as_bytes();
    maps.split(|&b| b == b'\n')
        .filter(|l| l.ends_with(path))
        .map(|l| std::str::from_utf8(l.split(|&b| b == b' ').next().unwrap()).unwrap())
        .map(|range| {
            let (a, b) = range.split_once('-').unwrap();
            (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            )
        })
        .collect()
}

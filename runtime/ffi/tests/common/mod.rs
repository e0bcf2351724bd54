//! Helpers shared by the C API tests: the bundled example model, its committed example rows,
//! and safe wrappers for reading C strings back.
#![allow(dead_code)]

pub mod tiny_model;

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use ctr_edge::*;

/// `tests/fixtures/movielens_deepfm/model.onnx` (one input `X` f32 [N, 8], output `prob` [N, 1]).
pub fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/movielens_deepfm/model.onnx")
}

/// Features per row of the example model.
pub const FEATURES: usize = 8;

/// The committed example rows (64 rows of `test.npz`, see `c_example.rs`).
pub fn example_rows() -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../targets/examples/movielens_deepfm_rows.f32");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// This thread's last error message.
pub fn last_error() -> String {
    // SAFETY: never NULL, NUL-terminated, valid until the next status-returning call.
    unsafe { CStr::from_ptr(ctr_edge_last_error()) }
        .to_str()
        .expect("UTF-8 message")
        .to_owned()
}

/// A C string of `s`.
pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Opens the example model through the C API.
pub fn open_model() -> *mut ctr_edge_model {
    let path = c(model_path().to_str().unwrap());
    let mut model = std::ptr::null_mut();
    // SAFETY: valid C string and out pointer.
    let status = unsafe { ctr_edge_model_open(path.as_ptr(), &mut model) };
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    assert!(!model.is_null());
    model
}

/// A session on `model`.
pub fn new_session(model: *const ctr_edge_model) -> *mut ctr_edge_session {
    let mut session = std::ptr::null_mut();
    // SAFETY: live model, valid out pointer.
    let status = unsafe { ctr_edge_session_new(model, &mut session) };
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    session
}

/// A `ctr_edge_input` for `X` over `rows` rows of `data`.
pub fn x_input(name: &CStr, shape: &[usize], data: &[f32]) -> ctr_edge_input {
    ctr_edge_input {
        name: name.as_ptr(),
        dtype: ctr_edge_dtype::F32 as u32,
        shape: shape.as_ptr(),
        rank: shape.len(),
        data: data.as_ptr().cast(),
    }
}

/// Runs `inputs` on `session` into `out`: (status, out_written).
pub fn run(
    session: *mut ctr_edge_session,
    inputs: &[ctr_edge_input],
    out: &mut [f32],
) -> (ctr_edge_status, usize) {
    let mut written = usize::MAX;
    // SAFETY: every pointer is valid for the lengths passed.
    let status = unsafe {
        ctr_edge_session_run(
            session,
            inputs.as_ptr(),
            inputs.len(),
            0,
            out.as_mut_ptr(),
            out.len(),
            &mut written,
        )
    };
    (status, written)
}

/// The example model opened through the C API with one session on it; both are freed on drop
/// (the session first).
pub struct Opened {
    pub model: *mut ctr_edge_model,
    pub session: *mut ctr_edge_session,
}

impl Opened {
    pub fn new() -> Opened {
        Opened::with_model(open_model())
    }

    /// A session on `model` (a live model this value then owns).
    pub fn with_model(model: *mut ctr_edge_model) -> Opened {
        let session = new_session(model);
        Opened { model, session }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        // SAFETY: the live handles of `new`, freed once.
        unsafe {
            ctr_edge_session_free(self.session);
            ctr_edge_model_free(self.model);
        }
    }
}

/// A batch for input `X` of the example model: its name, shape and values.
pub struct XBatch {
    pub name: CString,
    pub shape: [usize; 2],
    pub rows: Vec<f32>,
}

impl XBatch {
    /// The first `n` committed example rows.
    pub fn new(n: usize) -> XBatch {
        XBatch {
            name: c("X"),
            shape: [n, FEATURES],
            rows: example_rows()[..n * FEATURES].to_vec(),
        }
    }

    /// The `ctr_edge_input` over this batch (valid while the batch lives).
    pub fn input(&self) -> ctr_edge_input {
        x_input(&self.name, &self.shape, &self.rows)
    }
}

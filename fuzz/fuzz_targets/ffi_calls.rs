//! C ABI call sequences: the input is a script of calls (open from bytes, session new/free,
//! run with good and bad shapes, dtypes, names and NULLs, output, output shape, the model
//! queries, frees in any order), each decoded from a few bytes.
//!
//! The script never breaks a rule the API documents as the caller's (no double free, no
//! dangling or too-short buffers, NUL-terminated names, data valid for the shape it comes
//! with); everything the API promises to check is fair game. A finding is a panic status
//! (`CTR_EDGE_STATUS_PANIC`), a sanitizer report, a crash, a hang, or a broken promise: an
//! out-parameter not written on failure, a count past the buffer, or a successful run whose
//! output differs from the Rust API's on the same model and inputs.
#![no_main]

use std::ffi::{c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use ctr_edge::*;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Input, Model};
use libfuzzer_sys::fuzz_target;

#[path = "../../runtime/ffi/tests/common/tiny_model.rs"]
mod tiny_model;

/// The models a script opens (ONNX, weights): a small graph with external weights (an `If`,
/// FLOAT16 weights, a bool input the C ABI refuses), the C ABI tests' tiny `MatMul` model
/// (f32 input, external weights) and a real DeepFM export with inline weights (int64 ids).
fn models() -> &'static [(Vec<u8>, Vec<u8>)] {
    static MODELS: OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
    MODELS.get_or_init(|| {
        vec![
            (
                include_bytes!("../../runtime/tests/corpus/reference/mlp_py.onnx").to_vec(),
                include_bytes!("../../runtime/tests/corpus/reference/mlp_py.weights").to_vec(),
            ),
            (tiny_model::onnx(), tiny_model::weights()),
            (
                include_bytes!("../../tests/fixtures/movielens_deepfm/model.onnx").to_vec(),
                Vec::new(),
            ),
        ]
    })
}

/// Most live models and sessions the harness keeps (more are freed at once).
const MAX_LIVE: usize = 4;

/// The same models through the Rust API: the reference for successful C runs.
fn reference(src: usize) -> Option<&'static Model<'static>> {
    static REFS: OnceLock<Vec<Option<Model<'static>>>> = OnceLock::new();
    REFS.get_or_init(|| {
        models()
            .iter()
            .map(|(onnx, weights)| Model::from_bytes(onnx, weights).ok())
            .collect()
    })[src]
        .as_ref()
}

/// Reads the script: each call takes what it needs; past the end everything reads 0.
struct Script<'a> {
    bytes: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }
}

/// One model input as `ctr_edge_model_input_info` described it (copied: the info's pointers
/// live only as long as the model).
#[derive(Clone)]
struct InputDesc {
    name: CString,
    dtype: u32,
    dims: Vec<i64>,
}

struct Live {
    session: *mut ctr_edge_session,
    /// Index in `models()` of the session's model.
    src: usize,
    inputs: Vec<InputDesc>,
    outputs: usize,
}

struct Harness {
    /// Live model handles with the `models()` index they came from.
    models: Vec<(*mut ctr_edge_model, usize)>,
    sessions: Vec<Live>,
    /// Weights buffers the harness made (misaligned copies); models borrow them, so they go
    /// last, after every handle is freed.
    buffers: Vec<Vec<u8>>,
}

fn ok(status: ctr_edge_status) -> bool {
    let code = status as u32;
    assert_ne!(
        code,
        ctr_edge_status::Panic as u32,
        "a call panicked: {}",
        last_error()
    );
    code == ctr_edge_status::Ok as u32
}

fn last_error() -> String {
    let p = ctr_edge_last_error();
    assert!(!p.is_null(), "ctr_edge_last_error returned NULL");
    // SAFETY: a NUL-terminated string valid until the next call on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A dangling but non-NULL pointer value for out-parameters the API must overwrite.
fn sentinel<T>() -> *mut T {
    std::ptr::NonNull::dangling().as_ptr()
}

impl Harness {
    fn step(&mut self, s: &mut Script<'_>) {
        match s.byte() % 9 {
            0 => self.open(s),
            1 => {
                let i = s.below(self.models.len() + 1);
                if i < self.models.len() {
                    let (m, _) = self.models.swap_remove(i);
                    // SAFETY: a live model, given back once.
                    unsafe { ctr_edge_model_free(m) };
                } else {
                    // SAFETY: NULL is ignored.
                    unsafe { ctr_edge_model_free(null_mut()) };
                }
            }
            2 => self.session_new(s),
            3 => {
                let i = s.below(self.sessions.len() + 1);
                if i < self.sessions.len() {
                    let live = self.sessions.swap_remove(i);
                    // SAFETY: a live session, given back once.
                    unsafe { ctr_edge_session_free(live.session) };
                } else {
                    // SAFETY: NULL is ignored.
                    unsafe { ctr_edge_session_free(null_mut()) };
                }
            }
            4 => self.run(s),
            5 => self.output(s),
            6 => self.output_shape(s),
            7 => self.query(s),
            _ => {
                let code = u32::from(s.byte()) | (u32::from(s.byte()) << 24);
                let name = ctr_edge_status_name(code);
                assert!(!name.is_null());
                // SAFETY: a static NUL-terminated string.
                let _ = unsafe { CStr::from_ptr(name) };
                let _ = last_error();
                // SAFETY: a static NUL-terminated string.
                let _ = unsafe { CStr::from_ptr(ctr_edge_version()) };
            }
        }
    }

    fn open(&mut self, s: &mut Script<'_>) {
        let src = s.below(models().len());
        let (onnx, weights) = &models()[src];
        let (mut onnx_ptr, mut onnx_len) = (onnx.as_ptr(), onnx.len());
        let (mut w_ptr, mut w_len) = (weights.as_ptr(), weights.len());
        let mut out: *mut ctr_edge_model = sentinel();
        let mut out_ptr: *mut *mut ctr_edge_model = &mut out;
        match s.byte() % 9 {
            0 => {}
            1 => onnx_ptr = null(),
            2 => (w_ptr, w_len) = (null(), 16),
            3 => out_ptr = null_mut(),
            4 => onnx_len = usize::from(s.u16()) % (onnx.len() + 1),
            5 => w_len = usize::from(s.u16()) % (weights.len() + 1),
            // The other model's weights.
            6 => {
                let other = &models()[(src + 1) % models().len()].1;
                (w_ptr, w_len) = (other.as_ptr(), other.len());
            }
            // A copy at an odd address: tensors are copied instead of viewed.
            7 => {
                let mut buf = vec![0u8; weights.len() + 1];
                buf[1..].copy_from_slice(weights);
                w_ptr = buf[1..].as_ptr();
                self.buffers.push(buf);
            }
            // A flipped byte in the weights.
            _ => {
                if !weights.is_empty() {
                    let mut buf = weights.to_vec();
                    let at = usize::from(s.u16()) % buf.len();
                    buf[at] ^= 1 << (s.byte() % 8);
                    w_ptr = buf.as_ptr();
                    self.buffers.push(buf);
                }
            }
        }
        // SAFETY: every non-NULL pointer is valid for its length (weights: for the model's
        // life, `models()` is static and `buffers` outlives every handle); `out_ptr` is NULL or
        // valid for a write.
        let status =
            unsafe { ctr_edge_model_open_bytes(onnx_ptr, onnx_len, w_ptr, w_len, out_ptr) };
        if out_ptr.is_null() {
            assert!(!ok(status), "open_bytes with out NULL succeeded");
            return;
        }
        if ok(status) {
            assert!(!out.is_null(), "open_bytes succeeded with a NULL model");
            if self.models.len() < MAX_LIVE {
                self.models.push((out, src));
            } else {
                // SAFETY: a live model, given back once.
                unsafe { ctr_edge_model_free(out) };
            }
        } else {
            assert!(
                out.is_null(),
                "open_bytes failed without writing NULL: {}",
                last_error()
            );
        }
    }

    fn session_new(&mut self, s: &mut Script<'_>) {
        let pick = s.below(self.models.len() + 2);
        let (model, src) = self.models.get(pick).copied().unwrap_or((null_mut(), 0));
        let mut out: *mut ctr_edge_session = sentinel();
        let out_ptr: *mut *mut ctr_edge_session = if pick == self.models.len() + 1 {
            null_mut()
        } else {
            &mut out
        };
        // SAFETY: `model` is NULL or live; `out_ptr` NULL or valid for a write.
        let status = unsafe { ctr_edge_session_new(model, out_ptr) };
        if model.is_null() || out_ptr.is_null() {
            assert!(!ok(status), "session_new with a NULL argument succeeded");
            if !out_ptr.is_null() {
                assert!(out.is_null(), "session_new failed without writing NULL");
            }
            return;
        }
        if !ok(status) {
            assert!(out.is_null(), "session_new failed without writing NULL");
            return;
        }
        let (inputs, outputs) = describe(model);
        if self.sessions.len() < MAX_LIVE {
            self.sessions.push(Live {
                session: out,
                src,
                inputs,
                outputs,
            });
        } else {
            // SAFETY: a live session, given back once.
            unsafe { ctr_edge_session_free(out) };
        }
    }

    fn run(&mut self, s: &mut Script<'_>) {
        let pick = s.below(self.sessions.len() + 1);
        let (session, src, mut descs, outputs) = match self.sessions.get(pick) {
            Some(l) => (l.session, l.src, l.inputs.clone(), l.outputs),
            None => (null_mut(), 0, Vec::new(), 1),
        };
        let batch = s.below(4);
        let mut shapes: Vec<Vec<usize>> = descs
            .iter()
            .map(|d| {
                d.dims
                    .iter()
                    .map(|&v| usize::try_from(v).unwrap_or(batch))
                    .collect()
            })
            .collect();
        let mutation = s.byte() % 16;
        let k = s.below(descs.len());
        let mut fill: i64 = 0;
        let mut null_name = false;
        let mut null_shape = false;
        let mut null_data = false;
        let mut null_inputs = false;
        let mut too_many = false;
        if !descs.is_empty() {
            match mutation {
                1 => {
                    descs.pop();
                    shapes.pop();
                }
                2 => {
                    descs.push(descs[k].clone());
                    shapes.push(shapes[k].clone());
                }
                3 => descs[k].dtype = u32::from(s.byte() % 12),
                4 => shapes[k].push(usize::from(s.byte() % 4)),
                5 => {
                    shapes[k].pop();
                }
                6 => {
                    if let Some(d) = shapes[k].last_mut() {
                        *d = usize::from(s.byte() % 8);
                    }
                }
                7 => null_name = true,
                8 => null_shape = true,
                9 => null_data = true,
                10 => descs[k].name = CString::new("no_such_input").unwrap(),
                11 => descs[k].name = CString::new(vec![0xff, 0xfe]).unwrap(),
                12 => {
                    fill = [i64::MAX, -1, 1 << 40, i64::MIN, 1 << 31][s.below(5)];
                }
                13 => null_inputs = true,
                14 => too_many = true,
                _ => {}
            }
        }
        // Every buffer is 8-byte aligned and 8 bytes per value: valid for any declared dtype.
        let counts: Vec<usize> = shapes
            .iter()
            .map(|sh| {
                sh.iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .unwrap()
            })
            .collect();
        let datas: Vec<Vec<u64>> = descs
            .iter()
            .zip(&counts)
            .map(|(d, &n)| filled(d.dtype, n, fill))
            .collect();
        let mut c_inputs: Vec<ctr_edge_input> = descs
            .iter()
            .zip(&shapes)
            .zip(&datas)
            .map(|((d, sh), data)| ctr_edge_input {
                name: d.name.as_ptr(),
                dtype: d.dtype,
                shape: if sh.is_empty() { null() } else { sh.as_ptr() },
                rank: sh.len(),
                data: data.as_ptr().cast::<c_void>(),
            })
            .collect();
        if let Some(c) = c_inputs.get_mut(k) {
            if null_name {
                c.name = null();
            }
            if null_shape && c.rank > 0 {
                c.shape = null();
            }
            if null_data {
                c.data = null();
            }
        }
        if too_many {
            let first = c_inputs[0];
            c_inputs.resize(CTR_EDGE_MAX_INPUTS + 1, first);
        }
        let n_inputs = c_inputs.len();
        let inputs_ptr = if null_inputs {
            null()
        } else {
            c_inputs.as_ptr()
        };
        let index = match s.byte() % 8 {
            7 => usize::MAX,
            b => usize::from(b) % (outputs + 1),
        };
        let mut out = vec![f32::NAN; 64];
        let (out_ptr, out_len) = out_buffer(s, &mut out);
        let mut written = usize::MAX;
        let written_ptr: *mut usize = if s.byte().is_multiple_of(8) {
            null_mut()
        } else {
            &mut written
        };
        // SAFETY: every pointer is NULL or valid as the API documents: names NUL-terminated,
        // shapes valid for `rank` values, data for the product of the shape (8 bytes a
        // value, 8-byte aligned), `inputs` for `n_inputs` entries, `out` for `out_len` floats.
        let status = unsafe {
            ctr_edge_session_run(
                session,
                inputs_ptr,
                n_inputs,
                index,
                out_ptr,
                out_len,
                written_ptr,
            )
        };
        let succeeded = ok(status);
        if written_ptr.is_null() || session.is_null() {
            assert!(!succeeded, "run with a NULL argument succeeded");
            return;
        }
        if !succeeded {
            let code = status as u32;
            if code != ctr_edge_status::BufferTooSmall as u32 {
                assert_eq!(written, 0, "a failed run left out_written at {written}");
            } else {
                assert!(
                    written > out_len,
                    "BUFFER_TOO_SMALL with {written} <= {out_len}"
                );
            }
            return;
        }
        assert!(
            written <= out_len,
            "run wrote {written} values into {out_len}"
        );
        // The same run through the Rust API must give the same bits.
        let Some(model) = reference(src) else {
            panic!("the C ABI opened a model the Rust API refuses");
        };
        let rust_inputs: Vec<Input<'_>> = descs
            .iter()
            .zip(&shapes)
            .zip(&datas)
            .map(|((d, sh), data)| Input {
                name: d.name.to_str().unwrap(),
                shape: sh,
                data: as_input(d.dtype, data, sh.iter().product()),
            })
            .collect();
        let mut session = model.session();
        session
            .run(&rust_inputs)
            .expect("the Rust API refuses a run the C ABI accepted");
        let view = session.output(index).expect("f32 output");
        assert_eq!(view.data.len(), written);
        // SAFETY: `out_ptr` is valid for `out_len >= written` floats (or NULL with 0).
        let got = if written == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(out_ptr, written) }
        };
        let same = got
            .iter()
            .zip(view.data)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "C output differs from the Rust API's");
    }

    fn output(&mut self, s: &mut Script<'_>) {
        let pick = s.below(self.sessions.len() + 1);
        let (session, outputs) = self
            .sessions
            .get(pick)
            .map_or((null_mut(), 1), |l| (l.session, l.outputs));
        let index = usize::from(s.byte()) % (outputs + 1);
        let mut out = vec![f32::NAN; 64];
        let (out_ptr, out_len) = out_buffer(s, &mut out);
        let mut written = usize::MAX;
        let written_ptr: *mut usize = if s.byte().is_multiple_of(8) {
            null_mut()
        } else {
            &mut written
        };
        // SAFETY: `session` NULL or live; `out` valid for `out_len` floats or NULL with 0 (or
        // NULL with a length: checked by the API); `written_ptr` NULL or valid.
        let status =
            unsafe { ctr_edge_session_output(session, index, out_ptr, out_len, written_ptr) };
        let succeeded = ok(status);
        if !written_ptr.is_null() && succeeded {
            assert!(written <= out_len);
        }
    }

    fn output_shape(&mut self, s: &mut Script<'_>) {
        let pick = s.below(self.sessions.len() + 1);
        let (session, outputs) = self
            .sessions
            .get(pick)
            .map_or((null_mut(), 1), |l| (l.session, l.outputs));
        let index = usize::from(s.byte()) % (outputs + 1);
        let mut dims = [usize::MAX; 8];
        let dims_len = s.below(dims.len() + 1);
        let dims_ptr = match s.byte() % 4 {
            0 => null_mut(),
            _ => dims.as_mut_ptr(),
        };
        let mut rank = usize::MAX;
        let rank_ptr: *mut usize = if s.byte().is_multiple_of(8) {
            null_mut()
        } else {
            &mut rank
        };
        // SAFETY: `dims` valid for 8 >= dims_len values (or NULL); `rank_ptr` NULL or valid.
        let status =
            unsafe { ctr_edge_session_output_shape(session, index, dims_ptr, dims_len, rank_ptr) };
        if ok(status) {
            assert!(!rank_ptr.is_null() && rank <= dims_len);
            assert!(
                dims[rank..].iter().all(|&d| d == usize::MAX),
                "wrote past the rank"
            );
        }
    }

    fn query(&mut self, s: &mut Script<'_>) {
        let pick = s.below(self.models.len() + 1);
        let model: *const ctr_edge_model = self.models.get(pick).map_or(null(), |m| m.0);
        let null_out = s.byte().is_multiple_of(4);
        let index = usize::from(s.byte() % 4);
        // SAFETY (all): `model` NULL or live; out NULL or valid for a write.
        match s.byte() % 5 {
            0 | 1 => {
                let mut n = usize::MAX;
                let out: *mut usize = if null_out { null_mut() } else { &mut n };
                let status = if s.byte().is_multiple_of(2) {
                    unsafe { ctr_edge_model_input_count(model, out) }
                } else {
                    unsafe { ctr_edge_model_output_count(model, out) }
                };
                if ok(status) {
                    assert!(!model.is_null() && !null_out && n < 1 << 20);
                }
            }
            2 | 3 => {
                let mut info = ctr_edge_io_info {
                    name: null(),
                    dtype: 0,
                    rank: 0,
                    dims: null(),
                };
                let out: *mut ctr_edge_io_info = if null_out { null_mut() } else { &mut info };
                let status = if s.byte().is_multiple_of(2) {
                    unsafe { ctr_edge_model_input_info(model, index, out) }
                } else {
                    unsafe { ctr_edge_model_output_info(model, index, out) }
                };
                if ok(status) {
                    assert!(!info.name.is_null());
                    // SAFETY: valid while the model lives (it does).
                    let _ = unsafe { CStr::from_ptr(info.name) };
                    if info.rank > 0 {
                        let dims = unsafe { std::slice::from_raw_parts(info.dims, info.rank) };
                        assert!(dims.iter().all(|&d| d >= -1));
                    }
                }
            }
            _ => {
                let mut name: *const std::ffi::c_char = null();
                let out: *mut *const std::ffi::c_char =
                    if null_out { null_mut() } else { &mut name };
                if ok(unsafe { ctr_edge_model_kernel_variant(model, out) }) {
                    let _ = unsafe { CStr::from_ptr(name) };
                }
            }
        }
    }

    fn finish(mut self, s: &mut Script<'_>) {
        // Frees in a script-chosen order: sessions may outlive their model's handle.
        while !self.models.is_empty() || !self.sessions.is_empty() {
            let models_first = s.byte().is_multiple_of(2);
            if (models_first && !self.models.is_empty()) || self.sessions.is_empty() {
                let (m, _) = self.models.pop().unwrap();
                // SAFETY: a live model, given back once.
                unsafe { ctr_edge_model_free(m) };
            } else {
                let live = self.sessions.pop().unwrap();
                // SAFETY: a live session, given back once.
                unsafe { ctr_edge_session_free(live.session) };
            }
        }
        // Every handle is gone: the buffers they borrowed may go.
        self.buffers.clear();
    }
}

/// A buffer for the output readers: exact room, too little, NULL with 0, NULL with a length.
fn out_buffer(s: &mut Script<'_>, out: &mut [f32]) -> (*mut f32, usize) {
    match s.byte() % 4 {
        0 => (null_mut(), 0),
        1 => (null_mut(), usize::from(s.byte()) + 1),
        _ => (out.as_mut_ptr(), s.below(out.len() + 1)),
    }
}

/// The inputs and output count of a live model, copied.
fn describe(model: *const ctr_edge_model) -> (Vec<InputDesc>, usize) {
    let (mut n_in, mut n_out) = (0usize, 0usize);
    // SAFETY: a live model; outs valid for writes.
    unsafe {
        assert!(ok(ctr_edge_model_input_count(model, &mut n_in)));
        assert!(ok(ctr_edge_model_output_count(model, &mut n_out)));
    }
    let inputs = (0..n_in)
        .map(|i| {
            let mut info = ctr_edge_io_info {
                name: null(),
                dtype: 0,
                rank: 0,
                dims: null(),
            };
            // SAFETY: a live model; the info's pointers are read before the model can go.
            unsafe {
                assert!(ok(ctr_edge_model_input_info(model, i, &mut info)));
                let dims = if info.rank == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(info.dims, info.rank).to_vec()
                };
                InputDesc {
                    name: CStr::from_ptr(info.name).to_owned(),
                    dtype: info.dtype,
                    dims,
                }
            }
        })
        .collect();
    (inputs, n_out)
}

/// `n` values of C dtype `dtype` set to `fill` (ids) or its float counterpart, in 8-byte words.
fn filled(dtype: u32, n: usize, fill: i64) -> Vec<u64> {
    let mut words = vec![0u64; n];
    let bytes: &mut [u8] = bytemuck_bytes(&mut words);
    match dtype {
        d if d == ctr_edge_dtype::F32 as u32 => {
            let v = match fill {
                0 => 0.0f32,
                -1 => f32::NAN,
                i64::MAX => f32::INFINITY,
                _ => 3e38,
            };
            for c in bytes.chunks_exact_mut(4).take(n) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        d if d == ctr_edge_dtype::I32 as u32 => {
            let v = fill as i32;
            for c in bytes.chunks_exact_mut(4).take(n) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        d if d == ctr_edge_dtype::I64 as u32 => {
            for w in words.iter_mut() {
                *w = fill as u64;
            }
        }
        _ => {}
    }
    words
}

fn bytemuck_bytes(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirements; same allocation, 8x the length.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

/// The Rust view of the first `n` values of `words` as C dtype `dtype` (only F32/I32/I64 runs
/// succeed, so others never get here).
fn as_input(dtype: u32, words: &[u64], n: usize) -> InputData<'_> {
    // SAFETY (each arm): the buffer is 8-byte aligned with 8 bytes per value, so it holds at
    // least `n` values of any 4- or 8-byte type, and every bit pattern is valid for them.
    unsafe {
        let p = words.as_ptr();
        if dtype == ctr_edge_dtype::F32 as u32 {
            InputData::F32(std::slice::from_raw_parts(p.cast::<f32>(), n))
        } else if dtype == ctr_edge_dtype::I32 as u32 {
            InputData::I32(std::slice::from_raw_parts(p.cast::<i32>(), n))
        } else {
            InputData::I64(std::slice::from_raw_parts(p.cast::<i64>(), n))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script { bytes: data };
    let mut harness = Harness {
        models: Vec::new(),
        sessions: Vec::new(),
        buffers: Vec::new(),
    };
    // At most 64 calls per input: longer scripts mostly repeat themselves.
    for _ in 0..64 {
        if script.bytes.is_empty() {
            break;
        }
        harness.step(&mut script);
    }
    harness.finish(&mut script);
});

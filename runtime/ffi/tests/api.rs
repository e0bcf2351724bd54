//! The C API used as intended: model description, scoring, bytes vs path loading, sharing a
//! model between threads, lifetimes of handles. Scores are compared with the Rust API's.

mod common;

use std::ffi::CStr;

use common::*;
use ctr_edge::*;
use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Input, Model};

/// Scores of the example rows from the Rust API (the reference).
fn rust_scores(rows: &[f32]) -> Vec<f32> {
    let model = Model::open(model_path()).unwrap();
    let mut session = model.session();
    let shape = [rows.len() / FEATURES, FEATURES];
    session
        .run(&[Input {
            name: "X",
            shape: &shape,
            data: InputData::F32(rows),
        }])
        .unwrap();
    session.output(0).unwrap().data.to_vec()
}

/// Scores agree to 1e-6 (a batch size may pick another kernel tiling than the reference's).
fn assert_close(got: &[f32], expected: &[f32]) {
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!((g - e).abs() <= 1e-6, "row {i}: {g} vs {e}");
    }
}

/// Scores `rows` through the C API on `session`.
fn c_scores(session: *mut ctr_edge_session, rows: &[f32]) -> Vec<f32> {
    let name = c("X");
    let shape = [rows.len() / FEATURES, FEATURES];
    let mut out = vec![0.0f32; shape[0]];
    let (status, written) = run(session, &[x_input(&name, &shape, rows)], &mut out);
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    assert_eq!(written, shape[0]);
    out
}

#[test]
fn version_and_status_names() {
    // SAFETY: static strings.
    let version = unsafe { CStr::from_ptr(ctr_edge_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    let name = |s: u32| {
        unsafe { CStr::from_ptr(ctr_edge_status_name(s)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(name(0), "OK");
    assert_eq!(
        name(ctr_edge_status::BufferTooSmall as u32),
        "BUFFER_TOO_SMALL"
    );
    assert_eq!(name(ctr_edge_status::Other as u32), "OTHER");
    assert_eq!(name(9999), "UNKNOWN");
}

#[test]
fn status_codes_are_never_renumbered() {
    // The ABI: these numbers are published in ctr_edge.h and must not change.
    let expected = [
        (ctr_edge_status::Ok, 0),
        (ctr_edge_status::NullArgument, 1),
        (ctr_edge_status::InvalidArgument, 2),
        (ctr_edge_status::Io, 3),
        (ctr_edge_status::InvalidModel, 4),
        (ctr_edge_status::Unsupported, 5),
        (ctr_edge_status::InputMismatch, 6),
        (ctr_edge_status::IndexOutOfRange, 7),
        (ctr_edge_status::BufferTooSmall, 8),
        (ctr_edge_status::Panic, 9),
        (ctr_edge_status::IdOutOfRange, 10),
        (ctr_edge_status::NotFinite, 11),
        (ctr_edge_status::NoResult, 12),
        (ctr_edge_status::Other, 13),
    ];
    for (status, code) in expected {
        assert_eq!(status as u32, code, "{status:?}");
    }
    use ctr_edge_dtype::{Bool, F16, F32, I32, I64};
    for (dtype, code) in [(F32, 1), (I32, 6), (I64, 7), (Bool, 9), (F16, 10)] {
        assert_eq!(dtype as u32, code, "{dtype:?}");
    }
}

#[test]
fn describes_inputs_and_outputs() {
    let model = open_model();
    let (mut n_in, mut n_out) = (0, 0);
    let mut input = std::mem::MaybeUninit::<ctr_edge_io_info>::uninit();
    let mut output = std::mem::MaybeUninit::<ctr_edge_io_info>::uninit();
    let mut kernels = std::ptr::null();
    // SAFETY: live model, valid out pointers; the info pointers live as long as the model.
    unsafe {
        assert_eq!(
            ctr_edge_model_input_count(model, &mut n_in),
            ctr_edge_status::Ok
        );
        assert_eq!(
            ctr_edge_model_output_count(model, &mut n_out),
            ctr_edge_status::Ok
        );
        assert_eq!((n_in, n_out), (1, 1));
        assert_eq!(
            ctr_edge_model_input_info(model, 0, input.as_mut_ptr()),
            ctr_edge_status::Ok
        );
        assert_eq!(
            ctr_edge_model_output_info(model, 0, output.as_mut_ptr()),
            ctr_edge_status::Ok
        );
        let (input, output) = (input.assume_init(), output.assume_init());
        assert_eq!(CStr::from_ptr(input.name).to_str().unwrap(), "X");
        assert_eq!(input.dtype, ctr_edge_dtype::F32 as u32);
        assert_eq!(std::slice::from_raw_parts(input.dims, input.rank), &[-1, 8]);
        assert_eq!(CStr::from_ptr(output.name).to_str().unwrap(), "prob");
        assert_eq!(output.dtype, ctr_edge_dtype::F32 as u32);
        // As the file declares it (the exporter left the second dimension symbolic too).
        let declared: Vec<i64> = Model::open(model_path()).unwrap().outputs()[0]
            .shape
            .iter()
            .map(|d| d.map_or(-1, |v| v as i64))
            .collect();
        assert_eq!(
            std::slice::from_raw_parts(output.dims, output.rank),
            declared
        );

        assert_eq!(
            ctr_edge_model_kernel_variant(model, &mut kernels),
            ctr_edge_status::Ok
        );
        let expected = Model::open(model_path()).unwrap().kernel_variant().name();
        assert_eq!(CStr::from_ptr(kernels).to_str().unwrap(), expected);
        ctr_edge_model_free(model);
    }
}

#[test]
fn scores_match_the_rust_api_and_outputs_stay_readable() {
    let rows = example_rows();
    let expected = rust_scores(&rows);
    let opened = Opened::new();
    let session = opened.session;
    assert_close(&c_scores(session, &rows), &expected);
    assert_eq!(last_error(), "", "a successful call leaves no message");

    // Batch sizes change freely; a repeated size reuses its plan.
    for n in [1, 7, 64, 7] {
        assert_close(&c_scores(session, &rows[..n * FEATURES]), &expected[..n]);
    }

    // Output read again, and its shape, after the last run (7 rows).
    let mut out = [0.0f32; 7];
    let mut written = 0;
    let mut dims = [0usize; 4];
    let mut rank = 0;
    // SAFETY: live session, buffers of the lengths passed.
    unsafe {
        assert_eq!(
            ctr_edge_session_output(session, 0, out.as_mut_ptr(), out.len(), &mut written),
            ctr_edge_status::Ok
        );
        assert_eq!(written, 7);
        assert_close(&out, &expected[..7]);
        assert_eq!(
            ctr_edge_session_output_shape(session, 0, dims.as_mut_ptr(), dims.len(), &mut rank),
            ctr_edge_status::Ok
        );
        assert_eq!(&dims[..rank], &[7, 1]);
    }
}

#[test]
fn open_bytes_scores_like_open_path() {
    let rows = example_rows();
    let onnx = std::fs::read(model_path()).unwrap();
    let mut model = std::ptr::null_mut();
    // SAFETY: valid buffers; the example keeps its weights inside model.onnx, so no weights
    // buffer has to outlive the call.
    let status = unsafe {
        ctr_edge_model_open_bytes(onnx.as_ptr(), onnx.len(), std::ptr::null(), 0, &mut model)
    };
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    drop(onnx); // the ONNX bytes are only read during the call
    let opened = Opened::with_model(model);
    assert_close(&c_scores(opened.session, &rows), &rust_scores(&rows));
}

#[test]
fn session_keeps_its_model_alive() {
    let rows = example_rows();
    let model = open_model();
    let session = new_session(model);
    // SAFETY: the caller's reference is released; the session holds its own.
    unsafe { ctr_edge_model_free(model) };
    assert_close(&c_scores(session, &rows), &rust_scores(&rows));
    // SAFETY: live session, freed once (this releases the model).
    unsafe { ctr_edge_session_free(session) };
}

/// A model pointer handed to other threads (the model is `Sync`).
#[derive(Clone, Copy)]
struct SharedModel(*const ctr_edge_model);
// SAFETY: `ctr_edge_model` is immutable and documented as shareable between threads.
unsafe impl Send for SharedModel {}

#[test]
fn one_model_many_threads_one_session_each() {
    let rows = example_rows();
    let expected = rust_scores(&rows);
    let model = SharedModel(open_model());
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (rows, expected) = (&rows, &expected);
            scope.spawn(move || {
                let model = model;
                let session = new_session(model.0);
                for round in 0..5 {
                    let n = 1 + (t * 5 + round) % 64;
                    assert_close(&c_scores(session, &rows[..n * FEATURES]), &expected[..n]);
                }
                // SAFETY: this thread's session, freed once.
                unsafe { ctr_edge_session_free(session) };
            });
        }
    });
    // SAFETY: every session is gone; the model is freed once.
    unsafe { ctr_edge_model_free(model.0.cast_mut()) };
}

/// A batch of 0 rows is a valid call on the DCN, AFN and AutoInt fixtures (which once failed
/// there as INVALID_MODEL): OK, nothing written, an output of shape [0, 1], with NULL data
/// and output pointers (0 values each); then a 3-row batch still scores.
#[test]
fn a_batch_of_zero_rows_is_ok() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    for name in [
        "movielens_dcn",
        "movielens_dcnv2",
        "movielens_afn",
        "movielens_autoint",
    ] {
        let path = c(fixtures.join(name).join("model.onnx").to_str().unwrap());
        let mut model = std::ptr::null_mut();
        // SAFETY: valid C string and out pointer.
        let status = unsafe { ctr_edge_model_open(path.as_ptr(), &mut model) };
        assert_eq!(status, ctr_edge_status::Ok, "{name}: {}", last_error());
        let opened = Opened::with_model(model);
        let x = c("X");
        let shape = [0usize, FEATURES];
        let input = ctr_edge_input {
            name: x.as_ptr(),
            dtype: ctr_edge_dtype::F32 as u32,
            shape: shape.as_ptr(),
            rank: 2,
            data: std::ptr::null(),
        };
        let mut written = usize::MAX;
        // SAFETY: valid pointers; `out` NULL with length 0.
        let status = unsafe {
            ctr_edge_session_run(
                opened.session,
                &input,
                1,
                0,
                std::ptr::null_mut(),
                0,
                &mut written,
            )
        };
        assert_eq!(status, ctr_edge_status::Ok, "{name}: {}", last_error());
        assert_eq!(written, 0, "{name}");
        let (mut dims, mut rank) = ([usize::MAX; 4], 0usize);
        // SAFETY: a live session, `dims` valid for 4 values, `rank` for a write.
        let status = unsafe {
            ctr_edge_session_output_shape(opened.session, 0, dims.as_mut_ptr(), 4, &mut rank)
        };
        assert_eq!(status, ctr_edge_status::Ok, "{name}: {}", last_error());
        assert_eq!(&dims[..rank], &[0, 1], "{name}");
        let rows = example_rows();
        let mut out = [f32::NAN; 3];
        let (status, written) = run(
            opened.session,
            &[x_input(&x, &[3, FEATURES], &rows[..3 * FEATURES])],
            &mut out,
        );
        assert_eq!(
            (status, written),
            (ctr_edge_status::Ok, 3),
            "{name}: {}",
            last_error()
        );
        assert!(
            out.iter().all(|p| (0.0..=1.0).contains(p)),
            "{name}: {out:?}"
        );
    }
}

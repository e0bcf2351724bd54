//! Misuse of the C API from Rust: NULL everywhere, wrong buffer sizes, bad names, dtypes and
//! shapes, out-of-range indices and ids. Each must give its documented status and a
//! last-error message naming what was wrong, and never crash.

mod common;

use std::ptr::{null, null_mut};

use common::*;
use ctr_edge::*;

/// Asserts `status` and that the last error mentions every one of `words`.
#[track_caller]
fn assert_error(status: ctr_edge_status, expected: ctr_edge_status, words: &[&str]) {
    let message = last_error();
    assert_eq!(status, expected, "message: {message}");
    for w in words {
        assert!(message.contains(w), "{message:?} should mention {w:?}");
    }
}

#[test]
fn null_free_is_a_no_op() {
    // SAFETY: NULL is documented as ignored.
    unsafe {
        ctr_edge_model_free(null_mut());
        ctr_edge_session_free(null_mut());
    }
}

#[test]
fn open_rejects_nulls_bad_paths_and_bad_bytes() {
    let mut model = std::ptr::dangling_mut::<ctr_edge_model>(); // must be overwritten with NULL
    let path = c(model_path().to_str().unwrap());
    // SAFETY (all calls): every non-NULL pointer is valid.
    unsafe {
        let s = ctr_edge_model_open(path.as_ptr(), null_mut());
        assert_error(
            s,
            ctr_edge_status::NullArgument,
            &["ctr_edge_model_open", "'out'"],
        );

        let s = ctr_edge_model_open(null(), &mut model);
        assert_error(s, ctr_edge_status::NullArgument, &["onnx_path"]);
        assert!(model.is_null(), "out is NULL after a failure");

        let missing = c("/nonexistent/ctr-edge/model.onnx");
        let s = ctr_edge_model_open(missing.as_ptr(), &mut model);
        assert_error(
            s,
            ctr_edge_status::Io,
            &["/nonexistent/ctr-edge/model.onnx"],
        );
        assert!(model.is_null());

        let garbage = [0xffu8; 64];
        let s = ctr_edge_model_open_bytes(garbage.as_ptr(), garbage.len(), null(), 0, &mut model);
        assert_error(
            s,
            ctr_edge_status::InvalidModel,
            &["ctr_edge_model_open_bytes"],
        );
        assert!(model.is_null());

        let s = ctr_edge_model_open_bytes(null(), 10, null(), 0, &mut model);
        assert_error(s, ctr_edge_status::NullArgument, &["'onnx'"]);

        let s = ctr_edge_model_open_bytes(garbage.as_ptr(), 64, null(), 8, &mut model);
        assert_error(s, ctr_edge_status::NullArgument, &["'weights'"]);

        let s = ctr_edge_model_open_bytes(garbage.as_ptr(), 64, null(), 0, null_mut());
        assert_error(s, ctr_edge_status::NullArgument, &["'out'"]);

        let s = ctr_edge_model_open_bytes(garbage.as_ptr(), usize::MAX, null(), 0, &mut model);
        assert_error(s, ctr_edge_status::InvalidArgument, &["onnx_len"]);
    }
}

#[test]
fn queries_reject_nulls_and_out_of_range_indices() {
    let model = open_model();
    let mut n = 0usize;
    let mut info = std::mem::MaybeUninit::<ctr_edge_io_info>::uninit();
    let mut name = null();
    // SAFETY (all calls): every non-NULL pointer is valid.
    unsafe {
        let s = ctr_edge_model_input_count(null(), &mut n);
        assert_error(s, ctr_edge_status::NullArgument, &["'model'"]);
        let s = ctr_edge_model_output_count(model, null_mut());
        assert_error(s, ctr_edge_status::NullArgument, &["'out'"]);
        let s = ctr_edge_model_input_info(null(), 0, info.as_mut_ptr());
        assert_error(s, ctr_edge_status::NullArgument, &["'model'"]);
        let s = ctr_edge_model_input_info(model, 0, null_mut());
        assert_error(s, ctr_edge_status::NullArgument, &["'out'"]);
        let s = ctr_edge_model_input_info(model, 1, info.as_mut_ptr());
        assert_error(
            s,
            ctr_edge_status::IndexOutOfRange,
            &["input index 1", "has 1 inputs"],
        );
        let s = ctr_edge_model_output_info(model, usize::MAX, info.as_mut_ptr());
        assert_error(s, ctr_edge_status::IndexOutOfRange, &["output index"]);
        let s = ctr_edge_model_kernel_variant(null(), &mut name);
        assert_error(s, ctr_edge_status::NullArgument, &["'model'"]);
        let s = ctr_edge_model_kernel_variant(model, null_mut());
        assert_error(s, ctr_edge_status::NullArgument, &["'out'"]);

        let mut session = std::ptr::dangling_mut::<ctr_edge_session>();
        let s = ctr_edge_session_new(null(), &mut session);
        assert_error(s, ctr_edge_status::NullArgument, &["'model'"]);
        assert!(session.is_null());
        let s = ctr_edge_session_new(model, null_mut());
        assert_error(s, ctr_edge_status::NullArgument, &["'out'"]);
        ctr_edge_model_free(model);
    }
}

#[test]
fn run_rejects_null_arguments() {
    let (opened, batch) = (Opened::new(), XBatch::new(2));
    let (session, input) = (opened.session, batch.input());
    let mut out = [0.0f32; 2];
    let mut written = 0;
    // SAFETY (all calls): every non-NULL pointer is valid for the lengths passed.
    unsafe {
        let s = ctr_edge_session_run(null_mut(), &input, 1, 0, out.as_mut_ptr(), 2, &mut written);
        assert_error(s, ctr_edge_status::NullArgument, &["'session'"]);
        let s = ctr_edge_session_run(session, &input, 1, 0, out.as_mut_ptr(), 2, null_mut());
        assert_error(s, ctr_edge_status::NullArgument, &["'out_written'"]);
        let s = ctr_edge_session_run(session, null(), 1, 0, out.as_mut_ptr(), 2, &mut written);
        assert_error(s, ctr_edge_status::NullArgument, &["'inputs'"]);
        let s = ctr_edge_session_run(session, &input, 1, 0, null_mut(), 2, &mut written);
        assert_error(s, ctr_edge_status::NullArgument, &["'out'"]);
        assert_eq!(written, 0);

        for (field, broken) in [
            (
                "inputs[0].name",
                ctr_edge_input {
                    name: null(),
                    ..input
                },
            ),
            (
                "inputs[0].shape",
                ctr_edge_input {
                    shape: null(),
                    ..input
                },
            ),
            (
                "inputs[0].data",
                ctr_edge_input {
                    data: null(),
                    ..input
                },
            ),
        ] {
            let s = ctr_edge_session_run(session, &broken, 1, 0, out.as_mut_ptr(), 2, &mut written);
            assert_error(s, ctr_edge_status::NullArgument, &[field]);
        }

        // NULL output buffer of length 0: a size query.
        let s = ctr_edge_session_run(session, &input, 1, 0, null_mut(), 0, &mut written);
        assert_error(s, ctr_edge_status::BufferTooSmall, &["'prob'", "2 values"]);
        assert_eq!(written, 2);
    }
}

#[test]
fn run_rejects_inputs_that_do_not_match_the_model() {
    let (opened, batch) = (Opened::new(), XBatch::new(2));
    let session = opened.session;
    let ids: Vec<i64> = batch.rows.iter().map(|&v| v as i64).collect();
    let good = batch.input();
    let mut out = [0.0f32; 64];
    let check = |inputs: &[ctr_edge_input], expected, words: &[&str]| {
        let (s, written) = run(session, inputs, &mut out.clone());
        assert_error(s, expected, words);
        assert_eq!(written, 0, "nothing written on {expected:?}");
    };

    let wrong = c("user_id");
    check(
        &[ctr_edge_input {
            name: wrong.as_ptr(),
            ..good
        }],
        ctr_edge_status::InputMismatch,
        &["'user_id'", "no such input"],
    );
    check(&[], ctr_edge_status::InputMismatch, &["'X'", "missing"]);
    let not_utf8 = [0xffu8, 0xfe, 0];
    check(
        &[ctr_edge_input {
            name: not_utf8.as_ptr().cast(),
            ..good
        }],
        ctr_edge_status::InvalidArgument,
        &["inputs[0].name is not UTF-8"],
    );
    // Wrong dtype: i64 values for the f32 input.
    check(
        &[ctr_edge_input {
            dtype: ctr_edge_dtype::I64 as u32,
            data: ids.as_ptr().cast(),
            ..good
        }],
        ctr_edge_status::InputMismatch,
        &["'X'", "f32", "i64"],
    );
    check(
        &[ctr_edge_input { dtype: 99, ..good }],
        ctr_edge_status::InvalidArgument,
        &["unknown dtype code 99"],
    );
    check(
        &[ctr_edge_input {
            dtype: ctr_edge_dtype::F16 as u32,
            ..good
        }],
        ctr_edge_status::Unsupported,
        &["'X'", "not accepted as an input"],
    );
    // Wrong rank, wrong fixed dimension.
    let flat = [2 * FEATURES];
    check(
        &[ctr_edge_input {
            shape: flat.as_ptr(),
            rank: 1,
            ..good
        }],
        ctr_edge_status::InputMismatch,
        &["'X'", "[16]"],
    );
    let wide = [2, FEATURES + 1];
    check(
        &[ctr_edge_input {
            shape: wide.as_ptr(),
            ..good
        }],
        ctr_edge_status::InputMismatch,
        &["'X'", "[2, 9]"],
    );
    let huge = [usize::MAX, 2];
    check(
        &[ctr_edge_input {
            shape: huge.as_ptr(),
            ..good
        }],
        ctr_edge_status::InvalidArgument,
        &["overflows"],
    );
    // Misaligned f32 data.
    let floats = [0.0f32; 2 * FEATURES + 1];
    check(
        &[ctr_edge_input {
            data: floats.as_ptr().cast::<u8>().wrapping_add(1).cast(),
            ..good
        }],
        ctr_edge_status::InvalidArgument,
        &["not aligned"],
    );
    let many = vec![good; CTR_EDGE_MAX_INPUTS + 1];
    check(
        &many,
        ctr_edge_status::InvalidArgument,
        &["CTR_EDGE_MAX_INPUTS"],
    );
    // The same input twice (once accepted, the first one winning) is refused.
    check(
        &[good, good],
        ctr_edge_status::InputMismatch,
        &["'X'", "twice"],
    );
    let (s, written) = run(session, &[good], &mut out);
    assert_eq!((s, written), (ctr_edge_status::Ok, 2), "{}", last_error());
}

#[test]
fn ids_outside_their_table_are_reported() {
    let opened = Opened::new();
    let mut batch = XBatch::new(3);
    batch.rows[2 * FEATURES + 1] = 1.0e6; // item id of row 2: the table has 1682 rows
    let mut out = [0.0f32; 3];
    let (s, _) = run(opened.session, &[batch.input()], &mut out);
    assert_error(s, ctr_edge_status::IdOutOfRange, &["1000000", "row 2"]);
}

#[test]
fn small_buffers_and_missing_results() {
    let (opened, batch) = (Opened::new(), XBatch::new(4));
    let (session, input) = (opened.session, batch.input());
    let mut written = 0;
    let mut rank = 0;
    let mut dims = [0usize; 1];
    // SAFETY (all calls): every non-NULL pointer is valid for the lengths passed.
    unsafe {
        // No run yet.
        let mut out = [0.0f32; 4];
        let s = ctr_edge_session_output(session, 0, out.as_mut_ptr(), 4, &mut written);
        assert_error(s, ctr_edge_status::NoResult, &["no successful"]);
        let s = ctr_edge_session_output_shape(session, 0, dims.as_mut_ptr(), 1, &mut rank);
        assert_error(s, ctr_edge_status::NoResult, &["no successful"]);

        // Too small: nothing written, the needed size reported, the result kept.
        let mut small = [-7.0f32; 3];
        let (s, needed) = run(session, &[input], &mut small);
        assert_error(
            s,
            ctr_edge_status::BufferTooSmall,
            &["'prob'", "4 values", "holds 3"],
        );
        assert_eq!(needed, 4);
        assert_eq!(small, [-7.0; 3], "nothing written to a too-small buffer");
        let s = ctr_edge_session_output(session, 0, out.as_mut_ptr(), 4, &mut written);
        assert_eq!(s, ctr_edge_status::Ok, "{}", last_error());
        assert_eq!(written, 4);
        assert!(out.iter().all(|p| (0.0..=1.0).contains(p)));

        // Out-of-range output index, before any work is done.
        let s = ctr_edge_session_run(session, &input, 1, 1, out.as_mut_ptr(), 4, &mut written);
        assert_error(
            s,
            ctr_edge_status::IndexOutOfRange,
            &["output index 1", "1 outputs"],
        );
        let s = ctr_edge_session_output(session, 3, out.as_mut_ptr(), 4, &mut written);
        assert_error(s, ctr_edge_status::IndexOutOfRange, &["output index 3"]);

        // Shape buffer too small: the rank is still reported.
        let s = ctr_edge_session_output_shape(session, 0, dims.as_mut_ptr(), 1, &mut rank);
        assert_error(s, ctr_edge_status::BufferTooSmall, &["rank 2"]);
        assert_eq!((rank, dims), (2, [0]));
        let s = ctr_edge_session_output_shape(session, 0, null_mut(), 1, &mut rank);
        assert_error(s, ctr_edge_status::NullArgument, &["'dims'"]);
        let s = ctr_edge_session_output_shape(session, 0, dims.as_mut_ptr(), 1, null_mut());
        assert_error(s, ctr_edge_status::NullArgument, &["'rank'"]);
        let s = ctr_edge_session_output_shape(null(), 0, dims.as_mut_ptr(), 1, &mut rank);
        assert_error(s, ctr_edge_status::NullArgument, &["'session'"]);
        let s = ctr_edge_session_output(null(), 0, out.as_mut_ptr(), 4, &mut written);
        assert_error(s, ctr_edge_status::NullArgument, &["'session'"]);

        // A failed run drops the previous result.
        let wrong = c("nope");
        let bad = ctr_edge_input {
            name: wrong.as_ptr(),
            ..input
        };
        let (s, _) = run(session, &[bad], &mut out);
        assert_eq!(s, ctr_edge_status::InputMismatch);
        let s = ctr_edge_session_output(session, 0, out.as_mut_ptr(), 4, &mut written);
        assert_error(s, ctr_edge_status::NoResult, &["no successful"]);

        // And the session still works afterwards.
        let (s, written) = run(session, &[input], &mut out);
        assert_eq!((s, written), (ctr_edge_status::Ok, 4), "{}", last_error());
        assert_eq!(last_error(), "");
    }
}

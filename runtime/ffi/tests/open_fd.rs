//! `ctr_edge_model_open_fd`: an artifact stored as two byte ranges of one larger file (the
//! APK an Android app's assets sit in) opens from a descriptor and scores exactly as the same
//! artifact opened by path, with its weights at a page-aligned offset and at a 64-byte-aligned
//! offset inside a page, the ONNX file at odd offsets, and a model without external data;
//! the descriptor is left open and may be closed at once (the model maps what it needs);
//! ranges that break the rules, bad descriptors and another model's weights are typed errors
//! naming what was wrong.
//!
//! The artifacts: the hostile corpus's valid MLP (`tests/hostile/corpus.rs`: external weights
//! with the exporter's size, identity and checksum metadata) and the bundled example model
//! (`tests/fixtures/movielens_deepfm`, all weights inside the ONNX file).

mod common;
#[path = "../../../tests/hostile/corpus.rs"]
mod corpus;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use common::{c, example_rows, last_error, model_path, new_session, run, x_input, FEATURES};
use ctr_edge::*;

/// The corpus, written once per test process: `case`'s model.onnx, its model.weights (empty
/// when it has none) and the path of model.onnx.
fn corpus_case(case: &str) -> (Vec<u8>, Vec<u8>, PathBuf) {
    static CASES: std::sync::OnceLock<Vec<corpus::Case>> = std::sync::OnceLock::new();
    let cases = CASES.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("open_fd_corpus");
        let _ = std::fs::remove_dir_all(&root);
        corpus::write_corpus(&root)
    });
    let case = cases
        .iter()
        .find(|c| c.name == case)
        .expect("a corpus case");
    let onnx = std::fs::read(case.model()).unwrap();
    let weights = std::fs::read(case.dir.join("model.weights")).unwrap();
    (onnx, weights, case.model())
}

/// A file of `filler` bytes of noise, then `first`, `gap` bytes of noise, `second` and 17
/// bytes of noise: its path and the offsets of `first` and `second`.
fn container(
    tag: &str,
    filler: usize,
    first: &[u8],
    gap: usize,
    second: &[u8],
) -> (PathBuf, u64, u64) {
    let noise = |n: usize| (0..n).map(|i| (i * 131 % 251) as u8);
    let mut bytes: Vec<u8> = noise(filler).collect();
    let first_at = bytes.len() as u64;
    bytes.extend_from_slice(first);
    bytes.extend(noise(gap));
    let second_at = bytes.len() as u64;
    bytes.extend_from_slice(second);
    bytes.extend(noise(17));
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("open-fd-{tag}-{}.bin", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    (path, first_at, second_at)
}

/// `ctr_edge_model_open_fd` on `fd` (default options): the status and the model.
fn open_fd(
    fd: i32,
    onnx: (u64, u64),
    weights: (u64, u64),
) -> (ctr_edge_status, *mut ctr_edge_model) {
    // Not NULL before the call: the call must overwrite it.
    let mut model = std::ptr::dangling_mut();
    // SAFETY: NULL options, a valid out pointer.
    let status = unsafe {
        ctr_edge_model_open_fd(
            fd,
            onnx.0,
            onnx.1,
            weights.0,
            weights.1,
            std::ptr::null(),
            &mut model,
        )
    };
    (status, model)
}

/// Opens the ranges of the file at `path` through a descriptor that is closed right after
/// the call; asserts the call left the descriptor open.
fn open_file(
    path: &Path,
    onnx: (u64, u64),
    weights: (u64, u64),
) -> (ctr_edge_status, *mut ctr_edge_model) {
    let file = std::fs::File::open(path).unwrap();
    let opened = open_fd(file.as_raw_fd(), onnx, weights);
    // The call neither closed the descriptor nor changed what it refers to.
    let meta = file.metadata().expect("the descriptor is still open");
    assert_eq!(meta.len(), std::fs::metadata(path).unwrap().len());
    drop(file);
    opened
}

/// Opens `path` by path (the reference opener).
fn open_path(path: &Path) -> *mut ctr_edge_model {
    let cpath = c(path.to_str().unwrap());
    let mut model = std::ptr::null_mut();
    // SAFETY: a valid C string and out pointer.
    let status = unsafe { ctr_edge_model_open(cpath.as_ptr(), &mut model) };
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    model
}

/// The scores of `model` (one f32 input `name` of `features` values a row) for `values`; frees
/// the model.
fn scores_then_free(
    model: *mut ctr_edge_model,
    name: &str,
    features: usize,
    values: &[f32],
) -> Vec<f32> {
    let session = new_session(model);
    let name = c(name);
    let shape = [values.len() / features, features];
    let mut out = vec![f32::NAN; shape[0]];
    let (status, written) = run(session, &[x_input(&name, &shape, values)], &mut out);
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    assert_eq!(written, shape[0]);
    // SAFETY: the handles made here, freed once (the session first).
    unsafe {
        ctr_edge_session_free(session);
        ctr_edge_model_free(model);
    }
    out
}

/// Rows of the corpus MLP's input `x` (4 values a row).
fn mlp_rows() -> Vec<f32> {
    (0..5 * 4).map(|i| corpus::float_value(1.5, i)).collect()
}

/// Asserts a failed open: `status`, NULL written to `out`, a message holding every piece.
#[track_caller]
fn assert_refused(
    (status, model): (ctr_edge_status, *mut ctr_edge_model),
    expected: ctr_edge_status,
    pieces: &[&str],
) {
    let message = last_error();
    assert_eq!(status, expected, "{message}");
    assert!(model.is_null(), "out is NULL after a failure");
    assert!(message.starts_with("ctr_edge_model_open_fd: "), "{message}");
    for piece in pieces {
        assert!(
            message.contains(piece),
            "{message:?} does not say {piece:?}"
        );
    }
}

#[test]
fn ranges_of_a_larger_file_score_as_the_artifact_by_path() {
    let (onnx, weights, path) = corpus_case("mlp_valid");
    let rows = mlp_rows();
    let by_path = scores_then_free(open_path(&path), "x", 4, &rows);

    // Weights page-aligned at 4096, the ONNX file at an odd offset after them.
    let (file, w_at, o_at) = container("page", 4096, &weights, 13, &onnx);
    assert_eq!((w_at, o_at % 2), (4096, 1));
    let (status, model) = open_file(
        &file,
        (o_at, onnx.len() as u64),
        (w_at, weights.len() as u64),
    );
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    assert_eq!(last_error(), "");
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // The descriptor is closed; the model holds one mapping of the file (the weights
        // range: the ONNX range was unmapped after decoding) until it is freed.
        assert_eq!(common::tiny_model::mappings_of(&file).len(), 1);
    }
    assert_eq!(scores_then_free(model, "x", 4, &rows), by_path);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert!(common::tiny_model::mappings_of(&file).is_empty());
    std::fs::remove_file(&file).unwrap();

    // The ONNX file first at an odd offset, the weights 64-byte aligned inside a page (mapped
    // from the page boundary below them).
    let gap = 64 - (7 + onnx.len()) % 64 + 5 * 64;
    let (file, o_at, w_at) = container("in-page", 7, &onnx, gap, &weights);
    assert_eq!((o_at, w_at % 64), (7, 0));
    assert_ne!(w_at % 4096, 0);
    let (status, model) = open_file(
        &file,
        (o_at, onnx.len() as u64),
        (w_at, weights.len() as u64),
    );
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    assert_eq!(scores_then_free(model, "x", 4, &rows), by_path);
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn a_model_without_external_data_takes_an_empty_weights_range() {
    let onnx = std::fs::read(model_path()).unwrap();
    let rows = example_rows();
    let by_path = scores_then_free(open_path(&model_path()), "X", FEATURES, &rows);
    let (file, _, o_at) = container("no-weights", 0, &[], 4097, &onnx);
    let (status, model) = open_file(&file, (o_at, onnx.len() as u64), (0, 0));
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    assert_eq!(scores_then_free(model, "X", FEATURES, &rows), by_path);
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn ranges_that_break_the_rules_are_invalid_arguments_naming_the_offset() {
    use ctr_edge_status::{InvalidArgument, WeightsMismatch};
    let (onnx, weights, _) = corpus_case("mlp_valid");
    let (file, w_at, o_at) = container("errors", 4096, &weights, 64 - weights.len() % 64, &onnx);
    let (o, w) = ((o_at, onnx.len() as u64), (w_at, weights.len() as u64));
    let size = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::File::open(&file).unwrap();
    let fd = f.as_raw_fd();
    let (status, model) = open_fd(fd, o, w);
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    // SAFETY: the model just opened, freed once.
    unsafe { ctr_edge_model_free(model) };

    // Past the end of the file; an end that overflows.
    assert_refused(
        open_fd(fd, (o.0, size - o.0 + 1), w),
        InvalidArgument,
        &[
            &format!("fd {fd}: onnx range at offset {}", o.0),
            &format!("past the end of the file ({size} bytes)"),
        ],
    );
    assert_refused(
        open_fd(fd, o, (size, 64)),
        InvalidArgument,
        &["weights range", "past the end"],
    );
    assert_refused(
        open_fd(fd, o, (u64::MAX - 63, 64)),
        InvalidArgument,
        &["weights range", "overflows"],
    );
    // Length 0: the ONNX file always; the weights of a model with external data.
    assert_refused(
        open_fd(fd, (o.0, 0), w),
        InvalidArgument,
        &["onnx range", "is empty"],
    );
    assert_refused(
        open_fd(fd, o, (w.0, 0)),
        InvalidArgument,
        &["weights range", "external data"],
    );
    // Overlapping ranges.
    assert_refused(
        open_fd(fd, o, (o.0 - 64, 128)),
        InvalidArgument,
        &["overlaps the onnx range"],
    );
    // The weights at an offset that is not a multiple of 64 (the bytes there are not the
    // weights either: the alignment is refused first, naming the offset).
    assert_refused(
        open_fd(fd, o, (w.0 + 4, w.1)),
        InvalidArgument,
        &[&format!("offset {} is not a multiple of 64", w.0 + 4)],
    );
    // A weights range of the right size elsewhere in the file: not the model's weights.
    assert_refused(
        open_fd(fd, o, (0, w.1)),
        WeightsMismatch,
        &["does not belong"],
    );
    drop(f);
    std::fs::remove_file(&file).unwrap();

    // Another model's weights (same size and layout) in the ranges.
    let (_, other, _) = corpus_case("mlp_other_models_weights");
    let (file, w_at, o_at) = container("other", 64, &other, 3, &onnx);
    let (status, model) = open_file(&file, (o_at, onnx.len() as u64), (w_at, other.len() as u64));
    assert_refused((status, model), WeightsMismatch, &["does not belong"]);
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn bad_descriptors_and_arguments_are_typed_errors() {
    use ctr_edge_status::{InvalidArgument, Io, NullArgument};
    let (onnx, _, _) = corpus_case("mlp_valid");
    let len = onnx.len() as u64;
    assert_refused(
        open_fd(-1, (0, len), (0, 0)),
        InvalidArgument,
        &["fd -1 is not a file descriptor"],
    );
    // A descriptor that is not open (far above any this process has).
    let ebadf = std::io::Error::from_raw_os_error(libc::EBADF).to_string();
    assert_refused(
        open_fd(i32::MAX, (0, len), (0, 0)),
        Io,
        &[&format!("fd {}: {ebadf}", i32::MAX)],
    );
    // A folder and a pipe are not regular files.
    let dir = std::fs::File::open(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let eisdir = std::io::Error::from_raw_os_error(libc::EISDIR).to_string();
    assert_refused(open_fd(dir.as_raw_fd(), (0, len), (0, 0)), Io, &[&eisdir]);
    let (reader, _writer) = std::io::pipe().unwrap();
    assert_refused(
        open_fd(reader.as_raw_fd(), (0, len), (0, 0)),
        Io,
        &["not a regular file"],
    );

    // NULL out, options the library must refuse, and a limit (on the example model, which
    // has no external data: an empty weights range).
    let onnx = std::fs::read(model_path()).unwrap();
    let len = onnx.len() as u64;
    let (file, _, o_at) = container("args", 0, &[], 1, &onnx);
    let f = std::fs::File::open(&file).unwrap();
    // SAFETY: NULL out is the case under test.
    let status = unsafe {
        ctr_edge_model_open_fd(
            f.as_raw_fd(),
            o_at,
            len,
            0,
            0,
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, NullArgument, "{}", last_error());
    let mut options = std::mem::MaybeUninit::<ctr_edge_open_options>::uninit();
    // SAFETY: valid for a write.
    assert_eq!(
        unsafe { ctr_edge_open_options_init(options.as_mut_ptr()) },
        ctr_edge_status::Ok
    );
    // SAFETY: initialized by the successful call.
    let mut options = unsafe { options.assume_init() };
    options.struct_size -= 1;
    let mut model = std::ptr::null_mut();
    // SAFETY: valid options and out pointer.
    let status =
        unsafe { ctr_edge_model_open_fd(f.as_raw_fd(), o_at, len, 0, 0, &options, &mut model) };
    assert_refused((status, model), InvalidArgument, &["struct_size"]);
    // A limit applies as for the path openers.
    options.struct_size += 1;
    options.max_nodes = 5;
    // SAFETY: as above.
    let status =
        unsafe { ctr_edge_model_open_fd(f.as_raw_fd(), o_at, len, 0, 0, &options, &mut model) };
    assert_refused(
        (status, model),
        ctr_edge_status::ResourceLimit,
        &["max_nodes"],
    );
    drop(f);
    std::fs::remove_file(&file).unwrap();
}

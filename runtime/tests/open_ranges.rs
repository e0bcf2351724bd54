//! `Model::open_file_ranges`: an artifact stored as two byte ranges of a larger file (as an
//! Android app's assets sit inside its APK) scores exactly as the same artifact opened by
//! path, at odd, 64-byte-aligned and page-aligned offsets, after the caller closed the file;
//! every range that breaks the rules of `artifact::check_file_ranges` is `Error::FileRange`
//! naming the range and its offset; a file that is not regular, another model's weights and a
//! model over the limits are refused as by the path openers.
//!
//! The artifact is the hostile corpus's valid MLP (`tests/hostile/corpus.rs`: four tensors at
//! 64-byte-aligned offsets of `model.weights`, the exporter's metadata with the weights' size,
//! identity and checksum, and reference scores computed in f64 from its construction).

#[path = "../../tests/hostile/corpus.rs"]
mod corpus;

use std::ops::Range;
use std::path::{Path, PathBuf};

use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Error, Input, Limits, Model, OpenOptions, Verify};

/// The corpus, written once per test process: `case`'s model.onnx, model.weights, path of
/// model.onnx and reference scores (of `Case::batch` rows of its float fill).
fn corpus_case(case: &str) -> (Vec<u8>, Vec<u8>, PathBuf, Vec<f32>) {
    static CASES: std::sync::OnceLock<Vec<corpus::Case>> = std::sync::OnceLock::new();
    let cases = CASES.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("open_ranges_corpus");
        let _ = std::fs::remove_dir_all(&root);
        corpus::write_corpus(&root)
    });
    let case = cases
        .iter()
        .find(|c| c.name == case)
        .expect("a corpus case");
    let onnx = std::fs::read(case.model()).unwrap();
    let weights = std::fs::read(case.dir.join("model.weights")).unwrap();
    let reference = case.reference.clone().unwrap_or_default();
    (onnx, weights, case.model(), reference)
}

/// One piece of a container file: noise bytes, or one of the artifact's two files.
enum Part {
    Filler(usize),
    Onnx,
    Weights,
}

/// A file of `parts` laid end to end, written under the test's temporary folder: its path and
/// the ranges of the ONNX file and of the weights file in it.
fn container(
    tag: &str,
    onnx: &[u8],
    weights: &[u8],
    parts: &[Part],
) -> (PathBuf, Range<u64>, Range<u64>) {
    let mut bytes = Vec::new();
    let (mut onnx_range, mut weights_range) = (0..0, 0..0);
    for part in parts {
        let start = bytes.len() as u64;
        match part {
            Part::Filler(n) => bytes.extend((0..*n).map(|i| (i * 131 % 251) as u8)),
            Part::Onnx => {
                bytes.extend_from_slice(onnx);
                onnx_range = start..bytes.len() as u64;
            }
            Part::Weights => {
                bytes.extend_from_slice(weights);
                weights_range = start..bytes.len() as u64;
            }
        }
    }
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("open-ranges-{tag}-{}.bin", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    (path, onnx_range, weights_range)
}

/// Scores of the corpus MLP (`x` f32 [N, 4]) for `rows` rows of the corpus's float fill.
fn scores(model: &Model<'_>, rows: usize) -> Vec<f32> {
    let x: Vec<f32> = (0..rows * 4).map(|i| corpus::float_value(1.5, i)).collect();
    let shape = [rows, 4];
    let mut session = model.session();
    session
        .run(&[Input {
            name: "x",
            shape: &shape,
            data: InputData::F32(&x),
        }])
        .expect("scores");
    session.output(0).unwrap().data.to_vec()
}

/// Opens `onnx` and `weights` of the file at `path` with `options`; the file is closed
/// before this returns.
fn open_ranges(
    path: &Path,
    onnx: Range<u64>,
    weights: Range<u64>,
    options: &OpenOptions,
) -> Result<Model<'static>, Error> {
    let file = std::fs::File::open(path).unwrap();
    Model::open_file_ranges_with(&file, onnx, weights, options)
}

/// The `FileRange` error of `result`: (range, offset, message).
#[track_caller]
fn file_range_error(result: Result<Model<'static>, Error>) -> (&'static str, u64, String) {
    match result {
        Err(e @ Error::FileRange { range, offset, .. }) => (range, offset, e.to_string()),
        Err(other) => panic!("expected Error::FileRange, got {other:?}"),
        Ok(_) => panic!("expected Error::FileRange, the model opened"),
    }
}

#[test]
fn an_artifact_inside_a_larger_file_scores_as_by_path() {
    let (onnx, weights, path, reference) = corpus_case("mlp_valid");
    assert!(!reference.is_empty());
    let by_path = scores(&Model::open(&path).unwrap(), reference.len());
    for (got, want) in by_path.iter().zip(&reference) {
        assert!(
            (got - want).abs() <= 1e-6,
            "by path {got} vs f64 reference {want}"
        );
    }

    // The ONNX range at odd offsets; the weights range page-aligned, 64-byte aligned inside a
    // page (mapped from the page boundary below it, then sliced), and first in the file.
    let in_page = 64 - (7 + onnx.len()) % 64 + 3 * 64;
    let layouts = [
        (
            "weights-at-4096",
            vec![
                Part::Filler(4096),
                Part::Weights,
                Part::Filler(13),
                Part::Onnx,
                Part::Filler(100),
            ],
        ),
        (
            "weights-inside-a-page",
            vec![
                Part::Filler(7),
                Part::Onnx,
                Part::Filler(in_page),
                Part::Weights,
                Part::Filler(5),
            ],
        ),
        (
            "weights-first",
            vec![Part::Weights, Part::Filler(1), Part::Onnx],
        ),
    ];
    let mut seen = Vec::new();
    for (tag, parts) in &layouts {
        let (file, onnx_range, weights_range) = container(tag, &onnx, &weights, parts);
        seen.push((onnx_range.start % 2, weights_range.start % 4096));
        assert_eq!(weights_range.start % 64, 0, "{tag}");
        let model = open_ranges(&file, onnx_range, weights_range, &OpenOptions::default())
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        // The file is closed now: the model holds its own mapping of the weights range,
        // which it views in place.
        assert_eq!(model.weights(), &weights[..], "{tag}");
        assert_eq!(model.weights().as_ptr() as usize % 64, 0, "{tag}");
        let w1 = model.initializer_f32("w1").expect("w1 is f32");
        assert!(
            model.weights().as_ptr_range().contains(&w1.as_ptr().cast()),
            "{tag}: w1 is viewed in place, not copied"
        );
        // Same bytes, same kernels: the same scores, bit for bit.
        assert_eq!(scores(&model, reference.len()), by_path, "{tag}");
        drop(model);
        std::fs::remove_file(&file).unwrap();
    }
    // The layouts cover an odd ONNX offset, and weights on and off a page boundary.
    assert!(seen.iter().any(|&(odd, _)| odd == 1));
    assert!(seen.iter().any(|&(_, in_page)| in_page == 0));
    assert!(seen.iter().any(|&(_, in_page)| in_page != 0));
}

#[test]
fn ranges_that_break_the_rules_are_file_range_errors() {
    let (onnx, weights, _, _) = corpus_case("mlp_valid");
    let pad = 64 - (4096 + weights.len()) % 64;
    let (file, o, w) = container(
        "errors",
        &onnx,
        &weights,
        &[
            Part::Filler(4096),
            Part::Weights,
            Part::Filler(pad),
            Part::Onnx,
            Part::Filler(3),
        ],
    );
    assert_eq!(o.start % 64, 0);
    let size = std::fs::metadata(&file).unwrap().len();
    let d = OpenOptions::default();
    let open = |onnx: Range<u64>, weights: Range<u64>| open_ranges(&file, onnx, weights, &d);
    assert!(open(o.clone(), w.clone()).is_ok());

    // The weights at an offset that is not a multiple of 64 (4 past one: what zipalign's
    // default 4-byte alignment of uncompressed APK entries gives).
    let (shifted, so, sw) = container(
        "errors-misaligned",
        &onnx,
        &weights,
        &[
            Part::Filler(4100),
            Part::Weights,
            Part::Filler(1),
            Part::Onnx,
        ],
    );
    let (range, offset, message) = file_range_error(open_ranges(&shifted, so, sw, &d));
    assert_eq!((range, offset), ("weights", 4100), "{message}");
    assert!(
        message.contains("offset 4100 is not a multiple of 64"),
        "{message}"
    );
    std::fs::remove_file(&shifted).unwrap();

    // Past the end of the file, by one byte and far.
    let (range, offset, message) = file_range_error(open(o.start..size + 1, w.clone()));
    assert_eq!((range, offset), ("onnx", o.start));
    assert!(
        message.contains(&format!("past the end of the file ({size} bytes)")),
        "{message}"
    );
    let (range, offset, _) = file_range_error(open(o.clone(), u64::MAX - 64..u64::MAX));
    assert_eq!((range, offset), ("weights", u64::MAX - 64));

    // Empty ranges: the ONNX file always; the weights of a model with external data.
    let (range, _, message) = file_range_error(open(o.start..o.start, w.clone()));
    assert_eq!(range, "onnx");
    assert!(message.contains("is empty"), "{message}");
    let (range, _, message) = file_range_error(open(o.clone(), w.start..w.start));
    assert_eq!(range, "weights");
    assert!(message.contains("external data"), "{message}");

    // Overlapping ranges, and a range that ends before it starts.
    let (range, _, message) = file_range_error(open(o.clone(), o.start - 64..o.start + 64));
    assert_eq!(range, "weights");
    assert!(message.contains("overlaps the onnx range"), "{message}");
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = o.end..o.start;
    let (range, _, message) = file_range_error(open(reversed, w.clone()));
    assert_eq!(range, "onnx");
    assert!(message.contains("before it starts"), "{message}");

    // The weights range 64 bytes short: the metadata's size check refuses it.
    let result = open(o.clone(), w.start..w.end - 64);
    assert!(
        matches!(result, Err(Error::WeightsMismatch { check: "size", .. })),
        "{result:?}"
    );
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn the_path_openers_checks_hold_for_ranges() {
    // Another model's weights (same layout and size): the identity check refuses them.
    let (onnx, _, _, _) = corpus_case("mlp_valid");
    let (_, other, _, _) = corpus_case("mlp_other_models_weights");
    let (file, o, w) = container(
        "checks",
        &onnx,
        &other,
        &[Part::Weights, Part::Filler(64), Part::Onnx],
    );
    let d = OpenOptions::default();
    let result = open_ranges(&file, o.clone(), w.clone(), &d);
    assert!(
        matches!(result, Err(Error::WeightsMismatch { .. })),
        "{result:?}"
    );
    let unchecked = OpenOptions::new().verify(Verify::None);
    assert!(open_ranges(&file, o.clone(), w.clone(), &unchecked).is_ok());

    // Resource limits: the MLP has 6 nodes.
    let mut limits = Limits::DEFAULT;
    limits.max_nodes = 5;
    let limited = OpenOptions::new().limits(limits).verify(Verify::None);
    let result = open_ranges(&file, o, w, &limited);
    assert!(
        matches!(
            result,
            Err(Error::ResourceLimit {
                limit: "max_nodes",
                ..
            })
        ),
        "{result:?}"
    );
    std::fs::remove_file(&file).unwrap();

    // Not a regular file: a folder, and (Unix) a pipe; I/O errors worded as for paths.
    let dir = std::fs::File::open(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let e = Model::open_file_ranges(&dir, 0..10, 0..0).unwrap_err();
    assert!(
        matches!(&e, Error::Io { reason, .. } if reason.contains("directory")),
        "{e:?}"
    );
    #[cfg(unix)]
    {
        let (reader, _writer) = std::io::pipe().unwrap();
        let pipe = std::fs::File::from(std::os::fd::OwnedFd::from(reader));
        let e = Model::open_file_ranges(&pipe, 0..10, 0..0).unwrap_err();
        assert!(
            matches!(&e, Error::Io { reason, .. } if reason == "not a regular file"),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("fd "), "{e}");
    }
}

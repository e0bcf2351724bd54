//! `ctr_edge_open_options` through the C ABI: the defaults `ctr_edge_open_options_init` gives,
//! limits that refuse a model (and the boundary that admits it), the weights check turned off
//! and on, and options the library must refuse. The models are the hostile corpus's small MLP
//! (6 nodes, an artifact's metadata), with its own weights and with another model's.

mod common;
#[path = "../../../tests/hostile/corpus.rs"]
mod corpus;

use std::path::{Path, PathBuf};

use common::{c, last_error};
use ctr_edge::*;

fn options() -> ctr_edge_open_options {
    let mut o = std::mem::MaybeUninit::<ctr_edge_open_options>::uninit();
    // SAFETY: valid for a write.
    let status = unsafe { ctr_edge_open_options_init(o.as_mut_ptr()) };
    assert_eq!(status, ctr_edge_status::Ok, "{}", last_error());
    // SAFETY: initialized by the successful call.
    unsafe { o.assume_init() }
}

/// Opens `path` with `options` by path and from bytes; both statuses must agree.
fn open(path: &Path, options: Option<&ctr_edge_open_options>) -> (ctr_edge_status, String) {
    let opts = options.map_or(std::ptr::null(), |o| o as *const _);
    let cpath = c(path.to_str().unwrap());
    let mut model = std::ptr::null_mut();
    // SAFETY: valid string, options NULL or valid, valid out pointer.
    let by_path = unsafe { ctr_edge_model_open_with_options(cpath.as_ptr(), opts, &mut model) };
    let message = last_error();
    // SAFETY: NULL or a live model.
    unsafe { ctr_edge_model_free(model) };
    let onnx = std::fs::read(path).unwrap();
    let weights = std::fs::read(path.with_file_name("model.weights")).unwrap_or_default();
    let mut model = std::ptr::null_mut();
    // SAFETY: both buffers outlive the model, freed below.
    let by_bytes = unsafe {
        ctr_edge_model_open_bytes_with_options(
            onnx.as_ptr(),
            onnx.len(),
            weights.as_ptr(),
            weights.len(),
            opts,
            &mut model,
        )
    };
    // SAFETY: NULL or a live model.
    unsafe { ctr_edge_model_free(model) };
    assert_eq!(
        by_path,
        by_bytes,
        "{} by path and from bytes",
        path.display()
    );
    (by_path, message)
}

fn corpus_case(root: &Path, name: &str) -> PathBuf {
    root.join(name).join("model.onnx")
}

#[test]
fn open_options_limit_and_verify() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("open_options_corpus");
    let _ = std::fs::remove_dir_all(&root);
    corpus::write_corpus(&root);
    let valid = corpus_case(&root, "mlp_valid");
    let mismatched = corpus_case(&root, "mlp_other_models_weights");

    // The defaults are the runtime's documented ones.
    let d = options();
    assert_eq!(d.struct_size, std::mem::size_of::<ctr_edge_open_options>());
    assert_eq!(d.verify, CTR_EDGE_VERIFY_IDENTITY);
    assert_eq!(
        (
            d.max_nodes,
            d.max_depth,
            d.max_folded_bytes,
            d.max_scratch_bytes
        ),
        (100_000, 10_000, 64 << 20, 1 << 30)
    );
    assert_eq!(open(&valid, Some(&d)).0, ctr_edge_status::Ok);
    assert_eq!(open(&valid, None).0, ctr_edge_status::Ok);

    // The MLP has 6 nodes: a cap of 5 refuses it, naming the limit; 6 admits it.
    let mut o = options();
    o.max_nodes = 5;
    let (status, message) = open(&valid, Some(&o));
    assert_eq!(status, ctr_edge_status::ResourceLimit, "{message}");
    assert!(message.contains("max_nodes"), "{message}");
    o.max_nodes = 6;
    assert_eq!(
        open(&valid, Some(&o)).0,
        ctr_edge_status::Ok,
        "{}",
        last_error()
    );
    let mut o = options();
    o.max_depth = 1;
    let (status, message) = open(&valid, Some(&o));
    assert_eq!(status, ctr_edge_status::ResourceLimit, "{message}");
    assert!(message.contains("max_depth"), "{message}");
    // No caps: the folding bomb of 1.5 GiB is refused by default, and still by a 1 MiB cap.
    let bomb = corpus_case(&root, "const_of_shape_1_5gib");
    let mut o = options();
    o.max_folded_bytes = 1 << 20;
    assert_eq!(open(&bomb, Some(&o)).0, ctr_edge_status::ResourceLimit);
    let mut o = options();
    o.max_nodes = usize::MAX;
    o.max_depth = usize::MAX;
    assert_eq!(open(&valid, Some(&o)).0, ctr_edge_status::Ok);

    // Another model's weights: refused by the default check and by the full one; opened when
    // the check is off (the caller asked for it).
    assert_eq!(open(&mismatched, None).0, ctr_edge_status::WeightsMismatch);
    let mut o = options();
    o.verify = CTR_EDGE_VERIFY_FULL;
    assert_eq!(
        open(&mismatched, Some(&o)).0,
        ctr_edge_status::WeightsMismatch
    );
    assert_eq!(open(&valid, Some(&o)).0, ctr_edge_status::Ok);
    o.verify = CTR_EDGE_VERIFY_NONE;
    assert_eq!(open(&mismatched, Some(&o)).0, ctr_edge_status::Ok);

    // Options the library cannot read.
    let mut o = options();
    o.verify = 7;
    let (status, message) = open(&valid, Some(&o));
    assert_eq!(status, ctr_edge_status::InvalidArgument);
    assert!(message.contains("options->verify is 7"), "{message}");
    let mut o = options();
    o.struct_size = 8;
    let (status, message) = open(&valid, Some(&o));
    assert_eq!(status, ctr_edge_status::InvalidArgument);
    assert!(message.contains("struct_size"), "{message}");
    // SAFETY: NULL is documented as an error.
    let status = unsafe { ctr_edge_open_options_init(std::ptr::null_mut()) };
    assert_eq!(status, ctr_edge_status::NullArgument);
    let _ = std::fs::remove_dir_all(&root);
}

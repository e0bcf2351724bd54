//! The committed `runtime/ffi/include/ctr_edge.h` must equal a fresh cbindgen run over the
//! ctr-edge-ffi crate. Regenerate with `CTR_EDGE_UPDATE_HEADER=1 cargo test -p ctr-edge-tests
//! --test ffi_header`. (Here rather than in ctr-edge-ffi so that the aarch64 test build under
//! qemu does not compile cbindgen.)

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/ffi");
    let crate_dir = crate_dir.as_path();
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let path = crate_dir.join("include/ctr_edge.h");
    if std::env::var_os("CTR_EDGE_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("header written");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} differs from a fresh cbindgen generation; regenerate it with\n  \
         CTR_EDGE_UPDATE_HEADER=1 cargo test -p ctr-edge-tests --test ffi_header\nand commit it",
        path.display()
    );
}

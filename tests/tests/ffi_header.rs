//! The committed `include/ctr_edge.h` must equal a fresh cbindgen run over this crate.
//! Regenerate with `CTR_EDGE_UPDATE_HEADER=1 cargo test -p ctr-edge-ffi --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
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
         CTR_EDGE_UPDATE_HEADER=1 cargo test -p ctr-edge-ffi --test header\nand commit it",
        path.display()
    );
}

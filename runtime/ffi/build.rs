//! Link flags of the shared library (`cargo:rustc-cdylib-link-arg`: the static library and
//! the rlib are not affected).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" && os != "android" {
        return;
    }
    // The per-thread last-error slot is a `pthread` key whose destructor is code of this
    // library: mark `libctr_edge.so` not unloadable (`-z nodelete`: `dlclose` leaves it
    // mapped), so that a thread exiting after a `dlclose` never calls into unmapped code.
    // (std's thread locals keep a library loaded the same way, via `__cxa_thread_atexit_impl`.)
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    // The build without std: `_Unwind_Resume`, called from landing pads of the precompiled
    // `alloc` that nothing reaches, resolves inside the library to an abort (src/rt.rs).
    if std::env::var_os("CARGO_FEATURE_STD").is_none() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--wrap=_Unwind_Resume");
    }
}

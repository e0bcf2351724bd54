//! The C ABI of ctr-edge: `libctr_edge.a` / `libctr_edge.so` and the header
//! `include/ctr_edge.h`, generated from this crate by cbindgen (the workspace test
//! `tests/tests/ffi_header.rs` fails when the committed header drifts;
//! `CTR_EDGE_UPDATE_HEADER=1 cargo test -p ctr-edge-tests --test ffi_header` regenerates it).
//!
//! Design, after rustls-ffi and tract's C API:
//! - Handles are opaque: C sees `ctr_edge_model*` and `ctr_edge_session*` and nothing inside.
//!   A model is reference counted; every session holds a reference to the model it was created
//!   from, so a session can only ever run with its own model's buffers, and freeing the model
//!   while sessions remain is safe (the last of them releases it).
//! - No unwind crosses the boundary ([`panic`]). With the `std` feature (default) every entry
//!   point runs inside `std::panic::catch_unwind` and a panic becomes
//!   [`ctr_edge_status::Panic`]. Without it (the size-optimized shipping build) the crate is
//!   `no_std`, built with `panic = "abort"`: a panic (a bug) prints its message to stderr and
//!   aborts the process instead of returning an error code.
//! - Every fallible entry point returns a [`ctr_edge_status`], a `#[repr(u32)]` code whose
//!   values are stable and never renumbered, and leaves a message for
//!   [`ctr_edge_last_error`] in a per-thread slot ([`error`]).
//! - Null pointers and out-of-range indices are error codes, never undefined behaviour; a null
//!   handle passed to a `*_free` function is ignored. Freeing a handle twice, or passing a
//!   pointer that did not come from this library, is undefined behaviour (as for `free`).
//!
//! Thread safety: a `ctr_edge_model` is immutable and may be shared by any number of threads
//! (create sessions and query it concurrently). A `ctr_edge_session` holds the scratch memory of
//! one scoring call at a time: use each session from one thread at a time (one session per
//! thread); it may move between threads. The last-error message is per thread.
//!
//! Allocation: after the first `ctr_edge_session_run` at a given set of input shapes, further
//! runs at those shapes do not allocate (on success).
//!
//! The crate is `#![no_std]` + `alloc` with a cargo feature `std` (default on). The two builds
//! share all code but the panic guard and the runtime support of module `rt`:
//! - `std`: std supplies the allocator and the panic handler; panics are caught at the
//!   boundary. This is the build of the Rust tests and of `cargo build`.
//! - no `std` (`--no-default-features`, with a `panic = "abort"` profile such as `release-small`
//!   of `targets/release-small.toml`): a `#[global_allocator]` over the C library's
//!   `malloc`/`free`, a `#[panic_handler]` that aborts. std's panic and backtrace machinery is
//!   left out, which is most of the size difference. Build it only as the `cdylib` or
//!   `staticlib` (as an rlib next to std its panic handler would clash with std's).
//!
//! Both use the C library through the `libc` crate (module `sys`): models open from a path with
//! `open`/`fstat`/`mmap` (or from byte ranges of a descriptor with `fstat`/`mmap`), and the
//! last-error message lives in a `pthread` key. Supported targets are therefore Unix ones:
//! Linux, Android, Apple.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// The C names are the Rust names (cbindgen copies them), as in rustls-ffi.
#![allow(non_camel_case_types)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod model;
pub mod options;
pub mod panic;
mod rt;
pub mod session;
mod sys;
#[cfg(test)]
#[path = "../tests/common/tiny_model.rs"]
mod tiny_model;

pub use error::{ctr_edge_last_error, ctr_edge_status, ctr_edge_status_name};
pub use model::{
    ctr_edge_dtype, ctr_edge_io_info, ctr_edge_model, ctr_edge_model_free,
    ctr_edge_model_input_count, ctr_edge_model_input_info, ctr_edge_model_kernel_variant,
    ctr_edge_model_open, ctr_edge_model_open_bytes, ctr_edge_model_open_bytes_with_options,
    ctr_edge_model_open_fd, ctr_edge_model_open_with_options, ctr_edge_model_output_count,
    ctr_edge_model_output_info,
};
pub use options::{
    ctr_edge_open_options, ctr_edge_open_options_init, CTR_EDGE_VERIFY_FULL,
    CTR_EDGE_VERIFY_IDENTITY, CTR_EDGE_VERIFY_NONE,
};
pub use session::{
    ctr_edge_input, ctr_edge_session, ctr_edge_session_free, ctr_edge_session_new,
    ctr_edge_session_output, ctr_edge_session_output_shape, ctr_edge_session_run,
    CTR_EDGE_MAX_INPUTS,
};

/// The library version (`MAJOR.MINOR.PATCH`), a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn ctr_edge_version() -> *const core::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

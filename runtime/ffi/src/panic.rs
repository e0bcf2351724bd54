//! The boundary guard every status-returning entry point runs its body in: it clears the
//! last-error slot, keeps any panic from unwinding into C and turns the body's result into a
//! [`ctr_edge_status`] plus, on failure, a last-error message.
//!
//! With the `std` feature a panic is caught (`catch_unwind`) and becomes
//! [`ctr_edge_status::Panic`]. Without it the build is `panic = "abort"`: a panic aborts the
//! process from the panic handler (module `rt`) and never reaches this guard.

use crate::error::{clear_last_error, ctr_edge_status, set_last_error, FfiResult};

/// Runs `body` for the entry point `function` and converts its outcome.
pub(crate) fn guard(function: &str, body: impl FnOnce() -> FfiResult) -> ctr_edge_status {
    clear_last_error();
    match catch(function, body) {
        Ok(()) => ctr_edge_status::Ok,
        Err(e) => {
            set_last_error(&e.message);
            e.status
        }
    }
}

/// `body`'s result, or a [`ctr_edge_status::Panic`] error when it panicked.
#[cfg(feature = "std")]
fn catch(function: &str, body: impl FnOnce() -> FfiResult) -> FfiResult {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    // AssertUnwindSafe: after a panic the only state a caller can reach again is the handle the
    // body was working on; the status tells the caller to free a session that saw one, and a
    // model is never mutated.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        Err(crate::error::FfiError::new(
            ctr_edge_status::Panic,
            alloc::format!(
                "{function}: internal panic: {}",
                panic_message(payload.as_ref())
            ),
        ))
    })
}

/// `body`'s result (a panic aborts: `panic = "abort"` and the handler of module `rt`).
#[cfg(not(feature = "std"))]
fn catch(_function: &str, body: impl FnOnce() -> FfiResult) -> FfiResult {
    body()
}

/// Runs a `*_free` body: a NULL `handle` is ignored; otherwise `free(handle)` runs, and a panic
/// while dropping is swallowed (there is no status to report it through, and unwinding into C
/// is undefined behaviour). Without `std` it aborts instead.
pub(crate) fn guard_free<T>(handle: *mut T, free: impl FnOnce(*mut T)) {
    if handle.is_null() {
        return;
    }
    let body = || free(handle);
    #[cfg(feature = "std")]
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    #[cfg(not(feature = "std"))]
    body();
}

#[cfg(feature = "std")]
fn panic_message(payload: &(dyn core::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<alloc::string::String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    extern crate std;

    use super::*;
    use crate::error::{ctr_edge_last_error, FfiError};
    use std::string::String;

    fn last_error() -> String {
        // SAFETY: never NULL, NUL-terminated.
        unsafe { core::ffi::CStr::from_ptr(ctr_edge_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_the_panic_status_with_its_message() {
        let status = guard("ctr_edge_test", || panic!("boom {}", 42));
        assert_eq!(status, ctr_edge_status::Panic);
        assert_eq!(last_error(), "ctr_edge_test: internal panic: boom 42");
        // The next call clears the message.
        assert_eq!(guard("ctr_edge_test", || Ok(())), ctr_edge_status::Ok);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn errors_keep_their_status_and_message_without_nul_bytes() {
        let status = guard("f", || {
            Err(FfiError::new(ctr_edge_status::InvalidModel, "bad\0 model"))
        });
        assert_eq!(status, ctr_edge_status::InvalidModel);
        assert_eq!(last_error(), "bad model");
        guard_free(core::ptr::dangling_mut::<u8>(), |_| panic!("swallowed"));
        guard_free(core::ptr::null_mut::<u8>(), |_| {
            unreachable!("NULL is ignored")
        });
    }
}

//! The boundary guard every status-returning entry point runs its body in: it clears the
//! last-error slot, catches any panic (so no unwind reaches C) and turns the body's result into
//! a [`ctr_edge_status`] plus, on failure, a last-error message.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{clear_last_error, ctr_edge_status, set_last_error, FfiResult};

/// Runs `body` for the entry point `function` and converts its outcome.
pub(crate) fn guard(function: &str, body: impl FnOnce() -> FfiResult) -> ctr_edge_status {
    clear_last_error();
    // AssertUnwindSafe: after a panic the only state a caller can reach again is the handle the
    // body was working on; the status tells the caller to free a session that saw one, and a
    // model is never mutated.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ctr_edge_status::Ok,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(payload) => {
            set_last_error(&format!(
                "{function}: internal panic: {}",
                panic_message(payload.as_ref())
            ));
            ctr_edge_status::Panic
        }
    }
}

/// Runs a `*_free` body: a panic while dropping is swallowed (there is no status to report it
/// through, and unwinding into C is undefined behaviour).
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ctr_edge_last_error, FfiError};

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
        guard_void(|| panic!("swallowed"));
    }
}

//! Status codes and the per-thread last-error message.
//!
//! [`ctr_edge_status`] values are part of the ABI: a value, once published, keeps its number
//! and meaning forever. New codes get new numbers at the end; removed ones are never reused.
//! The message of the last failed call on a thread is kept in a thread-local slot, read with
//! [`ctr_edge_last_error`], and cleared when the next status-returning call starts (clearing
//! frees, it never allocates, so a successful run stays allocation-free).

use core::ffi::{c_char, CStr};
use std::cell::RefCell;
use std::ffi::CString;

use ctr_edge_runtime::Error;

/// Result of every fallible `ctr_edge_` function. Stable values, never renumbered.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ctr_edge_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is invalid: not UTF-8, unknown dtype code, misaligned data, too many inputs,
    /// a size that overflows.
    InvalidArgument = 2,
    /// A file could not be read or mapped.
    Io = 3,
    /// The model file (or the weights) is malformed or inconsistent.
    InvalidModel = 4,
    /// The model uses an op or a data type this runtime does not implement, or an input or
    /// output of a type the C API does not carry.
    Unsupported = 5,
    /// The inputs given to `ctr_edge_session_run` do not match the model's inputs (name,
    /// dtype, rank, dimensions or value count).
    InputMismatch = 6,
    /// An input or output index is not below the model's input or output count.
    IndexOutOfRange = 7,
    /// The caller's buffer is too small; nothing was written to it.
    BufferTooSmall = 8,
    /// A panic inside the library was caught at the boundary (a bug: please report it).
    /// Free the session that was in use; the model remains usable.
    Panic = 9,
    /// A categorical id in the input data is outside its embedding table.
    IdOutOfRange = 10,
    /// A non-finite value (NaN, infinity) in the input data where the model forbids one.
    NotFinite = 11,
    /// Outputs were read from a session with no successful run since its creation or its last
    /// failed run.
    NoResult = 12,
    /// An error of a kind this version of the C API has no code for; see the message.
    Other = 13,
}

impl ctr_edge_status {
    /// Upper-snake-case name, as in the header, without the common prefix.
    pub fn name(self) -> &'static CStr {
        match self {
            ctr_edge_status::Ok => c"OK",
            ctr_edge_status::NullArgument => c"NULL_ARGUMENT",
            ctr_edge_status::InvalidArgument => c"INVALID_ARGUMENT",
            ctr_edge_status::Io => c"IO",
            ctr_edge_status::InvalidModel => c"INVALID_MODEL",
            ctr_edge_status::Unsupported => c"UNSUPPORTED",
            ctr_edge_status::InputMismatch => c"INPUT_MISMATCH",
            ctr_edge_status::IndexOutOfRange => c"INDEX_OUT_OF_RANGE",
            ctr_edge_status::BufferTooSmall => c"BUFFER_TOO_SMALL",
            ctr_edge_status::Panic => c"PANIC",
            ctr_edge_status::IdOutOfRange => c"ID_OUT_OF_RANGE",
            ctr_edge_status::NotFinite => c"NOT_FINITE",
            ctr_edge_status::NoResult => c"NO_RESULT",
            ctr_edge_status::Other => c"OTHER",
        }
    }
}

/// A failure on its way to C: the code returned and the message left for
/// [`ctr_edge_last_error`].
#[derive(Debug)]
pub struct FfiError {
    /// Code returned to the caller.
    pub status: ctr_edge_status,
    /// Message naming what was wrong.
    pub message: String,
}

impl FfiError {
    /// An error with `status` and `message`.
    pub fn new(status: ctr_edge_status, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }

    /// A NULL `argument` (named as in the header, e.g. `out_written` or `inputs[2].name`).
    pub fn null(function: &str, argument: &str) -> Self {
        Self::new(
            ctr_edge_status::NullArgument,
            format!("{function}: argument '{argument}' is NULL"),
        )
    }

    /// An invalid argument.
    pub fn invalid(function: &str, what: impl core::fmt::Display) -> Self {
        Self::new(
            ctr_edge_status::InvalidArgument,
            format!("{function}: {what}"),
        )
    }

    /// A runtime error raised while running `function`.
    pub fn runtime(function: &str, error: &Error) -> Self {
        let status = match error {
            Error::Protobuf { .. }
            | Error::InvalidTensor { .. }
            | Error::InvalidNode { .. }
            | Error::InvalidGraph { .. }
            | Error::Weights { .. } => ctr_edge_status::InvalidModel,
            Error::UnsupportedDType { .. } | Error::UnsupportedOp { .. } => {
                ctr_edge_status::Unsupported
            }
            Error::InputMismatch { .. } => ctr_edge_status::InputMismatch,
            Error::IndexOutOfRange { .. } => ctr_edge_status::IdOutOfRange,
            Error::NotFinite { .. } => ctr_edge_status::NotFinite,
            Error::Io { .. } => ctr_edge_status::Io,
            _ => ctr_edge_status::Other,
        };
        Self::new(status, format!("{function}: {error}"))
    }
}

/// Result of an entry point's body.
pub type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    /// Message of the last failed call on this thread; `None` after a successful one.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Forgets the last message (frees it; never allocates).
pub(crate) fn clear_last_error() {
    // `try_with`: during thread teardown the slot may be gone; there is nothing to clear then.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = None;
        }
    });
}

/// Stores `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    // An interior NUL would cut the C string short: drop such bytes.
    let bytes: Vec<u8> = message.bytes().filter(|&b| b != 0).collect();
    let text = CString::new(bytes).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(text);
        }
    });
}

/// The message of the last failed `ctr_edge_` call on the calling thread, or an empty string
/// when the last call succeeded or there was none. Never NULL. The pointer stays valid until
/// the next status-returning `ctr_edge_` call on this thread; copy the text to keep it.
#[no_mangle]
pub extern "C" fn ctr_edge_last_error() -> *const c_char {
    let read = std::panic::catch_unwind(|| {
        LAST_ERROR
            .try_with(|slot| match slot.try_borrow() {
                // The CString's heap buffer does not move until the slot is overwritten.
                Ok(slot) => slot.as_ref().map(|s| s.as_ptr()),
                Err(_) => None,
            })
            .ok()
            .flatten()
    });
    match read {
        Ok(Some(p)) => p,
        _ => c"".as_ptr(),
    }
}

/// The name of a status code (`"OK"`, `"NULL_ARGUMENT"`, ...), a static string; `"UNKNOWN"`
/// for a value this version does not define. Never NULL.
#[no_mangle]
pub extern "C" fn ctr_edge_status_name(status: u32) -> *const c_char {
    const ALL: [ctr_edge_status; 14] = [
        ctr_edge_status::Ok,
        ctr_edge_status::NullArgument,
        ctr_edge_status::InvalidArgument,
        ctr_edge_status::Io,
        ctr_edge_status::InvalidModel,
        ctr_edge_status::Unsupported,
        ctr_edge_status::InputMismatch,
        ctr_edge_status::IndexOutOfRange,
        ctr_edge_status::BufferTooSmall,
        ctr_edge_status::Panic,
        ctr_edge_status::IdOutOfRange,
        ctr_edge_status::NotFinite,
        ctr_edge_status::NoResult,
        ctr_edge_status::Other,
    ];
    ALL.iter()
        .find(|s| **s as u32 == status)
        .map_or(c"UNKNOWN", |s| s.name())
        .as_ptr()
}

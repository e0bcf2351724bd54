//! Status codes and the per-thread last-error message.
//!
//! [`ctr_edge_status`] values are part of the ABI: a value, once published, keeps its number
//! and meaning forever. New codes get new numbers at the end; removed ones are never reused.
//! The message of the last failed call on a thread is kept in a per-thread slot, read with
//! [`ctr_edge_last_error`], and cleared when the next status-returning call starts (clearing
//! frees, it never allocates, so a successful run stays allocation-free).
//!
//! The slot is a `pthread` key (created at the first failure) holding a `CString` pointer per
//! thread, freed by the key's destructor when the thread exits: the same in the `std` and the
//! `no_std` build, where `thread_local!` is not available.

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, c_void, CStr};
use core::sync::atomic::{AtomicUsize, Ordering};

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
    /// Free the session that was in use; the model remains usable. Only the build with std
    /// returns it: the size-optimized build without std aborts the process on a bug instead.
    Panic = 9,
    /// A categorical id in the input data is outside its embedding table.
    IdOutOfRange = 10,
    /// A non-finite value (NaN, infinity) in the input data, or a NaN score from finite inputs
    /// that overflow the model's arithmetic.
    NotFinite = 11,
    /// Outputs were read from a session with no successful run since its creation or its last
    /// failed run.
    NoResult = 12,
    /// An error of a kind this version of the C API has no code for; see the message.
    Other = 13,
    /// The model asks for more than the open options' resource limits allow (nodes, depth,
    /// folded-constant or scratch bytes).
    ResourceLimit = 14,
    /// The weights file does not belong to the model (its checksum or size differs from the
    /// one the exporter recorded).
    WeightsMismatch = 15,
    /// The session is in use by another thread; nothing was done. A session is for one thread
    /// at a time.
    Busy = 16,
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
            ctr_edge_status::ResourceLimit => c"RESOURCE_LIMIT",
            ctr_edge_status::WeightsMismatch => c"WEIGHTS_MISMATCH",
            ctr_edge_status::Busy => c"BUSY",
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
            Error::NotFinite { .. } | Error::NotFiniteOutput { .. } => ctr_edge_status::NotFinite,
            Error::CastOutOfRange { value, .. } if value.is_nan() => ctr_edge_status::NotFinite,
            Error::CastOutOfRange { .. } => ctr_edge_status::IdOutOfRange,
            Error::Io { .. } => ctr_edge_status::Io,
            // The caller's byte ranges (`ctr_edge_model_open_fd`), not the model, are wrong.
            Error::FileRange { .. } => ctr_edge_status::InvalidArgument,
            Error::ResourceLimit { .. } => ctr_edge_status::ResourceLimit,
            Error::WeightsMismatch { .. } => ctr_edge_status::WeightsMismatch,
            _ => ctr_edge_status::Other,
        };
        Self::new(status, format!("{function}: {error}"))
    }
}

/// Result of an entry point's body.
pub type FfiResult<T = ()> = Result<T, FfiError>;

/// The body of every constructor (`*_open*`, `*_new`), inside [`crate::panic::guard`]: `out`
/// must not be NULL and is set to NULL at once (so that it reads NULL after any failure); then
/// the handle `body` makes is written to it.
///
/// # Safety
/// `out` is NULL or valid for a pointer write.
pub(crate) unsafe fn construct<T>(
    function: &str,
    out: *mut *mut T,
    body: impl FnOnce() -> FfiResult<*mut T>,
) -> ctr_edge_status {
    crate::panic::guard(function, || {
        if out.is_null() {
            return Err(FfiError::null(function, "out"));
        }
        // SAFETY: checked non-NULL; valid for a pointer write by contract.
        unsafe { out.write(core::ptr::null_mut()) };
        let handle = body()?;
        // SAFETY: as above.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// The `pthread` key of the last-error slot, plus one; 0 until the first failure creates it.
static KEY: AtomicUsize = AtomicUsize::new(0);

/// The key's destructor: frees a thread's message when the thread exits.
unsafe extern "C" fn free_message(message: *mut c_void) {
    if !message.is_null() {
        // SAFETY: every non-NULL value stored under the key is `CString::into_raw` (in
        // `set_last_error`), and the C library calls the destructor once per thread.
        drop(unsafe { CString::from_raw(message.cast()) });
    }
}

/// The key if some failure created it already.
fn existing_key() -> Option<libc::pthread_key_t> {
    let k = KEY.load(Ordering::Acquire);
    (k != 0).then(|| (k - 1) as libc::pthread_key_t)
}

/// The key, created on first use; `None` when the C library has no key left (then messages
/// are dropped, and `ctr_edge_last_error` reads empty).
fn key() -> Option<libc::pthread_key_t> {
    if let Some(k) = existing_key() {
        return Some(k);
    }
    let mut new: libc::pthread_key_t = 0;
    // SAFETY: `new` is valid for a write; the destructor matches what the key holds.
    if unsafe { libc::pthread_key_create(&mut new, Some(free_message)) } != 0 {
        return None;
    }
    let stored = usize::try_from(new).ok()?.checked_add(1)?;
    match KEY.compare_exchange(0, stored, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(new),
        Err(existing) => {
            // Another thread created one first: use that one. Ours holds no value yet.
            // SAFETY: a key this call created and nobody else saw.
            unsafe { libc::pthread_key_delete(new) };
            Some((existing - 1) as libc::pthread_key_t)
        }
    }
}

/// Forgets the last message (frees it; never allocates).
pub(crate) fn clear_last_error() {
    let Some(k) = existing_key() else {
        return;
    };
    // SAFETY: a live key (keys are never deleted once published).
    let old = unsafe { libc::pthread_getspecific(k) };
    if !old.is_null() {
        // SAFETY: as above; storing NULL needs no memory (the thread has a value already).
        unsafe { libc::pthread_setspecific(k, core::ptr::null()) };
        // SAFETY: the value was `CString::into_raw`, no longer stored anywhere.
        unsafe { free_message(old) };
    }
}

/// Stores `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    // An interior NUL would cut the C string short: drop such bytes.
    let bytes: Vec<u8> = message.bytes().filter(|&b| b != 0).collect();
    let text = CString::new(bytes).unwrap_or_default();
    let Some(k) = key() else {
        return;
    };
    let new = text.into_raw();
    // SAFETY: a live key.
    let old = unsafe { libc::pthread_getspecific(k) };
    // SAFETY: a live key; the value is freed by `free_message` (on replacement or thread exit).
    if unsafe { libc::pthread_setspecific(k, new.cast_const().cast()) } == 0 {
        if !old.is_null() {
            // SAFETY: the previous `CString::into_raw` value, replaced above.
            unsafe { free_message(old) };
        }
    } else {
        // SAFETY: `new` was not stored: take it back.
        drop(unsafe { CString::from_raw(new) });
    }
}

/// The message of the last failed `ctr_edge_` call on the calling thread, or an empty string
/// when the last call succeeded or there was none. Never NULL. The pointer stays valid until
/// the next status-returning `ctr_edge_` call on this thread; copy the text to keep it.
#[no_mangle]
pub extern "C" fn ctr_edge_last_error() -> *const c_char {
    let message = match existing_key() {
        // SAFETY: a live key; its value is NULL or this thread's `CString`, which stays put
        // until this thread's next status-returning call replaces or clears it.
        Some(k) => unsafe { libc::pthread_getspecific(k) },
        None => core::ptr::null_mut(),
    };
    if message.is_null() {
        c"".as_ptr()
    } else {
        message.cast_const().cast()
    }
}

/// The name of a status code (`"OK"`, `"NULL_ARGUMENT"`, ...), a static string; `"UNKNOWN"`
/// for a value this version does not define. Never NULL.
#[no_mangle]
pub extern "C" fn ctr_edge_status_name(status: u32) -> *const c_char {
    const ALL: [ctr_edge_status; 17] = [
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
        ctr_edge_status::ResourceLimit,
        ctr_edge_status::WeightsMismatch,
        ctr_edge_status::Busy,
    ];
    ALL.iter()
        .find(|s| **s as u32 == status)
        .map_or(c"UNKNOWN", |s| s.name())
        .as_ptr()
}

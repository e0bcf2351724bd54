//! The session handle: per-thread scoring state bound to one model.
//!
//! A session owns a reference to its model (an `Arc` clone of the model handle) next to the
//! runtime's `Session`, which borrows that model: a session can only run with the buffers of
//! the model it was created from, and the model outlives it. Inputs are converted from C in a
//! fixed-size array on the stack, so a run allocates nothing the runtime would not.
//!
//! A session is for one thread at a time. Every entry point that touches its state claims it
//! first (an atomic flag): a call that finds it claimed by a call still running on another
//! thread returns `CTR_EDGE_STATUS_BUSY` at once and changes nothing, so misuse from several
//! threads gives errors, never another thread's scores.

use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_void, CStr};
use core::sync::atomic::{AtomicBool, Ordering};

use ctr_edge_runtime::session::InputData;
use ctr_edge_runtime::{Input, Model, Session};

use crate::error::{construct, ctr_edge_status, FfiError, FfiResult};
use crate::model::{ctr_edge_dtype, ctr_edge_model, model_ref};
use crate::panic::{guard, guard_free};

/// Most inputs one `ctr_edge_session_run` call accepts.
pub const CTR_EDGE_MAX_INPUTS: usize = 128;

/// One named input of a batch, described by the caller.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ctr_edge_input {
    /// Model input name, NUL-terminated UTF-8 (e.g. from `ctr_edge_model_input_info`).
    pub name: *const c_char,
    /// Element type of `data`: `CTR_EDGE_DTYPE_F32`, `CTR_EDGE_DTYPE_I64` or
    /// `CTR_EDGE_DTYPE_I32`, and the model input's dtype.
    pub dtype: u32,
    /// `rank` dimensions; the first is the batch size (number of candidates).
    pub shape: *const usize,
    /// Number of dimensions (the model input's rank).
    pub rank: usize,
    /// The values, row-major, product(shape) elements of `dtype`, aligned for that type. May
    /// be NULL only when the product is 0.
    pub data: *const c_void,
}

/// Scoring state for one thread (opaque), bound to the model it was created from.
pub struct ctr_edge_session {
    /// Set while an entry point uses `state` ([`claim`]).
    busy: AtomicBool,
    // Fields drop in declaration order: `state` (whose session borrows `*model`) goes first.
    /// Reached only through a [`Claim`].
    state: UnsafeCell<SessionState>,
    /// Keeps the model (and so everything the session borrows) alive.
    model: Arc<ctr_edge_model>,
}

/// What a call changes: the runtime's session and whether its outputs are readable.
struct SessionState {
    session: Session<'static, 'static>,
    /// Whether the last run succeeded (outputs readable).
    has_result: bool,
}

/// The exclusive use of a session by one call; released when dropped (an unwinding panic
/// included).
struct Claim<'s> {
    handle: &'s ctr_edge_session,
}

impl Claim<'_> {
    fn state(&mut self) -> &mut SessionState {
        // SAFETY: `busy` was set by this claim's compare-exchange and stays set until it is
        // dropped: no other call reaches `state` meanwhile.
        unsafe { &mut *self.handle.state.get() }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.handle.busy.store(false, Ordering::Release);
    }
}

/// Claims `handle` for `function`, or `CTR_EDGE_STATUS_BUSY` when a call on another thread
/// holds it.
fn claim<'s>(function: &str, handle: &'s ctr_edge_session) -> FfiResult<Claim<'s>> {
    handle
        .busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .map_err(|_| {
            FfiError::new(
                ctr_edge_status::Busy,
                format!("{function}: the session is in use by a call on another thread (a session is for one thread at a time: give each thread its own)"),
            )
        })?;
    Ok(Claim { handle })
}

/// Creates a session on `model` and writes it to `*out` (NULL there on failure). The session
/// keeps the model alive: `ctr_edge_model_free` may come before `ctr_edge_session_free`.
///
/// # Safety
/// `model` is NULL or a live model; `out` is NULL or valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_session_new(
    model: *const ctr_edge_model,
    out: *mut *mut ctr_edge_session,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_session_new";
    let body = || {
        // SAFETY: forwarded contract (NULL or live).
        unsafe { model_ref(F, model) }?;
        // SAFETY: `model` is a live `Arc::into_raw` pointer (see `model.rs`); we take one more
        // strong reference for the session to own.
        let owner = unsafe {
            Arc::increment_strong_count(model);
            Arc::from_raw(model)
        };
        // SAFETY: the handle lives in the Arc's heap allocation, which never moves and is not
        // freed while `owner` (stored in the session handle below) holds its reference; the
        // handle's `session` field, the only holder of this reference, is dropped before its
        // `model` field. So the reference is valid for as long as it is used.
        let pinned: *const Model<'static> = &owner.model;
        let model_ref: &'static Model<'static> = unsafe { &*pinned };
        let handle = Box::new(ctr_edge_session {
            busy: AtomicBool::new(false),
            state: UnsafeCell::new(SessionState {
                session: model_ref.session(),
                has_result: false,
            }),
            model: owner,
        });
        Ok(Box::into_raw(handle))
    };
    // SAFETY: `out` is NULL or valid for a pointer write by contract.
    unsafe { construct(F, out, body) }
}

/// Frees a session (and its reference to the model). NULL is ignored; freeing the same pointer
/// twice is undefined behaviour.
///
/// # Safety
/// `session` is NULL or a pointer from `ctr_edge_session_new` not freed before, not in use on
/// another thread.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_session_free(session: *mut ctr_edge_session) {
    guard_free(session, |session| {
        // SAFETY: a pointer from `Box::into_raw` in `ctr_edge_session_new`, given back once.
        drop(unsafe { Box::from_raw(session) });
    });
}

/// Scores one batch: runs the model on `n_inputs` inputs (every model input, by name, in any
/// order, each once: a name given twice is `CTR_EDGE_STATUS_INPUT_MISMATCH`) and copies output `output_index` (usually 0: the click probabilities, one per
/// candidate) into `out`, `out_len` floats. `*out_written` receives the output's value count.
///
/// When `out_len` is smaller than that count the call returns `CTR_EDGE_STATUS_BUFFER_TOO_SMALL`,
/// writes nothing to `out`, and still sets `*out_written` to the count needed; the run's outputs
/// stay readable with `ctr_edge_session_output`. On any other error `*out_written` is 0.
/// `out` may be NULL when `out_len` is 0 and must not overlap the input data.
///
/// After the first run at a given set of input shapes, runs at those shapes do not allocate.
///
/// A call while another thread's call on the same session is running returns
/// `CTR_EDGE_STATUS_BUSY` and changes nothing (the other call's result stands).
///
/// # Safety
/// `session` is NULL or a live session; `inputs` is NULL
/// or `n_inputs` valid `ctr_edge_input`s whose pointers are valid as documented there; `out` is
/// NULL or valid for `out_len` floats; `out_written` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_session_run(
    session: *mut ctr_edge_session,
    inputs: *const ctr_edge_input,
    n_inputs: usize,
    output_index: usize,
    out: *mut f32,
    out_len: usize,
    out_written: *mut usize,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_session_run";
    guard(F, || {
        // SAFETY: `out_written` is NULL or valid for a write by contract.
        unsafe { check_output_args(F, session, out, out_len, out_written) }?;
        // SAFETY: checked non-NULL; a live session by contract (shared: its state is reached
        // through the claim below).
        let handle = unsafe { &*session };
        if inputs.is_null() && n_inputs != 0 {
            return Err(FfiError::null(F, "inputs"));
        }
        if n_inputs > CTR_EDGE_MAX_INPUTS {
            return Err(FfiError::invalid(
                F,
                format!("n_inputs {n_inputs} exceeds CTR_EDGE_MAX_INPUTS ({CTR_EDGE_MAX_INPUTS})"),
            ));
        }
        check_output_index(F, handle, output_index)?;
        let c_inputs: &[ctr_edge_input] = if n_inputs == 0 {
            &[]
        } else {
            // SAFETY: non-NULL and valid for `n_inputs` elements by contract.
            unsafe { core::slice::from_raw_parts(inputs, n_inputs) }
        };
        const EMPTY: Input<'static> = Input {
            name: "",
            shape: &[],
            data: InputData::F32(&[]),
        };
        let mut given = [EMPTY; CTR_EDGE_MAX_INPUTS];
        for (i, (slot, c)) in given.iter_mut().zip(c_inputs).enumerate() {
            // SAFETY: the pointers inside `c` are valid as documented, by contract.
            *slot = unsafe { convert_input(F, i, c) }?;
        }
        let mut claim = claim(F, handle)?;
        let state = claim.state();
        state.has_result = false;
        state
            .session
            .run(&given[..n_inputs])
            .map_err(|e| FfiError::runtime(F, &e))?;
        state.has_result = true;
        // SAFETY: `out` valid for `out_len` floats and `out_written` for a write, by contract.
        unsafe { copy_output(F, handle, state, output_index, out, out_len, out_written) }
    })
}

/// Copies output `output_index` of the session's last successful run into `out` (`out_len`
/// floats) and its value count into `*out_written`, with the same buffer rules as
/// `ctr_edge_session_run`. For models with several outputs.
///
/// # Safety
/// `session` is NULL or a live session; `out` is NULL or valid for `out_len` floats;
/// `out_written` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_session_output(
    session: *const ctr_edge_session,
    output_index: usize,
    out: *mut f32,
    out_len: usize,
    out_written: *mut usize,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_session_output";
    guard(F, || {
        // SAFETY: `out_written` is NULL or valid for a write by contract.
        unsafe { check_output_args(F, session, out, out_len, out_written) }?;
        // SAFETY: checked non-NULL; a live session by contract.
        let handle = unsafe { &*session };
        check_output_index(F, handle, output_index)?;
        let mut claim = claim(F, handle)?;
        // SAFETY: forwarded contract.
        unsafe {
            copy_output(
                F,
                handle,
                claim.state(),
                output_index,
                out,
                out_len,
                out_written,
            )
        }
    })
}

/// Writes the shape of output `output_index` of the last successful run: its rank to `*rank`
/// and, when `dims_len >= rank`, its dimensions to `dims` (otherwise
/// `CTR_EDGE_STATUS_BUFFER_TOO_SMALL` and nothing written to `dims`). `dims` may be NULL when
/// `dims_len` is 0 (to ask for the rank).
///
/// # Safety
/// `session` is NULL or a live session; `dims` is NULL or valid for `dims_len` values; `rank` is
/// NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_session_output_shape(
    session: *const ctr_edge_session,
    output_index: usize,
    dims: *mut usize,
    dims_len: usize,
    rank: *mut usize,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_session_output_shape";
    guard(F, || {
        // SAFETY: `rank` is NULL or valid for a write by contract.
        unsafe { check_reader(F, session, (rank, "rank"), (dims, dims_len, "dims")) }?;
        // SAFETY: checked non-NULL; a live session by contract.
        let handle = unsafe { &*session };
        check_output_index(F, handle, output_index)?;
        let mut claim = claim(F, handle)?;
        let view = result_of(F, handle, claim.state(), output_index)?;
        // SAFETY: checked non-NULL above.
        unsafe { rank.write(view.shape.len()) };
        if view.shape.len() > dims_len {
            return Err(FfiError::new(
                ctr_edge_status::BufferTooSmall,
                format!(
                    "{F}: output '{}' has rank {}, dims holds {dims_len}",
                    view.name,
                    view.shape.len()
                ),
            ));
        }
        if !view.shape.is_empty() {
            // SAFETY: `dims` is non-NULL (dims_len >= rank > 0) and valid for `dims_len >= rank`
            // values by contract; the source is the session's own memory, so no overlap.
            unsafe { core::ptr::copy_nonoverlapping(view.shape.as_ptr(), dims, view.shape.len()) };
        }
        Ok(())
    })
}

/// The checks the result readers start with, in this order (the first failing argument is
/// the one reported): the count out-parameter `count` is not NULL, and is set to 0 at once;
/// `session` is not NULL; the buffer `buf` is not NULL unless its length is 0.
///
/// # Safety
/// `count.0` is NULL or valid for a write.
unsafe fn check_reader<T>(
    function: &str,
    session: *const ctr_edge_session,
    (count, count_name): (*mut usize, &str),
    (buf, buf_len, buf_name): (*mut T, usize, &str),
) -> FfiResult {
    if count.is_null() {
        return Err(FfiError::null(function, count_name));
    }
    // SAFETY: checked non-NULL; valid for a write by contract.
    unsafe { count.write(0) };
    if session.is_null() {
        return Err(FfiError::null(function, "session"));
    }
    if buf.is_null() && buf_len != 0 {
        return Err(FfiError::null(function, buf_name));
    }
    Ok(())
}

/// [`check_reader`] of the output readers: `out_written`, `session`, `out` (`out_len` floats).
///
/// # Safety
/// `out_written` is NULL or valid for a write.
unsafe fn check_output_args(
    function: &str,
    session: *const ctr_edge_session,
    out: *mut f32,
    out_len: usize,
    out_written: *mut usize,
) -> FfiResult {
    let count = (out_written, "out_written");
    // SAFETY: forwarded contract.
    unsafe { check_reader(function, session, count, (out, out_len, "out")) }
}

fn check_output_index(function: &str, handle: &ctr_edge_session, index: usize) -> FfiResult {
    let count = handle.model.model.outputs().len();
    if index >= count {
        return Err(FfiError::new(
            ctr_edge_status::IndexOutOfRange,
            format!(
                "{function}: output index {index} is out of range (the model has {count} outputs)"
            ),
        ));
    }
    Ok(())
}

/// Output `index` of the last successful run.
fn result_of<'s>(
    function: &str,
    handle: &ctr_edge_session,
    state: &'s SessionState,
    index: usize,
) -> FfiResult<ctr_edge_runtime::session::OutputView<'s>> {
    if !state.has_result {
        return Err(FfiError::new(
            ctr_edge_status::NoResult,
            format!("{function}: the session has no result: no successful ctr_edge_session_run since it was created or since its last failed run"),
        ));
    }
    state.session.output(index).ok_or_else(|| {
        let name = handle
            .model
            .model
            .outputs()
            .get(index)
            .map_or("?", |o| o.name.as_str());
        FfiError::new(
            ctr_edge_status::Unsupported,
            format!("{function}: output {index} ('{name}') is not f32; the C API reads f32 outputs only"),
        )
    })
}

/// # Safety
/// `out` is valid for `out_len` floats (non-NULL when `out_len > 0`); `out_written` is non-NULL
/// and valid for a write.
unsafe fn copy_output(
    function: &str,
    handle: &ctr_edge_session,
    state: &SessionState,
    index: usize,
    out: *mut f32,
    out_len: usize,
    out_written: *mut usize,
) -> FfiResult {
    let view = result_of(function, handle, state, index)?;
    let n = view.data.len();
    // SAFETY: non-NULL and valid by contract.
    unsafe { out_written.write(n) };
    if n > out_len {
        return Err(FfiError::new(
            ctr_edge_status::BufferTooSmall,
            format!(
                "{function}: output '{}' {:?} has {n} values, the buffer holds {out_len}",
                view.name, view.shape
            ),
        ));
    }
    if n > 0 {
        // SAFETY: `out` is non-NULL (out_len >= n > 0) and valid for `out_len >= n` floats by
        // contract; the source is the session's own scratch memory, which C cannot reach.
        unsafe { core::ptr::copy_nonoverlapping(view.data.as_ptr(), out, n) };
    }
    Ok(())
}

/// The runtime's view of C input `i`.
///
/// # Safety
/// The pointers in `c` are valid as documented on [`ctr_edge_input`] for `'a`.
unsafe fn convert_input<'a>(
    function: &str,
    i: usize,
    c: &'a ctr_edge_input,
) -> FfiResult<Input<'a>> {
    if c.name.is_null() {
        return Err(FfiError::null(function, &format!("inputs[{i}].name")));
    }
    // SAFETY: non-NULL and NUL-terminated by contract.
    let name = unsafe { CStr::from_ptr(c.name) }
        .to_str()
        .map_err(|_| FfiError::invalid(function, format!("inputs[{i}].name is not UTF-8")))?;
    let shape: &[usize] = if c.rank == 0 {
        &[]
    } else if c.shape.is_null() {
        return Err(FfiError::null(function, &format!("inputs[{i}].shape")));
    } else if c.rank > isize::MAX as usize / size_of::<usize>() {
        return Err(FfiError::invalid(
            function,
            format!("inputs[{i}] ('{name}'): rank {} is too large", c.rank),
        ));
    } else {
        // SAFETY: non-NULL, valid for `rank` values by contract; size checked above.
        unsafe { core::slice::from_raw_parts(c.shape, c.rank) }
    };
    let dtype = ctr_edge_dtype::from_code(c.dtype).ok_or_else(|| {
        FfiError::invalid(
            function,
            format!("inputs[{i}] ('{name}'): unknown dtype code {}", c.dtype),
        )
    })?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            FfiError::invalid(
                function,
                format!("inputs[{i}] ('{name}'): shape {shape:?} overflows"),
            )
        })?;
    // SAFETY (both calls): `c.data` is valid for `count` values of the dtype by contract.
    let data = match dtype {
        ctr_edge_dtype::F32 => InputData::F32(unsafe { values(function, i, name, c.data, count) }?),
        ctr_edge_dtype::I64 => InputData::I64(unsafe { values(function, i, name, c.data, count) }?),
        ctr_edge_dtype::I32 => InputData::I32(unsafe { values(function, i, name, c.data, count) }?),
        ctr_edge_dtype::F16 | ctr_edge_dtype::Bool => {
            return Err(FfiError::new(
                ctr_edge_status::Unsupported,
                format!("inputs[{i}] ('{name}'): dtype code {} is not accepted as an input (use F32, I64 or I32)", c.dtype),
            ))
        }
    };
    Ok(Input { name, shape, data })
}

/// `count` values of `T` at `data`, checked for NULL, alignment and size.
///
/// # Safety
/// `data` is NULL or valid for `count` values of `T` for `'a`.
unsafe fn values<'a, T>(
    function: &str,
    i: usize,
    name: &str,
    data: *const c_void,
    count: usize,
) -> FfiResult<&'a [T]> {
    if count == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(FfiError::null(function, &format!("inputs[{i}].data")));
    }
    if !data.cast::<T>().is_aligned() {
        return Err(FfiError::invalid(
            function,
            format!(
                "inputs[{i}] ('{name}'): data is not aligned to {} bytes",
                align_of::<T>()
            ),
        ));
    }
    if count > isize::MAX as usize / size_of::<T>() {
        return Err(FfiError::invalid(
            function,
            format!("inputs[{i}] ('{name}'): {count} values are too many"),
        ));
    }
    // SAFETY: non-NULL, aligned, size within isize::MAX, valid for `count` values by contract.
    Ok(unsafe { core::slice::from_raw_parts(data.cast::<T>(), count) })
}

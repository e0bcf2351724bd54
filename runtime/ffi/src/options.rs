//! Open options in C form: the resource limits a model is held to and how its weights file is
//! checked (the runtime's `OpenOptions`). Fill one with [`ctr_edge_open_options_init`] (the
//! defaults), change fields, pass it to `ctr_edge_model_open_with_options` or
//! `ctr_edge_model_open_bytes_with_options`; the plain openers use the defaults.

use alloc::format;

use ctr_edge_runtime::{Limits, OpenOptions, Verify};

use crate::error::{ctr_edge_status, FfiError, FfiResult};
use crate::panic::guard;

/// No check of the weights file against the model's recorded checksum.
pub const CTR_EDGE_VERIFY_NONE: u32 = 0;
/// The default: the file's size and a hash of sampled blocks (cheap at any size).
pub const CTR_EDGE_VERIFY_IDENTITY: u32 = 1;
/// A hash of every byte of the weights file (reads it once).
pub const CTR_EDGE_VERIFY_FULL: u32 = 2;

/// Options of the `*_with_options` openers. Initialize with `ctr_edge_open_options_init`,
/// which also sets `struct_size` (so that a later library with more fields still reads this
/// one right); `SIZE_MAX` in a limit means no cap.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ctr_edge_open_options {
    /// `sizeof(ctr_edge_open_options)`, set by `ctr_edge_open_options_init`.
    pub struct_size: usize,
    /// `CTR_EDGE_VERIFY_NONE`, `CTR_EDGE_VERIFY_IDENTITY` (default) or `CTR_EDGE_VERIFY_FULL`.
    pub verify: u32,
    /// Most nodes in the graph (default 100,000).
    pub max_nodes: usize,
    /// Longest chain of nodes from an input or constant to an output (default 10,000).
    pub max_depth: usize,
    /// Most bytes of constants computed at load or plan time, all together (default 64 MiB).
    pub max_folded_bytes: usize,
    /// Most bytes of scratch memory one plan (one batch size) may allocate (default 1 GiB).
    pub max_scratch_bytes: usize,
}

impl ctr_edge_open_options {
    /// The defaults (the runtime's `OpenOptions::default()`).
    pub fn defaults() -> Self {
        let limits = Limits::DEFAULT;
        ctr_edge_open_options {
            struct_size: size_of::<ctr_edge_open_options>(),
            verify: CTR_EDGE_VERIFY_IDENTITY,
            max_nodes: limits.max_nodes,
            max_depth: limits.max_depth,
            max_folded_bytes: limits.max_folded_bytes,
            max_scratch_bytes: limits.max_scratch_bytes,
        }
    }
}

/// Writes the default options to `*options`.
///
/// # Safety
/// `options` is NULL or valid for writing one `ctr_edge_open_options`.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_open_options_init(
    options: *mut ctr_edge_open_options,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_open_options_init";
    guard(F, || {
        if options.is_null() {
            return Err(FfiError::null(F, "options"));
        }
        // SAFETY: non-NULL and valid for a write by contract.
        unsafe { options.write(ctr_edge_open_options::defaults()) };
        Ok(())
    })
}

/// The runtime's options from `options` (NULL: the defaults), checked.
///
/// # Safety
/// `options` is NULL or valid for reading one `ctr_edge_open_options`.
pub(crate) unsafe fn read_options(
    function: &str,
    options: *const ctr_edge_open_options,
) -> FfiResult<OpenOptions> {
    if options.is_null() {
        return Ok(OpenOptions::default());
    }
    // SAFETY: non-NULL and valid for a read by contract.
    let o = unsafe { options.read() };
    if o.struct_size != size_of::<ctr_edge_open_options>() {
        return Err(FfiError::invalid(
            function,
            format!(
                "options->struct_size is {}, this library's ctr_edge_open_options has {} bytes (initialize it with ctr_edge_open_options_init)",
                o.struct_size,
                size_of::<ctr_edge_open_options>()
            ),
        ));
    }
    let verify = match o.verify {
        CTR_EDGE_VERIFY_NONE => Verify::None,
        CTR_EDGE_VERIFY_IDENTITY => Verify::Identity,
        CTR_EDGE_VERIFY_FULL => Verify::Full,
        other => {
            return Err(FfiError::invalid(
                function,
                format!("options->verify is {other} (expected CTR_EDGE_VERIFY_NONE 0, _IDENTITY 1 or _FULL 2)"),
            ))
        }
    };
    let mut limits = Limits::DEFAULT;
    limits.max_nodes = o.max_nodes;
    limits.max_depth = o.max_depth;
    limits.max_folded_bytes = o.max_folded_bytes;
    limits.max_scratch_bytes = o.max_scratch_bytes;
    Ok(OpenOptions::new().limits(limits).verify(verify))
}

//! The model handle: opening (from a path or from byte ranges of an open file, memory-mapped
//! with the C library's `mmap`, or from caller-owned bytes), describing inputs and outputs,
//! freeing.
//!
//! A `ctr_edge_model*` is `Arc::into_raw` of the handle: `ctr_edge_model_free` releases the
//! caller's reference, each session holds another, and the model is dropped with the last one.
//! Names and dimensions are converted to C form once at open, so the pointers that
//! [`ctr_edge_model_input_info`] hands out stay valid as long as the model.

use alloc::ffi::CString;
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, CStr};
use core::ops::Range;

use ctr_edge_runtime::model::IoInfo;
use ctr_edge_runtime::{DType, Error, KernelVariant, Model};

use crate::error::{construct, ctr_edge_status, FfiError, FfiResult};
use crate::options::{ctr_edge_open_options, read_options};
use crate::panic::{guard, guard_free};
use crate::sys::{regular_file_size, release_pages, sibling, FileMap};

/// Element types, numbered as ONNX `TensorProto.DataType` (stable, never renumbered).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ctr_edge_dtype {
    /// 32-bit float (`float`).
    F32 = 1,
    /// 32-bit signed integer (`int32_t`).
    I32 = 6,
    /// 64-bit signed integer (`int64_t`).
    I64 = 7,
    /// Boolean, one byte per value (reported, not accepted as an input).
    Bool = 9,
    /// 16-bit IEEE float (reported, not accepted as an input).
    F16 = 10,
}

impl ctr_edge_dtype {
    /// The C code of a runtime dtype.
    pub fn of(dtype: DType) -> ctr_edge_dtype {
        match dtype {
            DType::F32 => ctr_edge_dtype::F32,
            DType::F16 => ctr_edge_dtype::F16,
            DType::I64 => ctr_edge_dtype::I64,
            DType::I32 => ctr_edge_dtype::I32,
            DType::Bool => ctr_edge_dtype::Bool,
        }
    }

    /// The dtype a C code names, if any.
    pub fn from_code(code: u32) -> Option<ctr_edge_dtype> {
        [
            ctr_edge_dtype::F32,
            ctr_edge_dtype::I32,
            ctr_edge_dtype::I64,
            ctr_edge_dtype::Bool,
            ctr_edge_dtype::F16,
        ]
        .into_iter()
        .find(|d| *d as u32 == code)
    }
}

/// Description of one model input or output. Every pointer is owned by the model and stays
/// valid until the model is released (by `ctr_edge_model_free` and the free of its last
/// session).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ctr_edge_io_info {
    /// Name in the graph, NUL-terminated UTF-8 (pass it as `ctr_edge_input.name`).
    pub name: *const c_char,
    /// Element type: a `ctr_edge_dtype` value.
    pub dtype: u32,
    /// Number of dimensions.
    pub rank: usize,
    /// `rank` dimensions; -1 marks the symbolic batch dimension (any size).
    pub dims: *const i64,
}

/// One input or output in C form.
struct IoEntry {
    name: CString,
    dtype: ctr_edge_dtype,
    dims: Vec<i64>,
}

impl IoEntry {
    fn new(info: &IoInfo) -> FfiResult<IoEntry> {
        let name = CString::new(info.name.as_str()).map_err(|_| {
            FfiError::new(
                ctr_edge_status::InvalidModel,
                format!("value name {:?} contains a NUL byte", info.name),
            )
        })?;
        let dims = info
            .shape
            .iter()
            .map(|d| d.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX)))
            .collect();
        Ok(IoEntry {
            name,
            dtype: ctr_edge_dtype::of(info.dtype),
            dims,
        })
    }

    fn info(&self) -> ctr_edge_io_info {
        ctr_edge_io_info {
            name: self.name.as_ptr(),
            dtype: self.dtype as u32,
            rank: self.dims.len(),
            dims: self.dims.as_ptr(),
        }
    }
}

/// A loaded model (opaque). Immutable: share it between threads freely.
pub struct ctr_edge_model {
    /// `'static` stands for "as long as this handle": either the weights are memory-mapped
    /// (owned by the model), or they are the caller's bytes, which the caller promised to keep alive and
    /// unchanged until the model is released (see `ctr_edge_model_open_bytes`).
    pub(crate) model: Model<'static>,
    inputs: Vec<IoEntry>,
    outputs: Vec<IoEntry>,
}

impl ctr_edge_model {
    fn new(model: Model<'static>) -> FfiResult<ctr_edge_model> {
        let inputs = model
            .inputs()
            .iter()
            .map(IoEntry::new)
            .collect::<FfiResult<_>>()?;
        let outputs = model
            .outputs()
            .iter()
            .map(IoEntry::new)
            .collect::<FfiResult<_>>()?;
        Ok(ctr_edge_model {
            model,
            inputs,
            outputs,
        })
    }
}

/// The handle behind `model`, or a NULL-argument error naming `function`.
///
/// # Safety
/// `model` is NULL or a live pointer from `ctr_edge_model_open*`.
pub(crate) unsafe fn model_ref<'a>(
    function: &str,
    model: *const ctr_edge_model,
) -> FfiResult<&'a ctr_edge_model> {
    // SAFETY: the caller guarantees a live handle or NULL; `as_ref` maps NULL to `None`.
    unsafe { model.as_ref() }.ok_or_else(|| FfiError::null(function, "model"))
}

/// A new handle for `model` (the pointer `ctr_edge_model_free` takes).
fn publish(
    model: ctr_edge_runtime::Result<Model<'static>>,
    function: &str,
) -> FfiResult<*mut ctr_edge_model> {
    let model = model.map_err(|e| FfiError::runtime(function, &e))?;
    Ok(Arc::into_raw(Arc::new(ctr_edge_model::new(model)?)).cast_mut())
}

/// Opens `onnx_path` (NUL-terminated bytes, as `open` takes them) and memory-maps the weights
/// file its external data names, relative to the model's folder (no copy of the weights). On
/// success writes a new model to `*out` (free it with `ctr_edge_model_free`); on failure writes
/// NULL there (when `out` is not NULL).
///
/// The weights file must not be modified or truncated while the model is alive (artifacts
/// written by `ctr-edge compress` are replaced atomically, never rewritten in place).
///
/// # Safety
/// `onnx_path` is NULL or a NUL-terminated string; `out` is NULL or valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_open(
    onnx_path: *const c_char,
    out: *mut *mut ctr_edge_model,
) -> ctr_edge_status {
    // SAFETY: forwarded contract; NULL options are the defaults.
    unsafe { open_path_entry("ctr_edge_model_open", onnx_path, core::ptr::null(), out) }
}

/// `ctr_edge_model_open` with `options` (resource limits, weights check; NULL: the defaults,
/// as `ctr_edge_model_open`). A model over a limit is `CTR_EDGE_STATUS_RESOURCE_LIMIT`, with a
/// message naming the node, the size asked for and the limit.
///
/// # Safety
/// `onnx_path` is NULL or a NUL-terminated string; `options` is NULL or valid for reading one
/// `ctr_edge_open_options`; `out` is NULL or valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_open_with_options(
    onnx_path: *const c_char,
    options: *const ctr_edge_open_options,
    out: *mut *mut ctr_edge_model,
) -> ctr_edge_status {
    // SAFETY: forwarded contract.
    unsafe { open_path_entry("ctr_edge_model_open_with_options", onnx_path, options, out) }
}

/// The body of both path openers.
///
/// # Safety
/// As [`ctr_edge_model_open_with_options`].
unsafe fn open_path_entry(
    function: &str,
    onnx_path: *const c_char,
    options: *const ctr_edge_open_options,
    out: *mut *mut ctr_edge_model,
) -> ctr_edge_status {
    let body = || {
        if onnx_path.is_null() {
            return Err(FfiError::null(function, "onnx_path"));
        }
        // SAFETY: NULL or valid for a read by contract.
        let options = unsafe { read_options(function, options) }?;
        // SAFETY: non-NULL and NUL-terminated by contract.
        let path = unsafe { CStr::from_ptr(onnx_path) };
        publish(open_path(path, &options), function)
    };
    // SAFETY: `out` is NULL or valid for a pointer write by contract.
    unsafe { construct(function, out, body) }
}

/// `Model::open` of the runtime's `std` build, on the C library: [`Model::open_with`] over
/// the C library's `mmap` of the ONNX file (mapped while it is decoded) and of the weights
/// file (which stays mapped, owned by the model).
fn open_path(
    path: &CStr,
    options: &ctr_edge_runtime::OpenOptions,
) -> ctr_edge_runtime::Result<Model<'static>> {
    let onnx = FileMap::open(path)?;
    let mut mapped: Option<(*const u8, usize)> = None;
    let model = Model::open_with(
        onnx.bytes(),
        |location| {
            // The runtime checked `location` is a plain file name (no '/', no NUL).
            let weights_path = sibling(path, location).ok_or_else(|| Error::Weights {
                reason: format!("external data location {location:?} is not a file name"),
            })?;
            let map = FileMap::open(&weights_path)?;
            mapped = Some((map.pages().as_ptr(), map.pages().len()));
            Ok(map)
        },
        options,
    )?;
    if let Some((ptr, len)) = mapped {
        // SAFETY: the whole of the weights mapping, which `model` owns and keeps alive (moving
        // a `FileMap` does not move the mapping).
        unsafe { release_pages(core::slice::from_raw_parts(ptr, len)) };
    }
    Ok(model)
}

/// Opens an artifact whose two files lie inside one open file, as byte ranges: the usual case
/// of an Android app, whose `model.onnx` and `model.weights` are assets stored uncompressed
/// in its APK (`AssetManager.openFd` of each gives an `AssetFileDescriptor`: the APK's
/// descriptor, `getStartOffset()` and `getLength()`; both name the same file, so pass one
/// descriptor and the two ranges). `onnx_offset`/`onnx_len` locate the ONNX file (mapped
/// while it is decoded), `weights_offset`/`weights_len` its external weights file (mapped,
/// owned by the model, no copy; length 0 for a model without external data). `options` as
/// `ctr_edge_model_open_with_options` (NULL: the defaults). On success writes a new model to
/// `*out`; on failure writes NULL there.
///
/// The descriptor is not closed and not kept: the model holds its own mappings, so the caller
/// may close `fd` as soon as this returns. The bytes of both ranges must not be modified or
/// truncated while the model lives (an installed APK is not).
///
/// Errors: a negative `fd` is `CTR_EDGE_STATUS_INVALID_ARGUMENT`; a descriptor that is not
/// open, or not a regular file, `CTR_EDGE_STATUS_IO`; an empty ONNX range, a range past the
/// end of the file (or whose end overflows), overlapping ranges, an empty weights range for a
/// model with external data, or a weights offset that is not a multiple of 64 (the artifact's
/// tensor alignment: store the asset at a 64-byte-aligned offset) are
/// `CTR_EDGE_STATUS_INVALID_ARGUMENT` with a message naming the range and its offset; then the
/// statuses of `ctr_edge_model_open_with_options` (a weights range that is not the model's:
/// `CTR_EDGE_STATUS_WEIGHTS_MISMATCH`).
///
/// # Safety
/// `options` is NULL or valid for reading one `ctr_edge_open_options`; `out` is NULL or valid
/// for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_open_fd(
    fd: c_int,
    onnx_offset: u64,
    onnx_len: u64,
    weights_offset: u64,
    weights_len: u64,
    options: *const ctr_edge_open_options,
    out: *mut *mut ctr_edge_model,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_model_open_fd";
    let body = || {
        if fd < 0 {
            return Err(FfiError::invalid(
                F,
                format!("fd {fd} is not a file descriptor"),
            ));
        }
        // SAFETY: NULL or valid for a read by contract.
        let options = unsafe { read_options(F, options) }?;
        let name = format!("fd {fd}");
        let model = file_range(&name, "onnx", onnx_offset, onnx_len).and_then(|onnx| {
            let weights = file_range(&name, "weights", weights_offset, weights_len)?;
            open_fd(fd, &name, onnx, weights, &options)
        });
        publish(model, F)
    };
    // SAFETY: `out` is NULL or valid for a pointer write by contract.
    unsafe { construct(F, out, body) }
}

/// `offset..offset + len`, or the typed error of a range whose end overflows.
fn file_range(
    file: &str,
    range: &'static str,
    offset: u64,
    len: u64,
) -> ctr_edge_runtime::Result<Range<u64>> {
    let end = offset.checked_add(len).ok_or_else(|| Error::FileRange {
        file: file.into(),
        range,
        offset,
        len,
        reason: "offset + length overflows".into(),
    })?;
    Ok(offset..end)
}

/// `Model::open_file_ranges` of the runtime's `std` build, on the C library:
/// [`Model::open_ranges_with`] over the C library's `mmap` of each range.
fn open_fd(
    fd: c_int,
    name: &str,
    onnx: Range<u64>,
    weights: Range<u64>,
    options: &ctr_edge_runtime::OpenOptions,
) -> ctr_edge_runtime::Result<Model<'static>> {
    let size = regular_file_size(fd, name)?;
    let weights_range = weights.clone();
    let mut mapped: Option<(*const u8, usize)> = None;
    let model = Model::open_ranges_with(
        name,
        size,
        onnx,
        weights,
        |range| {
            let is_weights = range == weights_range;
            let map = FileMap::map_range(fd, name, range)?;
            if is_weights {
                mapped = Some((map.pages().as_ptr(), map.pages().len()));
            }
            Ok(map)
        },
        options,
    )?;
    if let Some((ptr, len)) = mapped {
        // SAFETY: the whole of the weights mapping, which `model` owns and keeps alive.
        unsafe { release_pages(core::slice::from_raw_parts(ptr, len)) };
    }
    Ok(model)
}

/// Loads a model from caller-owned bytes: the ONNX file (`onnx`, `onnx_len` bytes; read during
/// the call only) and the contents of its external weights file (`weights`, `weights_len`
/// bytes; NULL with length 0 for a model without external data).
///
/// Zero copy: the model views the weights buffer in place, so **the weights buffer must stay
/// alive and unchanged until the model is released** (`ctr_edge_model_free` and the free of its
/// last session). Tensors whose address in the buffer is not aligned for their type are copied
/// instead: give a buffer aligned to 64 bytes (as the exporter aligns tensors in the file) to
/// keep every tensor in place. On success writes a new model to `*out`; on failure writes NULL
/// there.
///
/// # Safety
/// `onnx` is NULL or valid for `onnx_len` bytes; `weights` is NULL or valid for `weights_len`
/// bytes for the model's whole life; `out` is NULL or valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_open_bytes(
    onnx: *const u8,
    onnx_len: usize,
    weights: *const u8,
    weights_len: usize,
    out: *mut *mut ctr_edge_model,
) -> ctr_edge_status {
    let f = "ctr_edge_model_open_bytes";
    let null = core::ptr::null();
    // SAFETY: forwarded contract; NULL options are the defaults.
    unsafe { open_bytes_entry(f, (onnx, onnx_len), (weights, weights_len), null, out) }
}

/// `ctr_edge_model_open_bytes` with `options` (resource limits, weights check; NULL: the
/// defaults, as `ctr_edge_model_open_bytes`).
///
/// # Safety
/// As `ctr_edge_model_open_bytes`; `options` is NULL or valid for reading one
/// `ctr_edge_open_options`.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_open_bytes_with_options(
    onnx: *const u8,
    onnx_len: usize,
    weights: *const u8,
    weights_len: usize,
    options: *const ctr_edge_open_options,
    out: *mut *mut ctr_edge_model,
) -> ctr_edge_status {
    let f = "ctr_edge_model_open_bytes_with_options";
    // SAFETY: forwarded contract.
    unsafe { open_bytes_entry(f, (onnx, onnx_len), (weights, weights_len), options, out) }
}

/// The body of both byte openers.
///
/// # Safety
/// As [`ctr_edge_model_open_bytes_with_options`].
unsafe fn open_bytes_entry(
    function: &str,
    (onnx, onnx_len): (*const u8, usize),
    (weights, weights_len): (*const u8, usize),
    options: *const ctr_edge_open_options,
    out: *mut *mut ctr_edge_model,
) -> ctr_edge_status {
    let body = || {
        if onnx.is_null() {
            return Err(FfiError::null(function, "onnx"));
        }
        if weights.is_null() && weights_len != 0 {
            return Err(FfiError::null(function, "weights"));
        }
        for (name, len) in [("onnx_len", onnx_len), ("weights_len", weights_len)] {
            if isize::try_from(len).is_err() {
                return Err(FfiError::invalid(
                    function,
                    format!("{name} {len} is too large"),
                ));
            }
        }
        // SAFETY: NULL or valid for a read by contract.
        let options = unsafe { read_options(function, options) }?;
        // SAFETY: non-NULL, valid for `onnx_len` bytes during this call by contract.
        let onnx = unsafe { core::slice::from_raw_parts(onnx, onnx_len) };
        let weights: &'static [u8] = if weights_len == 0 {
            &[]
        } else {
            // SAFETY: non-NULL and valid for `weights_len` bytes; the caller keeps the buffer
            // alive and unchanged while the model (which borrows it) lives, which is what the
            // `'static` here stands for: the slice never escapes the model's handle.
            unsafe { core::slice::from_raw_parts(weights, weights_len) }
        };
        publish(Model::from_bytes_with(onnx, weights, &options), function)
    };
    // SAFETY: `out` is NULL or valid for a pointer write by contract.
    unsafe { construct(function, out, body) }
}

/// Releases the caller's reference to `model`. Sessions created from it keep it alive until
/// they are freed. NULL is ignored; freeing the same pointer twice is undefined behaviour.
///
/// # Safety
/// `model` is NULL or a pointer from `ctr_edge_model_open*` not freed before.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_free(model: *mut ctr_edge_model) {
    guard_free(model, |model| {
        // SAFETY: a pointer from `Arc::into_raw` (in `publish`) whose reference the caller gives
        // back exactly once.
        drop(unsafe { Arc::from_raw(model.cast_const()) });
    });
}

/// Writes the number of model inputs to `*out`.
///
/// # Safety
/// `model` is NULL or a live model; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_input_count(
    model: *const ctr_edge_model,
    out: *mut usize,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_model_input_count";
    // SAFETY: forwarded contract.
    guard(F, || unsafe { count(F, model, out, |m| m.inputs.len()) })
}

/// Writes the number of model outputs to `*out`.
///
/// # Safety
/// `model` is NULL or a live model; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_output_count(
    model: *const ctr_edge_model,
    out: *mut usize,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_model_output_count";
    // SAFETY: forwarded contract.
    guard(F, || unsafe { count(F, model, out, |m| m.outputs.len()) })
}

/// # Safety
/// As for the count entry points.
unsafe fn count(
    function: &str,
    model: *const ctr_edge_model,
    out: *mut usize,
    get: impl FnOnce(&ctr_edge_model) -> usize,
) -> FfiResult {
    // SAFETY: forwarded contract.
    let m = unsafe { model_ref(function, model) }?;
    if out.is_null() {
        return Err(FfiError::null(function, "out"));
    }
    // SAFETY: checked non-NULL; valid for a write by contract.
    unsafe { out.write(get(m)) };
    Ok(())
}

/// Describes input `index` (0-based, below `ctr_edge_model_input_count`) in `*out`.
///
/// # Safety
/// `model` is NULL or a live model; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_input_info(
    model: *const ctr_edge_model,
    index: usize,
    out: *mut ctr_edge_io_info,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_model_input_info";
    // SAFETY: forwarded contract.
    guard(F, || unsafe { info(F, model, index, out, true) })
}

/// Describes output `index` (0-based, below `ctr_edge_model_output_count`) in `*out`.
///
/// # Safety
/// `model` is NULL or a live model; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_output_info(
    model: *const ctr_edge_model,
    index: usize,
    out: *mut ctr_edge_io_info,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_model_output_info";
    // SAFETY: forwarded contract.
    guard(F, || unsafe { info(F, model, index, out, false) })
}

/// # Safety
/// As for the info entry points.
unsafe fn info(
    function: &str,
    model: *const ctr_edge_model,
    index: usize,
    out: *mut ctr_edge_io_info,
    input: bool,
) -> FfiResult {
    // SAFETY: forwarded contract.
    let m = unsafe { model_ref(function, model) }?;
    if out.is_null() {
        return Err(FfiError::null(function, "out"));
    }
    let (list, kind) = if input {
        (&m.inputs, "input")
    } else {
        (&m.outputs, "output")
    };
    let entry = list.get(index).ok_or_else(|| {
        FfiError::new(
            ctr_edge_status::IndexOutOfRange,
            format!(
                "{function}: {kind} index {index} is out of range (the model has {} {kind}s)",
                list.len()
            ),
        )
    })?;
    // SAFETY: checked non-NULL; valid for a write by contract.
    unsafe { out.write(entry.info()) };
    Ok(())
}

/// Writes the name of the kernel family the model's sessions run (`"scalar"`, `"neon"`,
/// `"avx2+fma"`; a static string) to `*out`.
///
/// # Safety
/// `model` is NULL or a live model; `out` is NULL or valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn ctr_edge_model_kernel_variant(
    model: *const ctr_edge_model,
    out: *mut *const c_char,
) -> ctr_edge_status {
    const F: &str = "ctr_edge_model_kernel_variant";
    guard(F, || {
        // SAFETY: forwarded contract.
        let m = unsafe { model_ref(F, model) }?;
        if out.is_null() {
            return Err(FfiError::null(F, "out"));
        }
        let name: &'static CStr = match m.model.kernel_variant() {
            KernelVariant::Scalar => c"scalar",
            KernelVariant::Neon => c"neon",
            KernelVariant::Avx2Fma => c"avx2+fma",
        };
        // SAFETY: checked non-NULL; valid for a pointer write by contract.
        unsafe { out.write(name.as_ptr()) };
        Ok(())
    })
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    extern crate std;

    use super::*;
    use crate::tiny_model;

    #[test]
    fn open_views_the_weights_in_the_file_mapping() {
        let dir = tiny_model::temp_dir("model-unit");
        let path = tiny_model::write(&dir);
        let weights_path = dir.join(tiny_model::WEIGHTS_FILE);
        let c_path = CString::new(path.to_str().unwrap()).unwrap();
        let mut handle = core::ptr::null_mut();
        // SAFETY: a valid C string and out pointer.
        let status = unsafe { ctr_edge_model_open(c_path.as_ptr(), &mut handle) };
        assert_eq!(status, ctr_edge_status::Ok);
        // SAFETY: the live handle just opened.
        let model = unsafe { &(*handle).model };
        let w = model.initializer_f32("W").expect("W is an f32 initializer");
        assert_eq!(w, &tiny_model::W[..]);
        // Zero copy: W is read in place in the kernel's mapping of the weights file.
        let (start, end) = (w.as_ptr() as usize, w.as_ptr_range().end as usize);
        let ranges = tiny_model::mappings_of(&weights_path);
        assert!(
            ranges.iter().any(|&(a, b)| a <= start && end <= b),
            "W at {start:#x} is in no mapping of {} ({ranges:x?})",
            weights_path.display()
        );
        // SAFETY: freed once; the model was the only owner of the mapping.
        unsafe { ctr_edge_model_free(handle) };
        assert!(tiny_model::mappings_of(&weights_path).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

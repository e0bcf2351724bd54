//! From a decoded `TensorProto` to a [`ConstTensor`], checked against the weights file; and the
//! zero-copy views the model uses at run time.
//!
//! Rules (each one checked, each failure a typed error naming the tensor):
//! - the dtype is one the runtime computes with ([`DType::from_onnx`]); DOUBLE values are
//!   converted to f32 (copied);
//! - dims are >= 0, and the element count and byte size are computed with checked arithmetic
//!   and capped at [`MAX_TENSOR_BYTES`] (zero dims do not hide overflowing ones);
//! - `raw_data` and external data have exactly `numel * dtype size` bytes; typed data fields
//!   (`float_data`, `int32_data`, ...) have exactly `numel` values, of the field the dtype uses;
//! - external data names a plain relative file (no directory, no `..`), and `offset + length`
//!   lies inside the weights buffer; `length`, when given, equals the tensor's byte size;
//! - external data whose address is aligned for its dtype stays in the weights buffer
//!   ([`ConstData::Weights`], zero copy); misaligned data (the only case) is copied, with a
//!   warning; booleans must be 0 or 1.
//!
//! [`tensor_byte_len`] and [`external_bytes`] are the size and range rules alone, for other
//! readers of external data (the exporter's model loader).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use half::f16;

use super::types::{AttrValue, Graph, OnnxModel, TensorData, TensorProto};
use crate::error::{Error, Result};
use crate::tensor::{onnx_codes, ConstData, ConstTensor, DType, OwnedData};

/// Largest tensor the loader accepts, in bytes (1 TiB; on 32-bit targets `usize` is the
/// tighter limit).
pub const MAX_TENSOR_BYTES: u64 = 1 << 40;

fn invalid(tensor: &str, reason: impl fmt::Display) -> Error {
    Error::InvalidTensor {
        tensor: String::from(tensor),
        reason: format!("{reason}"),
    }
}

/// Checks the dims of `t`; returns the shape and the element count.
///
/// The product of the non-zero dims must fit the cap too, so that no later product over any
/// subset of the shape (strides, suffix sizes) can overflow even when another dim is 0.
fn checked_shape(name: &str, dims: &[i64], elem_size: usize) -> Result<(Vec<usize>, usize)> {
    let mut shape = Vec::with_capacity(dims.len());
    let mut volume: u64 = 1;
    let mut has_zero = false;
    for (axis, &d) in dims.iter().enumerate() {
        let d = u64::try_from(d)
            .map_err(|_| invalid(name, format_args!("dimension {axis} is negative ({d})")))?;
        has_zero |= d == 0;
        let too_big = || {
            invalid(
                name,
                format_args!("dims {dims:?} exceed the size limit of {MAX_TENSOR_BYTES} bytes"),
            )
        };
        volume = volume
            .checked_mul(d.max(1))
            .filter(|v| {
                v.checked_mul(elem_size as u64)
                    .is_some_and(|b| b <= MAX_TENSOR_BYTES)
            })
            .ok_or_else(too_big)?;
        // <= MAX_TENSOR_BYTES; may still exceed a 32-bit usize.
        let d = usize::try_from(d).map_err(|_| too_big())?;
        shape.push(d);
    }
    let numel = if has_zero { 0 } else { volume };
    let numel = usize::try_from(numel)
        .ok()
        .filter(|n| n.checked_mul(elem_size).is_some())
        .ok_or_else(|| {
            invalid(
                name,
                format_args!("{numel} elements do not fit this platform's address space"),
            )
        })?;
    Ok((shape, numel))
}

/// The byte size of a tensor of `dims` with elements of `elem_size` bytes, checked as
/// [`resolve_tensor`] checks it (dims >= 0, at most [`MAX_TENSOR_BYTES`], no overflow).
/// Errors name `tensor`.
pub fn tensor_byte_len(tensor: &str, dims: &[i64], elem_size: usize) -> Result<usize> {
    let (_, numel) = checked_shape(tensor, dims, elem_size)?;
    // Cannot overflow: checked_shape bounds numel * elem_size.
    Ok(numel.saturating_mul(elem_size))
}

/// Checks that an external data `location` is a plain file name next to the model: not
/// empty, not absolute, no directory separators, no `.`/`..`, no drive letters or NULs.
pub fn check_location(tensor: &str, location: &str) -> Result<()> {
    let reason = if location.is_empty() {
        Some("is empty")
    } else if location == "." || location == ".." {
        Some("is a directory")
    } else if location.contains(['/', '\\']) {
        Some("must be a plain file name (no directories, no absolute path)")
    } else if location.contains([':', '\0']) {
        Some("contains ':' or NUL")
    } else {
        None
    };
    match reason {
        Some(r) => Err(invalid(
            tensor,
            format_args!("external data location '{}' {r}", location.escape_debug()),
        )),
        None => Ok(()),
    }
}

/// Little-endian decoding of `bytes` (length already checked to be `numel * size`).
fn decode_le(tensor: &str, dtype: DType, bytes: &[u8]) -> Result<OwnedData> {
    fn chunks<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes.as_chunks::<N>().0.iter().map(|c| f(*c)).collect()
    }
    Ok(match dtype {
        DType::F32 => OwnedData::F32(chunks(bytes, f32::from_le_bytes)),
        DType::F16 => OwnedData::F16(chunks(bytes, |b| f16::from_bits(u16::from_le_bytes(b)))),
        DType::I64 => OwnedData::I64(chunks(bytes, i64::from_le_bytes)),
        DType::I32 => OwnedData::I32(chunks(bytes, i32::from_le_bytes)),
        DType::Bool => {
            check_bools(tensor, bytes.iter().map(|&b| i64::from(b)))?;
            OwnedData::Bool(bytes.iter().map(|&b| b == 1).collect())
        }
    })
}

/// Booleans must be stored as 0 or 1.
fn check_bools(tensor: &str, values: impl Iterator<Item = i64>) -> Result<()> {
    for (i, v) in values.enumerate() {
        if v != 0 && v != 1 {
            return Err(invalid(
                tensor,
                format_args!("boolean element {i} has value {v} (must be 0 or 1)"),
            ));
        }
    }
    Ok(())
}

fn f64s_to_f32(values: impl Iterator<Item = f64>) -> OwnedData {
    // Narrowing DOUBLE to the runtime's f32 (rounds to nearest; out of range becomes +-inf).
    OwnedData::F32(values.map(|v| v as f32).collect())
}

fn alignment(dtype: DType) -> usize {
    match dtype {
        DType::F32 => core::mem::align_of::<f32>(),
        DType::F16 => core::mem::align_of::<f16>(),
        DType::I64 => core::mem::align_of::<i64>(),
        DType::I32 => core::mem::align_of::<i32>(),
        DType::Bool => 1,
    }
}

fn count_check(tensor: &str, field: &str, got: usize, numel: usize) -> Result<()> {
    if got == numel {
        Ok(())
    } else {
        Err(invalid(
            tensor,
            format_args!("{field} has {got} values, the dims need {numel}"),
        ))
    }
}

/// Validates `t` against the weights buffer and returns the constant it defines.
///
/// External data stays in `weights` (as [`ConstData::Weights`]) when its address is aligned for
/// the dtype; everything else is decoded into [`OwnedData`]. `weights` is the whole external
/// weights file (empty when the model has none).
pub fn resolve_tensor(t: &TensorProto<'_>, weights: &[u8]) -> Result<ConstTensor> {
    let name = t.name;
    let is_double = t.data_type == onnx_codes::DOUBLE;
    let dtype = match DType::from_onnx(t.data_type) {
        Some(d) => d,
        None if is_double => DType::F32,
        None => {
            return Err(Error::UnsupportedDType {
                tensor: String::from(name),
                dtype: t.data_type,
            })
        }
    };
    // Size of one element as stored in the file.
    let stored_size = if is_double { 8 } else { dtype.size() };
    let (shape, numel) = checked_shape(name, &t.dims, stored_size)?;
    // Cannot overflow: checked_shape bounds numel * stored_size.
    let byte_len = numel.saturating_mul(stored_size);
    let type_name = crate::tensor::onnx_dtype_name(t.data_type);
    let wrong_field = |field: &str| {
        invalid(
            name,
            format_args!("{field} cannot hold values of data type {type_name}"),
        )
    };

    let data = match &t.data {
        TensorData::Raw(bytes) => {
            if bytes.len() != byte_len {
                return Err(invalid(
                    name,
                    format_args!(
                        "raw_data has {} bytes, the dims and data type need {byte_len} ({numel} x {stored_size})",
                        bytes.len()
                    ),
                ));
            }
            if is_double {
                f64s_to_f32(
                    bytes
                        .as_chunks::<8>()
                        .0
                        .iter()
                        .map(|c| f64::from_le_bytes(*c)),
                )
            } else {
                decode_le(name, dtype, bytes)?
            }
        }
        TensorData::External {
            location,
            offset,
            length,
        } => {
            let layout = Layout {
                dtype,
                shape,
                byte_len,
                is_double,
            };
            return resolve_external(name, (location, *offset, *length), layout, weights);
        }
        TensorData::Floats(v) => {
            if dtype != DType::F32 || is_double {
                return Err(wrong_field("float_data"));
            }
            count_check(name, "float_data", v.len(), numel)?;
            OwnedData::F32(v.clone())
        }
        TensorData::Int32s(v) => {
            count_check(name, "int32_data", v.len(), numel)?;
            match dtype {
                DType::I32 => OwnedData::I32(v.clone()),
                DType::F16 => {
                    let mut out = Vec::with_capacity(v.len());
                    for (i, &bits) in v.iter().enumerate() {
                        let bits = u16::try_from(bits).map_err(|_| {
                            invalid(
                                name,
                                format_args!(
                                    "int32_data element {i} ({bits}) is not a 16-bit FLOAT16 pattern"
                                ),
                            )
                        })?;
                        out.push(f16::from_bits(bits));
                    }
                    OwnedData::F16(out)
                }
                DType::Bool => {
                    check_bools(name, v.iter().map(|&b| i64::from(b)))?;
                    OwnedData::Bool(v.iter().map(|&b| b == 1).collect())
                }
                _ => return Err(wrong_field("int32_data")),
            }
        }
        TensorData::Int64s(v) => {
            if dtype != DType::I64 {
                return Err(wrong_field("int64_data"));
            }
            count_check(name, "int64_data", v.len(), numel)?;
            OwnedData::I64(v.clone())
        }
        TensorData::Doubles(v) => {
            if !is_double {
                return Err(wrong_field("double_data"));
            }
            count_check(name, "double_data", v.len(), numel)?;
            f64s_to_f32(v.iter().copied())
        }
        TensorData::Empty => {
            if numel != 0 {
                return Err(invalid(
                    name,
                    format_args!("has no data, the dims need {numel} values"),
                ));
            }
            decode_le(name, dtype, &[])?
        }
    };
    Ok(ConstTensor {
        dtype,
        shape,
        data: ConstData::Owned(data),
    })
}

/// A tensor's checked dtype and size.
struct Layout {
    /// The dtype the runtime keeps (F32 for DOUBLE).
    dtype: DType,
    shape: Vec<usize>,
    /// Size in the file: numel x stored element size.
    byte_len: usize,
    /// Stored as DOUBLE (8 bytes an element), converted to f32.
    is_double: bool,
}

/// External data `(location, offset, length)` against the weights buffer.
fn resolve_external(
    name: &str,
    (location, offset, length): (&str, u64, Option<u64>),
    layout: Layout,
    weights: &[u8],
) -> Result<ConstTensor> {
    let Layout {
        dtype,
        shape,
        byte_len,
        is_double,
    } = layout;
    check_location(name, location)?;
    let bytes = external_bytes(name, offset, length, byte_len, weights)?;
    // Fits: the range starting there lies inside the buffer.
    let start = offset as usize;
    if is_double {
        log::warn!("tensor '{name}': DOUBLE external data converted to f32 (copied)");
        let values = f64s_to_f32(
            bytes
                .as_chunks::<8>()
                .0
                .iter()
                .map(|c| f64::from_le_bytes(*c)),
        );
        return Ok(ConstTensor {
            dtype,
            shape,
            data: ConstData::Owned(values),
        });
    }
    if dtype == DType::Bool {
        check_bools(name, bytes.iter().map(|&b| i64::from(b)))?;
    }
    let align = alignment(dtype);
    // What counts is the address in memory: the weights buffer's base plus the offset.
    let aligned = (weights.as_ptr() as usize)
        .wrapping_add(start)
        .is_multiple_of(align);
    // In place only where the file's little-endian layout is the machine's.
    let data = if aligned && cfg!(target_endian = "little") {
        ConstData::Weights {
            offset: start,
            byte_len,
        }
    } else {
        log::warn!(
            "tensor '{name}': external data at offset {start} is not aligned for {} ({align} bytes); copying {byte_len} bytes",
            dtype.name()
        );
        ConstData::Owned(decode_le(name, dtype, bytes)?)
    };
    Ok(ConstTensor { dtype, shape, data })
}

/// The bytes of `file` (a whole weights file) that a tensor's external data `offset` and
/// `length` (when given) address, for a tensor of `byte_len` bytes (by its dims and data type,
/// [`tensor_byte_len`]): `length`, when given, must equal `byte_len`, and the range must lie
/// inside the file. Errors name `tensor`.
pub fn external_bytes<'f>(
    tensor: &str,
    offset: u64,
    length: Option<u64>,
    byte_len: usize,
    file: &'f [u8],
) -> Result<&'f [u8]> {
    // usize -> u64 never truncates on supported targets.
    let expected = byte_len as u64;
    let length = match length {
        Some(l) if l != expected => {
            return Err(invalid(
                tensor,
                format_args!(
                "external data length {l} does not match the dims and data type ({expected} bytes)"
            ),
            ))
        }
        _ => expected,
    };
    let file_len = file.len();
    offset
        .checked_add(length)
        .filter(|&end| end <= file_len as u64)
        .and_then(|_| usize::try_from(offset).ok())
        .and_then(|start| file.get(start..start.checked_add(byte_len)?))
        .ok_or_else(|| {
            invalid(
                tensor,
                format_args!(
                "external data offset {offset} + length {length} exceeds the weights file ({file_len} bytes)"
            ),
            )
        })
}

/// Resolves every initializer of `graph` (not those of subgraphs), in file order.
pub fn resolve_initializers<'a>(
    graph: &Graph<'a>,
    weights: &[u8],
) -> Result<Vec<(&'a str, ConstTensor)>> {
    graph
        .initializers
        .iter()
        .map(|t| Ok((t.name, resolve_tensor(t, weights)?)))
        .collect()
}

/// The one weights file that the external tensors of `m` use (`None` when no tensor is
/// external). Looks at initializers and tensor attributes, subgraphs included.
///
/// Errors when a location is not a plain relative file name, or when two tensors name
/// different files.
pub fn external_location<'a>(m: &OnnxModel<'a>) -> Result<Option<&'a str>> {
    let mut found = None;
    visit_external(&m.graph, &mut found)?;
    Ok(found.map(|(location, _)| location))
}

/// `found` is (location, first tensor naming it).
fn visit_external<'a>(g: &Graph<'a>, found: &mut Option<(&'a str, &'a str)>) -> Result<()> {
    fn check<'a>(t: &TensorProto<'a>, found: &mut Option<(&'a str, &'a str)>) -> Result<()> {
        let TensorData::External { location, .. } = t.data else {
            return Ok(());
        };
        check_location(t.name, location)?;
        match *found {
            None => *found = Some((location, t.name)),
            Some((first, first_tensor)) if first != location => {
                return Err(Error::Weights {
                    reason: format!(
                        "tensors '{first_tensor}' and '{}' name different weights files ('{first}' and '{location}'); one file is supported",
                        t.name
                    ),
                })
            }
            Some(_) => {}
        }
        Ok(())
    }
    for t in &g.initializers {
        check(t, found)?;
    }
    for node in &g.nodes {
        for a in &node.attributes {
            match &a.value {
                AttrValue::Tensor(t) => check(t, found)?,
                // Depth is bounded by the decoder (MAX_GRAPH_DEPTH).
                AttrValue::Graph(sub) => visit_external(sub, found)?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Views `byte_len` bytes at `offset` of `weights` as `&[T]`, without copying.
fn view<'w, T: bytemuck::Pod>(
    weights: &'w [u8],
    offset: usize,
    byte_len: usize,
    what: &str,
) -> Result<&'w [T]> {
    let bytes = offset
        .checked_add(byte_len)
        .and_then(|end| weights.get(offset..end))
        .ok_or_else(|| Error::Weights {
            reason: format!(
                "bytes {offset} + {byte_len} lie outside the weights buffer ({} bytes)",
                weights.len()
            ),
        })?;
    bytemuck::try_cast_slice(bytes).map_err(|e| Error::Weights {
        reason: format!("bytes {offset} + {byte_len} cannot be viewed as {what}: {e}"),
    })
}

/// The f32 values of a [`ConstData::Weights`] range, in place.
pub fn view_f32(weights: &[u8], offset: usize, byte_len: usize) -> Result<&[f32]> {
    view(weights, offset, byte_len, "f32")
}

/// The f16 values of a [`ConstData::Weights`] range, in place.
pub fn view_f16(weights: &[u8], offset: usize, byte_len: usize) -> Result<&[f16]> {
    view(weights, offset, byte_len, "f16")
}

/// The i64 values of a [`ConstData::Weights`] range, in place.
pub fn view_i64(weights: &[u8], offset: usize, byte_len: usize) -> Result<&[i64]> {
    view(weights, offset, byte_len, "i64")
}

/// The i32 values of a [`ConstData::Weights`] range, in place.
pub fn view_i32(weights: &[u8], offset: usize, byte_len: usize) -> Result<&[i32]> {
    view(weights, offset, byte_len, "i32")
}

/// The bytes of a boolean [`ConstData::Weights`] range (each 0 or 1, checked at load).
pub fn view_bool_bytes(weights: &[u8], offset: usize, byte_len: usize) -> Result<&[u8]> {
    view(weights, offset, byte_len, "bool bytes")
}

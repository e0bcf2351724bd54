//! NumPy `.npy` arrays and `.npz` archives (a zip of `.npy` members, stored or deflated): the
//! data format of every `ctr-edge` command.
//!
//! The reader follows the NumPy format spec (versions 1.0, 2.0 and 3.0) and checks every rule
//! it relies on: the magic string, a header that is a Python dict literal with exactly the
//! `descr`, `fortran_order` and `shape` it needs, a little-endian dtype among the six supported
//! ones, C order, an element count that does not overflow, and a data section of exactly the
//! announced size. Anything else is an [`Error::Npy`] naming the file and the array; a file is
//! never trusted to size an allocation before its bytes have been read.
//!
//! Writers produce version 1.0 headers (2.0 when the header outgrows 64 KiB) padded so the
//! data starts 64-byte aligned, like `numpy.save`, and write through a temporary file that is
//! renamed into place, so a crash never leaves a half-written file.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use half::f16;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::error::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Headers longer than this are rejected: a supported header is a few hundred bytes, and the
/// length field must not be able to drive a huge allocation.
const MAX_HEADER_LEN: usize = 1 << 20;
/// Data sections are read in steps no larger than this before the file proves it has them.
const MAX_UPFRONT_ALLOCATION: usize = 64 << 20;
/// `numpy.save` aligns the start of the data to this many bytes.
const HEADER_ALIGN: usize = 64;
/// Python-literal nesting accepted in a header (a shape tuple is depth 2).
const MAX_HEADER_DEPTH: usize = 4;

/// Element type of an array (always little-endian on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `<f4`
    F32,
    /// `<f8`
    F64,
    /// `<i8`
    I64,
    /// `<i4`
    I32,
    /// `|b1` (one byte, 0 or 1)
    Bool,
    /// `<f2`
    F16,
}

impl DType {
    /// All supported element types.
    pub const ALL: [DType; 6] = [
        DType::F32,
        DType::F64,
        DType::I64,
        DType::I32,
        DType::Bool,
        DType::F16,
    ];

    /// The NumPy `descr` string written in headers.
    pub fn descr(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::I64 => "<i8",
            DType::I32 => "<i4",
            DType::Bool => "|b1",
            DType::F16 => "<f2",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Bool => 1,
            DType::F16 => 2,
        }
    }

    /// Short name used in messages (`f32`, `i64`, `bool`...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::Bool => "bool",
            DType::F16 => "f16",
        }
    }

    /// Parse a NumPy `descr`. Single-byte types may use any byte-order character; `=` is
    /// accepted only on little-endian hosts, where it means `<`.
    fn from_descr(descr: &str) -> std::result::Result<DType, String> {
        let (order, code) = match descr.char_indices().nth(1) {
            Some((i, _)) => descr.split_at(i),
            None => ("", descr),
        };
        let dtype = match code {
            "f4" => DType::F32,
            "f8" => DType::F64,
            "i8" => DType::I64,
            "i4" => DType::I32,
            "b1" => DType::Bool,
            "f2" => DType::F16,
            _ => return Err(unsupported_descr(descr)),
        };
        let little = match order {
            "<" => true,
            "|" => dtype.size() == 1,
            "=" => cfg!(target_endian = "little"),
            ">" if dtype.size() == 1 => true,
            ">" => {
                return Err(format!(
                    "big-endian dtype '{descr}' is not supported (only little-endian data: \
                     convert with arr.astype('<{code}'))"
                ))
            }
            _ => return Err(unsupported_descr(descr)),
        };
        if !little {
            return Err(unsupported_descr(descr));
        }
        Ok(dtype)
    }
}

fn unsupported_descr(descr: &str) -> String {
    let supported: Vec<&str> = DType::ALL.iter().map(|d| d.descr()).collect();
    format!(
        "unsupported dtype '{descr}' (supported: {})",
        supported.join(", ")
    )
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Values of an array, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// `<f4`
    F32(Vec<f32>),
    /// `<f8`
    F64(Vec<f64>),
    /// `<i8`
    I64(Vec<i64>),
    /// `<i4`
    I32(Vec<i32>),
    /// `|b1`
    Bool(Vec<bool>),
    /// `<f2`
    F16(Vec<f16>),
}

impl ArrayData {
    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            ArrayData::F32(_) => DType::F32,
            ArrayData::F64(_) => DType::F64,
            ArrayData::I64(_) => DType::I64,
            ArrayData::I32(_) => DType::I32,
            ArrayData::Bool(_) => DType::Bool,
            ArrayData::F16(_) => DType::F16,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::Bool(v) => v.len(),
            ArrayData::F16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values converted to f64 (exact for every type but i64 beyond 2^53; bool -> 0/1).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            ArrayData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::F64(v) => v.clone(),
            ArrayData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ArrayData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            ArrayData::F16(v) => v.iter().map(|&x| f64::from(x)).collect(),
        }
    }

    /// A copy of the values `start..end` (flat positions), or `None` when out of range.
    pub fn slice(&self, start: usize, end: usize) -> Option<ArrayData> {
        Some(match self {
            ArrayData::F32(v) => ArrayData::F32(v.get(start..end)?.to_vec()),
            ArrayData::F64(v) => ArrayData::F64(v.get(start..end)?.to_vec()),
            ArrayData::I64(v) => ArrayData::I64(v.get(start..end)?.to_vec()),
            ArrayData::I32(v) => ArrayData::I32(v.get(start..end)?.to_vec()),
            ArrayData::Bool(v) => ArrayData::Bool(v.get(start..end)?.to_vec()),
            ArrayData::F16(v) => ArrayData::F16(v.get(start..end)?.to_vec()),
        })
    }

    /// Append `other`'s values; `false` (and nothing appended) when the types differ.
    pub fn extend_from(&mut self, other: &ArrayData) -> bool {
        match (self, other) {
            (ArrayData::F32(a), ArrayData::F32(b)) => a.extend_from_slice(b),
            (ArrayData::F64(a), ArrayData::F64(b)) => a.extend_from_slice(b),
            (ArrayData::I64(a), ArrayData::I64(b)) => a.extend_from_slice(b),
            (ArrayData::I32(a), ArrayData::I32(b)) => a.extend_from_slice(b),
            (ArrayData::Bool(a), ArrayData::Bool(b)) => a.extend_from_slice(b),
            (ArrayData::F16(a), ArrayData::F16(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }

    /// Decode little-endian bytes (exactly `len * dtype.size()` of them).
    fn from_le_bytes(dtype: DType, bytes: &[u8]) -> std::result::Result<ArrayData, String> {
        fn decode<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|c| {
                    let mut b = [0u8; N];
                    b.copy_from_slice(c);
                    f(b)
                })
                .collect()
        }
        Ok(match dtype {
            DType::F32 => ArrayData::F32(decode(bytes, f32::from_le_bytes)),
            DType::F64 => ArrayData::F64(decode(bytes, f64::from_le_bytes)),
            DType::I64 => ArrayData::I64(decode(bytes, i64::from_le_bytes)),
            DType::I32 => ArrayData::I32(decode(bytes, i32::from_le_bytes)),
            DType::F16 => ArrayData::F16(decode(bytes, |b| f16::from_bits(u16::from_le_bytes(b)))),
            DType::Bool => ArrayData::Bool(
                bytes
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| match b {
                        0 => Ok(false),
                        1 => Ok(true),
                        _ => Err(format!(
                            "bool value at flat position {i} is byte {b}, not 0 or 1"
                        )),
                    })
                    .collect::<std::result::Result<_, _>>()?,
            ),
        })
    }

    /// Write the values as little-endian bytes.
    fn write_le(&self, w: &mut impl Write) -> io::Result<()> {
        fn encode<T: Copy, const N: usize>(
            w: &mut impl Write,
            values: &[T],
            f: impl Fn(T) -> [u8; N],
        ) -> io::Result<()> {
            // Encode in chunks so a large array is not duplicated in memory.
            let mut buf = Vec::with_capacity(8192);
            for chunk in values.chunks(8192 / N) {
                buf.clear();
                for &v in chunk {
                    buf.extend_from_slice(&f(v));
                }
                w.write_all(&buf)?;
            }
            Ok(())
        }
        match self {
            ArrayData::F32(v) => encode(w, v, f32::to_le_bytes),
            ArrayData::F64(v) => encode(w, v, f64::to_le_bytes),
            ArrayData::I64(v) => encode(w, v, i64::to_le_bytes),
            ArrayData::I32(v) => encode(w, v, i32::to_le_bytes),
            ArrayData::Bool(v) => encode(w, v, |b: bool| [u8::from(b)]),
            ArrayData::F16(v) => encode(w, v, |x: f16| x.to_bits().to_le_bytes()),
        }
    }
}

/// One named array: a `.npy` file, or one member of a `.npz` archive.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Name: the `.npz` member without `.npy` (for a lone `.npy` file, the file stem).
    pub name: String,
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Values, row-major; `shape.iter().product()` of them.
    pub data: ArrayData,
}

impl NpyArray {
    /// A checked array: the values must fill the shape exactly.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: ArrayData) -> Result<NpyArray> {
        let array = NpyArray {
            name: name.into(),
            shape,
            data,
        };
        array.check()?;
        Ok(array)
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of rows (the first axis), `None` for a scalar.
    pub fn rows(&self) -> Option<usize> {
        self.shape.first().copied()
    }

    /// Values per row: the product of all axes but the first (1 for a scalar).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// `dtype [d0, d1, ...]`, as used in messages (e.g. `f32 [100, 9]`).
    pub fn describe(&self) -> String {
        format!("{} {}", self.dtype(), format_shape(&self.shape))
    }

    /// Rows `start..end` as a new array with the same name, or `None` when out of range.
    pub fn rows_slice(&self, start: usize, end: usize) -> Option<NpyArray> {
        let rows = self.rows()?;
        if start > end || end > rows {
            return None;
        }
        let row_len = self.row_len();
        let data = self
            .data
            .slice(start.checked_mul(row_len)?, end.checked_mul(row_len)?)?;
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Some(NpyArray {
            name: self.name.clone(),
            shape,
            data,
        })
    }

    /// Check that the shape and the number of values agree.
    pub fn check(&self) -> Result<()> {
        let count = element_count(&self.shape).ok_or_else(|| Error::InvalidArray {
            array: self.name.clone(),
            reason: format!(
                "shape {} overflows the number of elements",
                format_shape(&self.shape)
            ),
        })?;
        if count != self.data.len() {
            return Err(Error::InvalidArray {
                array: self.name.clone(),
                reason: format!(
                    "shape {} needs {count} values, the data has {}",
                    format_shape(&self.shape),
                    self.data.len()
                ),
            });
        }
        Ok(())
    }
}

/// `[d0, d1, ...]`.
pub fn format_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn npy_error(path: &Path, array: Option<&str>, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: path.to_path_buf(),
        array: array.map(str::to_owned),
        reason: reason.into(),
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read every array of a `.npz` archive, in file order, named after their members without
/// the `.npy` suffix.
pub fn read_npz(path: &Path) -> Result<Vec<NpyArray>> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut archive = ZipArchive::new(BufReader::new(file))
        .map_err(|e| npy_error(path, None, format!("not a valid .npz (zip) archive: {e}")))?;
    let mut arrays = Vec::new();
    let mut names = HashSet::new();
    for index in 0..archive.len() {
        let mut member = archive
            .by_index(index)
            .map_err(|e| npy_error(path, None, format!("zip member #{index}: {e}")))?;
        if member.is_dir() {
            continue;
        }
        let member_name = member.name().to_owned();
        let Some(name) = member_name.strip_suffix(".npy") else {
            return Err(npy_error(
                path,
                None,
                format!("member '{member_name}' is not a .npy array"),
            ));
        };
        if !names.insert(name.to_owned()) {
            return Err(npy_error(path, Some(name), "appears twice in the archive"));
        }
        let array = read_npy_from(&mut member, name, path)?;
        arrays.push(array);
    }
    Ok(arrays)
}

/// Read a lone `.npy` file; the array is named after the file stem.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let file = File::open(path).map_err(io_error(path))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    read_npy_from(&mut BufReader::new(file), &name, path)
}

/// Read one `.npy` stream. `name` and `path` only label errors.
fn read_npy_from(r: &mut impl Read, name: &str, path: &Path) -> Result<NpyArray> {
    let err = |reason: String| npy_error(path, Some(name), reason);
    let read_err = |what: &str, e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            err(format!("truncated {what}"))
        } else {
            err(format!("cannot read the {what}: {e}"))
        }
    };

    let mut prefix = [0u8; 8];
    r.read_exact(&mut prefix)
        .map_err(|e| read_err("header", e))?;
    if &prefix[..6] != MAGIC {
        return Err(err("not a .npy array (bad magic string)".into()));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let header_len = match (major, minor) {
        (1, 0) => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|e| read_err("header", e))?;
            usize::from(u16::from_le_bytes(b))
        }
        (2, 0) | (3, 0) => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|e| read_err("header", e))?;
            usize::try_from(u32::from_le_bytes(b)).unwrap_or(usize::MAX)
        }
        _ => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)"
            )))
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(err(format!(
            "header length {header_len} exceeds the limit of {MAX_HEADER_LEN} bytes"
        )));
    }
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header)
        .map_err(|e| read_err("header", e))?;
    // Version 1.0/2.0 headers are latin-1, 3.0 is UTF-8; a supported header is ASCII in all.
    let header = std::str::from_utf8(&header)
        .map_err(|_| err("header is not text (garbled file?)".into()))?;
    let header = parse_header(header).map_err(|reason| err(format!("header: {reason}")))?;

    let dtype = DType::from_descr(&header.descr).map_err(err)?;
    if header.fortran_order {
        return Err(err(
            "Fortran-ordered arrays are not supported (save a C-ordered copy: \
             np.ascontiguousarray(a))"
                .into(),
        ));
    }
    let shape = header.shape;
    let count = element_count(&shape)
        .ok_or_else(|| err(format!("shape {} is too large", format_shape(&shape))))?;
    let nbytes = count
        .checked_mul(dtype.size())
        .ok_or_else(|| err(format!("shape {} is too large", format_shape(&shape))))?;

    // Read at most the announced size; allocation grows with what the file really holds.
    let mut bytes = Vec::with_capacity(nbytes.min(MAX_UPFRONT_ALLOCATION));
    r.by_ref()
        .take(nbytes as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| read_err("data", e))?;
    if bytes.len() < nbytes {
        return Err(err(format!(
            "truncated data: the header announces {} {} [{count} values, {nbytes} bytes], \
             the file holds {} bytes",
            dtype,
            format_shape(&shape),
            bytes.len()
        )));
    }
    let mut extra = [0u8; 1];
    match r.read(&mut extra) {
        Ok(0) => {}
        Ok(_) => {
            return Err(err(format!(
                "unexpected bytes after the {nbytes} bytes of data announced by the header"
            )))
        }
        Err(e) => return Err(read_err("data", e)),
    }
    let data = ArrayData::from_le_bytes(dtype, &bytes).map_err(err)?;
    Ok(NpyArray {
        name: name.to_owned(),
        shape,
        data,
    })
}

/// The three header keys this reader uses.
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A Python literal as it may appear in a `.npy` header.
enum PyValue {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<PyValue>),
    /// `None` (valid in a header, used by no key this reader needs).
    NoneLiteral,
}

/// Parse the header dict, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(text: &str) -> std::result::Result<NpyHeader, String> {
    let mut p = LiteralParser {
        bytes: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    p.expect(b'{')?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = match p.value(0)? {
            PyValue::Str(key) => key,
            _ => return Err(format!("expected a string key at byte {}", p.pos)),
        };
        p.skip_ws();
        p.expect(b':')?;
        let value = p.value(0)?;
        let slot_taken = match key.as_str() {
            "descr" => match value {
                PyValue::Str(s) => descr.replace(s).is_some(),
                _ => {
                    return Err(
                        "structured dtypes are not supported ('descr' is not a string)".into(),
                    )
                }
            },
            "fortran_order" => match value {
                PyValue::Bool(b) => fortran_order.replace(b).is_some(),
                _ => return Err("'fortran_order' is not True or False".into()),
            },
            "shape" => match value {
                PyValue::Tuple(items) => {
                    let dims = items
                        .into_iter()
                        .map(|v| match v {
                            PyValue::Int(d) => usize::try_from(d)
                                .map_err(|_| format!("dimension {d} is too large")),
                            _ => Err("'shape' holds something other than integers".into()),
                        })
                        .collect::<std::result::Result<Vec<usize>, String>>()?;
                    shape.replace(dims).is_some()
                }
                _ => return Err("'shape' is not a tuple".into()),
            },
            // Unknown keys carry nothing this reader needs.
            _ => false,
        };
        if slot_taken {
            return Err(format!("key '{key}' appears twice"));
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.pos));
    }
    Ok(NpyHeader {
        descr: descr.ok_or("missing key 'descr'")?,
        fortran_order: fortran_order.ok_or("missing key 'fortran_order'")?,
        shape: shape.ok_or("missing key 'shape'")?,
    })
}

struct LiteralParser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl LiteralParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at byte {} of the header",
                char::from(c),
                self.pos
            ))
        }
    }

    fn value(&mut self, depth: usize) -> std::result::Result<PyValue, String> {
        if depth > MAX_HEADER_DEPTH {
            return Err("values nested too deeply".into());
        }
        self.skip_ws();
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c == q {
                        let s = &self.bytes[start..self.pos];
                        self.pos += 1;
                        return Ok(PyValue::Str(String::from_utf8_lossy(s).into_owned()));
                    }
                    if c == b'\\' {
                        return Err("escape sequences in header strings are not supported".into());
                    }
                    self.pos += 1;
                }
                Err("unterminated string in the header".into())
            }
            Some(open @ (b'(' | b'[')) => {
                self.pos += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.eat(close) {
                        return Ok(PyValue::Tuple(items));
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    if !self.eat(b',') {
                        self.skip_ws();
                        self.expect(close)?;
                        return Ok(PyValue::Tuple(items));
                    }
                }
            }
            Some(b'0'..=b'9') => {
                let start = self.pos;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or("");
                let n = digits
                    .parse::<u64>()
                    .map_err(|_| format!("integer {digits} is too large"))?;
                // Python 2 wrote long integers with an `L` suffix.
                self.eat(b'L');
                Ok(PyValue::Int(n))
            }
            Some(b'-') => Err("negative dimension in the header".into()),
            _ => {
                for (word, value) in [("True", true), ("False", false)] {
                    if self.bytes[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(PyValue::Bool(value));
                    }
                }
                if self.bytes[self.pos..].starts_with(b"None") {
                    self.pos += 4;
                    return Ok(PyValue::NoneLiteral);
                }
                Err(format!(
                    "unexpected character at byte {} of the header",
                    self.pos
                ))
            }
        }
    }
}

/// Write one array as a `.npy` stream.
fn write_npy_to(w: &mut impl Write, array: &NpyArray) -> io::Result<()> {
    let shape = match array.shape.as_slice() {
        [d] => format!("({d},)"),
        dims => {
            let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        array.dtype().descr()
    );
    // Pad with spaces and end with a newline so that the data starts aligned.
    let (version, len_bytes) = if MAGIC.len() + 2 + 2 + dict.len() + 1 < usize::from(u16::MAX) {
        (1u8, 2)
    } else {
        (2u8, 4)
    };
    let unpadded = MAGIC.len() + 2 + len_bytes + dict.len() + 1;
    let padding = (HEADER_ALIGN - unpadded % HEADER_ALIGN) % HEADER_ALIGN;
    let header_len = dict.len() + padding + 1;
    w.write_all(MAGIC)?;
    w.write_all(&[version, 0])?;
    if version == 1 {
        let len = u16::try_from(header_len).map_err(io::Error::other)?;
        w.write_all(&len.to_le_bytes())?;
    } else {
        let len = u32::try_from(header_len).map_err(io::Error::other)?;
        w.write_all(&len.to_le_bytes())?;
    }
    w.write_all(dict.as_bytes())?;
    w.write_all(&vec![b' '; padding])?;
    w.write_all(b"\n")?;
    array.data.write_le(w)
}

/// Write one array as a `.npy` file (atomically).
pub fn write_npy(path: &Path, array: &NpyArray) -> Result<()> {
    array.check()?;
    write_atomically(path, |w| write_npy_to(w, array))
}

/// Write arrays as an uncompressed `.npz` archive (like `numpy.savez`), atomically. Names must
/// be non-empty and distinct.
pub fn write_npz(path: &Path, arrays: &[NpyArray]) -> Result<()> {
    let mut names = HashSet::new();
    for array in arrays {
        array.check()?;
        if array.name.is_empty() {
            return Err(Error::InvalidArray {
                array: array.name.clone(),
                reason: "an .npz member needs a non-empty name".into(),
            });
        }
        if !names.insert(array.name.as_str()) {
            return Err(Error::InvalidArray {
                array: array.name.clone(),
                reason: "two arrays have this name".into(),
            });
        }
    }
    write_atomically(path, |w| {
        let mut zip = ZipWriter::new(w);
        for array in arrays {
            let nbytes = array.data.len().saturating_mul(array.dtype().size());
            let options = SimpleFileOptions::default()
                .compression_method(CompressionMethod::Stored)
                .large_file(nbytes > (u32::MAX as usize) - 4096);
            zip.start_file(format!("{}.npy", array.name), options)
                .map_err(io::Error::other)?;
            write_npy_to(&mut zip, array)?;
        }
        zip.finish().map_err(io::Error::other)?;
        Ok(())
    })
}

/// Write through a temporary file in the destination folder, then rename it into place.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<()> {
    let file_name = path.file_name().ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let tmp: PathBuf = path.with_file_name(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        write(&mut w)?;
        w.flush()?;
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(dict: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        v.extend_from_slice(dict.as_bytes());
        v
    }

    fn read_bytes(bytes: &[u8]) -> Result<NpyArray> {
        read_npy_from(&mut &bytes[..], "a", Path::new("mem.npy"))
    }

    #[test]
    fn header_parser_accepts_numpy_spellings() {
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n")
            .unwrap();
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape),
            ("<f4", false, vec![3, 4])
        );
        let h =
            parse_header("{\"shape\": (7,), \"fortran_order\": True, \"descr\": \"|b1\"}").unwrap();
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape),
            ("|b1", true, vec![7])
        );
        let h = parse_header("{'descr':'<i8','fortran_order':False,'shape':()}").unwrap();
        assert!(h.shape.is_empty());
        let h =
            parse_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2L, 3L), }").unwrap();
        assert_eq!(h.shape, vec![2, 3]);
    }

    #[test]
    fn header_parser_rejects_garbage() {
        for bad in [
            "",
            "{",
            "{'descr': '<f4'}",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': ((((((1,),),),),),), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } trailing",
        ] {
            assert!(parse_header(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn dtypes_parse_and_big_endian_is_refused() {
        for d in DType::ALL {
            assert_eq!(DType::from_descr(d.descr()), Ok(d));
        }
        assert_eq!(DType::from_descr("<b1"), Ok(DType::Bool));
        let e = DType::from_descr(">f4").unwrap_err();
        assert!(e.contains("big-endian"), "{e}");
        assert!(DType::from_descr("<u2")
            .unwrap_err()
            .contains("unsupported"));
        assert!(DType::from_descr("").is_err());
        assert!(DType::from_descr("<").is_err());
    }

    #[test]
    fn written_header_is_aligned_and_round_trips() {
        let shapes: [&[usize]; 4] = [&[], &[5], &[2, 3], &[1, 0, 4]];
        for shape in shapes {
            let n: usize = shape.iter().product();
            let a = NpyArray::new(
                "x",
                shape.to_vec(),
                ArrayData::F64((0..n).map(|i| i as f64 * 0.5).collect()),
            )
            .unwrap();
            let mut bytes = Vec::new();
            write_npy_to(&mut bytes, &a).unwrap();
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % HEADER_ALIGN, 0);
            assert_eq!(bytes.len(), 10 + header_len + n * 8);
            let b = read_bytes(&bytes).unwrap();
            assert_eq!(b.shape, a.shape);
            assert_eq!(b.data, a.data);
        }
    }

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        let a = NpyArray::new("x", vec![2, 2], ArrayData::I32(vec![1, -2, 3, -4])).unwrap();
        let mut bytes = Vec::new();
        write_npy_to(&mut bytes, &a).unwrap();
        for cut in 0..bytes.len() {
            let e = read_bytes(&bytes[..cut]).unwrap_err().to_string();
            assert!(e.contains("mem.npy") && e.contains("'a'"), "{e}");
        }
        bytes.push(0);
        assert!(read_bytes(&bytes).is_err());
    }

    #[test]
    fn bad_versions_bools_and_fortran_are_errors() {
        let mut bytes = header_of("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }");
        bytes.extend_from_slice(&[1, 2]);
        assert!(read_bytes(&bytes)
            .unwrap_err()
            .to_string()
            .contains("not 0 or 1"));
        let mut bytes = header_of("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }");
        bytes.extend_from_slice(&[0; 4]);
        assert!(read_bytes(&bytes)
            .unwrap_err()
            .to_string()
            .contains("Fortran"));
        let mut bytes = header_of("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }");
        bytes[6] = 4;
        assert!(read_bytes(&bytes)
            .unwrap_err()
            .to_string()
            .contains("version 4.0"));
        let bytes = header_of(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
        );
        assert!(read_bytes(&bytes).is_err());
    }

    #[test]
    fn every_dtype_round_trips_through_npz() {
        let dir = std::env::temp_dir().join(format!("ctr-edge-npz-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let arrays = vec![
            NpyArray::new(
                "f32",
                vec![2, 2],
                ArrayData::F32(vec![1.5, -0.0, f32::MAX, 1e-30]),
            )
            .unwrap(),
            NpyArray::new("f64", vec![3], ArrayData::F64(vec![f64::MIN, 0.1, 7.0])).unwrap(),
            NpyArray::new("i64", vec![1, 2], ArrayData::I64(vec![i64::MIN, i64::MAX])).unwrap(),
            NpyArray::new("i32", vec![], ArrayData::I32(vec![-7])).unwrap(),
            NpyArray::new("b", vec![3], ArrayData::Bool(vec![true, false, true])).unwrap(),
            NpyArray::new(
                "h",
                vec![2],
                ArrayData::F16(vec![f16::from_f32(0.5), f16::from_f32(-2.0)]),
            )
            .unwrap(),
            NpyArray::new("empty", vec![0, 3], ArrayData::F32(vec![])).unwrap(),
        ];
        let path = dir.join("all.npz");
        write_npz(&path, &arrays).unwrap();
        assert_eq!(read_npz(&path).unwrap(), arrays);
        let path = dir.join("one.npy");
        write_npy(&path, &arrays[0]).unwrap();
        let back = read_npy(&path).unwrap();
        assert_eq!((back.name.as_str(), &back.data), ("one", &arrays[0].data));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writers_refuse_inconsistent_arrays() {
        let bad = NpyArray {
            name: "x".into(),
            shape: vec![2, 2],
            data: ArrayData::F32(vec![1.0]),
        };
        let path = std::env::temp_dir().join("ctr-edge-never-written.npz");
        assert!(matches!(
            write_npz(&path, &[bad]),
            Err(Error::InvalidArray { .. })
        ));
        assert!(!path.exists());
        let a = NpyArray::new("x", vec![1], ArrayData::F32(vec![1.0])).unwrap();
        assert!(write_npz(&path, &[a.clone(), a]).is_err());
    }
}

//! Reading: `.npz` archives (stored or deflated zip members) and lone `.npy` files, with the
//! header parser. Every rule of the format this reader relies on is checked; a file never sizes
//! an allocation before its bytes have been read.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use zip::ZipArchive;

use crate::array::{element_count, format_shape, ArrayData, DType, NpyArray};
use crate::error::{Error, Result};
use crate::MAGIC;

/// Headers longer than this are rejected: a supported header is a few hundred bytes, and the
/// length field must not be able to drive a huge allocation.
const MAX_HEADER_LEN: usize = 1 << 20;
/// Data sections are read in steps no larger than this before the file proves it has them.
const MAX_UPFRONT_ALLOCATION: usize = 64 << 20;
/// Python-literal nesting accepted in a header (a shape tuple is depth 2).
const MAX_HEADER_DEPTH: usize = 4;

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
    read_npz_from(BufReader::new(file), path)
}

/// [`read_npz`] of an archive in any seekable stream (bytes in memory: `io::Cursor`); `path`
/// only labels errors.
pub fn read_npz_from(reader: impl Read + Seek, path: &Path) -> Result<Vec<NpyArray>> {
    let mut archive = ZipArchive::new(reader)
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
pub fn read_npy_from(r: &mut impl Read, name: &str, path: &Path) -> Result<NpyArray> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write_npy_to;

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
}

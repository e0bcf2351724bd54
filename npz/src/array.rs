//! The array types: [`DType`] (the six supported little-endian element types), [`ArrayData`]
//! (the values, row-major) and [`NpyArray`] (a named, shape-checked array).

use std::fmt;
use std::io::{self, Write};

use half::f16;

use crate::error::{Error, Result};

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
    pub(crate) fn from_descr(descr: &str) -> std::result::Result<DType, String> {
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
    pub(crate) fn from_le_bytes(
        dtype: DType,
        bytes: &[u8],
    ) -> std::result::Result<ArrayData, String> {
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
    pub(crate) fn write_le(&self, w: &mut impl Write) -> io::Result<()> {
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

pub(crate) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

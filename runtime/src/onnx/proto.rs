//! A compact protobuf wire-format reader over a borrowed buffer.
//!
//! It knows nothing about ONNX: it splits a message into `(field number, value)` pairs, reads
//! scalars and packed/unpacked repeated scalars, and reports every malformation (truncated
//! varint, length past the end, 64-bit overflow, deprecated groups, wrong wire type) as a
//! [`WireError`] carrying the absolute byte offset in the file. The ONNX decoder
//! ([`super::decode`]) turns those into [`crate::Error::Protobuf`] with a context path.
//!
//! Length-delimited values are sub-slices of the input: strings and raw tensor bytes are never
//! copied. The reader never recurses (unknown fields are skipped by their length), so nesting
//! depth is the caller's business.

use alloc::vec::Vec;
use core::fmt;

/// Longest valid varint encoding (64 bits in 7-bit groups).
pub const MAX_VARINT_LEN: usize = 10;

/// Largest valid field number (2^29 - 1).
pub const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// The four wire types this reader accepts (groups, types 3 and 4, are rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// 0: varint.
    Varint,
    /// 1: 8 bytes little-endian.
    Fixed64,
    /// 2: length-delimited (strings, bytes, messages, packed repeated scalars).
    Len,
    /// 5: 4 bytes little-endian.
    Fixed32,
}

impl WireType {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

/// A malformation of the wire format. `at` is the absolute byte offset in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The buffer ended inside a varint.
    TruncatedVarint {
        /// Offset of the varint's first byte.
        at: usize,
    },
    /// A varint longer than 10 bytes or whose value exceeds 64 bits.
    VarintOverflow {
        /// Offset of the varint's first byte.
        at: usize,
    },
    /// A fixed32/fixed64 value cut by the end of the buffer.
    TruncatedFixed {
        /// Offset of the value.
        at: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// A length-delimited value longer than what is left of its enclosing message.
    LengthPastEnd {
        /// Field number.
        field: u32,
        /// Offset of the value's first byte.
        at: usize,
        /// Declared length.
        len: u64,
        /// Bytes left in the enclosing message.
        left: usize,
    },
    /// Field number 0 or above 2^29 - 1.
    BadFieldNumber {
        /// Offset of the tag.
        at: usize,
        /// The field number read.
        number: u64,
    },
    /// Wire types 3/4 (deprecated groups) or 6/7 (invalid).
    BadWireType {
        /// Offset of the tag.
        at: usize,
        /// Field number.
        field: u32,
        /// The wire type read.
        wire_type: u8,
    },
    /// A known field encoded with a wire type its declared type cannot have.
    WrongWireType {
        /// Offset of the tag.
        at: usize,
        /// Field number.
        field: u32,
        /// What the field needs.
        expected: &'static str,
        /// What the file has.
        found: WireType,
    },
    /// A packed repeated fixed-size field whose byte length is not a multiple of the element.
    PackedLength {
        /// Offset of the packed bytes.
        at: usize,
        /// Field number.
        field: u32,
        /// Byte length.
        len: usize,
        /// Element size.
        elem: usize,
    },
    /// A varint value that does not fit the field's 32-bit type.
    Int32Range {
        /// Offset of the value.
        at: usize,
        /// Field number.
        field: u32,
        /// The value, as a signed 64-bit integer.
        value: i64,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::TruncatedVarint { at } => {
                write!(f, "truncated varint at byte {at}")
            }
            WireError::VarintOverflow { at } => {
                write!(f, "varint at byte {at} overflows 64 bits")
            }
            WireError::TruncatedFixed { at, needed, left } => write!(
                f,
                "truncated fixed-size value at byte {at}: needs {needed} bytes, {left} left"
            ),
            WireError::LengthPastEnd {
                field,
                at,
                len,
                left,
            } => write!(
                f,
                "field {field}: length {len} at byte {at} runs past the end of its message ({left} bytes left)"
            ),
            WireError::BadFieldNumber { at, number } => {
                write!(f, "invalid field number {number} at byte {at}")
            }
            WireError::BadWireType {
                at,
                field,
                wire_type,
            } => match wire_type {
                3 | 4 => write!(
                    f,
                    "field {field} at byte {at}: deprecated group wire type {wire_type} is not supported"
                ),
                _ => write!(f, "field {field} at byte {at}: invalid wire type {wire_type}"),
            },
            WireError::WrongWireType {
                at,
                field,
                expected,
                found,
            } => write!(
                f,
                "field {field} at byte {at}: expected {expected}, found wire type {}",
                found.name()
            ),
            WireError::PackedLength {
                at,
                field,
                len,
                elem,
            } => write!(
                f,
                "field {field} at byte {at}: packed length {len} is not a multiple of {elem}"
            ),
            WireError::Int32Range { at, field, value } => write!(
                f,
                "field {field} at byte {at}: value {value} does not fit a 32-bit integer"
            ),
        }
    }
}

/// The value of one field, as the wire format gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1 (raw little-endian bits).
    Fixed64(u64),
    /// Wire type 2: the bytes, borrowed from the input.
    Len(&'a [u8]),
    /// Wire type 5 (raw little-endian bits).
    Fixed32(u32),
}

impl Value<'_> {
    /// The wire type of this value.
    pub fn wire_type(&self) -> WireType {
        match self {
            Value::Varint(_) => WireType::Varint,
            Value::Fixed64(_) => WireType::Fixed64,
            Value::Len(_) => WireType::Len,
            Value::Fixed32(_) => WireType::Fixed32,
        }
    }
}

/// One field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Field number (1 ..= 2^29 - 1).
    pub number: u32,
    /// Absolute offset of the field's tag in the file.
    pub tag_at: usize,
    /// Absolute offset of the value (for length-delimited values: of its first payload byte).
    pub value_at: usize,
    /// The value.
    pub value: Value<'a>,
}

impl<'a> Field<'a> {
    fn wrong(&self, expected: &'static str) -> WireError {
        WireError::WrongWireType {
            at: self.tag_at,
            field: self.number,
            expected,
            found: self.value.wire_type(),
        }
    }

    /// A varint field (int32/int64/uint64/bool/enum) as raw 64 bits.
    pub fn varint(&self) -> Result<u64, WireError> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong("a varint")),
        }
    }

    /// An `int64` field.
    pub fn int64(&self) -> Result<i64, WireError> {
        // Two's complement reinterpretation is the protobuf meaning of int64.
        self.varint().map(|v| v as i64)
    }

    /// An `int32` (or enum) field; values outside the i32 range are an error rather than
    /// silently truncated.
    pub fn int32(&self) -> Result<i32, WireError> {
        let v = self.int64()?;
        i32::try_from(v).map_err(|_| WireError::Int32Range {
            at: self.value_at,
            field: self.number,
            value: v,
        })
    }

    /// A `float` field.
    pub fn float(&self) -> Result<f32, WireError> {
        match self.value {
            Value::Fixed32(bits) => Ok(f32::from_bits(bits)),
            _ => Err(self.wrong("a fixed32 float")),
        }
    }

    /// A `bytes` field, a `string` field before UTF-8 validation, or an embedded message.
    pub fn bytes(&self) -> Result<&'a [u8], WireError> {
        match self.value {
            Value::Len(b) => Ok(b),
            _ => Err(self.wrong("a length-delimited value")),
        }
    }

    /// A reader over an embedded message.
    pub fn message(&self) -> Result<Reader<'a>, WireError> {
        let bytes = self.bytes()?;
        Ok(Reader::with_base(bytes, self.value_at))
    }

    /// Appends the values of a `repeated float` field, packed or not.
    pub fn push_floats(&self, out: &mut Vec<f32>) -> Result<(), WireError> {
        self.push_fixed(out, f32::from_le_bytes, "fixed32 floats (packed or not)")
    }

    /// Appends the values of a `repeated double` field, packed or not.
    pub fn push_doubles(&self, out: &mut Vec<f64>) -> Result<(), WireError> {
        self.push_fixed(out, f64::from_le_bytes, "fixed64 doubles (packed or not)")
    }

    /// Appends the values of a repeated fixed-width field of `N` bytes: one value when the
    /// field is a single unpacked fixed field of that width, else the packed little-endian
    /// values of a length-delimited one.
    fn push_fixed<T, const N: usize>(
        &self,
        out: &mut Vec<T>,
        from_le: fn([u8; N]) -> T,
        expected: &'static str,
    ) -> Result<(), WireError> {
        // One unpacked value: a fixed field of the same width.
        let one: Option<[u8; N]> = match self.value {
            Value::Fixed32(bits) => bits.to_le_bytes().as_slice().try_into().ok(),
            Value::Fixed64(bits) => bits.to_le_bytes().as_slice().try_into().ok(),
            _ => None,
        };
        match (one, self.value) {
            (Some(v), _) => out.push(from_le(v)),
            (None, Value::Len(b)) => {
                let chunks = self.packed_chunks::<N>(b)?;
                out.reserve(chunks.len());
                out.extend(chunks.iter().map(|c| from_le(*c)));
            }
            _ => return Err(self.wrong(expected)),
        }
        Ok(())
    }

    /// Appends the values of a `repeated int64` (or `uint64`, reinterpreted) field, packed
    /// or not.
    pub fn push_int64s(&self, out: &mut Vec<i64>) -> Result<(), WireError> {
        match self.value {
            Value::Varint(v) => {
                out.push(v as i64);
                Ok(())
            }
            Value::Len(b) => {
                let mut r = Reader::with_base(b, self.value_at);
                while !r.is_empty() {
                    out.push(r.read_varint()? as i64);
                }
                Ok(())
            }
            _ => Err(self.wrong("varints (packed or not)")),
        }
    }

    /// Appends the values of a `repeated int32` field, packed or not (range checked).
    pub fn push_int32s(&self, out: &mut Vec<i32>) -> Result<(), WireError> {
        let check = |at: usize, v: u64| {
            let v = v as i64;
            i32::try_from(v).map_err(|_| WireError::Int32Range {
                at,
                field: self.number,
                value: v,
            })
        };
        match self.value {
            Value::Varint(v) => {
                out.push(check(self.value_at, v)?);
                Ok(())
            }
            Value::Len(b) => {
                let mut r = Reader::with_base(b, self.value_at);
                while !r.is_empty() {
                    let at = r.offset();
                    out.push(check(at, r.read_varint()?)?);
                }
                Ok(())
            }
            _ => Err(self.wrong("varints (packed or not)")),
        }
    }

    fn packed_chunks<const N: usize>(&self, b: &'a [u8]) -> Result<&'a [[u8; N]], WireError> {
        let (chunks, rest) = b.as_chunks::<N>();
        if rest.is_empty() {
            Ok(chunks)
        } else {
            Err(WireError::PackedLength {
                at: self.value_at,
                field: self.number,
                len: b.len(),
                elem: N,
            })
        }
    }
}

/// Reads the fields of one message, in file order.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the file (for messages).
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over a whole file (offsets in errors are relative to `buf`).
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader::with_base(buf, 0)
    }

    /// A reader over a sub-message that starts at absolute offset `base`.
    pub fn with_base(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// The bytes of the whole message this reader walks.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Reads one varint (at most 10 bytes, at most 64 bits).
    pub fn read_varint(&mut self) -> Result<u64, WireError> {
        let at = self.offset();
        let mut value: u64 = 0;
        for (i, &byte) in self.remaining().iter().enumerate() {
            if i >= MAX_VARINT_LEN {
                return Err(WireError::VarintOverflow { at });
            }
            let low = u64::from(byte & 0x7f);
            // The 10th byte holds bit 63 only.
            if i == MAX_VARINT_LEN - 1 && low > 1 {
                return Err(WireError::VarintOverflow { at });
            }
            value |= low << (7 * i);
            if byte & 0x80 == 0 {
                self.pos = self.pos.saturating_add(i + 1);
                return Ok(value);
            }
        }
        // Ran out of bytes with the continuation bit set (or no bytes at all).
        if self.remaining().len() >= MAX_VARINT_LEN {
            Err(WireError::VarintOverflow { at })
        } else {
            Err(WireError::TruncatedVarint { at })
        }
    }

    fn read_fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let at = self.offset();
        let rest = self.remaining();
        match rest.first_chunk::<N>() {
            Some(bytes) => {
                self.pos = self.pos.saturating_add(N);
                Ok(*bytes)
            }
            None => Err(WireError::TruncatedFixed {
                at,
                needed: N,
                left: rest.len(),
            }),
        }
    }

    /// The next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<Field<'a>>, WireError> {
        if self.is_empty() {
            return Ok(None);
        }
        let tag_at = self.offset();
        let tag = self.read_varint()?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(WireError::BadFieldNumber { at: tag_at, number });
        }
        // In range 1 ..= 2^29 - 1 (checked above).
        let number = number as u32;
        let wire_type = (tag & 7) as u8;
        let value_at = self.offset();
        let value = match wire_type {
            0 => Value::Varint(self.read_varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.read_fixed::<8>()?)),
            2 => {
                let len = self.read_varint()?;
                let start = self.offset();
                let rest = self.remaining();
                let bytes = usize::try_from(len)
                    .ok()
                    .and_then(|n| rest.get(..n))
                    .ok_or(WireError::LengthPastEnd {
                        field: number,
                        at: start,
                        len,
                        left: rest.len(),
                    })?;
                self.pos = self.pos.saturating_add(bytes.len());
                return Ok(Some(Field {
                    number,
                    tag_at,
                    value_at: start,
                    value: Value::Len(bytes),
                }));
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.read_fixed::<4>()?)),
            _ => {
                return Err(WireError::BadWireType {
                    at: tag_at,
                    field: number,
                    wire_type,
                })
            }
        };
        Ok(Some(Field {
            number,
            tag_at,
            value_at,
            value,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(bytes: &[u8]) -> Result<u64, WireError> {
        Reader::new(bytes).read_varint()
    }

    #[test]
    fn varints() {
        assert_eq!(varint(&[0]), Ok(0));
        assert_eq!(varint(&[0x96, 0x01]), Ok(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&max), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(varint(&over), Err(WireError::VarintOverflow { at: 0 }));
        let eleven = [0x80; 11];
        assert_eq!(varint(&eleven), Err(WireError::VarintOverflow { at: 0 }));
        assert_eq!(
            varint(&[0x80, 0x80]),
            Err(WireError::TruncatedVarint { at: 0 })
        );
        assert_eq!(varint(&[]), Err(WireError::TruncatedVarint { at: 0 }));
    }

    #[test]
    fn fields_and_skips() {
        // field 1 varint 150, field 2 bytes "hi", field 3 fixed32, field 4 fixed64
        let msg = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0,
            0,
        ];
        let mut r = Reader::new(&msg);
        let f = r.next_field().unwrap().unwrap();
        assert_eq!((f.number, f.varint()), (1, Ok(150)));
        let f = r.next_field().unwrap().unwrap();
        assert_eq!((f.number, f.bytes()), (2, Ok(&b"hi"[..])));
        assert_eq!(f.value_at, 5);
        let f = r.next_field().unwrap().unwrap();
        assert_eq!(f.value, Value::Fixed32(1));
        let f = r.next_field().unwrap().unwrap();
        assert_eq!(f.value, Value::Fixed64(2));
        assert_eq!(r.next_field(), Ok(None));
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            Reader::new(&[0x12, 0x05, 1]).next_field(),
            Err(WireError::LengthPastEnd {
                len: 5,
                left: 1,
                ..
            })
        ));
        assert!(matches!(
            Reader::new(&[0x0b]).next_field(),
            Err(WireError::BadWireType { wire_type: 3, .. })
        ));
        assert!(matches!(
            Reader::new(&[0x00, 0x00]).next_field(),
            Err(WireError::BadFieldNumber { number: 0, .. })
        ));
        assert!(matches!(
            Reader::new(&[0x1d, 1, 2]).next_field(),
            Err(WireError::TruncatedFixed {
                needed: 4,
                left: 2,
                ..
            })
        ));
        // Length that does not fit usize on any platform.
        let huge = [
            0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(matches!(
            Reader::new(&huge).next_field(),
            Err(WireError::LengthPastEnd { .. })
        ));
    }

    #[test]
    fn packed_and_unpacked() {
        let f = Field {
            number: 7,
            tag_at: 0,
            value_at: 1,
            value: Value::Len(&[
                1, 0x96, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ]),
        };
        let mut out = Vec::new();
        f.push_int64s(&mut out).unwrap();
        assert_eq!(out, [1, 150, -1]);
        let mut out32 = Vec::new();
        f.push_int32s(&mut out32).unwrap();
        assert_eq!(out32, [1, 150, -1]);
        let f = Field {
            number: 4,
            tag_at: 0,
            value_at: 1,
            value: Value::Len(&[0, 0, 0x80, 0x3f, 1]),
        };
        assert!(matches!(
            f.push_floats(&mut Vec::new()),
            Err(WireError::PackedLength {
                len: 5,
                elem: 4,
                ..
            })
        ));
        let f = Field {
            number: 4,
            tag_at: 0,
            value_at: 1,
            value: Value::Fixed32(1.5f32.to_bits()),
        };
        let mut floats = Vec::new();
        f.push_floats(&mut floats).unwrap();
        assert_eq!(floats, [1.5]);
        assert!(f.int64().is_err());
    }

    #[test]
    fn int32_range() {
        let f = Field {
            number: 2,
            tag_at: 0,
            value_at: 1,
            value: Value::Varint(1 << 40),
        };
        assert!(matches!(f.int32(), Err(WireError::Int32Range { .. })));
        let neg = Field {
            value: Value::Varint(-5i64 as u64),
            ..f
        };
        assert_eq!(neg.int32(), Ok(-5));
    }
}

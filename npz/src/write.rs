//! Writing to streams: version 1.0 headers (2.0 when the header outgrows 64 KiB) padded so the
//! data starts 64-byte aligned, like `numpy.save`, and uncompressed archives like
//! `numpy.savez`. Writing files (atomically) is the caller's: the exporter goes through a
//! temporary file renamed into place.

use std::collections::HashSet;
use std::io::{self, Seek, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::array::NpyArray;
use crate::error::{Error, Result};
use crate::{HEADER_ALIGN, MAGIC};

/// Write one array as a `.npy` stream.
pub fn write_npy_to(w: &mut impl Write, array: &NpyArray) -> io::Result<()> {
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

/// Check arrays meant for one `.npz` archive: each consistent, names non-empty and distinct.
pub fn check_npz_members(arrays: &[NpyArray]) -> Result<()> {
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
    Ok(())
}

/// Write arrays as an uncompressed `.npz` archive (like `numpy.savez`) to a stream; check them
/// first with [`check_npz_members`].
pub fn write_npz_to<W: Write + Seek>(w: &mut W, arrays: &[NpyArray]) -> io::Result<()> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::ArrayData;
    use crate::read::read_npy_from;
    use std::path::Path;

    fn read_bytes(bytes: &[u8]) -> Result<NpyArray> {
        read_npy_from(&mut &bytes[..], "a", Path::new("mem.npy"))
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
}

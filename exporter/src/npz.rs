//! NumPy `.npy` arrays and `.npz` archives: the data format of every `ctr-edge` command.
//!
//! The format itself (types, reader, stream writers) is the `ctr-edge-npz` crate, shared with
//! the tests and benches; this module re-exports it with the exporter's [`Error`], and writes
//! files atomically (through [`crate::fsutil::write_atomic`]: a temporary file renamed into
//! place, so a crash never leaves a half-written file).

use std::path::Path;

pub use ctr_edge_npz::{format_shape, ArrayData, DType, Error as NpzError, NpyArray};

use crate::error::Result;
use crate::fsutil::write_atomic;

/// Read every array of a `.npz` archive, in file order, named after their members without
/// the `.npy` suffix.
pub fn read_npz(path: &Path) -> Result<Vec<NpyArray>> {
    Ok(ctr_edge_npz::read_npz(path)?)
}

/// Read a lone `.npy` file; the array is named after the file stem.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    Ok(ctr_edge_npz::read_npy(path)?)
}

/// Write one array as a `.npy` file (atomically).
pub fn write_npy(path: &Path, array: &NpyArray) -> Result<()> {
    array.check()?;
    write_atomic(path, |w| ctr_edge_npz::write_npy_to(w, array))
}

/// Write arrays as an uncompressed `.npz` archive (like `numpy.savez`), atomically. Names must
/// be non-empty and distinct.
pub fn write_npz(path: &Path, arrays: &[NpyArray]) -> Result<()> {
    ctr_edge_npz::check_npz_members(arrays)?;
    write_atomic(path, |w| ctr_edge_npz::write_npz_to(w, arrays))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use half::f16;

    use super::*;
    use crate::Error;

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
            Err(Error::Npz(NpzError::InvalidArray { .. }))
        ));
        assert!(!path.exists());
        let a = NpyArray::new("x", vec![1], ArrayData::F32(vec![1.0])).unwrap();
        assert!(write_npz(&path, &[a.clone(), a]).is_err());
    }
}

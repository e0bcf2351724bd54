//! `.npy`/`.npz` reading against files written by NumPy (`data/make_npz.py`, with the values it
//! wrote in `data/arrays_expected.json`), plus round trips and damaged files.

use std::fs;
use std::path::PathBuf;

use ctr_edge_exporter::npz::{
    read_npy, read_npz, write_npy, write_npz, ArrayData, NpyArray, NpzError,
};
use ctr_edge_exporter::Error;
use serde_json::Value;

mod common;

use common::data;

fn scratch(name: &str) -> PathBuf {
    common::scratch_in("npz-tests", name)
}

/// Compare an array with its JSON description: dtype, shape and every value exactly.
fn assert_matches_json(array: &NpyArray, want: &Value) {
    let name = &array.name;
    assert_eq!(array.dtype().descr(), want["dtype"], "{name}: dtype");
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(array.shape, shape, "{name}: shape");
    let values = want["values"].as_array().unwrap();
    assert_eq!(array.data.len(), values.len(), "{name}: length");
    match &array.data {
        ArrayData::I64(v) => {
            for (got, want) in v.iter().zip(values) {
                assert_eq!(Some(*got), want.as_i64(), "{name}");
            }
        }
        ArrayData::I32(v) => {
            for (got, want) in v.iter().zip(values) {
                assert_eq!(Some(i64::from(*got)), want.as_i64(), "{name}");
            }
        }
        ArrayData::Bool(v) => {
            for (got, want) in v.iter().zip(values) {
                assert_eq!(Some(*got), want.as_bool(), "{name}");
            }
        }
        ArrayData::F32(v) => {
            // serde_json may be one f64 ulp off; rounded to f32, the value is exact again.
            for (got, want) in v.iter().zip(values) {
                assert_eq!(*got, want.as_f64().unwrap() as f32, "{name}");
            }
        }
        ArrayData::F16(v) => {
            for (got, want) in v.iter().zip(values) {
                assert_eq!(*got, half::f16::from_f64(want.as_f64().unwrap()), "{name}");
            }
        }
        ArrayData::F64(v) => {
            for (got, want) in v.iter().zip(values) {
                let want = want.as_f64().unwrap();
                assert!(
                    (got - want).abs() <= 4.0 * f64::EPSILON * want.abs(),
                    "{name}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn reads_numpy_savez_and_savez_compressed() {
    let expected: Value =
        serde_json::from_str(&fs::read_to_string(data("arrays_expected.json")).unwrap()).unwrap();
    let order: Vec<&str> = expected["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for file in ["arrays.npz", "arrays_compressed.npz"] {
        let arrays = read_npz(&data(file)).unwrap();
        let names: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, order, "{file}: names in file order");
        for array in &arrays {
            assert_matches_json(array, &expected["arrays"][&array.name]);
        }
    }
}

#[test]
fn reads_format_versions_2_and_3() {
    for file in ["v2.npy", "v3.npy"] {
        let a = read_npy(&data(file)).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(
            a.data,
            ArrayData::F32(vec![-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
        );
    }
}

#[test]
fn refuses_fortran_order_and_big_endian_with_clear_messages() {
    let e = read_npy(&data("fortran.npy")).unwrap_err().to_string();
    assert!(e.contains("fortran.npy") && e.contains("Fortran"), "{e}");
    let e = read_npy(&data("bigendian.npy")).unwrap_err().to_string();
    assert!(
        e.contains("bigendian.npy") && e.contains("big-endian"),
        "{e}"
    );
}

#[test]
fn round_trips_what_numpy_wrote() {
    let arrays = read_npz(&data("arrays_compressed.npz")).unwrap();
    let path = scratch("round_trip.npz");
    write_npz(&path, &arrays).unwrap();
    assert_eq!(read_npz(&path).unwrap(), arrays);
    for array in &arrays {
        let path = scratch(&format!("{}.npy", array.name));
        write_npy(&path, array).unwrap();
        let back = read_npy(&path).unwrap();
        assert_eq!((&back.shape, &back.data), (&array.shape, &array.data));
    }
}

#[test]
fn truncated_archives_are_errors_naming_the_file() {
    let bytes = fs::read(data("arrays.npz")).unwrap();
    let path = scratch("truncated.npz");
    for cut in (0..bytes.len()).step_by(7) {
        fs::write(&path, &bytes[..cut]).unwrap();
        let e = read_npz(&path).expect_err("a truncated archive must not read");
        assert!(e.to_string().contains("truncated.npz"), "cut {cut}: {e}");
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    // Every single-byte corruption: either an error, or (in bytes the format does not check,
    // like zip timestamps or header padding) arrays of the announced shapes.
    for file in ["arrays.npz", "arrays_compressed.npz"] {
        let bytes = fs::read(data(file)).unwrap();
        let path = scratch(&format!("corrupt_{file}"));
        for pos in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[pos] ^= 0x5a;
            fs::write(&path, &damaged).unwrap();
            if let Ok(arrays) = read_npz(&path) {
                for a in arrays {
                    a.check().unwrap();
                }
            }
        }
    }
}

#[test]
fn truncated_npy_data_names_the_array() {
    let full = scratch("short_member.npy");
    write_npy(
        &full,
        &NpyArray::new("x", vec![4], ArrayData::F64(vec![1.0, 2.0, 3.0, 4.0])).unwrap(),
    )
    .unwrap();
    let npy = fs::read(&full).unwrap();
    let short = scratch("short.npy");
    fs::write(&short, &npy[..npy.len() - 8]).unwrap();
    let e = read_npy(&short).unwrap_err();
    assert!(matches!(e, Error::Npz(NpzError::Npy { .. })));
    let e = e.to_string();
    assert!(
        e.contains("short.npy") && e.contains("'short'") && e.contains("truncated data"),
        "{e}"
    );
}

#[test]
fn missing_and_non_zip_files_are_errors() {
    let e = read_npz(&data("no_such_file.npz")).unwrap_err().to_string();
    assert!(e.contains("no_such_file.npz"), "{e}");
    let e = read_npz(&data("v2.npy")).unwrap_err().to_string();
    assert!(e.contains("v2.npy") && e.contains("zip"), "{e}");
}

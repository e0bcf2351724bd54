//! The npz reader on arbitrary bytes, as a `.npz` archive (`read_npz_from`) and as a lone
//! `.npy` stream (`read_npy_from`).
//!
//! A finding is a panic, an overflow, a huge allocation or a hang; and what the reader accepts
//! must be consistent (values fill the shape, names unique) and survive a write + read round
//! trip unchanged (compared as the bytes the writer produces, so NaN payloads count too).
#![no_main]

use std::io::Cursor;
use std::path::Path;

use ctr_edge_npz::{
    check_npz_members, read_npy_from, read_npz_from, write_npy_to, write_npz_to, NpyArray,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.npz");
    if let Ok(arrays) = read_npz_from(Cursor::new(data), path) {
        check_npz_members(&arrays).expect("the reader returned arrays the writer refuses");
        let mut archive = Cursor::new(Vec::new());
        write_npz_to(&mut archive, &arrays).expect("write_npz_to");
        let again = read_npz_from(Cursor::new(archive.get_ref().as_slice()), path)
            .expect("the reader refuses what the writer wrote");
        assert_eq!(arrays.len(), again.len());
        for (a, b) in arrays.iter().zip(&again) {
            assert_same(a, b);
        }
    }
    if let Ok(array) = read_npy_from(&mut Cursor::new(data), "fuzz", path) {
        array
            .check()
            .expect("the reader returned an inconsistent array");
        let mut bytes = Vec::new();
        write_npy_to(&mut bytes, &array).expect("write_npy_to");
        let again = read_npy_from(&mut bytes.as_slice(), "fuzz", path)
            .expect("the reader refuses what the writer wrote");
        assert_same(&array, &again);
    }
});

fn assert_same(a: &NpyArray, b: &NpyArray) {
    assert_eq!(a.name, b.name);
    assert_eq!(a.shape, b.shape, "{}", a.name);
    assert_eq!(a.dtype(), b.dtype(), "{}", a.name);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    write_npy_to(&mut x, a).expect("write_npy_to");
    write_npy_to(&mut y, b).expect("write_npy_to");
    assert!(x == y, "{}: values changed in the round trip", a.name);
}

//! NumPy `.npy` arrays and `.npz` archives (a zip of `.npy` members, stored or deflated): the
//! data format of every `ctr-edge` command, shared by the exporter, the tests and the benches.
//!
//! The reader follows the NumPy format spec (versions 1.0, 2.0 and 3.0) and checks every rule
//! it relies on: the magic string, a header that is a Python dict literal with exactly the
//! `descr`, `fortran_order` and `shape` it needs, a little-endian dtype among the six supported
//! ones, C order, an element count that does not overflow, and a data section of exactly the
//! announced size. Anything else is an [`Error::Npy`] naming the file and the array; a file is
//! never trusted to size an allocation before its bytes have been read.
//!
//! Writers produce version 1.0 headers (2.0 when the header outgrows 64 KiB) padded so the
//! data starts 64-byte aligned, like `numpy.save`, to any stream; the exporter's
//! `ctr_edge_exporter::npz::{write_npy, write_npz}` write files through a temporary file that
//! is renamed into place, so a crash never leaves a half-written file.
//!
//! - [`array`]: the element types and arrays;
//! - [`read`]: [`read_npz`], [`read_npz_from`], [`read_npy`], [`read_npy_from`] and the header
//!   parser;
//! - [`write`]: [`write_npy_to`], [`write_npz_to`] and [`check_npz_members`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod array;
mod error;
pub mod read;
pub mod write;

pub use array::{format_shape, ArrayData, DType, NpyArray};
pub use error::{Error, Result};
pub use read::{read_npy, read_npy_from, read_npz, read_npz_from};
pub use write::{check_npz_members, write_npy_to, write_npz_to};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// `numpy.save` aligns the start of the data to this many bytes.
const HEADER_ALIGN: usize = 64;

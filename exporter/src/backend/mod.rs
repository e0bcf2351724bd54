//! Running an ONNX model on `.npz` data, with either engine:
//! - [`Backend::Native`]: the ctr-edge runtime (`ctr_edge_runtime::Model`), the engine apps ship;
//! - [`Backend::Tract`]: tract-onnx, the independent reference the native runtime is checked
//!   against.
//!
//! Both go through the same steps, kept here so they behave alike: the data's arrays are
//! matched by name to the model's declared inputs ([`inputs`]), checked (dtype, rank, every
//! non-batch dimension), then fed in batches of `batch_size` rows; outputs of the batches are
//! concatenated along the first axis and named after the ONNX outputs.

pub(crate) mod inputs;
mod native;
pub(crate) use native::{check_resource_limits, run_on_zeros, ZERO_ROWS};
pub(crate) mod tract;

use std::path::Path;

use crate::error::{Error, Result};
use crate::npz::{ArrayData, NpyArray};

/// Default number of rows per model call.
pub const DEFAULT_BATCH_SIZE: usize = 1024;

/// The engine that runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The ctr-edge native runtime.
    Native,
    /// tract-onnx (reference).
    Tract,
}

impl Backend {
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Tract => "tract",
        }
    }
}

/// `Display` (the name) and `FromStr` (by name; anything else is an error that lists the
/// names) for a field-less enum with `fn name(self) -> &'static str`.
macro_rules! by_name {
    ($ty:ident, $what:literal, [$($variant:ident),+]) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::Error;

            fn from_str(s: &str) -> $crate::Result<$ty> {
                $crate::backend::parse_name(s, &[$($ty::$variant),+], $ty::name, $what)
            }
        }
    };
}
pub(crate) use by_name;

by_name!(Backend, "backend", [Native, Tract]);

/// The value of `all` named `s`, or an error `unknown {what} '{s}' (expected a, b or c)`.
pub(crate) fn parse_name<T: Copy>(
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
) -> Result<T> {
    all.iter().copied().find(|&v| name(v) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&v| name(v)).collect();
        let expected = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        };
        Error::InvalidArgument {
            reason: format!("unknown {what} '{s}' (expected {expected})"),
        }
    })
}

/// Run the model at `path` on `inputs` (one array per model input, matched by name, first
/// axis = batch) in batches of `batch_size` rows. Returns one array per model output, in
/// model order, named after the ONNX outputs. Arrays that are not model inputs are ignored
/// with a warning.
pub fn run_model(
    path: &Path,
    backend: Backend,
    inputs: &[NpyArray],
    batch_size: usize,
) -> Result<Vec<NpyArray>> {
    run_model_with_progress(path, backend, inputs, batch_size, &mut |_, _| {})
}

/// [`run_model`], calling `progress(rows_done, rows_total)` after each batch.
pub fn run_model_with_progress(
    path: &Path,
    backend: Backend,
    inputs: &[NpyArray],
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<NpyArray>> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument {
            reason: "the batch size must be at least 1".into(),
        });
    }
    let job = Job {
        path,
        inputs,
        batch_size,
    };
    match backend {
        Backend::Native => native::run(job, progress),
        Backend::Tract => tract::run(job, progress),
    }
}

/// What a backend runs: the model file, the input arrays, the batch size.
#[derive(Clone, Copy)]
struct Job<'a> {
    path: &'a Path,
    inputs: &'a [NpyArray],
    batch_size: usize,
}

/// Borrowed values of a range of rows, typed.
enum RowsData<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    Bool(&'a [bool]),
    F16(&'a [half::f16]),
}

/// Rows `start..end` of `array`: their shape and values, or `None` when out of range.
fn rows_of(array: &NpyArray, start: usize, end: usize) -> Option<(Vec<usize>, RowsData<'_>)> {
    let row_len = array.row_len();
    let range = start.checked_mul(row_len)?..end.checked_mul(row_len)?;
    let data = match &array.data {
        ArrayData::F32(v) => RowsData::F32(v.get(range)?),
        ArrayData::F64(v) => RowsData::F64(v.get(range)?),
        ArrayData::I64(v) => RowsData::I64(v.get(range)?),
        ArrayData::I32(v) => RowsData::I32(v.get(range)?),
        ArrayData::Bool(v) => RowsData::Bool(v.get(range)?),
        ArrayData::F16(v) => RowsData::F16(v.get(range)?),
    };
    let mut shape = array.shape.clone();
    *shape.first_mut()? = end.checked_sub(start)?;
    Some((shape, data))
}

/// Call `run_batch(start, end)` over `0..rows` in steps of `batch_size` and concatenate the
/// outputs of the batches along their first axis (which must then be the batch axis).
fn run_in_batches(
    rows: usize,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
    mut run_batch: impl FnMut(usize, usize) -> Result<Vec<NpyArray>>,
) -> Result<Vec<NpyArray>> {
    if rows <= batch_size {
        let outputs = run_batch(0, rows)?;
        progress(rows, rows);
        return Ok(outputs);
    }
    let mut assembled: Vec<NpyArray> = Vec::new();
    let mut start = 0;
    while start < rows {
        let end = rows.min(start.saturating_add(batch_size));
        let batch = run_batch(start, end)?;
        if start > 0 && batch.len() != assembled.len() {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "the model returned {} outputs for one batch and {} for another",
                    assembled.len(),
                    batch.len()
                ),
            });
        }
        for (ix, output) in batch.into_iter().enumerate() {
            let batch_rows = end - start;
            if output.rows() != Some(batch_rows) {
                return Err(Error::OutputNotBatched {
                    output: output.name,
                    shape: output.shape,
                    batch_rows,
                });
            }
            match assembled.get_mut(ix) {
                None => assembled.push(output),
                Some(acc) => {
                    if acc.shape.get(1..) != output.shape.get(1..)
                        || !acc.data.extend_from(&output.data)
                    {
                        return Err(Error::InvalidArgument {
                            reason: format!(
                                "output '{}' changed from {} to {} between batches",
                                acc.name,
                                acc.describe(),
                                output.describe()
                            ),
                        });
                    }
                    acc.shape[0] += batch_rows;
                }
            }
        }
        progress(end, rows);
        start = end;
    }
    Ok(assembled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, values: Vec<f32>) -> NpyArray {
        NpyArray::new(name, vec![values.len(), 1], ArrayData::F32(values)).unwrap()
    }

    #[test]
    fn batches_are_concatenated_in_order() {
        let mut seen = Vec::new();
        let mut calls = Vec::new();
        let out = run_in_batches(7, 3, &mut |done, total| seen.push((done, total)), |s, e| {
            calls.push((s, e));
            Ok(vec![column("y", (s..e).map(|i| i as f32).collect())])
        })
        .unwrap();
        assert_eq!(calls, vec![(0, 3), (3, 6), (6, 7)]);
        assert_eq!(seen, vec![(3, 7), (6, 7), (7, 7)]);
        assert_eq!(out[0].shape, vec![7, 1]);
        assert_eq!(
            out[0].data,
            ArrayData::F32((0..7).map(|i| i as f32).collect())
        );
    }

    #[test]
    fn unbatched_outputs_are_refused_only_when_batching() {
        let scalar = || {
            Ok(vec![
                NpyArray::new("s", vec![], ArrayData::F32(vec![1.0])).unwrap()
            ])
        };
        assert!(run_in_batches(3, 3, &mut |_, _| {}, |_, _| scalar()).is_ok());
        let e = run_in_batches(4, 3, &mut |_, _| {}, |_, _| scalar()).unwrap_err();
        assert!(matches!(e, Error::OutputNotBatched { .. }), "{e}");
    }

    #[test]
    fn rows_of_slices_rows() {
        let a = NpyArray::new("x", vec![3, 2], ArrayData::I64(vec![0, 1, 2, 3, 4, 5])).unwrap();
        let (shape, data) = rows_of(&a, 1, 3).unwrap();
        assert_eq!(shape, vec![2, 2]);
        assert!(matches!(data, RowsData::I64(&[2, 3, 4, 5])));
        assert!(rows_of(&a, 2, 4).is_none());
    }

    #[test]
    fn backend_names_parse() {
        for b in [Backend::Native, Backend::Tract] {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        assert!("onnxruntime".parse::<Backend>().is_err());
    }
}

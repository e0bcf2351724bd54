//! The native backend: the ctr-edge runtime (`Model::open` memory-maps the weights, one
//! `Session` scores every batch and reuses its scratch memory between calls).

use std::path::Path;

use ctr_edge_runtime::session::{Input, InputData};
use ctr_edge_runtime::{DType as RuntimeDType, Model};

use super::inputs::{match_inputs, Dim, InputSpec};
use super::{rows_of, run_in_batches, Job, RowsData};
use crate::error::{Error, Result};
use crate::npz::{ArrayData, DType, NpyArray};

pub(super) fn run(job: Job, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<NpyArray>> {
    let (path, inputs, batch_size) = (job.path, job.inputs, job.batch_size);
    let runtime_error = |source| Error::Runtime {
        path: path.to_path_buf(),
        source,
    };
    let model = Model::open(path).map_err(runtime_error)?;
    let specs: Vec<InputSpec> = model
        .inputs()
        .iter()
        .map(|info| InputSpec {
            name: info.name.clone(),
            dtype: Some(dtype_of(info.dtype)),
            dims: Some(
                info.shape
                    .iter()
                    .map(|d| d.map_or_else(|| Dim::Free("N".into()), Dim::Fixed))
                    .collect(),
            ),
        })
        .collect();
    let (matched, rows) = match_inputs(&specs, inputs)?;

    let output_count = model.outputs().len();
    let mut session = model.session();
    run_in_batches(rows, batch_size, progress, |start, end| {
        let mut batch = Vec::with_capacity(matched.len());
        for &array in &matched {
            let (shape, data) =
                rows_of(array, start, end).ok_or_else(|| Error::InvalidArgument {
                    reason: format!("rows {start}..{end} are outside input '{}'", array.name),
                })?;
            let data = match data {
                RowsData::F32(v) => InputData::F32(v),
                RowsData::I64(v) => InputData::I64(v),
                RowsData::I32(v) => InputData::I32(v),
                // The runtime takes f32, i64 and i32 inputs; the model declared this type, so
                // it is the runtime that cannot feed it.
                _ => {
                    return Err(Error::UnsupportedType {
                        value: array.name.clone(),
                        dtype: array.dtype().name().into(),
                    })
                }
            };
            batch.push((array.name.as_str(), shape, data));
        }
        let run_inputs: Vec<Input<'_>> = batch
            .iter()
            .map(|(name, shape, data)| Input {
                name,
                shape: shape.as_slice(),
                data: *data,
            })
            .collect();
        session.run(&run_inputs).map_err(|e| match e {
            // The scratch of a plan grows with the batch: say which knob lowers it.
            ctr_edge_runtime::Error::ResourceLimit {
                limit: "max_scratch_bytes",
                ..
            } if end - start > 1 => Error::InvalidArgument {
                reason: format!(
                    "native runtime, {}: {e} at {} rows per batch; a smaller --batch-size needs \
                     less",
                    path.display(),
                    end - start
                ),
            },
            e => runtime_error(e),
        })?;
        (0..output_count)
            .map(|ix| {
                let view = session.output(ix).ok_or_else(|| {
                    runtime_error(ctr_edge_runtime::Error::InvalidGraph {
                        reason: format!("the session has no output #{ix} after a run"),
                    })
                })?;
                Ok(NpyArray {
                    name: view.name.to_owned(),
                    shape: view.shape.to_vec(),
                    data: ArrayData::F32(view.data.to_vec()),
                })
            })
            .collect()
    })
}

/// Our element type for a runtime one.
fn dtype_of(dtype: RuntimeDType) -> DType {
    match dtype {
        RuntimeDType::F32 => DType::F32,
        RuntimeDType::F16 => DType::F16,
        RuntimeDType::I64 => DType::I64,
        RuntimeDType::I32 => DType::I32,
        RuntimeDType::Bool => DType::Bool,
    }
}

/// Refuses a model the native runtime's resource limits refuse (its default
/// [`ctr_edge_runtime::Limits`]: nodes, depth, folded-constant and scratch bytes, sizes that
/// overflow), before tract or the exporter's own decoder sees it: tract has no such limits, so a
/// 200-byte model asking for a constant of gigabytes, or a graph of 400k nodes, would cost it
/// that memory or abort the process. The model is opened and planned ([`run_on_zeros`]). Any other failure of the runtime (an op it lacks, a weights file it
/// rejects...) is not decided here: the caller goes on and reports its own findings.
pub(crate) fn check_resource_limits(path: &Path) -> Result<()> {
    match run_on_zeros(path) {
        Err(source @ ctr_edge_runtime::Error::ResourceLimit { .. }) => Err(Error::Runtime {
            path: path.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

/// Rows of zeros [`run_on_zeros`] scores: 2, the batch the runtime's loader validates at (at
/// batch 1, a `Squeeze` without axes, which DeepCTR's cross networks export, drops the batch
/// axis too: such models fail at batch 1 in onnxruntime as in the runtime, by ONNX's rules).
pub(crate) const ZERO_ROWS: usize = 2;

/// Opens the model at `path` with the native runtime and runs it once on [`ZERO_ROWS`] rows
/// of zeros (which plans it, folding its plan-time constants). Inputs of a type the exporter
/// cannot feed, or of an absurd fixed size, end the check after the open.
pub(crate) fn run_on_zeros(path: &Path) -> std::result::Result<(), ctr_edge_runtime::Error> {
    let model = Model::open(path)?;
    let mut shapes = Vec::with_capacity(model.inputs().len());
    let mut zeros = Vec::with_capacity(model.inputs().len());
    for info in model.inputs() {
        let shape: Vec<usize> = info.shape.iter().map(|d| d.unwrap_or(ZERO_ROWS)).collect();
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let data = match (info.dtype, n) {
            (_, None) => return Ok(()),
            (_, Some(n)) if n > 1 << 24 => return Ok(()),
            (RuntimeDType::F32, Some(n)) => ZeroData::F32(vec![0.0; n]),
            (RuntimeDType::I64, Some(n)) => ZeroData::I64(vec![0; n]),
            (RuntimeDType::I32, Some(n)) => ZeroData::I32(vec![0; n]),
            _ => return Ok(()),
        };
        shapes.push(shape);
        zeros.push(data);
    }
    let inputs: Vec<Input<'_>> = model
        .inputs()
        .iter()
        .zip(&shapes)
        .zip(&zeros)
        .map(|((info, shape), data)| Input {
            name: &info.name,
            shape,
            data: match data {
                ZeroData::F32(v) => InputData::F32(v),
                ZeroData::I64(v) => InputData::I64(v),
                ZeroData::I32(v) => InputData::I32(v),
            },
        })
        .collect();
    model.session().run(&inputs)
}

/// Zeros of one input of [`run_on_zeros`].
enum ZeroData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
}

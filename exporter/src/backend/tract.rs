//! The tract-onnx backend: load the ONNX file, give every input a fact whose first axis is a
//! symbolic batch dimension (so one optimized plan serves every batch size, the last partial
//! batch included), optimize, and run batch by batch.

use std::path::Path;

use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable,
    IntoTValue, Symbol, TDim, TVec, Tensor, ToDim, TractError, TractResult,
};
use tract_onnx::tract_hir::infer::Factoid;

use super::inputs::{match_inputs, Dim, InputSpec};
use super::{rows_of, run_in_batches, RowsData};
use crate::error::{Error, Result};
use crate::npz::{ArrayData, DType, NpyArray};

/// Name of the batch symbol when the model does not declare one.
const BATCH_SYMBOL: &str = "N";

pub(super) fn run(
    path: &Path,
    inputs: &[NpyArray],
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<NpyArray>> {
    let fail = |stage| tract_error(path, stage);
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(fail("loading"))?;
    let (mut specs, declared_batch) = declared_inputs(&model, path)?;
    let batch = match declared_batch {
        Some(symbol) => symbol,
        None => {
            // The file fixes the batch size (or leaves it unnamed): its value infos may carry
            // that fixed size and contradict the symbolic batch, so reload without them.
            model = tract_onnx::onnx()
                .with_ignore_value_info(true)
                .model_for_path(path)
                .map_err(fail("loading"))?;
            model.symbols.sym(BATCH_SYMBOL)
        }
    };
    for spec in &mut specs {
        // Messages show the batch axis by the symbol the model runs with.
        if let Some(first) = spec.dims.as_mut().and_then(|d| d.first_mut()) {
            *first = Dim::Free(batch.to_string());
        }
    }
    let (matched, rows) = match_inputs(&specs, inputs)?;

    for (ix, array) in matched.iter().enumerate() {
        let mut shape: Vec<TDim> = array.shape.iter().map(|&d| d.to_dim()).collect();
        if let Some(first) = shape.first_mut() {
            *first = TDim::Sym(batch.clone());
        }
        let fact = InferenceFact::dt_shape(datum_type(array.dtype()), shape);
        model
            .set_input_fact(ix, fact)
            .map_err(fail("setting input facts of"))?;
    }
    let output_names: Vec<String> = model
        .output_outlets()
        .map_err(fail("reading outputs of"))?
        .iter()
        .map(|&o| {
            model
                .outlet_label(o)
                .map_or_else(|| model.node(o.node).name.clone(), str::to_owned)
        })
        .collect();

    let plan = model
        .into_optimized()
        .map_err(fail("optimizing"))?
        .into_runnable()
        .map_err(fail("preparing"))?;

    run_in_batches(rows, batch_size, progress, |start, end| {
        let values: TVec<_> = matched
            .iter()
            .map(|array| {
                let (shape, data) =
                    rows_of(array, start, end).ok_or_else(|| Error::InvalidArgument {
                        reason: format!("rows {start}..{end} are outside input '{}'", array.name),
                    })?;
                Ok(tensor_of(&shape, data)
                    .map_err(fail("building inputs for"))?
                    .into_tvalue())
            })
            .collect::<Result<_>>()?;
        let outputs = plan.run(values).map_err(fail("running"))?;
        outputs
            .iter()
            .zip(&output_names)
            .map(|(t, name)| array_of(name, t)?.map_err(fail("reading outputs of")))
            .collect()
    })
}

/// Maps a tract error at `stage` of handling the model at `path` to ours.
fn tract_error<'p>(path: &'p Path, stage: &'static str) -> impl FnOnce(TractError) -> Error + 'p {
    move |e| Error::Tract {
        path: path.to_path_buf(),
        stage,
        // `{:#}` keeps tract's chain of causes on one line.
        reason: format!("{e:#}"),
    }
}

/// The model's inputs as declared in the file, and the symbol of the first input's first
/// dimension when it is symbolic (the batch symbol the file uses, maybe in value infos too).
fn declared_inputs(
    model: &InferenceModel,
    path: &Path,
) -> Result<(Vec<InputSpec>, Option<Symbol>)> {
    let outlets = model
        .input_outlets()
        .map_err(tract_error(path, "reading inputs of"))?;
    let mut specs = Vec::with_capacity(outlets.len());
    let mut batch = None;
    for (ix, outlet) in outlets.iter().enumerate() {
        let name = model.node(outlet.node).name.clone();
        let fact = model
            .input_fact(ix)
            .map_err(tract_error(path, "reading inputs of"))?;
        let dtype = match fact.datum_type.concretize() {
            None => None,
            Some(dt) => Some(dtype_of(dt).ok_or_else(|| Error::UnsupportedType {
                value: name.clone(),
                dtype: format!("{dt:?}"),
            })?),
        };
        let dims = if fact.shape.is_open() {
            None
        } else {
            let dims: Vec<Option<TDim>> = fact.shape.dims().map(|d| d.concretize()).collect();
            if let (None, Some(Some(TDim::Sym(symbol)))) = (&batch, dims.first()) {
                batch = Some(symbol.clone());
            }
            Some(
                dims.into_iter()
                    .map(|d| match d {
                        Some(TDim::Val(v)) => usize::try_from(v)
                            .map(Dim::Fixed)
                            .unwrap_or_else(|_| Dim::Free(v.to_string())),
                        Some(other) => Dim::Free(other.to_string()),
                        None => Dim::Free("?".into()),
                    })
                    .collect(),
            )
        };
        specs.push(InputSpec { name, dtype, dims });
    }
    Ok((specs, batch))
}

/// Our element type for a tract datum type, if supported.
fn dtype_of(dt: DatumType) -> Option<DType> {
    Some(match dt {
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        DatumType::I64 => DType::I64,
        DatumType::I32 => DType::I32,
        DatumType::Bool => DType::Bool,
        DatumType::F16 => DType::F16,
        _ => return None,
    })
}

/// tract's datum type for one of ours.
fn datum_type(dtype: DType) -> DatumType {
    match dtype {
        DType::F32 => DatumType::F32,
        DType::F64 => DatumType::F64,
        DType::I64 => DatumType::I64,
        DType::I32 => DatumType::I32,
        DType::Bool => DatumType::Bool,
        DType::F16 => DatumType::F16,
    }
}

fn tensor_of(shape: &[usize], data: RowsData<'_>) -> TractResult<Tensor> {
    match data {
        RowsData::F32(v) => Tensor::from_shape(shape, v),
        RowsData::F64(v) => Tensor::from_shape(shape, v),
        RowsData::I64(v) => Tensor::from_shape(shape, v),
        RowsData::I32(v) => Tensor::from_shape(shape, v),
        RowsData::Bool(v) => Tensor::from_shape(shape, v),
        RowsData::F16(v) => Tensor::from_shape(shape, v),
    }
}

/// Copy an output tensor into an array: an unsupported type is an error of ours, a failure to
/// view the tensor a tract error (the inner result).
fn array_of(name: &str, t: &Tensor) -> Result<TractResult<NpyArray>> {
    let dt = t.datum_type();
    let dtype = dtype_of(dt).ok_or_else(|| Error::UnsupportedType {
        value: name.to_owned(),
        dtype: format!("{dt:?}"),
    })?;
    let copy = || -> TractResult<ArrayData> {
        let view = t.try_as_plain()?;
        Ok(match dtype {
            DType::F32 => ArrayData::F32(view.as_slice::<f32>()?.to_vec()),
            DType::F64 => ArrayData::F64(view.as_slice::<f64>()?.to_vec()),
            DType::I64 => ArrayData::I64(view.as_slice::<i64>()?.to_vec()),
            DType::I32 => ArrayData::I32(view.as_slice::<i32>()?.to_vec()),
            DType::Bool => ArrayData::Bool(view.as_slice::<bool>()?.to_vec()),
            DType::F16 => ArrayData::F16(view.as_slice::<half::f16>()?.to_vec()),
        })
    };
    Ok(copy().map(|data| NpyArray {
        name: name.to_owned(),
        shape: t.shape().to_vec(),
        data,
    }))
}

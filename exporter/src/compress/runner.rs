//! Running an in-memory `ModelProto` with tract, batch by batch, exposing chosen intermediate
//! tensors as outputs: the engine of calibration (site outputs of the original model),
//! measurement (site outputs of original and compressed side by side) and evaluation.
//!
//! Data arrays are matched to the model's declared inputs by the same rules as
//! `ctr-edge run` (`backend::inputs`), so a calibration file with a missing input, a wrong
//! dtype or a wrong shape is refused with the same message.

use std::sync::Arc;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue, TDim, TVec,
    Tensor, TractError, TypedRunnableModel,
};

use super::graph::graph;
use crate::backend::inputs::{match_inputs, Dim, InputSpec};
use crate::error::{Error, Result};
use crate::npz::{ArrayData, DType, NpyArray};

/// The batch symbol of the optimized plan when the model does not name one.
const BATCH_SYMBOL: &str = "N";

/// The model's own name for the batch axis (the first input's symbolic first dimension), so
/// value infos that use it unify with the facts we set; `N` otherwise.
fn batch_symbol(model: &ModelProto) -> String {
    graph(model)
        .ok()
        .and_then(|g| {
            g.input
                .iter()
                .find(|v| !g.initializer.iter().any(|t| t.name == v.name))
        })
        .and_then(|v| match &v.r#type.as_ref()?.value {
            Some(TypeValue::TensorType(t)) => t.shape.as_ref()?.dim.first().cloned(),
            _ => None,
        })
        .and_then(|d| match d.value {
            Some(DimValue::DimParam(p)) if !p.is_empty() => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| BATCH_SYMBOL.to_owned())
}

/// A model optimized for the data it will run on, with the tensors it returns.
pub struct TractRunner {
    plan: Arc<TypedRunnableModel>,
    /// The data arrays matched to the model inputs, in input order.
    inputs: Vec<NpyArray>,
    rows: usize,
    /// Names of the returned tensors, in order.
    outputs: Vec<String>,
}

/// The declared inputs of an ONNX graph (initializers listed as inputs excluded).
pub(crate) fn input_specs(model: &ModelProto) -> Result<Vec<InputSpec>> {
    let g = graph(model)?;
    let batch = batch_symbol(model);
    let mut specs = Vec::new();
    for v in &g.input {
        if g.initializer.iter().any(|t| t.name == v.name) {
            continue;
        }
        let tensor = v.r#type.as_ref().and_then(|t| match &t.value {
            Some(TypeValue::TensorType(t)) => Some(t),
            _ => None,
        });
        let dtype = tensor.and_then(|t| dtype_of_onnx(t.elem_type));
        let dims = tensor.and_then(|t| t.shape.as_ref()).map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                    Some(DimValue::DimParam(p)) => Dim::Free(p.clone()),
                    _ => Dim::Free("?".into()),
                })
                .collect::<Vec<_>>()
        });
        let dims = dims.map(|mut d| {
            if let Some(first) = d.first_mut() {
                *first = Dim::Free(batch.clone());
            }
            d
        });
        specs.push(InputSpec {
            name: v.name.clone(),
            dtype,
            dims,
        });
    }
    Ok(specs)
}

fn dtype_of_onnx(elem_type: i32) -> Option<DType> {
    Some(match DataType::try_from(elem_type).ok()? {
        DataType::Float => DType::F32,
        DataType::Double => DType::F64,
        DataType::Int64 => DType::I64,
        DataType::Int32 => DType::I32,
        DataType::Bool => DType::Bool,
        DataType::Float16 => DType::F16,
        _ => return None,
    })
}

/// Checks `data` against the model's inputs: the matched arrays in input order and the row
/// count. Zero rows is an error (nothing to calibrate or evaluate on).
pub fn match_data(model: &ModelProto, data: &[NpyArray]) -> Result<(Vec<NpyArray>, usize)> {
    let specs = input_specs(model)?;
    let (matched, rows) = match_inputs(&specs, data)?;
    if rows == 0 {
        return Err(Error::InvalidArgument {
            reason: "the data has no rows".into(),
        });
    }
    Ok((matched.into_iter().cloned().collect(), rows))
}

impl TractRunner {
    /// Prepares `model` to run on `data` and return the tensors named `outputs` (ONNX tensor
    /// names; the model's own outputs when empty).
    pub fn new(model: &ModelProto, data: &[NpyArray], outputs: &[String]) -> Result<TractRunner> {
        let (inputs, rows) = match_data(model, data)?;
        let fail = |stage: &'static str| {
            move |e: TractError| Error::Tract {
                path: "(model in memory)".into(),
                stage,
                reason: format!("{e:#}"),
            }
        };
        let mut im = tract_onnx::onnx()
            .model_for_proto_model(model)
            .map_err(fail("loading"))?;
        let batch = im.symbols.sym(&batch_symbol(model));
        for (ix, array) in inputs.iter().enumerate() {
            let mut shape: Vec<TDim> = array.shape.iter().map(|&d| TDim::from(d as i64)).collect();
            shape[0] = TDim::Sym(batch.clone());
            im.set_input_fact(
                ix,
                InferenceFact::dt_shape(datum_type(array.dtype()), shape),
            )
            .map_err(fail("setting input facts of"))?;
        }
        let outputs: Vec<String> = if outputs.is_empty() {
            graph(model)?
                .output
                .iter()
                .map(|v| v.name.clone())
                .collect()
        } else {
            outputs.to_vec()
        };
        im.select_outputs_by_name(&outputs)
            .map_err(fail("selecting outputs of"))?;
        let plan = im
            .into_optimized()
            .map_err(fail("optimizing"))?
            .into_runnable()
            .map_err(fail("preparing"))?;
        Ok(TractRunner {
            plan,
            inputs,
            rows,
            outputs,
        })
    }

    /// Number of data rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Names of the returned tensors.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// Runs rows `start..end` and returns the selected tensors as f32 values (with shapes).
    pub fn run_rows(&self, start: usize, end: usize) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let fail = |stage: &'static str| {
            move |e: TractError| Error::Tract {
                path: "(model in memory)".into(),
                stage,
                reason: format!("{e:#}"),
            }
        };
        let values: TVec<_> = self
            .inputs
            .iter()
            .map(|a| {
                let rows = a
                    .rows_slice(start, end)
                    .ok_or_else(|| Error::InvalidArgument {
                        reason: format!("rows {start}..{end} are outside input '{}'", a.name),
                    })?;
                Ok(tensor_of(&rows)
                    .map_err(fail("building inputs for"))?
                    .into_tvalue())
            })
            .collect::<Result<_>>()?;
        let outs = self.plan.run(values).map_err(fail("running"))?;
        outs.iter()
            .zip(&self.outputs)
            .map(|(t, name)| {
                let t = t
                    .cast_to::<f32>()
                    .map_err(|e| Error::UnsupportedType {
                        value: name.clone(),
                        dtype: format!("{:?} ({e})", t.datum_type()),
                    })?
                    .into_owned();
                let values = t
                    .try_as_plain()
                    .and_then(|v| Ok(v.as_slice::<f32>()?.to_vec()))
                    .map_err(fail("reading outputs of"))?;
                Ok((t.shape().to_vec(), values))
            })
            .collect()
    }

    /// Runs every row in batches of `batch_size`, calling `each(start, end, outputs)` per batch
    /// and `progress(rows_done, rows_total)` after it.
    pub fn for_each_batch(
        &self,
        batch_size: usize,
        progress: &mut dyn FnMut(usize, usize),
        mut each: impl FnMut(usize, usize, Vec<(Vec<usize>, Vec<f32>)>) -> Result<()>,
    ) -> Result<()> {
        let batch_size = batch_size.max(1);
        let mut start = 0;
        while start < self.rows {
            let end = self.rows.min(start + batch_size);
            let outs = self.run_rows(start, end)?;
            each(start, end, outs)?;
            progress(end, self.rows);
            start = end;
        }
        Ok(())
    }
}

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

fn tensor_of(a: &NpyArray) -> tract_onnx::prelude::TractResult<Tensor> {
    let shape = a.shape.as_slice();
    match &a.data {
        ArrayData::F32(v) => Tensor::from_shape(shape, v),
        ArrayData::F64(v) => Tensor::from_shape(shape, v),
        ArrayData::I64(v) => Tensor::from_shape(shape, v),
        ArrayData::I32(v) => Tensor::from_shape(shape, v),
        ArrayData::Bool(v) => Tensor::from_shape(shape, v),
        ArrayData::F16(v) => Tensor::from_shape(shape, v),
    }
}

//! The tract engine, the one place the exporter runs tract-onnx:
//! - `ctr-edge run`/`eval --backend tract` ([`run`]): the ONNX file as given, its own outputs,
//!   results as arrays of their own element types;
//! - compression ([`PlannedModel`]): a model in memory with chosen intermediate tensors exposed
//!   as outputs, planned once and run on every data set that fits the plan (calibration,
//!   error measurement, evaluation), results as f32.
//!
//! Either way every input gets a fact whose first axis is a symbolic batch dimension (so one
//! optimized plan serves every batch size, the last partial batch included), the model is
//! optimized once, and rows `start..end` of the matched arrays are fed per call.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable,
    IntoTValue, Symbol, TDim, TValue, TVec, Tensor, ToDim, TractError, TractResult,
    TypedRunnableModel,
};
use tract_onnx::tract_hir::infer::Factoid;

use super::inputs::{match_inputs, Dim, InputSpec};
use super::{rows_of, run_in_batches, Job, RowsData};
use crate::error::{Error, Result};
use crate::npz::{ArrayData, DType, NpyArray};

/// Name of the batch symbol when the model does not declare one.
const BATCH_SYMBOL: &str = "N";
/// What messages call a model that has no file.
const IN_MEMORY: &str = "(model in memory)";

pub(super) fn run(job: Job, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<NpyArray>> {
    // tract has no resource limits: what the native runtime's refuse never reaches it.
    super::check_resource_limits(job.path)?;
    let path = job.path;
    guarded(path, "running", || run_unguarded(job, progress))
}

fn run_unguarded(job: Job, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<NpyArray>> {
    let (path, inputs, batch_size) = (job.path, job.inputs, job.batch_size);
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
    let plan = Plan::optimize(model, &batch, &matched, None, path.to_path_buf())?;
    run_in_batches(rows, batch_size, progress, |start, end| {
        let outputs = plan.run(&matched, start, end)?;
        outputs
            .iter()
            .zip(&output_names)
            .map(|(t, name)| array_of(name, t)?.map_err(fail("reading outputs of")))
            .collect()
    })
}

/// An optimized tract plan, and the model's origin for messages (its path, or
/// [`IN_MEMORY`]).
struct Plan {
    runnable: Arc<TypedRunnableModel>,
    origin: PathBuf,
}

impl Plan {
    /// Gives input `i` the element type and shape of `matched[i]`, its first axis the symbol
    /// `batch`; keeps only the tensors `select` when given; optimizes.
    fn optimize(
        mut model: InferenceModel,
        batch: &Symbol,
        matched: &[&NpyArray],
        select: Option<&[String]>,
        origin: PathBuf,
    ) -> Result<Plan> {
        let fail = |stage| tract_error(&origin, stage);
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
        if let Some(outputs) = select {
            model
                .select_outputs_by_name(outputs)
                .map_err(fail("selecting outputs of"))?;
        }
        let runnable = model
            .into_optimized()
            .map_err(fail("optimizing"))?
            .into_runnable()
            .map_err(fail("preparing"))?;
        Ok(Plan { runnable, origin })
    }

    /// Runs rows `start..end` of `inputs` (in model input order).
    fn run(&self, inputs: &[&NpyArray], start: usize, end: usize) -> Result<TVec<TValue>> {
        let values: TVec<_> = inputs
            .iter()
            .map(|array| {
                let (shape, data) =
                    rows_of(array, start, end).ok_or_else(|| Error::InvalidArgument {
                        reason: format!("rows {start}..{end} are outside input '{}'", array.name),
                    })?;
                Ok(tensor_of(&shape, data)
                    .map_err(self.fail("building inputs for"))?
                    .into_tvalue())
            })
            .collect::<Result<_>>()?;
        guarded(&self.origin, "running", || {
            self.runnable.run(values).map_err(self.fail("running"))
        })
    }

    fn fail(&self, stage: &'static str) -> impl FnOnce(TractError) -> Error + '_ {
        tract_error(&self.origin, stage)
    }
}

/// Runs `f`, code that calls tract on the model at `path` (or [`IN_MEMORY`]): a panic inside
/// tract becomes [`Error::Tract`] at `stage`, its message kept, nothing printed.
pub(crate) fn guarded<T>(
    path: &Path,
    stage: &'static str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    ctr_edge_harness::contain::contained(f).unwrap_or_else(|panic| {
        Err(Error::Tract {
            path: path.to_path_buf(),
            stage,
            reason: format!("internal error in tract (a panic, caught): {panic}"),
        })
    })
}

/// [`guarded`] for a model in memory.
pub(crate) fn guarded_in_memory<T>(
    stage: &'static str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    guarded(Path::new(IN_MEMORY), stage, f)
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

/// [`tract_error`] for a model in memory.
pub(crate) fn in_memory_error(stage: &'static str) -> impl FnOnce(TractError) -> Error {
    move |e| tract_error(Path::new(IN_MEMORY), stage)(e)
}

/// Element type and shape past the batch axis of each input: what a plan was optimized for.
type InputKinds = Vec<(DType, Vec<usize>)>;

fn kinds_of(inputs: &[&NpyArray]) -> InputKinds {
    inputs
        .iter()
        .map(|a| (a.dtype(), a.shape.iter().skip(1).copied().collect()))
        .collect()
}

/// A model in memory and the tensors its runs return, planned by tract on first use and
/// reused by every later run on data of the same input types and shapes (a data set of other
/// ones gets its own plan).
pub(crate) struct PlannedModel<'m> {
    model: &'m ModelProto,
    outputs: Vec<String>,
    plans: RefCell<Vec<(InputKinds, Rc<Plan>)>>,
}

impl<'m> PlannedModel<'m> {
    /// `model`, returning the tensors named `outputs` (ONNX tensor names; the model's own
    /// outputs when empty).
    pub fn new(model: &'m ModelProto, outputs: Vec<String>) -> Result<PlannedModel<'m>> {
        let outputs = if outputs.is_empty() {
            graph_outputs(model)?
        } else {
            outputs
        };
        Ok(PlannedModel {
            model,
            outputs,
            plans: RefCell::new(Vec::new()),
        })
    }

    /// The model.
    pub fn model(&self) -> &'m ModelProto {
        self.model
    }

    /// A runner of `data` returning every output of the plan.
    pub fn runner<'d>(&self, data: &'d [NpyArray]) -> Result<TractRunner<'d>> {
        self.runner_of(data, &self.outputs.clone())
    }

    /// A runner of `data` returning the tensors `wanted` (outputs of the plan), in order.
    pub fn runner_of<'d>(
        &self,
        data: &'d [NpyArray],
        wanted: &[String],
    ) -> Result<TractRunner<'d>> {
        let (inputs, rows) = match_data(self.model, data)?;
        let picked = wanted
            .iter()
            .map(|name| {
                let ix = self.outputs.iter().position(|o| o == name).ok_or_else(|| {
                    Error::InvalidArgument {
                        reason: format!("internal error: '{name}' is not an output of the plan"),
                    }
                })?;
                Ok((ix, name.clone()))
            })
            .collect::<Result<_>>()?;
        let plan = self.plan_for(&inputs)?;
        Ok(TractRunner {
            plan,
            inputs,
            rows,
            picked,
        })
    }

    fn plan_for(&self, inputs: &[&NpyArray]) -> Result<Rc<Plan>> {
        let kinds = kinds_of(inputs);
        if let Some((_, plan)) = self.plans.borrow().iter().find(|(k, _)| *k == kinds) {
            return Ok(Rc::clone(plan));
        }
        let plan = Rc::new(guarded_in_memory("optimizing", || {
            let im = tract_onnx::onnx()
                .model_for_proto_model(self.model)
                .map_err(in_memory_error("loading"))?;
            let batch = im.symbols.sym(&batch_symbol(self.model));
            Plan::optimize(im, &batch, inputs, Some(&self.outputs), IN_MEMORY.into())
        })?);
        self.plans.borrow_mut().push((kinds, Rc::clone(&plan)));
        Ok(plan)
    }
}

/// Data matched to a plan's inputs, and the plan's tensors it returns.
pub(crate) struct TractRunner<'d> {
    plan: Rc<Plan>,
    /// The data arrays matched to the model inputs, in input order.
    inputs: Vec<&'d NpyArray>,
    rows: usize,
    /// Index among the plan's outputs and name of each returned tensor.
    picked: Vec<(usize, String)>,
}

impl TractRunner<'_> {
    /// Number of data rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Runs rows `start..end` and returns the selected tensors as f32 values (with shapes).
    pub fn run_rows(&self, start: usize, end: usize) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let outs = self.plan.run(&self.inputs, start, end)?;
        self.picked
            .iter()
            .map(|(ix, name)| {
                let t = &outs[*ix];
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
                    .map_err(self.plan.fail("reading outputs of"))?;
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

/// The names of the model's outputs.
fn graph_outputs(model: &ModelProto) -> Result<Vec<String>> {
    Ok(proto_graph(model)?
        .output
        .iter()
        .map(|v| v.name.clone())
        .collect())
}

fn proto_graph(model: &ModelProto) -> Result<&tract_onnx::pb::GraphProto> {
    crate::compress::graph::graph(model)
}

/// The model's own name for the batch axis (the first input's symbolic first dimension), so
/// value infos that use it unify with the facts we set; `N` otherwise.
fn batch_symbol(model: &ModelProto) -> String {
    proto_graph(model)
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

/// The declared inputs of an ONNX graph in memory (initializers listed as inputs excluded),
/// the first axis named by the batch symbol.
fn proto_inputs(model: &ModelProto) -> Result<Vec<InputSpec>> {
    let g = proto_graph(model)?;
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
            let mut dims: Vec<Dim> = s
                .dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                    Some(DimValue::DimParam(p)) => Dim::Free(p.clone()),
                    _ => Dim::Free("?".into()),
                })
                .collect();
            if let Some(first) = dims.first_mut() {
                *first = Dim::Free(batch.clone());
            }
            dims
        });
        specs.push(InputSpec {
            name: v.name.clone(),
            dtype,
            dims,
        });
    }
    Ok(specs)
}

/// Checks `data` against the inputs of `model` (in memory): the matched arrays in input order
/// and the row count. Zero rows is an error (nothing to calibrate or evaluate on).
pub(crate) fn match_data<'d>(
    model: &ModelProto,
    data: &'d [NpyArray],
) -> Result<(Vec<&'d NpyArray>, usize)> {
    let specs = proto_inputs(model)?;
    let (matched, rows) = match_inputs(&specs, data)?;
    if rows == 0 {
        return Err(Error::InvalidArgument {
            reason: "the data has no rows".into(),
        });
    }
    Ok((matched, rows))
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

/// Our element type for an ONNX one, if supported.
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

#[cfg(test)]
mod tests {
    use tract_onnx::pb::tensor_proto::DataType;

    use super::*;
    use crate::onnx_build::{model, node, tensor_f32, value_info};

    /// `h = x W`, `y = Relu(h)`, x: [N, 2].
    fn two_step_model() -> ModelProto {
        model(
            vec![
                node("MatMul", &["x", "w"], &["h"], vec![]),
                node("Relu", &["h"], &["y"], vec![]),
            ],
            vec![tensor_f32("w", &[2, 3], &[1., -1., 0.5, 2., 0., -2.])],
            vec![value_info("x", DataType::Float, &[None, Some(2)])],
            vec![value_info("y", DataType::Float, &[None, Some(3)])],
        )
    }

    fn x(rows: usize, dtype_f64: bool) -> Vec<NpyArray> {
        let values: Vec<f32> = (0..rows * 2).map(|i| i as f32 - 3.0).collect();
        let data = if dtype_f64 {
            ArrayData::F64(values.iter().map(|&v| f64::from(v)).collect())
        } else {
            ArrayData::F32(values)
        };
        vec![NpyArray::new("x", vec![rows, 2], data).unwrap()]
    }

    #[test]
    fn one_plan_serves_every_data_set_of_the_same_kind() {
        let m = two_step_model();
        let planned = PlannedModel::new(&m, vec!["h".into(), "y".into()]).unwrap();
        let (a, b) = (x(5, false), x(3, false));
        let ra = planned.runner(&a).unwrap();
        let rb = planned.runner_of(&b, &["y".into()]).unwrap();
        assert_eq!(planned.plans.borrow().len(), 1);
        assert_eq!((ra.rows(), rb.rows()), (5, 3));
        let outs = ra.run_rows(0, 2).unwrap();
        assert_eq!(outs.len(), 2);
        assert_eq!(outs[0].0, vec![2, 3]);
        // Relu of the first output, picked alone from the same plan.
        let y = rb.run_rows(0, 2).unwrap();
        assert_eq!(y.len(), 1);
        let relu: Vec<f32> = outs[0].1.iter().map(|v| v.max(0.0)).collect();
        assert_eq!(y[0].1, relu);
        assert!(planned.runner_of(&a, &["nope".into()]).is_err());
    }

    #[test]
    fn the_model_outputs_by_default_and_bad_data_is_refused() {
        let m = two_step_model();
        let planned = PlannedModel::new(&m, Vec::new()).unwrap();
        assert_eq!(planned.outputs, vec!["y".to_string()]);
        let e = planned.runner(&x(0, false)).err().unwrap();
        assert!(e.to_string().contains("no rows"), "{e}");
        let e = planned.runner(&x(2, true)).err().unwrap();
        assert!(e.to_string().contains("f64"), "{e}");
        // Nothing was planned for data that does not fit.
        assert!(planned.plans.borrow().is_empty());
    }
}

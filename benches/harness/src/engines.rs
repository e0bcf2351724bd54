//! The measured engines: the ctr-edge runtime always, tract-onnx with the `tract` feature. Each
//! opens the file (timed, resident memory before and after), reopens it for the median open
//! time, runs once (resident memory after the first run), then times every batch size.

use std::path::Path;
use std::time::Instant;

use ctr_edge_runtime::model::IoInfo;
use ctr_edge_runtime::{Input, Model};

use crate::error::BenchError;
use crate::inputs::synthesize;
use crate::memory::resident_kib;
use crate::options::Options;
use crate::report::{BatchFigures, Engine, EngineRun, Role};
use crate::timing::{median_ms, time_runs, time_runs_interleaved};

/// What measuring the ctr-edge runtime on one file gives: the figures, those of the same model
/// with its plan-time fusions off (`--no-fusion`), and the model's input specs (the reference
/// engines are fed the same inputs).
pub(crate) struct CtrEdgeRun {
    pub run: EngineRun,
    pub unfused: Option<EngineRun>,
    pub specs: Vec<IoInfo>,
}

/// `Err(ModelNotFound)` unless `path` is a readable file.
pub(crate) fn check_exists(path: &Path) -> Result<(), BenchError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(BenchError::ModelNotFound {
            path: path.to_path_buf(),
        })
    }
}

/// Measures the ctr-edge runtime on `path`. With `--no-fusion`, a second session on the same
/// model plans without fusions, and the timed runs of the two sessions alternate (one call of
/// each per round), so that the machine's slow and fast phases hit both alike.
pub(crate) fn measure_ctr_edge(
    role: Role,
    path: &Path,
    opts: &Options,
) -> Result<CtrEdgeRun, BenchError> {
    check_exists(path)?;
    let fail = |stage: String| {
        move |source| BenchError::Runtime {
            path: path.to_path_buf(),
            stage,
            source: Box::new(source),
        }
    };
    let rss_before_open_kib = resident_kib();
    let start = Instant::now();
    let model = Model::open(path).map_err(fail("opening".into()))?;
    let mut opens = vec![start.elapsed()];
    let rss_after_open_kib = resident_kib();
    for _ in 1..opens_wanted(opts) {
        let start = Instant::now();
        let again = Model::open(path).map_err(fail("opening".into()))?;
        opens.push(start.elapsed());
        drop(again);
    }

    let mut session = model.session();
    let mut unfused = model.session();
    unfused.set_fusion(false);
    let mut rss_after_first_run_kib = None;
    let mut rss_after_first_unfused_kib = None;
    let mut batches = Vec::with_capacity(opts.batches.len());
    let mut unfused_batches = Vec::with_capacity(opts.batches.len());
    for (ix, &batch) in opts.batches.iter().enumerate() {
        let values = synthesize(model.inputs(), batch)?;
        let inputs: Vec<Input<'_>> = values.iter().map(|v| v.as_input()).collect();
        let stage = format!("running at batch {batch}");
        let mut run = || session.run(&inputs).map_err(fail(stage.clone()));
        if ix == 0 {
            run()?;
            rss_after_first_run_kib = resident_kib();
        }
        if !opts.no_fusion {
            let latency = time_runs(opts.warmup, opts.iters, &mut run)?;
            batches.push(BatchFigures::new(batch, latency));
            continue;
        }
        let stage = format!("running without fusions at batch {batch}");
        let mut run_unfused = || unfused.run(&inputs).map_err(fail(stage.clone()));
        if ix == 0 {
            run_unfused()?;
            rss_after_first_unfused_kib = resident_kib();
        }
        let latencies =
            time_runs_interleaved(opts.warmup, opts.iters, &mut [&mut run, &mut run_unfused])?;
        batches.push(BatchFigures::new(batch, latencies[0]));
        unfused_batches.push(BatchFigures::new(batch, latencies[1]));
    }
    let run = EngineRun {
        role,
        engine: Engine::CtrEdge,
        path: path.to_path_buf(),
        kernel_variant: model.kernel_variant().name().to_owned(),
        open_ms: median_ms(&mut opens),
        rss_before_open_kib,
        rss_after_open_kib,
        rss_after_first_run_kib,
        batches,
    };
    let unfused = opts.no_fusion.then(|| EngineRun {
        engine: Engine::CtrEdgeNoFusion,
        // After the fused session's first run: the growth is the unfused plan's buffers.
        rss_after_open_kib: rss_after_first_run_kib,
        rss_after_first_run_kib: rss_after_first_unfused_kib,
        batches: unfused_batches,
        ..run.clone()
    });
    Ok(CtrEdgeRun {
        run,
        unfused,
        specs: model.inputs().to_vec(),
    })
}

fn opens_wanted(opts: &Options) -> usize {
    opts.open_reps.max(1)
}

#[cfg(feature = "tract")]
pub(crate) use tract_engine::measure_tract;

#[cfg(feature = "tract")]
mod tract_engine {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Instant;

    use ctr_edge_runtime::model::IoInfo;
    use tract_onnx::prelude::{
        DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue, TDim,
        TValue, TVec, Tensor, ToDim, TractError, TypedRunnableModel,
    };
    use tract_onnx::tract_hir::infer::Factoid;

    use super::{check_exists, opens_wanted};
    use crate::error::BenchError;
    use crate::inputs::{synthesize, Values};
    use crate::memory::resident_kib;
    use crate::options::Options;
    use crate::report::{BatchFigures, Engine, EngineRun, Role};
    use crate::timing::{median_ms, time_runs};

    /// Name of the batch symbol when the file does not declare one.
    const BATCH_SYMBOL: &str = "N";

    fn tract_error(path: &Path, stage: &str) -> impl FnOnce(TractError) -> BenchError {
        let (path, stage) = (path.to_path_buf(), stage.to_owned());
        // `{:#}` keeps tract's chain of causes on one line.
        move |e| BenchError::Tract {
            path,
            stage,
            reason: format!("{e:#}"),
        }
    }

    /// Loads, types and optimizes `path` with a symbolic batch dimension (one plan serves
    /// every batch size; the open time is what an app pays before its first score).
    fn load(path: &Path, specs: &[IoInfo]) -> Result<Arc<TypedRunnableModel>, BenchError> {
        let fail = |stage| tract_error(path, stage);
        let read = |ignore_value_info| {
            tract_onnx::onnx()
                .with_ignore_value_info(ignore_value_info)
                .model_for_path(path)
                .map_err(fail("loading"))
        };
        let mut model = read(false)?;
        let declared = model
            .input_fact(0)
            .ok()
            .and_then(|f| f.shape.dims().next().and_then(|d| d.concretize()));
        let batch = match declared {
            Some(TDim::Sym(symbol)) => symbol,
            _ => {
                // A file without a batch symbol may fix the batch size in its value infos,
                // which would contradict the symbolic batch: reload without them.
                model = read(true)?;
                model.symbols.sym(BATCH_SYMBOL)
            }
        };
        let outlets = model
            .input_outlets()
            .map_err(fail("reading inputs of"))?
            .to_vec();
        for (ix, outlet) in outlets.iter().enumerate() {
            let name = &model.node(outlet.node).name;
            let spec = specs.iter().find(|s| &s.name == name).ok_or_else(|| {
                BenchError::unsupported(name, "tract sees an input the ctr-edge runtime does not")
            })?;
            let dt = match spec.dtype {
                ctr_edge_runtime::DType::F32 => DatumType::F32,
                ctr_edge_runtime::DType::I64 => DatumType::I64,
                ctr_edge_runtime::DType::I32 => DatumType::I32,
                other => return Err(BenchError::unsupported(name, format!("dtype {other:?}"))),
            };
            let shape: Vec<TDim> = spec
                .shape
                .iter()
                .map(|d| match d {
                    Some(v) => v.to_dim(),
                    None => TDim::Sym(batch.clone()),
                })
                .collect();
            model
                .set_input_fact(ix, InferenceFact::dt_shape(dt, shape))
                .map_err(fail("setting input facts of"))?;
        }
        model
            .into_optimized()
            .map_err(fail("optimizing"))?
            .into_runnable()
            .map_err(fail("preparing"))
    }

    /// Inputs in the order of the plan's inputs.
    fn tract_inputs(
        path: &Path,
        plan: &TypedRunnableModel,
        specs: &[IoInfo],
        batch: usize,
    ) -> Result<TVec<TValue>, BenchError> {
        let values = synthesize(specs, batch)?;
        let model = plan.model();
        model
            .input_outlets()
            .map_err(tract_error(path, "reading inputs of"))?
            .iter()
            .map(|outlet| {
                let name = &model.node(outlet.node).name;
                let v = values.iter().find(|v| &v.name == name).ok_or_else(|| {
                    BenchError::unsupported(name, "not an input of the ctr-edge model")
                })?;
                let tensor = match &v.values {
                    Values::F32(d) => Tensor::from_shape(&v.shape, d),
                    Values::I64(d) => Tensor::from_shape(&v.shape, d),
                    Values::I32(d) => Tensor::from_shape(&v.shape, d),
                };
                Ok(tensor
                    .map_err(tract_error(path, "building inputs for"))?
                    .into_tvalue())
            })
            .collect()
    }

    /// Measures tract on `path`, fed the inputs the ctr-edge runtime got (`specs`).
    pub(crate) fn measure_tract(
        role: Role,
        path: &Path,
        specs: &[IoInfo],
        opts: &Options,
    ) -> Result<EngineRun, BenchError> {
        check_exists(path)?;
        let rss_before_open_kib = resident_kib();
        let start = Instant::now();
        let plan = load(path, specs)?;
        let mut opens = vec![start.elapsed()];
        let rss_after_open_kib = resident_kib();
        for _ in 1..opens_wanted(opts) {
            let start = Instant::now();
            let again = load(path, specs)?;
            opens.push(start.elapsed());
            drop(again);
        }

        // One state for all runs, as the ctr-edge side keeps one session.
        let mut state = plan.spawn().map_err(tract_error(path, "preparing"))?;
        let mut rss_after_first_run_kib = None;
        let mut batches = Vec::with_capacity(opts.batches.len());
        for (ix, &batch) in opts.batches.iter().enumerate() {
            let inputs = tract_inputs(path, &plan, specs, batch)?;
            let stage = format!("running at batch {batch}");
            let mut run = || {
                state
                    .run(inputs.clone())
                    .map(drop)
                    .map_err(tract_error(path, &stage))
            };
            if ix == 0 {
                run()?;
                rss_after_first_run_kib = resident_kib();
            }
            let latency = time_runs(opts.warmup, opts.iters, &mut run)?;
            batches.push(BatchFigures::new(batch, latency));
        }
        Ok(EngineRun {
            role,
            engine: Engine::Tract,
            path: path.to_path_buf(),
            kernel_variant: "tract".to_owned(),
            open_ms: median_ms(&mut opens),
            rss_before_open_kib,
            rss_after_open_kib,
            rss_after_first_run_kib,
            batches,
        })
    }
}

//! Per-thread scoring state: plans for the batch sizes seen so far and their preallocated
//! buffers. After the first call with a given set of input shapes, [`Session::run`] does not
//! allocate.
//!
//! Plans apply the plan-time fusions of the graph engine (bias and activation into matrix
//! products, factorized pairs and gather + projection in row tiles) unless
//! [`Session::set_fusion`] turns them off; [`Session::plan_stats`] tells what a plan runs.

use alloc::format;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::graph::fuse::{self, PlanStats, MAX_SCRATCH};
use crate::graph::ops::NodeCtx;
use crate::graph::plan::{alloc_bufs, plan_with, view_of, Plan, Run};
use crate::graph::value::{Buf, View};
use crate::graph::MAX_NODE_INPUTS;
use crate::model::Model;
use crate::tensor::BorrowedData;

/// Borrowed values of one model input (f32, i64, i32 or bool; the model's dtype).
pub type InputData<'a> = BorrowedData<'a>;

/// The values of a model output, in its own dtype.
pub type OutputData<'s> = BorrowedData<'s>;

/// A named, borrowed tensor: a model input given to [`Session::run`] or an output read after
/// it (`D`: its values, row-major).
#[derive(Debug, Clone, Copy)]
pub struct NamedTensor<'a, D = BorrowedData<'a>> {
    /// Name of the model input or output.
    pub name: &'a str,
    /// Shape (first axis = batch).
    pub shape: &'a [usize],
    /// Values, row-major.
    pub data: D,
}

/// One named input for [`Session::run`].
pub type Input<'a> = NamedTensor<'a, InputData<'a>>;

/// A model output after [`Session::run`]: f32 values (see [`Session::output`]).
pub type OutputView<'s> = NamedTensor<'s, &'s [f32]>;

/// A model output of any dtype after [`Session::run`] (see [`Session::output_typed`]).
pub type TypedOutputView<'s> = NamedTensor<'s, OutputData<'s>>;

struct Prepared {
    plan: Plan,
    bufs: Vec<Buf>,
}

/// How many plans (distinct input shapes) a session keeps.
const PLAN_CACHE: usize = 8;

/// Scoring state for one thread.
pub struct Session<'m, 'w> {
    model: &'m Model<'w>,
    plans: Vec<Prepared>,
    current: Option<usize>,
    fusion: bool,
    flush_denormals: bool,
}

impl<'m, 'w> Session<'m, 'w> {
    /// A session on `model`, fusions on.
    pub fn new(model: &'m Model<'w>) -> Self {
        Session {
            model,
            plans: Vec::new(),
            current: None,
            fusion: true,
            flush_denormals: true,
        }
    }

    /// Turns the plan-time fusions on (the default) or off for the plans this session builds
    /// from now on; plans already built are dropped when the setting changes (so is the last
    /// run's output). Fusions change the order of a few floating-point operations at most
    /// (results agree with the unfused plan to float rounding); turning them off is for
    /// comparisons and measurements.
    pub fn set_fusion(&mut self, on: bool) {
        if on != self.fusion {
            self.fusion = on;
            self.plans.clear();
            self.current = None;
        }
    }

    /// Whether this session's plans apply the plan-time fusions.
    pub fn fusion(&self) -> bool {
        self.fusion
    }

    /// Whether runs flush denormals to zero (the default: on x86 MXCSR's FTZ and DAZ, on
    /// aarch64 FPCR.FZ, set for the run and the caller's value restored after it). A denormal
    /// operand costs a microcode assist of ~100 cycles on x86; flushing changes a value only
    /// where it would fall below 1.2e-38 in magnitude. Off gives IEEE denormals, for
    /// comparisons and measurements. Other targets are unaffected.
    pub fn set_flush_denormals(&mut self, on: bool) {
        self.flush_denormals = on;
    }

    /// Whether runs flush denormals to zero.
    pub fn flush_denormals(&self) -> bool {
        self.flush_denormals
    }

    /// What the plan of the last successful run executes: its steps, fused steps by kind and
    /// buffer memory. `None` before a successful run.
    pub fn plan_stats(&self) -> Option<PlanStats> {
        let p = self.plans.get(self.current?)?;
        Some(fuse::stats(&self.model.graph, &p.plan, self.fusion))
    }

    /// The model this session runs.
    pub fn model(&self) -> &'m Model<'w> {
        self.model
    }

    /// Score one batch. Inputs are matched to the model's inputs by name (each name once);
    /// each must have the model's dtype, rank and fixed dimensions. After the first call with
    /// a given set of shapes this does not allocate.
    pub fn run(&mut self, inputs: &[Input<'_>]) -> Result<()> {
        self.current = None;
        let model = self.model;
        let infos = model.inputs();
        // Validate every input (no allocation unless there is an error to report).
        for (k, given) in inputs.iter().enumerate() {
            if !infos.iter().any(|i| i.name == given.name) {
                return Err(Error::InputMismatch {
                    input: given.name.into(),
                    expected: "no such input".into(),
                    got: format!("{} {:?}", given.data.dtype().name(), given.shape),
                });
            }
            // A name given twice would leave one of the two silently unused.
            if inputs[..k].iter().any(|earlier| earlier.name == given.name) {
                return Err(Error::InputMismatch {
                    input: given.name.into(),
                    expected: "each input once".into(),
                    got: "the same name twice".into(),
                });
            }
        }
        for info in infos {
            let given = given_input(inputs, info)?;
            check_input(info, given)?;
            // A NaN or infinity would silently become a NaN score or, as an id, a wrong row.
            if let InputData::F32(v) = given.data {
                if let Some(position) = v.iter().position(|x| !x.is_finite()) {
                    return Err(Error::NotFinite {
                        input: info.name.clone(),
                        position,
                    });
                }
            }
        }
        let mut found = None;
        'plans: for (pi, p) in self.plans.iter().enumerate() {
            for (info, shape) in infos.iter().zip(&p.plan.input_shapes) {
                match inputs.iter().find(|i| i.name == info.name) {
                    Some(given) if given.shape == shape.as_slice() => {}
                    _ => continue 'plans,
                }
            }
            found = Some(pi);
            break;
        }
        let pi = match found {
            Some(pi) => pi,
            None => {
                // Every input was found and checked above.
                let shapes: Vec<Vec<usize>> = infos
                    .iter()
                    .filter_map(|info| inputs.iter().find(|i| i.name == info.name))
                    .map(|given| given.shape.to_vec())
                    .collect();
                let plan = plan_with(
                    &model.graph,
                    model.weights(),
                    model.kernels,
                    &shapes,
                    self.fusion,
                    &model.limits,
                )?;
                let bufs = alloc_bufs(&plan);
                if self.plans.len() >= PLAN_CACHE {
                    self.plans.remove(0);
                }
                self.plans.push(Prepared { plan, bufs });
                self.plans.len() - 1
            }
        };
        let prepared = &mut self.plans[pi];
        // Copy the inputs into their buffers (dtype and element count checked).
        for ((info, &b), given_shape) in infos
            .iter()
            .zip(&prepared.plan.inputs)
            .zip(&prepared.plan.input_shapes)
        {
            let given = given_input(inputs, info)?;
            let buf = prepared
                .bufs
                .get_mut(b)
                .ok_or_else(|| internal("input buffer"))?;
            if !buf.copy_from(given.data) {
                return Err(Error::InputMismatch {
                    input: info.name.clone(),
                    expected: format!(
                        "{} {:?} ({} values)",
                        info.dtype.name(),
                        given_shape,
                        given_shape.iter().product::<usize>()
                    ),
                    got: format!(
                        "{} with {} values",
                        given.data.dtype().name(),
                        given.data.len()
                    ),
                });
            }
        }
        {
            // Denormal weights or activations would cost a microcode assist each on x86.
            let _flush = self
                .flush_denormals
                .then(crate::fpmode::FlushDenormals::enter);
            execute(model, prepared)?;
        }
        // Finite inputs can still overflow the model's arithmetic (inf - inf at 3e38): a NaN
        // score is an error, never a number handed to the app. (Infinities pass: ONNX gives
        // them by definition, e.g. ReduceMax over an empty set, Log(0).)
        let g = &model.graph;
        for (index, operand) in prepared.plan.outputs.iter().enumerate() {
            let view = view_of(
                g,
                model.weights(),
                &prepared.plan.folded,
                &prepared.bufs,
                operand,
            )?;
            if let BorrowedData::F32(data) = view.data {
                if let Some(position) = data.iter().position(|x| x.is_nan()) {
                    return Err(Error::NotFiniteOutput {
                        output: g
                            .outputs
                            .get(index)
                            .map_or_else(|| format!("#{index}"), |o| o.1.name.clone()),
                        position,
                    });
                }
            }
        }
        self.current = Some(pi);
        Ok(())
    }

    /// Output `index` of the last successful run, when it is an f32 output (the scores); other
    /// dtypes through [`Session::output_typed`].
    pub fn output(&self, index: usize) -> Option<OutputView<'_>> {
        let typed = self.output_typed(index)?;
        match typed.data {
            BorrowedData::F32(data) => Some(NamedTensor {
                name: typed.name,
                shape: typed.shape,
                data,
            }),
            _ => None,
        }
    }

    /// Output `index` of the last successful run, whatever its dtype ([`Session::output`]
    /// gives only f32 outputs, the scores).
    pub fn output_typed(&self, index: usize) -> Option<TypedOutputView<'_>> {
        let p = self.plans.get(self.current?)?;
        let operand = p.plan.outputs.get(index)?;
        let g = &self.model.graph;
        let view = view_of(g, self.model.weights(), &p.plan.folded, &p.bufs, operand).ok()?;
        Some(NamedTensor {
            name: &g.outputs.get(index)?.1.name,
            shape: &operand.shape,
            data: view.data,
        })
    }

    /// Number of outputs.
    pub fn output_count(&self) -> usize {
        self.model.outputs().len()
    }
}

fn internal(what: &str) -> Error {
    Error::InvalidGraph {
        reason: format!("internal session error: {what}"),
    }
}

/// The input `info` names among `inputs`.
fn given_input<'i, 'a>(
    inputs: &'i [Input<'a>],
    info: &crate::model::IoInfo,
) -> Result<&'i Input<'a>> {
    let Some(given) = inputs.iter().find(|i| i.name == info.name) else {
        return Err(Error::InputMismatch {
            input: info.name.clone(),
            expected: info.describe(),
            got: "nothing (input missing)".into(),
        });
    };
    Ok(given)
}

fn check_input(info: &crate::model::IoInfo, given: &Input<'_>) -> Result<()> {
    let dims_ok = given.shape.len() == info.shape.len()
        && info
            .shape
            .iter()
            .zip(given.shape)
            .all(|(e, &g)| e.is_none_or(|e| e == g));
    let count = given
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    if given.data.dtype() != info.dtype || !dims_ok || count != Some(given.data.len()) {
        return Err(Error::InputMismatch {
            input: info.name.clone(),
            expected: info.describe(),
            got: format!(
                "{} {:?} with {} values",
                given.data.dtype().name(),
                given.shape,
                given.data.len()
            ),
        });
    }
    Ok(())
}

/// Runs every step of a prepared plan. No allocation: input views live in a stack array and
/// each output buffer is moved out and back around its op.
fn execute(model: &Model<'_>, p: &mut Prepared) -> Result<()> {
    let g = &model.graph;
    let weights = model.weights();
    for step in &p.plan.steps {
        let node = g
            .nodes
            .get(step.node)
            .ok_or_else(|| internal("node index"))?;
        let cx = NodeCtx {
            node: &node.label,
            op_type: &node.op_type,
            source: &node.source,
        };
        let mut out = core::mem::take(
            p.bufs
                .get_mut(step.output)
                .ok_or_else(|| internal("output buffer"))?,
        );
        // A fused step's tile scratch is moved out too (empty buffers do not allocate).
        let mut scratch: [Buf; MAX_SCRATCH] = Default::default();
        let scratch_ids = step.fused().map_or(&[][..], |f| &f.scratch[..]);
        for (s, &b) in scratch.iter_mut().zip(scratch_ids) {
            *s = core::mem::take(
                p.bufs
                    .get_mut(b)
                    .ok_or_else(|| internal("scratch buffer"))?,
            );
        }
        let result = (|| {
            let mut views: [Option<View<'_>>; MAX_NODE_INPUTS] = [None; MAX_NODE_INPUTS];
            for (slot, operand) in views.iter_mut().zip(&step.inputs) {
                if let Some(o) = operand {
                    *slot = Some(view_of(g, weights, &p.plan.folded, &p.bufs, o)?);
                }
            }
            let n = step.inputs.len().min(MAX_NODE_INPUTS);
            match &step.run {
                Run::Fused(f) => {
                    fuse::run(f, model.kernels, &views[..n], &mut scratch, &mut out, &cx)
                }
                Run::Op(op) => crate::graph::ops::eval(
                    op,
                    model.kernels,
                    &views[..n],
                    &mut out,
                    &step.out_shape,
                    &cx,
                ),
            }
        })();
        p.bufs[step.output] = out;
        for (s, &b) in scratch.iter_mut().zip(scratch_ids) {
            p.bufs[b] = core::mem::take(s);
        }
        result?;
    }
    Ok(())
}

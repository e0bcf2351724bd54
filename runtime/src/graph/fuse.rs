//! Plan-time fusions: after [`super::plan::plan`] has resolved every shape and folded every
//! constant, [`fuse`] rewrites runs of steps into one fused step each, with ONNX semantics kept:
//!
//! - **dense epilogue**: `MatMul` / `Gemm` followed by `Add` of a constant bias broadcast over
//!   the last axis and/or `Relu` / `Sigmoid` / `Tanh` runs as one kernel call whose stores apply
//!   bias and activation while each tile of the output is in registers
//!   ([`crate::kernels::Epilogue`]);
//! - **factorized pair**: `MatMul(MatMul(x, A), B)` (each with its epilogue) with a constant
//!   `A` (`K x r`), `B` (`r x N`) and `r < K`, `r < N` (the low-rank bottleneck the exporter
//!   writes) runs in tiles of rows: the rank-`r` intermediate of one tile lives in a small
//!   session scratch buffer and stays in cache; it is never materialized for the whole batch;
//! - **gather + projection**: `Gather(E', ids)` (axis 0, constant 2-D table) followed by a
//!   product with a constant projection (and its epilogue, e.g. `Add(mu)`) gathers a tile of
//!   rows into scratch and projects it; the `[batch, fields, k]` gather output is never
//!   materialized. Out-of-range ids give the same [`crate::Error::IndexOutOfRange`] as `Gather`.
//!
//! A value fused away must have exactly one reader (the next step of the chain) and must not
//! be a graph output; the buffers of fused-away values get no memory. The fused step takes the
//! place of the chain's first step, so steps before it (and their errors) keep their order; the
//! chain's other inputs are constants, ready from the start.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::ops::{gather_index, ids_per_row, norm_axis, BinOp, NodeCtx, Op, UnOp};
use super::plan::{view_of, Operand, Plan, Run, Slot, Step};
use super::value::{Buf, Data, View};
use super::LoadedGraph;
use crate::error::Result;
use crate::kernels::{Activation, BLayout, Epilogue, Kernels, MatMulDims};
use crate::tensor::DType;

/// The kinds of fused steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FusionKind {
    /// `MatMul`/`Gemm` with its bias and/or activation applied in the kernel's epilogue.
    DenseEpilogue,
    /// Two chained products through a low-rank intermediate, computed in row tiles.
    FactorizedPair,
    /// `Gather` of embedding rows followed by their projection, computed in row tiles.
    GatherProjection,
}

impl FusionKind {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            FusionKind::DenseEpilogue => "dense+epilogue",
            FusionKind::FactorizedPair => "factorized-pair",
            FusionKind::GatherProjection => "gather+projection",
        }
    }
}

/// One fused step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FusedStepInfo {
    /// What was fused.
    pub kind: FusionKind,
    /// Labels of the graph nodes the step runs, in graph order (the first names the step in
    /// errors).
    pub nodes: Vec<String>,
    /// Rows computed per tile (the whole batch when the step is not tiled).
    pub tile_rows: usize,
}

/// What a session's plan for one set of input shapes runs (see `Session::plan_stats`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanStats {
    /// Whether fusions were enabled when the plan was built.
    pub fusion: bool,
    /// Steps run per call (a fused step counts once).
    pub steps: usize,
    /// Bytes of the session buffers of this plan (inputs, values, tile scratch): what
    /// [`crate::Limits::max_scratch_bytes`] is compared with.
    pub buffer_bytes: usize,
    /// Bytes of the constants computed when the plan was built (folded subgraphs, f16
    /// constants widened to f32, fused biases): what [`crate::Limits::max_folded_bytes`] is
    /// compared with.
    pub folded_bytes: usize,
    /// Every fused step, in run order.
    pub fused: Vec<FusedStepInfo>,
}

impl PlanStats {
    /// Number of fused steps of `kind`.
    pub fn count(&self, kind: FusionKind) -> usize {
        self.fused.iter().filter(|f| f.kind == kind).count()
    }
}

/// Where the rows a fused chain multiplies come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Head {
    /// Input 0 of the step: `rows x width` values.
    Rows,
    /// Rows of the table (input 0, `table_rows x width`) picked by the ids (input 1), gathered
    /// tile by tile into scratch 0.
    Gather { table_rows: usize, per_row: usize },
}

/// One matrix product of a chain with its epilogue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stage {
    /// Index in the step's inputs of the constant weights.
    pub weight: usize,
    /// Index in the step's inputs of the bias (f32, `n` values), if any.
    pub bias: Option<usize>,
    pub layout: BLayout,
    pub k: usize,
    pub n: usize,
    pub alpha: f32,
    pub act: Activation,
}

/// A fused step: a head and one or two products.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fused {
    pub kind: FusionKind,
    /// Graph nodes run, in order.
    pub nodes: Vec<usize>,
    pub head: Head,
    /// Width of the head's rows.
    pub width: usize,
    /// Rows of the whole batch.
    pub rows: usize,
    /// Rows per tile.
    pub tile: usize,
    pub stages: Vec<Stage>,
    /// Session buffers used as tile scratch: the gathered rows (Gather head), then the
    /// intermediate of a pair.
    pub scratch: Vec<usize>,
}

/// Most stages a chain may have (the session keeps the scratch buffers on the stack).
pub(crate) const MAX_SCRATCH: usize = 2;

/// Bytes of tile scratch aimed at (gathered rows plus intermediate): they stay in L1 while the
/// tile's products run. At least [`MIN_TILE`] and at most [`MAX_TILE`] rows, a multiple of 6
/// (the row count of the kernels' register tiles).
const TILE_BYTES: usize = 32 * 1024;
const MIN_TILE: usize = 6;
const MAX_TILE: usize = 120;

/// Rows per tile for scratch rows of `width` floats.
fn tile_rows(rows: usize, width: usize) -> usize {
    let t = (TILE_BYTES / (4 * width.max(1))).clamp(MIN_TILE, MAX_TILE);
    (t - t % 6).min(rows).max(1)
}

/// Per session buffer: how many times steps read it, plus one if it is a graph output.
fn readers(plan: &Plan) -> Vec<usize> {
    let mut count = vec![0usize; plan.bufs.len()];
    for step in &plan.steps {
        for o in step.inputs.iter().flatten() {
            if let Slot::Buf(b) = o.slot {
                count[b] += 1;
            }
        }
    }
    for o in &plan.outputs {
        if let Slot::Buf(b) = o.slot {
            count[b] += 1;
        }
    }
    count
}

/// Rewrites the steps of `plan` into fused steps where the patterns above apply.
pub(crate) fn fuse(
    g: &LoadedGraph,
    weights: &[u8],
    plan: &mut Plan,
    limits: &crate::options::Limits,
) -> Result<()> {
    let reads = readers(plan);
    // The biases fused chains add are folded constants too.
    let mut folded_bytes = super::plan::folded_bytes(plan);
    // The step reading each buffer (the last one seen; meaningful where `reads` is 1).
    let mut reader = vec![usize::MAX; plan.bufs.len()];
    for (si, step) in plan.steps.iter().enumerate() {
        for o in step.inputs.iter().flatten() {
            if let Slot::Buf(b) = o.slot {
                reader[b] = si;
            }
        }
    }
    let mut absorbed = vec![false; plan.steps.len()];
    let mut fused_steps: Vec<(usize, Step)> = Vec::new();
    for si in 0..plan.steps.len() {
        if absorbed[si] {
            continue;
        }
        let mut b = Builder {
            g,
            weights,
            plan,
            reads: &reads,
            reader: &reader,
            absorbed: &absorbed,
            inputs: Vec::new(),
            nodes: Vec::new(),
            taken: Vec::new(),
            folded: Vec::new(),
        };
        if let Some((step, taken, folded)) = b.chain(si)? {
            for &s in &taken {
                absorbed[s] = true;
            }
            // Values fused away need no memory.
            for &s in &taken[..taken.len() - 1] {
                plan.bufs[plan.steps[s].output].1 = 0;
            }
            let added = folded.iter().fold(0usize, |acc, b| {
                acc.saturating_add(b.len().saturating_mul(b.dtype().size()))
            });
            folded_bytes = folded_bytes.saturating_add(added);
            if folded_bytes > limits.max_folded_bytes {
                let node = g.nodes.get(plan.steps[si].node);
                return Err(super::resource_limit(
                    node.map_or("graph", |n| n.label.as_str()),
                    "max_folded_bytes",
                    Some(folded_bytes),
                    limits.max_folded_bytes,
                ));
            }
            plan.folded.extend(folded);
            fused_steps.push((si, step));
        }
    }
    if fused_steps.is_empty() {
        return Ok(());
    }
    let mut steps = Vec::with_capacity(plan.steps.len());
    let mut next = fused_steps.into_iter().peekable();
    for (si, step) in core::mem::take(&mut plan.steps).into_iter().enumerate() {
        match next.peek() {
            Some((at, _)) if *at == si => {
                let (_, mut fused) = next.next().expect("peeked");
                // Scratch buffers for the tiles.
                if let Run::Fused(f) = &mut fused.run {
                    let mut widths = Vec::new();
                    if matches!(f.head, Head::Gather { .. }) {
                        widths.push(f.width);
                    }
                    if f.stages.len() == 2 {
                        widths.push(f.stages[0].n);
                    }
                    for w in widths {
                        plan.bufs.push((DType::F32, f.tile * w));
                        f.scratch.push(plan.bufs.len() - 1);
                    }
                }
                steps.push(fused);
            }
            _ if absorbed[si] => {}
            _ => steps.push(step),
        }
    }
    plan.steps = steps;
    Ok(())
}

/// Builds one chain starting at a step.
struct Builder<'a, 'w> {
    g: &'a LoadedGraph,
    weights: &'w [u8],
    plan: &'a Plan,
    reads: &'a [usize],
    reader: &'a [usize],
    absorbed: &'a [bool],
    /// Inputs of the fused step.
    inputs: Vec<Option<Operand>>,
    nodes: Vec<usize>,
    /// Steps of the chain, in order.
    taken: Vec<usize>,
    /// Constants the chain adds to the plan (biases), numbered after the plan's.
    folded: Vec<Buf>,
}

/// A chain found by [`Builder::chain`]: the fused step, the steps it replaces (in order), and
/// the constants it adds to the plan.
type Chain = (Step, Vec<usize>, Vec<Buf>);

/// A matrix product step seen as a stage reading `a` (a buffer) and writing `rows x n`.
struct Product {
    a: Operand,
    weight: Operand,
    layout: BLayout,
    k: usize,
    n: usize,
    alpha: f32,
    /// Gemm's C, scaled by beta, when it is a bias over the last axis.
    bias: Option<Vec<f32>>,
}

impl Builder<'_, '_> {
    fn op(&self, si: usize) -> Option<&Op> {
        self.plan.steps[si].op()
    }

    fn is_const(o: &Operand) -> bool {
        !matches!(o.slot, Slot::Buf(_))
    }

    fn view<'v>(&'v self, o: &'v Operand) -> Result<View<'v>> {
        view_of(self.g, self.weights, &self.plan.folded, &[], o)
    }

    /// The single step reading `buf`, when no other step reads it and it is no graph output.
    fn only_reader(&self, buf: usize) -> Option<usize> {
        let r = self.reader[buf];
        (self.reads[buf] == 1 && r != usize::MAX && !self.absorbed[r] && !self.taken.contains(&r))
            .then_some(r)
    }

    /// The chain starting at step `si`, if it is worth fusing: the fused step, the steps it
    /// replaces, and the constants it adds.
    fn chain(&mut self, si: usize) -> Result<Option<Chain>> {
        let plan = self.plan;
        let first = &plan.steps[si];
        let (head, width, rows, mut cur) = match self.op(si) {
            Some(Op::Gather { axis }) => {
                let (Some(Some(table)), Some(Some(ids))) =
                    (first.inputs.first(), first.inputs.get(1))
                else {
                    return Ok(None);
                };
                if !Self::is_const(table) || Self::is_const(ids) || table.shape.len() != 2 {
                    return Ok(None);
                }
                let node = &self.g.nodes[first.node];
                let cx = NodeCtx {
                    node: &node.label,
                    op_type: &node.op_type,
                    source: &node.source,
                };
                if norm_axis(*axis, 2, &cx).ok() != Some(0) {
                    return Ok(None);
                }
                if !matches!(self.view(table)?.data, Data::F32(_) | Data::F16(_)) {
                    return Ok(None);
                }
                let nidx: usize = ids.shape.iter().product();
                let (table_rows, width) = (table.shape[0], table.shape[1]);
                if nidx == 0 || width == 0 {
                    return Ok(None);
                }
                let head = Head::Gather {
                    table_rows,
                    per_row: ids_per_row(&ids.shape, nidx),
                };
                self.inputs.push(Some(table.clone()));
                self.inputs.push(Some(ids.clone()));
                self.nodes.push(first.node);
                self.taken.push(si);
                (head, width, nidx, first.output)
            }
            Some(Op::MatMul | Op::Gemm { .. }) => {
                let Some(p) = self.product(si)? else {
                    return Ok(None);
                };
                let rows = p.a.shape.iter().product::<usize>() / p.k;
                self.inputs.push(Some(p.a.clone()));
                self.nodes.push(first.node);
                self.taken.push(si);
                let stage = self.stage(p)?;
                let mut stages = vec![stage];
                let mut cur = first.output;
                self.epilogue(&mut stages[0], &mut cur)?;
                return self.finish_dense(si, rows, stages, cur);
            }
            _ => return Ok(None),
        };
        // Gather head: a projection must follow.
        let Some(next) = self.only_reader(cur) else {
            return Ok(None);
        };
        let Some(p) = self.product(next)? else {
            return Ok(None);
        };
        if p.a.slot != Slot::Buf(cur) || p.k != width {
            return Ok(None);
        }
        self.nodes.push(plan.steps[next].node);
        self.taken.push(next);
        cur = plan.steps[next].output;
        let mut stage = self.stage(p)?;
        self.epilogue(&mut stage, &mut cur)?;
        let tile = tile_rows(rows, width);
        Ok(Some(self.step(
            si,
            FusionKind::GatherProjection,
            head,
            width,
            rows,
            tile,
            vec![stage],
            cur,
        )))
    }

    /// A chain started by a product: a pair when a bottleneck product follows, else a dense
    /// epilogue when there is one.
    fn finish_dense(
        &mut self,
        si: usize,
        rows: usize,
        mut stages: Vec<Stage>,
        mut cur: usize,
    ) -> Result<Option<Chain>> {
        let plan = self.plan;
        let width = stages[0].k;
        let mid = stages[0].n;
        if let Some(next) = self.only_reader(cur) {
            if let Some(p) = self.product(next)? {
                if p.a.slot == Slot::Buf(cur) && p.k == mid && mid < width && mid < p.n {
                    self.nodes.push(plan.steps[next].node);
                    self.taken.push(next);
                    cur = plan.steps[next].output;
                    let mut stage = self.stage(p)?;
                    self.epilogue(&mut stage, &mut cur)?;
                    stages.push(stage);
                    let tile = tile_rows(rows, mid);
                    return Ok(Some(self.step(
                        si,
                        FusionKind::FactorizedPair,
                        Head::Rows,
                        width,
                        rows,
                        tile,
                        stages,
                        cur,
                    )));
                }
            }
        }
        if self.taken.len() < 2 {
            return Ok(None); // a lone product: nothing to fuse
        }
        Ok(Some(self.step(
            si,
            FusionKind::DenseEpilogue,
            Head::Rows,
            width,
            rows,
            rows.max(1),
            stages,
            cur,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        si: usize,
        kind: FusionKind,
        head: Head,
        width: usize,
        rows: usize,
        tile: usize,
        stages: Vec<Stage>,
        out: usize,
    ) -> Chain {
        let last = *self.taken.last().expect("a chain has steps");
        let step = Step {
            node: self.plan.steps[si].node,
            inputs: core::mem::take(&mut self.inputs),
            output: out,
            out_shape: self.plan.steps[last].out_shape.clone(),
            run: Run::Fused(Box::new(Fused {
                kind,
                nodes: core::mem::take(&mut self.nodes),
                head,
                width,
                rows,
                tile,
                stages,
                scratch: Vec::new(),
            })),
        };
        (
            step,
            core::mem::take(&mut self.taken),
            core::mem::take(&mut self.folded),
        )
    }

    /// Step `si` as a product of a buffer by constant 2-D weights, if it is one.
    fn product(&self, si: usize) -> Result<Option<Product>> {
        let step = &self.plan.steps[si];
        let (Some(Some(a)), Some(Some(w))) = (step.inputs.first(), step.inputs.get(1)) else {
            return Ok(None);
        };
        if Self::is_const(a) || !Self::is_const(w) || w.shape.len() != 2 {
            return Ok(None);
        }
        if !matches!(self.view(w)?.data, Data::F32(_) | Data::F16(_)) {
            return Ok(None);
        }
        let p = match self.op(si) {
            Some(Op::MatMul) => {
                let (k, n) = (w.shape[0], w.shape[1]);
                if a.shape.last() != Some(&k) {
                    return Ok(None);
                }
                Product {
                    a: a.clone(),
                    weight: w.clone(),
                    layout: BLayout::KxN,
                    k,
                    n,
                    alpha: 1.0,
                    bias: None,
                }
            }
            Some(&Op::Gemm {
                alpha,
                beta,
                trans_a: false,
                trans_b,
            }) => {
                let (k, n, layout) = if trans_b {
                    (w.shape[1], w.shape[0], BLayout::NxK)
                } else {
                    (w.shape[0], w.shape[1], BLayout::KxN)
                };
                if a.shape.len() != 2 || a.shape[1] != k {
                    return Ok(None);
                }
                let bias = match step.inputs.get(2) {
                    Some(Some(c)) if beta != 0.0 => {
                        if !Self::is_const(c) {
                            return Ok(None);
                        }
                        match self.bias_values(c, n, beta)? {
                            Some(v) => Some(v),
                            None => return Ok(None),
                        }
                    }
                    _ => None,
                };
                Product {
                    a: a.clone(),
                    weight: w.clone(),
                    layout,
                    k,
                    n,
                    alpha,
                    bias,
                }
            }
            _ => return Ok(None),
        };
        // The output rows are the rows of A (no broadcast batch of B: B is 2-D).
        if p.k == 0 || p.n == 0 || a.shape.iter().product::<usize>() == 0 {
            return Ok(None);
        }
        let rows = a.shape.iter().product::<usize>() / p.k;
        if step.out_shape.iter().product::<usize>() != rows * p.n {
            return Ok(None);
        }
        Ok(Some(p))
    }

    /// The `n` values a constant adds to every row of an `[.., n]` value (scaled by `scale`),
    /// when it is broadcast over the last axis only: shape `[n]`, `[1, .., 1, n]` or one value.
    fn bias_values(&self, c: &Operand, n: usize, scale: f32) -> Result<Option<Vec<f32>>> {
        let s = &c.shape;
        let leading_ones = s.len() < 2 || s[..s.len() - 1].iter().all(|&d| d == 1);
        let last = s.last().copied().unwrap_or(1);
        if !leading_ones || !(last == n || last == 1) {
            return Ok(None);
        }
        let value = |i: usize| -> Option<f32> {
            match self.view(c).ok()?.data {
                Data::F32(v) => v.get(i).copied(),
                Data::F16(v) => v.get(i).map(|x| x.to_f32()),
                _ => None,
            }
        };
        let mut out = Vec::with_capacity(n);
        for j in 0..n {
            let Some(v) = value(if last == 1 { 0 } else { j }) else {
                return Ok(None);
            };
            out.push(if scale == 1.0 { v } else { scale * v });
        }
        Ok(Some(out))
    }

    /// Adds the product's operands to the step's inputs and returns its stage.
    fn stage(&mut self, p: Product) -> Result<Stage> {
        self.inputs.push(Some(p.weight));
        let weight = self.inputs.len() - 1;
        let bias = p.bias.map(|v| self.push_bias(v));
        Ok(Stage {
            weight,
            bias,
            layout: p.layout,
            k: p.k,
            n: p.n,
            alpha: p.alpha,
            act: Activation::Identity,
        })
    }

    fn push_bias(&mut self, v: Vec<f32>) -> usize {
        let index = self.plan.folded.len() + self.folded.len();
        let n = v.len();
        self.folded.push(Buf::F32(v));
        self.inputs.push(Some(Operand {
            slot: Slot::Folded(index),
            shape: vec![n],
        }));
        self.inputs.len() - 1
    }

    /// Absorbs into `stage` the steps that follow its output `cur`: an `Add` of a bias (when
    /// the stage has none and no activation yet), then one activation.
    fn epilogue(&mut self, stage: &mut Stage, cur: &mut usize) -> Result<()> {
        let plan = self.plan;
        loop {
            if stage.act != Activation::Identity {
                return Ok(());
            }
            let Some(next) = self.only_reader(*cur) else {
                return Ok(());
            };
            let step = &plan.steps[next];
            let reads_cur =
                |o: &Option<Operand>| o.as_ref().is_some_and(|o| o.slot == Slot::Buf(*cur));
            // The value keeps its layout: same element count, same last axis.
            let before = &plan.steps[*self.taken.last().expect("chain")].out_shape;
            let same_rows = step.out_shape.iter().product::<usize>()
                == before.iter().product::<usize>()
                && step.out_shape.last() == before.last();
            if !same_rows {
                return Ok(());
            }
            match self.op(next) {
                Some(Op::Binary(BinOp::Add)) if stage.bias.is_none() => {
                    let (Some(x), Some(y)) = (step.inputs.first(), step.inputs.get(1)) else {
                        return Ok(());
                    };
                    let other = match (reads_cur(x), reads_cur(y)) {
                        (true, false) => y,
                        (false, true) => x,
                        _ => return Ok(()),
                    };
                    let Some(other) = other.as_ref().filter(|o| Self::is_const(o)) else {
                        return Ok(());
                    };
                    if !matches!(self.view(other)?.data, Data::F32(_)) {
                        return Ok(());
                    }
                    let Some(v) = self.bias_values(other, stage.n, 1.0)? else {
                        return Ok(());
                    };
                    stage.bias = Some(self.push_bias(v));
                }
                Some(Op::Unary(u @ (UnOp::Relu | UnOp::Sigmoid | UnOp::Tanh))) => {
                    if !step.inputs.first().is_some_and(reads_cur) {
                        return Ok(());
                    }
                    stage.act = match u {
                        UnOp::Relu => Activation::Relu,
                        UnOp::Sigmoid => Activation::Sigmoid,
                        _ => Activation::Tanh,
                    };
                }
                _ => return Ok(()),
            }
            self.nodes.push(step.node);
            self.taken.push(next);
            *cur = step.output;
        }
    }
}

/// Runs a fused step: `ins` are the step's inputs, `scratch` its tile buffers (taken out of
/// the session), `out` its output buffer. No allocation.
pub(crate) fn run(
    f: &Fused,
    k: &Kernels,
    ins: &[Option<View<'_>>],
    scratch: &mut [Buf; MAX_SCRATCH],
    out: &mut Buf,
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let bad = || {
        cx.err(alloc::format!(
            "internal: inconsistent fused step ({})",
            f.kind.name()
        ))
    };
    let Buf::F32(out) = out else {
        return Err(bad());
    };
    let view = |i: usize| ins.get(i).copied().flatten().ok_or_else(bad);
    let last_n = f.stages.last().ok_or_else(bad)?.n;
    if out.len() != f.rows * last_n || f.tile == 0 {
        return Err(bad());
    }
    // Scratch: the gathered rows (Gather head) first, then the pair's intermediate.
    let (mut gathered, mut mid) = {
        let [s0, s1] = scratch;
        let gather = matches!(f.head, Head::Gather { .. });
        let (g, m) = match (gather, f.stages.len()) {
            (true, 2) => (Some(s0), Some(s1)),
            (true, _) => (Some(s0), None),
            (false, 2) => (None, Some(s0)),
            (false, _) => (None, None),
        };
        fn as_f32(b: Option<&mut Buf>) -> Option<Option<&mut Vec<f32>>> {
            match b {
                None => Some(None),
                Some(Buf::F32(v)) => Some(Some(v)),
                Some(_) => None,
            }
        }
        (as_f32(g).ok_or_else(bad)?, as_f32(m).ok_or_else(bad)?)
    };
    let width = f.width;
    let mut i0 = 0;
    while i0 < f.rows {
        let t = f.tile.min(f.rows - i0);
        let rows_in: &[f32] = match f.head {
            Head::Rows => {
                let x = view(0)?.f32().ok_or_else(bad)?;
                x.get(i0 * width..(i0 + t) * width).ok_or_else(bad)?
            }
            Head::Gather {
                table_rows,
                per_row,
            } => {
                let g = gathered.as_deref_mut().ok_or_else(bad)?;
                let dst = g.get_mut(..t * width).ok_or_else(bad)?;
                let (table, ids) = (view(0)?, view(1)?);
                for (r, row) in dst.chunks_exact_mut(width).enumerate() {
                    let id = gather_index(ids.data, i0 + r, table_rows, per_row, cx)?;
                    let at = id * width;
                    match table.data {
                        Data::F32(v) => row.copy_from_slice(v.get(at..at + width).ok_or_else(bad)?),
                        Data::F16(v) => {
                            let src = v.get(at..at + width).ok_or_else(bad)?;
                            for (d, s) in row.iter_mut().zip(src) {
                                *d = s.to_f32();
                            }
                        }
                        _ => return Err(bad()),
                    }
                }
                dst
            }
        };
        match f.stages.as_slice() {
            [s] => {
                let dst = out.get_mut(i0 * s.n..(i0 + t) * s.n).ok_or_else(bad)?;
                product(k, s, t, rows_in, ins, dst, cx)?;
            }
            [s0, s1] => {
                let m = mid.as_deref_mut().ok_or_else(bad)?;
                let m = m.get_mut(..t * s0.n).ok_or_else(bad)?;
                product(k, s0, t, rows_in, ins, m, cx)?;
                let dst = out.get_mut(i0 * s1.n..(i0 + t) * s1.n).ok_or_else(bad)?;
                product(k, s1, t, m, ins, dst, cx)?;
            }
            _ => return Err(bad()),
        }
        i0 += t;
    }
    Ok(())
}

/// `c = epilogue(a * weights)` for `rows` rows of one stage.
fn product(
    k: &Kernels,
    s: &Stage,
    rows: usize,
    a: &[f32],
    ins: &[Option<View<'_>>],
    c: &mut [f32],
    cx: &NodeCtx<'_>,
) -> Result<()> {
    let bad = || cx.err("internal: inconsistent fused product".into());
    let w = ins.get(s.weight).copied().flatten().ok_or_else(bad)?;
    let bias = match s.bias {
        Some(i) => Some(
            ins.get(i)
                .copied()
                .flatten()
                .and_then(|v| v.f32())
                .ok_or_else(bad)?,
        ),
        None => None,
    };
    let ep = Epilogue {
        alpha: s.alpha,
        bias,
        act: s.act,
    };
    let dims = MatMulDims {
        m: rows,
        k: s.k,
        n: s.n,
    };
    // The kernels write nothing when a slice is short: check here so that cannot go unseen.
    if a.len() != rows * s.k || c.len() != rows * s.n || w.data.len() != s.k * s.n {
        return Err(bad());
    }
    match w.data {
        Data::F32(b) => (k.matmul_ep_f32)(dims, a, b, s.layout, c, ep),
        Data::F16(b) => (k.matmul_ep_f16)(dims, a, b, s.layout, c, ep),
        _ => return Err(bad()),
    }
    Ok(())
}

/// The statistics of a plan.
pub(crate) fn stats(g: &LoadedGraph, plan: &Plan, fusion: bool) -> PlanStats {
    let fused = plan
        .steps
        .iter()
        .filter_map(|s| s.fused())
        .map(|f| FusedStepInfo {
            kind: f.kind,
            nodes: f
                .nodes
                .iter()
                .map(|&n| g.nodes.get(n).map(|n| n.label.clone()).unwrap_or_default())
                .collect(),
            tile_rows: f.tile,
        })
        .collect();
    PlanStats {
        fusion,
        steps: plan.steps.len(),
        buffer_bytes: super::plan::scratch_bytes(plan).unwrap_or(usize::MAX),
        folded_bytes: super::plan::folded_bytes(plan),
        fused,
    }
}

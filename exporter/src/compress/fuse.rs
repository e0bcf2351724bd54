//! Fusion of embedding projections into the dense layer they feed (DESIGN.md, compression
//! step 5).
//!
//! A factorized table is read back as `y = E'[id] P + mu` (`Gather` then `MatMul` and `Add`).
//! When `y` reaches a dense layer `z = x M + c` only through `Concat` along the last axis and
//! `Flatten`, the block of `x` that holds `y` contributes `y M_i = E'[id] (P M_i) + mu M_i`: the
//! layer can read the k-wide lookup directly with the rows `M_i` (d of them) replaced by
//! `P M_i` (k) and `mu M_i` added to its bias. The projection nodes disappear, and the layer's
//! weight shrinks by `(d - k)` rows per fused field.
//!
//! Projections read by anything else (an interaction layer: FM, cross, attention, bilinear)
//! stay explicit. The fused graph is run side by side with the unfused one on calibration rows
//! and kept only when their outputs agree (the fusion is exact algebra up to f32 rounding).

use std::collections::{HashMap, HashSet};

use faer::Mat;
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto};

use super::graph::{attr_float, attr_int, dims, f32_tensor, f32_values, is_f32, Names};
use super::rewrite::remove_unread;
use super::sites::readers;
use crate::backend::tract::PlannedModel;
use crate::error::{Error, Result};
use crate::npz::NpyArray;

/// Calibration rows on which the fused graph is compared with the unfused one.
const CHECK_ROWS: usize = 256;
/// Largest model-output difference (absolute, or relative to the value above 1) accepted
/// between the fused and the unfused graph.
const CHECK_TOLERANCE: f64 = 1e-4;

/// What fusion did.
#[derive(Debug, Clone, Default)]
pub struct FuseReport {
    /// `(embedding site, name (in the unfused graph) of the dense weight it now feeds)`.
    pub fused: Vec<(String, String)>,
    /// `(embedding site, why its projection stays explicit)`.
    pub kept: Vec<(String, String)>,
    /// Per dense weight (its name in the unfused graph): the change of its number of values.
    pub weight_change: Vec<(String, i64)>,
    /// Largest model-output difference between fused and unfused graph on calibration rows.
    pub checked_max_diff: Option<f64>,
    /// Fused sites whose projection also stays, for readers other than the dense layer.
    pub projection_kept: HashSet<String>,
}

/// A projection chain `g = Gather(E', ids)`, `y = g P (+ mu)`.
#[derive(Debug, Clone)]
struct Chain {
    site: String,
    gather_out: String,
    out: String,
    projection: Vec<f64>,
    rank: usize,
    dim: usize,
    mean: Option<Vec<f64>>,
    /// Nodes computing `y` from `g` (MatMul, and Add when there is a mean).
    nodes: Vec<usize>,
    /// The node (and input slot) reading `y` on the way to the dense layer.
    entry: (usize, usize),
    /// The dense node reached, and the tensors passed on the way (Concat/Flatten outputs).
    target: usize,
    path: Vec<String>,
}

/// One segment of the last axis of a dense layer's input: a tensor and its width.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    tensor: String,
    width: usize,
}

/// Fuses the projections of the factorized embedding sites `sites` (`(site name, tensors the
/// site's lookups produced)`) into the dense layers they feed. Returns the graph (unchanged
/// when nothing could be fused or the check failed) and what was done.
pub fn fuse_projections(
    model: &ModelProto,
    sites: &[(String, Vec<String>)],
    calib: &[NpyArray],
) -> Result<(ModelProto, FuseReport)> {
    let mut report = FuseReport::default();
    let g = super::graph::graph(model)?;
    let ctx = Ctx {
        g,
        producer: g
            .node
            .iter()
            .enumerate()
            .flat_map(|(ix, n)| n.output.iter().map(move |o| (o.as_str(), ix)))
            .collect(),
        readers: readers(g),
        graph_outputs: g.output.iter().map(|o| o.name.as_str()).collect(),
    };

    // Chains, grouped by the site they belong to; a site fuses only when all its lookups do.
    let mut chains: Vec<Chain> = Vec::new();
    for (site, outputs) in sites {
        let found: std::result::Result<Vec<Vec<Chain>>, String> =
            outputs.iter().map(|y| ctx.chains(site, y)).collect();
        match found {
            Ok(c) => chains.extend(c.into_iter().flatten()),
            Err(reason) => report.kept.push((site.clone(), reason)),
        }
    }
    if chains.is_empty() {
        return Ok((model.clone(), report));
    }
    let mut targets: Vec<usize> = chains.iter().map(|c| c.target).collect();
    targets.sort_unstable();
    targets.dedup();
    let (shapes, unfused_outputs) = ctx.layout_shapes(model, &targets, calib)?;

    let mut out = model.clone();
    let out_graph = out.graph.as_mut().expect("checked by graph()");
    let mut names = Names::of(out_graph);
    let edits = ctx.rewrite_targets(&targets, &chains, &shapes, &mut names);
    // A site with one lookup that could not fuse keeps all its projections.
    for (site, reason) in &edits.failed_sites {
        if edits.fused_sites.contains_key(site) {
            let reason = format!("another lookup of '{site}' could not fuse: {reason}");
            return Ok((model.clone(), kept_all(report, sites, &reason)));
        }
    }
    if edits.fused_sites.is_empty() {
        report.kept.extend(edits.failed_sites);
        return Ok((model.clone(), report));
    }
    let (fused_sites, failed_sites) = (edits.fused_sites.clone(), edits.failed_sites.clone());
    ctx.splice(out_graph, &chains, edits, &mut report);

    // The fused graph must compute what the unfused one does.
    let diff = max_output_diff(&unfused_outputs, &out, calib)?;
    report.checked_max_diff = Some(diff);
    if diff > CHECK_TOLERANCE {
        let reason = format!("the fused graph differs from the unfused one by {diff:.2e}");
        return Ok((model.clone(), kept_all(report, sites, &reason)));
    }
    for (site, _) in sites {
        if let Some(w) = fused_sites.get(site) {
            report.fused.push((site.clone(), w.clone()));
        } else if let Some(reason) = failed_sites.get(site) {
            report.kept.push((site.clone(), reason.clone()));
        }
    }
    Ok((out, report))
}

/// The rewrites of the dense layers that fusion reaches.
struct Edits {
    /// Per target node: the node reading the lookups, and its Add of the bias change (MatMul
    /// with a mean).
    nodes: Vec<(usize, NodeProto, Option<NodeProto>)>,
    initializers: Vec<tract_onnx::pb::TensorProto>,
    /// Initializers the rewrites replaced (removed when nothing else reads them).
    dropped: HashSet<String>,
    /// Per dense weight (unfused name): the change of its number of values.
    weight_change: Vec<(String, i64)>,
    /// Tensors on the fused paths, whose widths changed.
    reshaped: HashSet<String>,
    /// Site -> the dense weight (unfused name) it now feeds.
    fused_sites: HashMap<String, String>,
    /// Site -> why one of its lookups could not fuse.
    failed_sites: HashMap<String, String>,
}

fn kept_all(mut report: FuseReport, sites: &[(String, Vec<String>)], reason: &str) -> FuseReport {
    report.weight_change.clear();
    report.fused.clear();
    report.projection_kept.clear();
    for (site, _) in sites {
        if !report.kept.iter().any(|(s, _)| s == site) {
            report.kept.push((site.clone(), reason.to_owned()));
        }
    }
    report
}

/// The data input of a dense node.
fn g_input(g: &GraphProto, ix: usize) -> String {
    g.node[ix].input[0].clone()
}

struct Ctx<'a> {
    g: &'a GraphProto,
    producer: HashMap<&'a str, usize>,
    readers: HashMap<&'a str, Vec<(usize, usize)>>,
    graph_outputs: HashSet<&'a str>,
}

impl Ctx<'_> {
    fn initializer(&self, name: &str) -> Option<&tract_onnx::pb::TensorProto> {
        self.g.initializer.iter().find(|t| t.name == name)
    }

    /// Whether `name` is a 2-D f32 initializer (without decoding its values).
    fn is_f32_matrix(&self, name: &str) -> bool {
        self.initializer(name)
            .is_some_and(|t| is_f32(t) && dims(t).is_some_and(|d| d.len() == 2))
    }

    /// A 2-D (or 1-D) f32 initializer as f64 values with its dims.
    fn f32_init(&self, name: &str) -> Option<(Vec<usize>, Vec<f64>)> {
        let t = self.initializer(name)?;
        if !is_f32(t) {
            return None;
        }
        let d = dims(t)?;
        let v = f32_values(t).ok()?;
        Some((d, v.into_iter().map(f64::from).collect()))
    }

    fn only_reader(&self, t: &str) -> std::result::Result<(usize, usize), String> {
        if self.graph_outputs.contains(t) {
            return Err(format!("'{t}' is a model output"));
        }
        match self.readers.get(t).map(Vec::as_slice) {
            Some([one]) => Ok(*one),
            Some(many) if many.len() > 1 => Err(format!(
                "'{t}' is read by {} nodes ({}), not only by a dense layer",
                many.len(),
                many.iter()
                    .map(|&(ix, _)| self.g.node[ix].op_type.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Err(format!("nothing reads '{t}'")),
        }
    }

    /// The projection chain ending in `y`, once per branch that reaches a dense layer through
    /// Concat/Flatten only; the other readers of `y` (interaction layers) keep the projection.
    fn chains(&self, site: &str, y: &str) -> std::result::Result<Vec<Chain>, String> {
        let no = |what: &str| format!("'{y}' {what}");
        if self.graph_outputs.contains(y) {
            return Err(no("is a model output"));
        }
        let &last = self
            .producer
            .get(y)
            .ok_or_else(|| no("is not produced by a node"))?;
        let n = &self.g.node[last];
        let (matmul, mean, mean_node) = match n.op_type.as_str() {
            "Add" => {
                let (p, mu) = (&n.input[0], &n.input[1]);
                let &m = self
                    .producer
                    .get(p.as_str())
                    .ok_or_else(|| no("adds no projection"))?;
                let (_, mu) = self
                    .f32_init(mu)
                    .ok_or_else(|| no("adds a mean that is not an initializer"))?;
                if self.only_reader(p)?.0 != last {
                    return Err(no("has its projection read elsewhere"));
                }
                (m, Some(mu), Some(last))
            }
            "MatMul" => (last, None, None),
            other => return Err(no(&format!("is produced by {other}, not a projection"))),
        };
        let mm = &self.g.node[matmul];
        if mm.op_type != "MatMul" {
            return Err(no("is not projected by a MatMul"));
        }
        let (pd, projection) = self
            .f32_init(&mm.input[1])
            .ok_or_else(|| no("is projected by a weight that is not an f32 initializer"))?;
        let [rank, dim] = pd[..] else {
            return Err(no("is projected by a weight that is not 2-D"));
        };
        if mean.as_ref().is_some_and(|m| m.len() != dim) {
            return Err(no("adds a mean of the wrong length"));
        }
        let gather_out = mm.input[0].clone();
        let gather = self
            .producer
            .get(gather_out.as_str())
            .map(|&ix| &self.g.node[ix]);
        if gather.is_none_or(|n| n.op_type != "Gather") {
            return Err(no("is not a projected lookup"));
        }
        let mut nodes = vec![matmul];
        nodes.extend(mean_node);
        let mut found = Vec::new();
        let mut first_reason = None;
        for &entry in self.readers.get(y).map_or(&[][..], Vec::as_slice) {
            match self.branch(entry) {
                Ok((target, path)) => found.push(Chain {
                    site: site.to_owned(),
                    gather_out: gather_out.clone(),
                    out: y.to_owned(),
                    projection: projection.clone(),
                    rank,
                    dim,
                    mean: mean.clone(),
                    nodes: nodes.clone(),
                    entry,
                    target,
                    path,
                }),
                Err(reason) => {
                    first_reason.get_or_insert(reason);
                }
            }
        }
        if found.is_empty() {
            return Err(first_reason.unwrap_or_else(|| no("is not read")));
        }
        Ok(found)
    }

    /// From the reader `(node, slot)` of a lookup: Concat and Flatten nodes, each tensor read
    /// once, up to a dense layer. Returns the dense node and the tensors passed.
    fn branch(
        &self,
        (first, first_slot): (usize, usize),
    ) -> std::result::Result<(usize, Vec<String>), String> {
        let mut path = Vec::new();
        let (mut ix, mut slot) = (first, first_slot);
        loop {
            let r = &self.g.node[ix];
            match (r.op_type.as_str(), slot) {
                ("Concat", _) | ("Flatten", 0) => {
                    let t = r.output[0].clone();
                    (ix, slot) = self.only_reader(&t)?;
                    path.push(t);
                }
                ("Gemm" | "MatMul", 0)
                    if (r.op_type == "MatMul" || attr_int(r, "transA").unwrap_or(0) == 0)
                        && self.is_f32_matrix(&r.input[1]) =>
                {
                    return Ok((ix, path));
                }
                (op, _) => {
                    return Err(format!(
                        "its lookups reach {op} '{}' (an interaction or another non-linear \
                         step, not a dense layer through Concat/Flatten only)",
                        r.name
                    ));
                }
            }
        }
    }

    /// The shapes of every tensor the layouts of `targets` involve, and the model outputs,
    /// from one run of the unfused graph on the first calibration rows.
    #[allow(clippy::type_complexity)]
    fn layout_shapes(
        &self,
        model: &ModelProto,
        targets: &[usize],
        calib: &[NpyArray],
    ) -> Result<(HashMap<String, Vec<usize>>, Vec<(Vec<usize>, Vec<f32>)>)> {
        let mut wanted: Vec<String> = Vec::new();
        for &t in targets {
            self.collect_layout_tensors(&g_input(self.g, t), &mut wanted);
        }
        wanted.sort();
        wanted.dedup();
        // The same run gives the unfused outputs the fused graph is checked against.
        let graph_outputs: Vec<String> = self.g.output.iter().map(|o| o.name.clone()).collect();
        let selected: Vec<String> = wanted.iter().chain(&graph_outputs).cloned().collect();
        let planned = PlannedModel::new(model, selected)?;
        let runner = planned.runner(calib)?;
        let mut results = runner.run_rows(0, runner.rows().min(CHECK_ROWS))?;
        let unfused_outputs = results.split_off(wanted.len());
        let shapes = wanted
            .into_iter()
            .zip(results.into_iter().map(|(s, _)| s))
            .collect();
        Ok((shapes, unfused_outputs))
    }

    /// Per target: the layout of its input, and the target rewritten to read the k-wide
    /// lookups of its chains.
    fn rewrite_targets(
        &self,
        targets: &[usize],
        chains: &[Chain],
        shapes: &HashMap<String, Vec<usize>>,
        names: &mut Names,
    ) -> Edits {
        let mut edits = Edits {
            nodes: Vec::new(),
            initializers: Vec::new(),
            dropped: HashSet::new(),
            weight_change: Vec::new(),
            reshaped: HashSet::new(),
            fused_sites: HashMap::new(),
            failed_sites: HashMap::new(),
        };
        for &t in targets {
            let here: Vec<&Chain> = chains.iter().filter(|c| c.target == t).collect();
            let x = g_input(self.g, t);
            let rewritten = self
                .layout(&x, shapes)
                .and_then(|layout| rewrite_target(self.g, t, &layout, &here, names));
            match rewritten {
                Ok(rw) => {
                    edits.nodes.push((t, rw.node, rw.bias_add));
                    edits.initializers.extend(rw.initializers);
                    edits.dropped.extend(rw.replaced);
                    edits
                        .weight_change
                        .push((rw.weight_name.clone(), rw.weight_change));
                    for c in &here {
                        edits.reshaped.extend(c.path.iter().cloned());
                        edits
                            .fused_sites
                            .insert(c.site.clone(), rw.weight_name.clone());
                    }
                }
                Err(reason) => {
                    for c in &here {
                        edits.failed_sites.insert(c.site.clone(), reason.clone());
                    }
                }
            }
        }
        edits
    }

    /// Writes `edits` into `out`: the fused branches read the k-wide lookups; a projection
    /// other readers still need (an interaction layer) stays, the others go.
    fn splice(
        &self,
        out: &mut GraphProto,
        chains: &[Chain],
        edits: Edits,
        report: &mut FuseReport,
    ) {
        let Edits {
            nodes,
            initializers,
            mut dropped,
            reshaped,
            fused_sites,
            weight_change,
            ..
        } = edits;
        let mut extra_nodes: Vec<(usize, NodeProto)> = Vec::new();
        for (t, node, bias_add) in nodes {
            out.node[t] = node;
            if let Some(add) = bias_add {
                extra_nodes.push((t, add));
            }
        }
        let fused_chains: Vec<&Chain> = chains
            .iter()
            .filter(|c| fused_sites.contains_key(&c.site))
            .collect();
        for c in &fused_chains {
            out.node[c.entry.0].input[c.entry.1] = c.gather_out.clone();
        }
        let mut remove_nodes: HashSet<usize> = HashSet::new();
        for c in &fused_chains {
            let all_fused = self.readers.get(c.out.as_str()).is_some_and(|rs| {
                rs.iter()
                    .all(|r| fused_chains.iter().any(|f| f.out == c.out && f.entry == *r))
            });
            if all_fused {
                remove_nodes.extend(c.nodes.iter().copied());
                for &ix in &c.nodes {
                    dropped.extend(self.g.node[ix].input.iter().skip(1).cloned());
                }
            } else {
                report.projection_kept.insert(c.site.clone());
            }
        }
        let old_nodes = std::mem::take(&mut out.node);
        for (ix, n) in old_nodes.into_iter().enumerate() {
            if !remove_nodes.contains(&ix) {
                out.node.push(n);
            }
            for (_, add) in extra_nodes.iter().filter(|(t, _)| *t == ix) {
                out.node.push(add.clone());
            }
        }
        remove_unread(out, dropped, false);
        // Widths changed along the fused paths: drop their recorded shapes.
        out.value_info.retain(|v| !reshaped.contains(&v.name));
        out.initializer.extend(initializers);
        report.weight_change.extend(weight_change);
    }

    /// Tensors whose shapes [`Ctx::layout`] needs, starting from the dense input `x`.
    fn collect_layout_tensors(&self, x: &str, out: &mut Vec<String>) {
        out.push(x.to_owned());
        if let Some(&ix) = self.producer.get(x) {
            let n = &self.g.node[ix];
            match n.op_type.as_str() {
                "Concat" => {
                    for i in &n.input {
                        self.collect_layout_tensors(i, out);
                    }
                }
                "Flatten" => self.collect_layout_tensors(&n.input[0], out),
                _ => {}
            }
        }
    }

    /// The last axis of `x` as a sequence of tensors: through Concat along the last axis and
    /// Flatten that only merges unit axes into it.
    fn layout(
        &self,
        x: &str,
        shapes: &HashMap<String, Vec<usize>>,
    ) -> std::result::Result<Vec<Segment>, String> {
        let shape = shapes.get(x).ok_or_else(|| format!("no shape for '{x}'"))?;
        let leaf = || {
            Ok(vec![Segment {
                tensor: x.to_owned(),
                width: shape.last().copied().unwrap_or(1),
            }])
        };
        let Some(&ix) = self.producer.get(x) else {
            return leaf();
        };
        let n = &self.g.node[ix];
        match n.op_type.as_str() {
            "Concat" => {
                let rank = shape.len() as i64;
                let axis = attr_int(n, "axis").unwrap_or(0);
                let axis = if axis < 0 { axis + rank } else { axis };
                if axis != rank - 1 {
                    return Err(format!(
                        "'{}' concatenates along axis {axis} of {rank}, not the last",
                        n.name
                    ));
                }
                let mut all = Vec::new();
                for i in &n.input {
                    all.extend(self.layout(i, shapes)?);
                }
                Ok(all)
            }
            "Flatten" => {
                let input = shapes
                    .get(&n.input[0])
                    .ok_or_else(|| format!("no shape for '{}'", n.input[0]))?;
                let rank = input.len() as i64;
                let axis = attr_int(n, "axis").unwrap_or(1);
                let axis = if axis < 0 { axis + rank } else { axis };
                let middle: usize = input
                    .iter()
                    .take(input.len().saturating_sub(1))
                    .skip(axis.max(0) as usize)
                    .product();
                if axis <= 0 || axis >= rank || middle != 1 {
                    return Err(format!(
                        "'{}' flattens {input:?} at axis {axis}, mixing axes into the features",
                        n.name
                    ));
                }
                self.layout(&n.input[0], shapes)
            }
            _ => leaf(),
        }
    }
}

struct TargetRewrite {
    node: NodeProto,
    initializers: Vec<tract_onnx::pb::TensorProto>,
    bias_add: Option<NodeProto>,
    replaced: Vec<String>,
    weight_name: String,
    weight_change: i64,
}

/// The dense node `t` reading the k-wide lookups of `chains` in place of their projections.
fn rewrite_target(
    g: &GraphProto,
    t: usize,
    layout: &[Segment],
    chains: &[&Chain],
    names: &mut Names,
) -> std::result::Result<TargetRewrite, String> {
    let n = &g.node[t];
    let wt = initializer(g, &n.input[1]).ok_or("the dense weight is not an initializer")?;
    let wd = dims(wt).ok_or("the dense weight has invalid dims")?;
    let wv: Vec<f64> = f32_values(wt)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(f64::from)
        .collect();
    let gemm = n.op_type == "Gemm";
    let trans_b = gemm && attr_int(n, "transB").unwrap_or(0) != 0;
    let (n_in, n_out) = if trans_b {
        (wd[1], wd[0])
    } else {
        (wd[0], wd[1])
    };
    // M in math orientation (n_in x n_out): z = x M.
    let m = Mat::<f64>::from_fn(n_in, n_out, |i, j| {
        if trans_b {
            wv[j * n_in + i]
        } else {
            wv[i * n_out + j]
        }
    });
    let total: usize = layout.iter().map(|s| s.width).sum();
    if total != n_in {
        return Err(format!(
            "the input layout has {total} features but the weight '{}' reads {n_in}",
            wt.name
        ));
    }
    for c in chains {
        let hits = layout.iter().filter(|s| s.tensor == c.out).count();
        if hits != 1 {
            return Err(format!(
                "'{}' appears {hits} times in the input of '{}'",
                c.out, n.name
            ));
        }
    }
    let (rows, delta) = fused_rows(&m, layout, chains)?;
    let new_in = rows.len();
    let values: Vec<f32> = if trans_b {
        (0..n_out)
            .flat_map(|j| rows.iter().map(move |r| r[j] as f32))
            .collect()
    } else {
        rows.iter().flatten().map(|&v| v as f32).collect()
    };
    let new_dims = if trans_b {
        [n_out, new_in]
    } else {
        [new_in, n_out]
    };
    let weight_name = names.fresh(&format!("{}/fused", wt.name));
    let mut rw = TargetRewrite {
        node: n.clone(),
        initializers: vec![f32_tensor(&weight_name, &new_dims, &values)],
        bias_add: None,
        replaced: vec![wt.name.clone()],
        weight_name: wt.name.clone(),
        weight_change: (new_in as i64 - n_in as i64) * n_out as i64,
    };
    rw.node.input[1] = weight_name;
    if chains.iter().any(|c| c.mean.is_some()) {
        add_bias_change(g, n, &delta, names, &mut rw)?;
    }
    Ok(rw)
}

fn initializer<'g>(g: &'g GraphProto, name: &str) -> Option<&'g tract_onnx::pb::TensorProto> {
    g.initializer.iter().find(|i| i.name == name)
}

/// The rows of the fused weight (math orientation: one per input feature), the rows `M_i` of
/// each chain's block replaced by `P M_i`, and the bias change `sum mu M_i`.
fn fused_rows(
    m: &Mat<f64>,
    layout: &[Segment],
    chains: &[&Chain],
) -> std::result::Result<(Vec<Vec<f64>>, Vec<f64>), String> {
    let n_out = m.ncols();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut delta = vec![0.0f64; n_out];
    let mut offset = 0;
    for seg in layout {
        match chains.iter().find(|c| c.out == seg.tensor) {
            Some(c) => {
                if seg.width != c.dim {
                    return Err(format!("'{}' is {} wide, not {}", c.out, seg.width, c.dim));
                }
                for r in 0..c.rank {
                    let p = &c.projection[r * c.dim..(r + 1) * c.dim];
                    rows.push(
                        (0..n_out)
                            .map(|j| (0..c.dim).map(|i| p[i] * m[(offset + i, j)]).sum())
                            .collect(),
                    );
                }
                if let Some(mu) = &c.mean {
                    for (j, d) in delta.iter_mut().enumerate() {
                        *d += (0..c.dim).map(|i| mu[i] * m[(offset + i, j)]).sum::<f64>();
                    }
                }
            }
            None => rows
                .extend((offset..offset + seg.width).map(|i| m.row(i).iter().copied().collect())),
        }
        offset += seg.width;
    }
    Ok((rows, delta))
}

/// Adds the bias change `delta` of fused means to the rewritten dense node `n`: into the
/// Gemm's bias (scaled by alpha / beta), or, after a MatMul, as an Add.
fn add_bias_change(
    g: &GraphProto,
    n: &NodeProto,
    delta: &[f64],
    names: &mut Names,
    rw: &mut TargetRewrite,
) -> std::result::Result<(), String> {
    let n_out = delta.len();
    let weight = rw.weight_name.clone();
    if n.op_type == "Gemm" {
        let alpha = f64::from(attr_float(n, "alpha").unwrap_or(1.0));
        let beta = f64::from(attr_float(n, "beta").unwrap_or(1.0));
        let c_name = n.input.get(2).filter(|s| !s.is_empty());
        let (bias, scale) = match c_name {
            Some(c) => {
                let ct = initializer(g, c).ok_or("the Gemm bias is not an initializer")?;
                let cv = f32_values(ct).map_err(|e| e.to_string())?;
                if cv.len() != n_out || beta == 0.0 {
                    return Err(format!(
                        "the Gemm bias '{c}' is not a per-output vector (or beta is 0)"
                    ));
                }
                rw.replaced.push(c.clone());
                (
                    cv.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                    alpha / beta,
                )
            }
            None => {
                set_float_attr(&mut rw.node, "beta", 1.0);
                (vec![0.0; n_out], alpha)
            }
        };
        let b: Vec<f32> = bias
            .iter()
            .zip(delta)
            .map(|(b, d)| (b + scale * d) as f32)
            .collect();
        let b_name = names.fresh(&format!("{weight}/fused_bias"));
        rw.initializers.push(f32_tensor(&b_name, &[n_out], &b));
        if rw.node.input.len() < 3 {
            rw.node.input.resize(3, String::new());
        }
        rw.node.input[2] = b_name;
    } else {
        // MatMul: z = (x M') + delta.
        let z = n.output[0].clone();
        let tmp = names.fresh(&format!("{z}/unbiased"));
        rw.node.output[0] = tmp.clone();
        let b_name = names.fresh(&format!("{weight}/fused_bias"));
        let b: Vec<f32> = delta.iter().map(|&d| d as f32).collect();
        rw.initializers.push(f32_tensor(&b_name, &[n_out], &b));
        let add_name = names.fresh(&format!("{}/fused_bias", n.name));
        rw.bias_add = Some(super::graph::node(
            "Add",
            add_name,
            vec![tmp, b_name],
            vec![z],
            vec![],
        ));
    }
    Ok(())
}

fn set_float_attr(n: &mut NodeProto, name: &str, value: f32) {
    n.attribute.retain(|a| a.name != name);
    n.attribute.push(AttributeProto {
        name: name.to_owned(),
        f: value,
        r#type: tract_onnx::pb::attribute_proto::AttributeType::Float as i32,
        ..AttributeProto::default()
    });
}

/// Largest difference between `unfused` (the model outputs of the unfused graph on the first
/// calibration rows) and the outputs of `fused` on the same rows (absolute up to 1, relative
/// beyond).
fn max_output_diff(
    unfused: &[(Vec<usize>, Vec<f32>)],
    fused: &ModelProto,
    calib: &[NpyArray],
) -> Result<f64> {
    let planned = PlannedModel::new(fused, Vec::new())?;
    let runner = planned.runner(calib)?;
    let rows = runner.rows().min(CHECK_ROWS);
    let oa = unfused;
    let ob = runner.run_rows(0, rows)?;
    let mut diff = 0.0f64;
    for ((sa, va), (sb, vb)) in oa.iter().zip(&ob) {
        if sa != sb {
            return Err(Error::Compression {
                site: None,
                reason: format!("fusion changed an output shape from {sa:?} to {sb:?}"),
            });
        }
        for (x, y) in va.iter().zip(vb) {
            let (x, y) = (f64::from(*x), f64::from(*y));
            diff = diff.max((x - y).abs() / x.abs().max(1.0));
        }
    }
    Ok(diff)
}

//! `ctr-edge inspect`: what a model holds and what compression could do with it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use ctr_edge_runtime::graph::SUPPORTED_OPS;
use serde::Serialize;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{GraphProto, ModelProto, ValueInfoProto};

use super::graph::graph;
use super::sites::{find_sites, Rejected, Site, SiteKind};
use super::{count_params, weight_bytes};
use crate::error::Result;

/// A graph input or output.
#[derive(Debug, Clone, Serialize)]
pub struct ValueSummary {
    /// Name.
    pub name: String,
    /// Element type, e.g. `FLOAT`.
    pub dtype: String,
    /// Dimensions (numbers or symbolic names).
    pub shape: Vec<String>,
}

/// One site as `inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SiteSummary {
    /// The site (kind, geometry, outputs, consumers, level).
    #[serde(flatten)]
    pub site: Site,
    /// Parameters of the weight (bias excluded).
    pub params: usize,
    /// Bytes of the weight in f32.
    pub bytes: usize,
    /// Ranks `1..break_even_rank` make the site smaller (1: none does).
    pub break_even_rank: usize,
    /// For an embedding table: the dense site its lookups reach through Concat, Reshape and
    /// Flatten only, so that its projection could be folded into that layer.
    pub fusion_into: Option<String>,
}

/// The inspection report.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// Graph inputs (initializers excluded).
    pub inputs: Vec<ValueSummary>,
    /// Graph outputs.
    pub outputs: Vec<ValueSummary>,
    /// Opset of the default domain.
    pub opset: Option<i64>,
    /// Nodes in the main graph.
    pub nodes: usize,
    /// Compressible sites.
    pub sites: Vec<SiteSummary>,
    /// Candidates that are not sites.
    pub rejected: Vec<Rejected>,
    /// Values in all initializers.
    pub params: usize,
    /// Values in site weights.
    pub site_params: usize,
    /// Bytes of all initializer values.
    pub weight_bytes: u64,
    /// Ops of the main graph that the native runtime does not implement (an artifact with
    /// them would not load on the device), with how many nodes use each; sorted by op.
    pub native_unsupported: Vec<UnsupportedOp>,
}

/// An op the native runtime lacks, and how many nodes use it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnsupportedOp {
    /// Op type, with its domain when not the default one (`com.microsoft.FusedMatMul`).
    pub op: String,
    /// Nodes of the main graph using it.
    pub nodes: usize,
}

/// The ops of `g`'s nodes outside the runtime's `SUPPORTED_OPS` (every op of another domain
/// than the default one is outside).
fn native_unsupported(g: &GraphProto) -> Vec<UnsupportedOp> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for n in &g.node {
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        if default_domain && SUPPORTED_OPS.contains(&n.op_type.as_str()) {
            continue;
        }
        let op = if default_domain {
            n.op_type.clone()
        } else {
            format!("{}.{}", n.domain, n.op_type)
        };
        *counts.entry(op).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(op, nodes)| UnsupportedOp { op, nodes })
        .collect()
}

fn value_summary(v: &ValueInfoProto) -> ValueSummary {
    let tensor = v.r#type.as_ref().and_then(|t| match &t.value {
        Some(TypeValue::TensorType(t)) => Some(t),
        _ => None,
    });
    let dtype = tensor
        .and_then(|t| DataType::try_from(t.elem_type).ok())
        .map_or("?".into(), |d| d.as_str_name().to_string());
    let shape = tensor
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(n)) => n.to_string(),
                    Some(DimValue::DimParam(p)) => p.clone(),
                    None => "?".into(),
                })
                .collect()
        })
        .unwrap_or_default();
    ValueSummary {
        name: v.name.clone(),
        dtype,
        shape,
    }
}

/// Inspects a model.
pub fn inspect(model: &ModelProto) -> Result<InspectReport> {
    let g = graph(model)?;
    let found = find_sites(g);
    let initializers: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let fusion = fusion_targets(g, &found.sites);
    let sites: Vec<SiteSummary> = found
        .sites
        .iter()
        .map(|s| SiteSummary {
            site: s.clone(),
            params: s.weight_params(),
            bytes: 4 * s.weight_params(),
            break_even_rank: s.break_even_rank(),
            fusion_into: fusion.get(s.name.as_str()).cloned(),
        })
        .collect();
    Ok(InspectReport {
        inputs: g
            .input
            .iter()
            .filter(|v| !initializers.contains(v.name.as_str()))
            .map(value_summary)
            .collect(),
        outputs: g.output.iter().map(value_summary).collect(),
        opset: model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version),
        nodes: g.node.len(),
        site_params: sites.iter().map(|s| s.params).sum(),
        sites,
        rejected: found.rejected,
        params: count_params(model),
        weight_bytes: weight_bytes(model),
        native_unsupported: native_unsupported(g),
    })
}

/// For each embedding site whose lookups reach dense sites only through Concat, Reshape and
/// Flatten: the (first) dense site reached.
pub fn fusion_targets(g: &GraphProto, sites: &[Site]) -> HashMap<String, String> {
    let mut readers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (ix, n) in g.node.iter().enumerate() {
        for (slot, input) in n.input.iter().enumerate() {
            readers.entry(input.as_str()).or_default().push((ix, slot));
        }
    }
    let dense_of_node: HashMap<usize, &str> = sites
        .iter()
        .filter(|s| matches!(s.kind, SiteKind::Dense { .. }))
        .flat_map(|s| s.nodes.iter().map(move |&ix| (ix, s.name.as_str())))
        .collect();
    let graph_outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let mut result = HashMap::new();
    'sites: for site in sites {
        if !matches!(site.kind, SiteKind::Embedding { .. }) {
            continue;
        }
        let mut target: Option<&str> = None;
        let mut todo: Vec<&str> = site.outputs.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        while let Some(t) = todo.pop() {
            if !seen.insert(t) {
                continue;
            }
            if graph_outputs.contains(t) {
                continue 'sites;
            }
            for &(ix, slot) in readers.get(t).map_or(&[][..], Vec::as_slice) {
                let n = &g.node[ix];
                match (n.op_type.as_str(), slot) {
                    ("Concat", _) | ("Reshape" | "Flatten", 0) => todo.push(&n.output[0]),
                    ("Gemm" | "MatMul", 0) if dense_of_node.contains_key(&ix) => {
                        target.get_or_insert(dense_of_node[&ix]);
                    }
                    _ => continue 'sites,
                }
            }
        }
        if let Some(t) = target {
            result.insert(site.name.clone(), t.to_owned());
        }
    }
    result
}

impl InspectReport {
    /// The readable form.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let show = |v: &ValueSummary| format!("{} {} [{}]", v.name, v.dtype, v.shape.join(", "));
        for v in &self.inputs {
            let _ = writeln!(out, "input   {}", show(v));
        }
        for v in &self.outputs {
            let _ = writeln!(out, "output  {}", show(v));
        }
        let _ = writeln!(
            out,
            "opset {}, {} nodes, {} parameters ({} in sites), {} bytes of weights",
            self.opset.map_or("?".into(), |o| o.to_string()),
            self.nodes,
            self.params,
            self.site_params,
            self.weight_bytes
        );
        let name_w = self
            .sites
            .iter()
            .map(|s| s.site.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "\n{:<name_w$}  {:<9}  {:>11}  {:>8}  {:>9}  {:>5}  {:>10}  {:<24}  fusion",
            "site", "kind", "shape", "params", "bytes", "level", "break-even", "consumers"
        );
        for s in &self.sites {
            let (m, n) = s.site.matrix_shape();
            let shape = match s.site.kind {
                SiteKind::Embedding { .. } => format!("{m}x{n}"),
                SiteKind::Dense { .. } => format!("{n}->{m}"),
            };
            let _ = writeln!(
                out,
                "{:<name_w$}  {:<9}  {:>11}  {:>8}  {:>9}  {:>5}  {:>10}  {:<24}  {}",
                s.site.name,
                s.site.kind_name(),
                shape,
                s.params,
                s.bytes,
                s.site.level,
                if s.break_even_rank > 1 {
                    s.break_even_rank.to_string()
                } else {
                    "never".into()
                },
                s.site.consumers.join(","),
                s.fusion_into.as_deref().unwrap_or("-"),
            );
        }
        for r in &self.rejected {
            let _ = writeln!(out, "not a site: {} {:?}: {}", r.name, r.shape, r.reason);
        }
        let factorizable = self.sites.iter().filter(|s| s.break_even_rank > 1).count();
        let _ = writeln!(
            out,
            "\n{} sites ({} embedding, {} dense), {} of them factorizable",
            self.sites.len(),
            self.sites
                .iter()
                .filter(|s| matches!(s.site.kind, SiteKind::Embedding { .. }))
                .count(),
            self.sites
                .iter()
                .filter(|s| matches!(s.site.kind, SiteKind::Dense { .. }))
                .count(),
            factorizable
        );
        if self.native_unsupported.is_empty() {
            let _ = writeln!(out, "native runtime: every op is supported");
        } else {
            let list: Vec<String> = self
                .native_unsupported
                .iter()
                .map(|u| {
                    format!(
                        "{} ({} node{})",
                        u.op,
                        u.nodes,
                        if u.nodes == 1 { "" } else { "s" }
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "native runtime LACKS: {} (an artifact of this model will not load on the device)",
                list.join(", ")
            );
        }
        out
    }
}

//! The figures of one run and their two renderings: a table for people, JSON for scripts
//! (written by hand: the device build carries no serialization crate).

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::timing::Latency;

/// Which of the two models a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The model under test (usually the compressed one).
    Model,
    /// Its uncompressed original (`--original`).
    Original,
}

impl Role {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::Model => "model",
            Role::Original => "original",
        }
    }
}

/// Which engine a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The ctr-edge runtime.
    CtrEdge,
    /// The ctr-edge runtime with its plan-time fusions off (`--no-fusion`).
    CtrEdgeNoFusion,
    /// tract-onnx (`--vs tract`).
    Tract,
}

impl Engine {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Engine::CtrEdge => "ctr-edge",
            Engine::CtrEdgeNoFusion => "ctr-edge-nofuse",
            Engine::Tract => "tract",
        }
    }
}

/// Figures of one batch size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchFigures {
    /// Candidates scored per call.
    pub batch: usize,
    /// Latency of one call.
    pub latency: Latency,
    /// Candidates per second at the median latency (`batch / p50`).
    pub throughput_per_s: f64,
}

impl BatchFigures {
    /// Figures of `batch` from its latency.
    pub fn new(batch: usize, latency: Latency) -> BatchFigures {
        let throughput_per_s = if latency.p50_us > 0.0 {
            batch as f64 * 1e6 / latency.p50_us
        } else {
            f64::INFINITY
        };
        BatchFigures {
            batch,
            latency,
            throughput_per_s,
        }
    }
}

/// Everything measured for one engine on one file.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineRun {
    /// Model or original.
    pub role: Role,
    /// Engine.
    pub engine: Engine,
    /// The file.
    pub path: PathBuf,
    /// Kernel variant in use (`Model::kernel_variant()`; "tract" for tract).
    pub kernel_variant: String,
    /// Median open time (ctr-edge: `Model::open`; tract: load, optimize, make runnable).
    pub open_ms: f64,
    /// Resident memory of the process before the first open, KiB.
    pub rss_before_open_kib: Option<u64>,
    /// After the first open.
    pub rss_after_open_kib: Option<u64>,
    /// After the first run (first batch size).
    pub rss_after_first_run_kib: Option<u64>,
    /// Per batch size, in the order asked.
    pub batches: Vec<BatchFigures>,
}

/// The `engine model` columns that start every row of the tables (the header's first).
const HEAD: &str = "engine          model   ";

impl EngineRun {
    /// This run's `engine model` columns, as wide as [`HEAD`].
    fn row_head(&self) -> String {
        format!("{:<15} {:<8}", self.engine.name(), self.role.name())
    }
}

/// One ratio of median latencies, per batch size.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    /// What is divided by what, e.g. `tract / ctr-edge (model)`.
    pub label: String,
    /// Open-time ratio.
    pub open: f64,
    /// `(batch, p50 ratio)` per batch size.
    pub p50: Vec<(usize, f64)>,
}

/// The figures of one harness run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Timed runs per batch size.
    pub iters: usize,
    /// Warm-up runs per batch size.
    pub warmup: usize,
    /// Opens whose median is the open time.
    pub open_reps: usize,
    /// Every engine run: the model with ctr-edge first.
    pub runs: Vec<EngineRun>,
}

impl Report {
    /// The run of `engine` on `role`, if measured.
    pub fn run(&self, role: Role, engine: Engine) -> Option<&EngineRun> {
        self.runs
            .iter()
            .find(|r| r.role == role && r.engine == engine)
    }

    /// Ratios of median latencies and open times: tract / ctr-edge per model, and
    /// original / model per engine (above 1: the model is faster).
    pub fn ratios(&self) -> Vec<Ratio> {
        let mut out = Vec::new();
        let mut push = |label: String, num: Option<&EngineRun>, den: Option<&EngineRun>| {
            let (Some(num), Some(den)) = (num, den) else {
                return;
            };
            let p50 = num
                .batches
                .iter()
                .zip(&den.batches)
                .map(|(n, d)| (n.batch, n.latency.p50_us / d.latency.p50_us))
                .collect();
            out.push(Ratio {
                label,
                open: num.open_ms / den.open_ms,
                p50,
            });
        };
        for role in [Role::Model, Role::Original] {
            push(
                format!("tract / ctr-edge ({})", role.name()),
                self.run(role, Engine::Tract),
                self.run(role, Engine::CtrEdge),
            );
        }
        for engine in [Engine::CtrEdge, Engine::Tract] {
            push(
                format!("original / model ({})", engine.name()),
                self.run(Role::Original, engine),
                self.run(Role::Model, engine),
            );
        }
        for role in [Role::Model, Role::Original] {
            push(
                format!("no fusion / fusion ({})", role.name()),
                self.run(role, Engine::CtrEdgeNoFusion),
                self.run(role, Engine::CtrEdge),
            );
        }
        out
    }

    /// The report as a table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ctr-edge-bench: {} timed runs per batch size after {} warm-up runs; open time = \
             median of {} opens",
            self.iters, self.warmup, self.open_reps
        );
        for run in &self.runs {
            let _ = writeln!(
                s,
                "{:<15} {:<8} {}",
                run.engine.name(),
                run.role.name(),
                run.path.display()
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{} {:>10} {:>18} {:>18} {:>18}",
            HEAD, "open ms", "RSS before MiB", "RSS open MiB", "RSS 1st run MiB"
        );
        for run in &self.runs {
            let _ = writeln!(
                s,
                "{} {:>10.3} {:>18} {:>18} {:>18}",
                run.row_head(),
                run.open_ms,
                mib(run.rss_before_open_kib, None),
                mib(run.rss_after_open_kib, run.rss_before_open_kib),
                mib(run.rss_after_first_run_kib, run.rss_after_open_kib),
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{} {:>6} {:>12} {:>12} {:>12} {:>14}  kernels",
            HEAD, "batch", "p50 us", "p90 us", "p99 us", "candidates/s"
        );
        for run in &self.runs {
            for b in &run.batches {
                let _ = writeln!(
                    s,
                    "{} {:>6} {:>12.1} {:>12.1} {:>12.1} {:>14.0}  {}",
                    run.row_head(),
                    b.batch,
                    b.latency.p50_us,
                    b.latency.p90_us,
                    b.latency.p99_us,
                    b.throughput_per_s,
                    run.kernel_variant
                );
            }
        }
        let ratios = self.ratios();
        if let Some(first) = ratios.first() {
            let _ = writeln!(s);
            let mut header = format!("{:<32} {:>8}", "ratio", "open");
            for (batch, _) in &first.p50 {
                let _ = write!(header, " {:>10}", format!("p50 b{batch}"));
            }
            let _ = writeln!(s, "{header}");
            for r in &ratios {
                let _ = write!(s, "{:<32} {:>8.2}", r.label, r.open);
                for (_, x) in &r.p50 {
                    let _ = write!(s, " {x:>10.2}");
                }
                let _ = writeln!(s);
            }
        }
        s
    }

    /// The report as JSON (one object; latencies in microseconds, memory in KiB, `null` where
    /// the platform does not report resident memory).
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"iters\":{},\"warmup\":{},\"open_reps\":{},\"runs\":[",
            self.iters, self.warmup, self.open_reps
        );
        for (i, run) in self.runs.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"role\":{},\"engine\":{},\"path\":{},\"kernel_variant\":{},\"open_ms\":{},\
                 \"rss_before_open_kib\":{},\"rss_after_open_kib\":{},\
                 \"rss_after_first_run_kib\":{},\"batches\":[",
                json_str(run.role.name()),
                json_str(run.engine.name()),
                json_str(&run.path.display().to_string()),
                json_str(&run.kernel_variant),
                json_num(run.open_ms),
                json_opt(run.rss_before_open_kib),
                json_opt(run.rss_after_open_kib),
                json_opt(run.rss_after_first_run_kib),
            );
            for (j, b) in run.batches.iter().enumerate() {
                if j > 0 {
                    s.push(',');
                }
                let _ = write!(
                    s,
                    "{{\"batch\":{},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"mean_us\":{},\
                     \"throughput_per_s\":{}}}",
                    b.batch,
                    json_num(b.latency.p50_us),
                    json_num(b.latency.p90_us),
                    json_num(b.latency.p99_us),
                    json_num(b.latency.mean_us),
                    json_num(b.throughput_per_s),
                );
            }
            s.push_str("]}");
        }
        s.push_str("],\"ratios\":[");
        for (i, r) in self.ratios().iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"label\":{},\"open\":{},\"p50\":[",
                json_str(&r.label),
                json_num(r.open)
            );
            for (j, (batch, x)) in r.p50.iter().enumerate() {
                if j > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{{\"batch\":{batch},\"ratio\":{}}}", json_num(*x));
            }
            s.push_str("]}");
        }
        s.push_str("]}");
        s
    }
}

/// `12.3 (+1.2)`: KiB as MiB, with the growth over `base` when both are known.
fn mib(kib: Option<u64>, base: Option<u64>) -> String {
    match (kib, base) {
        (None, _) => "n/a".to_owned(),
        (Some(k), None) => format!("{:.1}", k as f64 / 1024.0),
        (Some(k), Some(b)) => format!(
            "{:.1} ({:+.1})",
            k as f64 / 1024.0,
            (k as f64 - b as f64) / 1024.0
        ),
    }
}

/// A JSON string literal.
fn json_str(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// A JSON number; JSON has no infinity or NaN, so those are `null`.
fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".to_owned()
    }
}

fn json_opt(x: Option<u64>) -> String {
    x.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_json_strings() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(json_num(f64::INFINITY), "null");
        assert_eq!(json_num(1.5), "1.5");
    }

    #[test]
    fn table_header_columns_line_up_with_the_rows() {
        let run = EngineRun {
            role: Role::Model,
            engine: Engine::CtrEdge,
            path: PathBuf::from("m.onnx"),
            kernel_variant: String::new(),
            open_ms: 0.0,
            rss_before_open_kib: None,
            rss_after_open_kib: None,
            rss_after_first_run_kib: None,
            batches: Vec::new(),
        };
        assert_eq!(HEAD.len(), run.row_head().len());
        assert_eq!(HEAD, format!("{:<15} {:<8}", "engine", "model"));
    }
}

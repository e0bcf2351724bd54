//! The command line, parsed by hand (the device build carries no argument-parsing crate).

use std::path::PathBuf;

use crate::error::BenchError;

/// Batch sizes measured when `--batch` is not given.
pub const DEFAULT_BATCHES: [usize; 4] = [1, 32, 256, 1024];
/// Timed runs per batch size when `--iters` is not given.
pub const DEFAULT_ITERS: usize = 100;
/// Untimed runs per batch size before the timed ones when `--warmup` is not given.
pub const DEFAULT_WARMUP: usize = 10;
/// `Model::open` calls whose median is the open time.
pub const DEFAULT_OPEN_REPS: usize = 5;

/// Usage text of the `ctr-edge-bench` binary.
pub const USAGE: &str = "\
usage: ctr-edge-bench MODEL.onnx [--original ORIG.onnx] [--batch 1,32,256,1024] [--iters N]
                      [--warmup N] [--open-reps N] [--json] [--vs tract] [--no-fusion]

Opens MODEL.onnx with the ctr-edge runtime and reports its open time (median of --open-reps
opens), resident memory after open and after the first run, and per batch size the latency
p50/p90/p99 over --iters runs (after --warmup runs), the throughput (candidates/s at p50) and
the kernel variant. Inputs are synthesized from the model's input specs (symbolic dims = the
batch size): floats in [0, 1), integers 0.

  --original ORIG.onnx  also measure the uncompressed original; ratios original / model
  --batch LIST          comma-separated batch sizes (default 1,32,256,1024)
  --iters N             timed runs per batch size (default 100)
  --warmup N            untimed runs per batch size before them (default 10)
  --open-reps N         opens whose median is the open time (default 5)
  --json                print JSON instead of the table
  --vs tract            also measure tract-onnx on the same files (builds with feature tract)
  --no-fusion           also measure each ctr-edge file with the runtime's plan-time fusions
                        off, its runs alternating with the fused ones (ratios no fusion /
                        fusion)
  -h, --help            this text";

/// Engines to compare with (`--vs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// tract-onnx.
    Tract,
}

/// What to measure and how to print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The model under test (usually the compressed one).
    pub model: PathBuf,
    /// Its uncompressed original, measured the same way.
    pub original: Option<PathBuf>,
    /// Batch sizes, in the order given.
    pub batches: Vec<usize>,
    /// Timed runs per batch size.
    pub iters: usize,
    /// Untimed runs per batch size before the timed ones.
    pub warmup: usize,
    /// `Model::open` calls whose median is the open time.
    pub open_reps: usize,
    /// JSON output instead of the table.
    pub json: bool,
    /// Engine to compare with, if any.
    pub vs: Option<Reference>,
    /// Also measure the ctr-edge runtime with its plan-time fusions off (`--no-fusion`).
    pub no_fusion: bool,
}

impl Options {
    /// Defaults for `model`.
    pub fn new(model: impl Into<PathBuf>) -> Options {
        Options {
            model: model.into(),
            original: None,
            batches: DEFAULT_BATCHES.to_vec(),
            iters: DEFAULT_ITERS,
            warmup: DEFAULT_WARMUP,
            open_reps: DEFAULT_OPEN_REPS,
            json: false,
            vs: None,
            no_fusion: false,
        }
    }

    /// Checks what the parser cannot see alone: positive counts, at least one batch size.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.batches.is_empty() {
            return Err(BenchError::Usage("--batch: no batch size given".into()));
        }
        if self.batches.contains(&0) {
            return Err(BenchError::Usage(
                "--batch: batch sizes must be at least 1".into(),
            ));
        }
        if self.iters == 0 {
            return Err(BenchError::Usage("--iters must be at least 1".into()));
        }
        if self.open_reps == 0 {
            return Err(BenchError::Usage("--open-reps must be at least 1".into()));
        }
        Ok(())
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print [`USAGE`].
    Help,
    /// Run the benchmark.
    Run(Options),
}

/// Parses the arguments after the program name.
pub fn parse_args<I, S>(args: I) -> Result<Command, BenchError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut model = None;
    let mut opts = Options::new("");
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        // `--name=value` and `--name value` are both accepted.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, BenchError> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| BenchError::Usage(format!("{name} needs a value ({what})")))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--original" => opts.original = Some(PathBuf::from(value("ORIG.onnx")?)),
            "--batch" => opts.batches = parse_batches(&value("a list like 1,32,256")?)?,
            "--iters" => opts.iters = parse_count("--iters", &value("N")?)?,
            "--warmup" => opts.warmup = parse_count("--warmup", &value("N")?)?,
            "--open-reps" => opts.open_reps = parse_count("--open-reps", &value("N")?)?,
            "--json" => opts.json = true,
            "--no-fusion" => opts.no_fusion = true,
            "--vs" => {
                opts.vs = Some(match value("tract")?.as_str() {
                    "tract" => Reference::Tract,
                    other => {
                        return Err(BenchError::Usage(format!(
                            "--vs: unknown engine '{other}' (expected tract)"
                        )))
                    }
                })
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(BenchError::Usage(format!("unknown option {s}")))
            }
            _ if model.is_some() => {
                return Err(BenchError::Usage(format!(
                    "unexpected argument '{arg}' (one model; the original goes with --original)"
                )))
            }
            _ => model = Some(PathBuf::from(arg)),
        }
    }
    opts.model = model.ok_or_else(|| BenchError::Usage("no model given".into()))?;
    opts.validate()?;
    Ok(Command::Run(opts))
}

/// `1,32,256` -> `[1, 32, 256]`.
pub fn parse_batches(list: &str) -> Result<Vec<usize>, BenchError> {
    list.split(',')
        .map(|item| match item.trim().parse::<usize>() {
            Ok(0) => Err(BenchError::Usage(format!(
                "--batch: batch sizes must be at least 1 (got '{list}')"
            ))),
            Ok(n) => Ok(n),
            Err(_) => Err(BenchError::Usage(format!(
                "--batch: '{item}' is not a batch size (expected a list like 1,32,256, got \
                 '{list}')"
            ))),
        })
        .collect()
}

fn parse_count(name: &str, s: &str) -> Result<usize, BenchError> {
    s.trim()
        .parse()
        .map_err(|_| BenchError::Usage(format!("{name}: '{s}' is not a count")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_option() {
        let cmd = parse_args([
            "m.onnx",
            "--original",
            "o.onnx",
            "--batch=1,8",
            "--iters",
            "3",
            "--warmup",
            "0",
            "--json",
            "--vs",
            "tract",
            "--no-fusion",
        ])
        .unwrap();
        let Command::Run(o) = cmd else {
            panic!("expected a run")
        };
        assert_eq!(o.model, PathBuf::from("m.onnx"));
        assert_eq!(o.original, Some(PathBuf::from("o.onnx")));
        assert_eq!(o.batches, vec![1, 8]);
        assert_eq!((o.iters, o.warmup, o.json), (3, 0, true));
        assert_eq!(o.vs, Some(Reference::Tract));
        assert!(o.no_fusion);
    }

    #[test]
    fn rejects_bad_arguments() {
        for (args, needle) in [
            (&["m.onnx", "--batch", "1,x"][..], "'x' is not a batch size"),
            (&["m.onnx", "--batch", "0"][..], "at least 1"),
            (&["m.onnx", "--iters", "0"][..], "--iters"),
            (&["m.onnx", "--iters"][..], "--iters needs a value"),
            (
                &["m.onnx", "--frobnicate"][..],
                "unknown option --frobnicate",
            ),
            (&["m.onnx", "--vs", "ort"][..], "unknown engine 'ort'"),
            (&[][..], "no model"),
        ] {
            let err = parse_args(args.iter().copied()).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}

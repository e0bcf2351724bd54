//! The ctr-edge benchmark harness: opens a model with the runtime and measures what an app on
//! the device pays — open time, resident memory after open and after the first run, latency
//! percentiles and throughput per batch size, the kernel variant in use — optionally for the
//! uncompressed original and for tract-onnx on the same files (feature `tract`, host builds).
//!
//! The `ctr-edge-bench` binary (`benches/src/main.rs`, the device build) and `ctr-edge bench`
//! (the exporter's command line, with the `tract` feature) both call [`run`] and print
//! [`Report::to_table`] or [`Report::to_json`]. The default build depends on the runtime
//! alone, so it cross-compiles for aarch64 and Android cheaply.
//!
//! - [`options`]: the command line ([`parse_args`], [`USAGE`]) and [`Options`];
//! - `engines`: opening and timing the model with ctr-edge and with tract;
//! - [`inputs`]: synthetic inputs for any batch size;
//! - [`timing`], [`memory`]: latency percentiles and resident memory;
//! - [`report`]: the figures, the table and the JSON; [`error`]: [`BenchError`];
//! - [`contain`]: tract's panics as errors.
//!
//! Order of the measurements, one process: the model with ctr-edge (with `--no-fusion`, its
//! fused and unfused plans alternating), the model with tract, the original with ctr-edge,
//! the original with tract. Each engine run drops its model before the
//! next starts; resident memory is the process's (before/after figures give the growth).
#![forbid(unsafe_code)]

pub mod contain;
mod engines;
pub mod error;
pub mod inputs;
pub mod memory;
pub mod options;
pub mod report;
pub mod timing;

pub use error::BenchError;
pub use options::{parse_args, Command, Options, Reference, USAGE};
pub use report::{BatchFigures, Engine, EngineRun, Ratio, Report, Role};

/// Whether this build can measure tract (`--vs tract`).
pub const HAS_TRACT: bool = cfg!(feature = "tract");

/// Runs every measurement `opts` asks for.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    opts.validate()?;
    if opts.vs == Some(Reference::Tract) && !HAS_TRACT {
        return Err(BenchError::MissingFeature { feature: "tract" });
    }
    if let Some(original) = &opts.original {
        engines::check_exists(original)?;
    }
    let mut runs = Vec::new();
    let mut models = vec![(Role::Model, opts.model.as_path())];
    if let Some(original) = &opts.original {
        models.push((Role::Original, original.as_path()));
    }
    for (role, path) in models {
        let measured = engines::measure_ctr_edge(role, path, opts)?;
        runs.push(measured.run);
        runs.extend(measured.unfused);
        #[cfg(feature = "tract")]
        if opts.vs == Some(Reference::Tract) {
            // tract panics on some malformed models: an error naming tract, not a dead process.
            let tract =
                contain::contained(|| engines::measure_tract(role, path, &measured.specs, opts))
                    .unwrap_or_else(|panic| {
                        Err(BenchError::Tract {
                            path: path.to_path_buf(),
                            stage: "measuring".to_owned(),
                            reason: format!("internal error in tract (a panic, caught): {panic}"),
                        })
                    });
            runs.push(tract?);
        }
        #[cfg(not(feature = "tract"))]
        let _ = measured.specs;
    }
    Ok(Report {
        iters: opts.iters,
        warmup: opts.warmup,
        open_reps: opts.open_reps,
        runs,
    })
}

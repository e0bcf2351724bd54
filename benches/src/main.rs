//! `ctr-edge-bench`: the on-device benchmark harness (see `ctr-edge-harness`, the library it
//! runs, and `--help`).
//!
//! Exit status: 0 on success, 2 on a usage error, 1 when a model fails to open or run.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use ctr_edge_harness::{parse_args, run, BenchError, Command, USAGE};

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(opts)) => opts,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(report) if opts.json => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", report.to_table());
            ExitCode::SUCCESS
        }
        Err(e @ (BenchError::Usage(_) | BenchError::MissingFeature { .. })) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! ctr-edge exporter library: `.npz` data, metrics, backends (native runtime, tract).
#![forbid(unsafe_code)]

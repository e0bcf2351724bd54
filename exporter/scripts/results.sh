#!/bin/sh
# Regenerates exporter/RESULTS.md: every fixture compressed with AFM and SVD at several
# parameter reductions, evaluated on its test split (see exporter/examples/results.rs).
# Usage: exporter/scripts/results.sh [FIXTURE...] [--ratios 3,4,5,10,20]
set -eu
cd "$(dirname "$0")/../.."
cargo run --release -p ctr-edge-exporter --example results -- "$@" > exporter/RESULTS.md.tmp
mv exporter/RESULTS.md.tmp exporter/RESULTS.md
echo "wrote exporter/RESULTS.md"

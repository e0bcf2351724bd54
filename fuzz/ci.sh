#!/usr/bin/env bash
# CI's fuzz smoke run: builds every target (libFuzzer + AddressSanitizer through cargo-fuzz, on
# the pinned stable toolchain with RUSTC_BOOTSTRAP=1) and runs each from the seed corpus for
# FUZZ_SECONDS (default 20). Exits non-zero when a target finds a crash, a timeout, an
# allocation over 1 GiB or an RSS over 2 GiB; the input is left in fuzz/artifacts/TARGET/.
# Installs cargo-fuzz itself when it is missing. See fuzz/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${FUZZ_SECONDS:-20}
# cargo-fuzz passes -Zsanitizer and -Cpasses=sancov-module; this lets the stable compiler
# take them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

cd "$here"
./seed.sh
start=$SECONDS
cargo fuzz build --release
echo "fuzz targets built in $((SECONDS - start)) s"

failed=()
for target in onnx_decode open_plan npz_read ffi_calls; do
    echo "== $target: ${secs} s"
    if ! cargo fuzz run --release "$target" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=5 \
        -max_len=262144 -print_final_stats=1 2>"$here/target/$target.log"; then
        failed+=("$target")
        tail -n 60 "$here/target/$target.log"
    fi
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units)" "$here/target/$target.log" || true
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz findings in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: 4 passed, 0 failed"

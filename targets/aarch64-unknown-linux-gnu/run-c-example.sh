#!/usr/bin/env bash
# Builds the C ABI for aarch64 Linux, links targets/examples/score.c against it, runs the
# example under qemu on the bundled model and compares its scores with the host build's.
# Prints the stripped size of the aarch64 shared library, release and release-small
# (targets/release-small.toml) builds (target: <= 400 KiB).
#
# Needs: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user, `rustup target add
# aarch64-unknown-linux-gnu`, and a host C compiler. Run from anywhere in the checkout:
#   targets/aarch64-unknown-linux-gnu/run-c-example.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=aarch64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$root/target}
work=$target_dir/c-example
mkdir -p "$work"
model=tests/fixtures/movielens_deepfm/model.onnx
rows=targets/examples/movielens_deepfm_rows.f32
tolerance=${CTR_EDGE_TOLERANCE:-1e-5} # NEON and AVX2 kernels sum in different orders

echo "== build (host and $target, release)"
cargo build -p ctr-edge-ffi --release
cargo --config "targets/$target/config.toml" build -p ctr-edge-ffi --release --target "$target"

echo "== link score.c"
cc -std=c11 -O2 -Wall -Wextra -Werror -Iruntime/ffi/include targets/examples/score.c \
  "$target_dir/release/libctr_edge.a" -lm -lpthread -ldl -o "$work/score-host"
aarch64-linux-gnu-gcc -std=c11 -O2 -Wall -Wextra -Werror -Iruntime/ffi/include \
  targets/examples/score.c "$target_dir/$target/release/libctr_edge.a" -lm -lpthread -ldl \
  -o "$work/score-aarch64"

echo "== run"
"$work/score-host" "$model" "$rows" >"$work/scores-host.txt"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$work/score-aarch64" "$model" "$rows" \
  >"$work/scores-aarch64.txt"

rows_scored=$(wc -l <"$work/scores-aarch64.txt")
paste "$work/scores-host.txt" "$work/scores-aarch64.txt" | awk -v tol="$tolerance" '
  { d = $1 - $2; if (d < 0) d = -d; if (d > max) max = d;
    if (NF != 2 || d > tol) { bad++; print "row " NR-1 ": host " $1 ", aarch64 " $2 } }
  END { printf "max |host - aarch64| = %.3g over %d rows\n", max, NR; exit bad > 0 }'
[ "$rows_scored" -eq "$(wc -l <"$work/scores-host.txt")" ] && [ "$rows_scored" -gt 0 ]
echo "aarch64 scores match the host's ($rows_scored rows)"

echo "== size (stripped $target libctr_edge.so; target <= 400 KiB)"
# The shipped build: size-optimized, LTO (cargo applies LTO only to a cdylib built alone).
cargo --config "targets/$target/config.toml" --config targets/release-small.toml \
  rustc -p ctr-edge-ffi --lib --crate-type cdylib --profile release-small --target "$target"
for profile in release release-small; do
  aarch64-linux-gnu-strip -o "$work/libctr_edge-$profile.so" \
    "$target_dir/$target/$profile/libctr_edge.so"
  bytes=$(stat -c %s "$work/libctr_edge-$profile.so")
  echo "$profile: $bytes bytes ($((bytes / 1024)) KiB)"
done

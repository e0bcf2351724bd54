#!/usr/bin/env bash
# Builds the C ABI for aarch64 Linux, links targets/examples/score.c against it, runs the
# example under qemu on the bundled model and compares its scores with the host build's, for
# both builds of the library:
#   - release (default features, std: panics caught as CTR_EDGE_STATUS_PANIC), score.c linked
#     against libctr_edge.a;
#   - release-small, the shipped one (targets/release-small.toml: opt-level "s", fat LTO,
#     panic = "abort", and `--no-default-features`: no_std, malloc allocator, a bug aborts),
#     score.c linked against the stripped libctr_edge.so itself and against libctr_edge.a.
# Prints the stripped size of the aarch64 shared library of both builds and whether
# release-small meets the 400 KiB target (a miss is reported, not an error).
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
mkdir -p "$work/lib"
model=tests/fixtures/movielens_deepfm/model.onnx
rows=targets/examples/movielens_deepfm_rows.f32
tolerance=${CTR_EDGE_TOLERANCE:-1e-5} # NEON and AVX2 kernels sum in different orders
target_kib=400
qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
cflags=(-std=c11 -O2 -Wall -Wextra -Werror -Iruntime/ffi/include)

echo "== build (host and $target, release; $target release-small without std)"
cargo build -p ctr-edge-ffi --release
cargo --config "targets/$target/config.toml" build -p ctr-edge-ffi --release --target "$target"
# The shipped build: no_std, size-optimized, LTO (cargo applies LTO only to library types that
# allow it, so the cdylib and the staticlib are built without the rlib).
cargo --config "targets/$target/config.toml" --config targets/release-small.toml \
  rustc -p ctr-edge-ffi --lib --crate-type cdylib,staticlib --profile release-small \
  --no-default-features --target "$target"
for profile in release release-small; do
  aarch64-linux-gnu-strip -o "$work/lib/libctr_edge-$profile.so" \
    "$target_dir/$target/$profile/libctr_edge.so"
done
# The stripped shipped library under its own name, for linking and loading.
mkdir -p "$work/lib/release-small"
cp "$work/lib/libctr_edge-release-small.so" "$work/lib/release-small/libctr_edge.so"

echo "== link score.c"
cc "${cflags[@]}" targets/examples/score.c "$target_dir/release/libctr_edge.a" \
  -lm -lpthread -ldl -o "$work/score-host"
aarch64-linux-gnu-gcc "${cflags[@]}" targets/examples/score.c \
  "$target_dir/$target/release/libctr_edge.a" -lm -lpthread -ldl -o "$work/score-aarch64"
aarch64-linux-gnu-gcc "${cflags[@]}" targets/examples/score.c \
  "$target_dir/$target/release-small/libctr_edge.a" -lm -lpthread -ldl \
  -o "$work/score-aarch64-small-static"
aarch64-linux-gnu-gcc "${cflags[@]}" targets/examples/score.c \
  -L"$work/lib/release-small" -lctr_edge -o "$work/score-aarch64-small"

echo "== run"
"$work/score-host" "$model" "$rows" >"$work/scores-host.txt"

# compare NAME FILE: FILE's scores against the host's, within the tolerance.
compare() {
  local rows_scored
  rows_scored=$(wc -l <"$2")
  paste "$work/scores-host.txt" "$2" | awk -v tol="$tolerance" -v name="$1" '
    { d = $1 - $2; if (d < 0) d = -d; if (d > max) max = d;
      if (NF != 2 || d > tol) { bad++; print "row " NR-1 ": host " $1 ", " name " " $2 } }
    END { printf "%s: max |host - aarch64| = %.3g over %d rows\n", name, max, NR;
          exit bad > 0 }'
  [ "$rows_scored" -eq "$(wc -l <"$work/scores-host.txt")" ] && [ "$rows_scored" -gt 0 ]
  echo "$1: aarch64 scores match the host's ($rows_scored rows)"
}

"${qemu[@]}" "$work/score-aarch64" "$model" "$rows" >"$work/scores-aarch64.txt"
compare "release (std, libctr_edge.a)" "$work/scores-aarch64.txt"
"${qemu[@]}" "$work/score-aarch64-small-static" "$model" "$rows" \
  >"$work/scores-aarch64-small-static.txt"
compare "release-small (no std, libctr_edge.a)" "$work/scores-aarch64-small-static.txt"
# LD_BIND_NOW: every symbol the stripped library needs resolves at load.
"${qemu[@]}" -E LD_LIBRARY_PATH="$work/lib/release-small" -E LD_BIND_NOW=1 \
  "$work/score-aarch64-small" "$model" "$rows" >"$work/scores-aarch64-small.txt"
compare "release-small (no std, stripped libctr_edge.so)" "$work/scores-aarch64-small.txt"

echo "== size (stripped $target libctr_edge.so; target <= $target_kib KiB)"
for profile in release release-small; do
  bytes=$(stat -c %s "$work/lib/libctr_edge-$profile.so")
  echo "$profile: $bytes bytes ($((bytes / 1024)) KiB)"
done
if [ "$bytes" -le $((target_kib * 1024)) ]; then
  echo "release-small: target met ($((bytes / 1024)) KiB <= $target_kib KiB)"
else
  echo "release-small: target missed ($((bytes / 1024)) KiB > $target_kib KiB)"
fi

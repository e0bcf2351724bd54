#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds made from the repository's own files (nothing is
# downloaded, nothing here is committed: fuzz/corpus/ is ignored). Safe to rerun: libFuzzer
# names its own corpus entries by hash, the seeds here have fixed names and are overwritten.
#
#   onnx_decode  the malformed corpus (runtime/tests/corpus/*.onnx), the reference model and
#                the fixture models up to 1 MiB (larger ones slow every mutation down)
#   open_plan    the same models in the target's layout (flags byte, u32 ONNX length, ONNX,
#                weights), with their .weights files where the case has one
#   npz_read     the fixtures' ref.npz and test.npz up to 64 KiB, the npz reader's test
#                files (exporter/tests/data), and .npy members extracted from them
#   ffi_calls    hand-written call scripts (see the byte layout in fuzz_targets/ffi_calls.rs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# FUZZ_ROOT / FUZZ_CORPUS: another checkout to read, another folder to fill.
root=${FUZZ_ROOT:-$(dirname "$here")}
corpus=${FUZZ_CORPUS:-$here/corpus}
mkdir -p "$corpus"/{onnx_decode,open_plan,npz_read,ffi_calls}

small() { [ "$(stat -c %s "$1")" -le "$2" ]; }

# u32 little-endian as raw bytes.
le32() {
    local n=$1 i
    for i in 0 8 16 24; do
        printf "\\x$(printf %02x $(((n >> i) & 255)))"
    done
}

# open_plan seed: flags, ONNX file, optional weights file.
plan_seed() {
    local flags=$1 onnx=$2 weights=${3:-} out=$4
    {
        printf "\\x$(printf %02x "$flags")"
        le32 "$(stat -c %s "$onnx")"
        cat "$onnx"
        if [ -n "$weights" ]; then cat "$weights"; fi
    } >"$out"
}

models=()
for f in "$root"/runtime/tests/corpus/*.onnx "$root"/runtime/tests/corpus/reference/*.onnx; do
    models+=("$f")
done
for f in "$root"/tests/fixtures/*/model.onnx; do
    if small "$f" $((1 << 20)); then models+=("$f"); fi
done

for f in "${models[@]}"; do
    case "$f" in
        */fixtures/*) name=$(basename "$(dirname "$f")") ;;
        *) name=$(basename "$f" .onnx) ;;
    esac
    cp "$f" "$corpus/onnx_decode/$name.onnx"
    weights="${f%.onnx}.weights"
    [ -f "$weights" ] || weights=""
    # Batch 2 with a second run at 3 (0x18); batch 0 with fusions off (0x20); batch 1 with
    # the identity check of the weights (0x05).
    plan_seed $((0x18)) "$f" "$weights" "$corpus/open_plan/$name.b2"
    plan_seed $((0x20)) "$f" "$weights" "$corpus/open_plan/$name.b0"
    plan_seed $((0x05)) "$f" "$weights" "$corpus/open_plan/$name.b1"
done

for f in "$root"/tests/fixtures/*/ref.npz "$root"/tests/fixtures/*/test.npz \
    "$root"/exporter/tests/data/*.npz "$root"/exporter/tests/data/*.npy; do
    if small "$f" $((64 << 10)); then
        cp "$f" "$corpus/npz_read/$(basename "$(dirname "$f")")_$(basename "$f")"
    fi
done
if command -v unzip >/dev/null; then
    for f in "$root"/exporter/tests/data/*.npz "$root"/tests/fixtures/movielens_deepfm/ref.npz; do
        for member in $(unzip -Z1 "$f" 2>/dev/null | head -n 4); do
            unzip -p "$f" "$member" >"$corpus/npz_read/$(basename "$f" .npz)_$member" || true
        done
    done
fi

# Exported artifacts: the fixtures re-laid by `ctr-edge compress --method none` (a graph of a
# few KiB beside its weights file), when a built `ctr-edge` is at hand ($CTR_EDGE, or the
# workspace's target/{release,debug}/ctr-edge). Their open_plan seeds carry the ONNX only,
# with flag 0x40 (the harness supplies zero weights) and no weights check.
exporter=${CTR_EDGE:-}
for candidate in "$root/target/release/ctr-edge" "$root/target/debug/ctr-edge"; do
    if [ -z "$exporter" ] && [ -x "$candidate" ]; then exporter=$candidate; fi
done
if [ -n "$exporter" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for f in "$root"/tests/fixtures/*/model.onnx; do
        name=$(basename "$(dirname "$f")")
        if "$exporter" compress --method none -o "$tmp/$name" "$f" >/dev/null 2>&1; then
            cp "$tmp/$name/model.onnx" "$corpus/onnx_decode/${name}_artifact.onnx"
            plan_seed $((0x58)) "$tmp/$name/model.onnx" "" "$corpus/open_plan/${name}_artifact.b2"
            plan_seed $((0x60)) "$tmp/$name/model.onnx" "" "$corpus/open_plan/${name}_artifact.b0"
        fi
    done
else
    echo "seed.sh: no ctr-edge binary (set CTR_EDGE): no artifact seeds" >&2
fi

# ffi_calls: open a model (0 the small graph, 1 the tiny MatMul, 2 the DeepFM), make a
# session, run a batch of 2 with correct inputs, read the output and its shape, free in both
# orders.
script() { printf "$2" >"$corpus/ffi_calls/$1"; }
script deepfm_run '\x00\x02\x00\x02\x00\x04\x00\x02\x00\x00\x00\x02\x40\x01\x05\x00\x00\x02\x40\x01\x06\x00\x00\x08\x01\x01\x03\x00\x01\x00'
script deepfm_model_first '\x00\x02\x00\x02\x00\x01\x00\x04\x00\x03\x00\x00\x00\x02\x40\x01\x03\x00'
script tiny_run '\x00\x01\x00\x02\x00\x04\x00\x02\x00\x00\x00\x02\x40\x01\x05\x00\x00\x02\x40\x01\x06\x00\x00\x08\x01\x01'
script tiny_misaligned '\x00\x01\x07\x02\x00\x04\x00\x03\x00\x00\x00\x02\x40\x01\x01\x00\x04\x00\x01\x00\x00\x00\x02\x40\x01'
script mlp_run '\x00\x00\x00\x02\x00\x04\x00\x01\x00\x00\x00\x02\x40\x01\x07\x00\x01\x02\x00\x07\x00\x01\x04\x00'
script two_models '\x00\x01\x00\x00\x00\x00\x02\x01\x02\x00\x04\x01\x01\x00\x00\x00\x02\x40\x01\x04\x00\x00\x09\x00\x00\x00\x01\x01\x01'

for t in onnx_decode open_plan npz_read ffi_calls; do
    echo "$t: $(ls "$corpus/$t" | wc -l) seeds, $(du -sh "$corpus/$t" | cut -f1)"
done

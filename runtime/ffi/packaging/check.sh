#!/usr/bin/env bash
# Proves the installed package (install.sh) works for C users: installs into a temporary
# prefix, builds targets/examples/score.c through pkg-config (`cc $(pkg-config --cflags --libs
# ctr-edge)`, the shared library) and through CMake (find_package(ctr-edge), targets/examples/
# CMakeLists.txt: the shared and the static library), runs the three on the bundled model and
# requires output identical to score.c linked straight against the build's libctr_edge.a.
#
# Needs: a C compiler, pkg-config, cmake. Run from anywhere in the checkout:
#   runtime/ffi/packaging/check.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
work=$target_dir/c-package
prefix=$work/prefix
rm -rf "$work"
mkdir -p "$work"
model=tests/fixtures/movielens_deepfm/model.onnx
rows=targets/examples/movielens_deepfm_rows.f32

bash runtime/ffi/packaging/install.sh "$prefix"

echo "== reference: score.c linked against the build's libctr_edge.a"
cc -std=c11 -O2 -Wall -Wextra -Werror -Iruntime/ffi/include targets/examples/score.c \
  "$target_dir/release/libctr_edge.a" -lm -lpthread -ldl -o "$work/score-direct"
"$work/score-direct" "$model" "$rows" >"$work/scores-direct.txt"

echo "== pkg-config: cc \$(pkg-config --cflags --libs ctr-edge)"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
echo "   $(pkg-config --modversion ctr-edge): $(pkg-config --cflags --libs ctr-edge)"
# shellcheck disable=SC2046 # the flags are words
cc -std=c11 -O2 -Wall -Wextra -Werror targets/examples/score.c \
  $(pkg-config --cflags --libs ctr-edge) -o "$work/score-pkg-config"
LD_LIBRARY_PATH=$prefix/lib "$work/score-pkg-config" "$model" "$rows" \
  >"$work/scores-pkg-config.txt"

echo "== CMake: find_package(ctr-edge), ctr-edge::ctr-edge and ctr-edge::ctr-edge-static"
cmake -S targets/examples -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$work/cmake-configure.log" \
  || { cat "$work/cmake-configure.log"; exit 1; }
cmake --build "$work/cmake" >"$work/cmake-build.log" || { cat "$work/cmake-build.log"; exit 1; }
LD_LIBRARY_PATH=$prefix/lib "$work/cmake/score" "$model" "$rows" >"$work/scores-cmake.txt"
"$work/cmake/score-static" "$model" "$rows" >"$work/scores-cmake-static.txt"

for build in pkg-config cmake cmake-static; do
  cmp "$work/scores-direct.txt" "$work/scores-$build.txt"
  echo "$build: $(wc -l <"$work/scores-$build.txt") scores, identical to the direct build's"
done
# The shared builds load the installed library, not one from the build tree.
LD_LIBRARY_PATH=$prefix/lib ldd "$work/score-pkg-config" | grep -F "$prefix/lib/libctr_edge.so"

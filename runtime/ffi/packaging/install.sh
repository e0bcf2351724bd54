#!/usr/bin/env bash
# Builds the ctr-edge C library (release profile, std build: static and shared) and installs
# it for C and C++ projects:
#   PREFIX/include/ctr_edge.h
#   PREFIX/lib/libctr_edge.a, PREFIX/lib/libctr_edge.so
#   PREFIX/lib/pkgconfig/ctr-edge.pc                  pkg-config --cflags --libs ctr-edge
#   PREFIX/lib/cmake/ctr-edge/ctr-edgeConfig.cmake    find_package(ctr-edge): ctr-edge::ctr-edge
#   PREFIX/lib/cmake/ctr-edge/ctr-edgeConfigVersion.cmake           (and ctr-edge::ctr-edge-static)
# Both package files find the prefix from their own folder, so the tree may be moved.
#
# Usage: runtime/ffi/packaging/install.sh PREFIX [--target TRIPLE]
#   --target: cross-build for TRIPLE (with targets/TRIPLE/config.toml when there is one);
#   the default is the host. CARGO_TARGET_DIR is honoured; the build is cargo's own, so a
#   second run (or one after another release build) only copies.
set -euo pipefail

usage() { echo "usage: $0 PREFIX [--target TRIPLE]" >&2; exit 2; }
[ $# -ge 1 ] || usage
prefix=$1
shift
triple=
while [ $# -gt 0 ]; do
  case $1 in
    --target) [ $# -ge 2 ] || usage; triple=$2; shift 2 ;;
    *) usage ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}

cargo_args=(build -p ctr-edge-ffi --lib --release)
out=$target_dir/release
if [ -n "$triple" ]; then
  config=()
  [ -f "targets/$triple/config.toml" ] && config=(--config "targets/$triple/config.toml")
  cargo_args=("${config[@]}" "${cargo_args[@]}" --target "$triple")
  out=$target_dir/$triple/release
fi
echo "== cargo ${cargo_args[*]}"
cargo "${cargo_args[@]}"

# The system libraries a program linking libctr_edge.a needs: what
# `rustc --print native-static-libs` lists for the staticlib on each target (minus -lc).
target_os=${triple:-$(rustc -vV | sed -n 's/^host: //p')} # a target triple
case $target_os in
  *-android*) libs=(-ldl -llog -lunwind -lm) ;;
  *-apple-*) libs=(-lSystem -lm) ;;
  *) libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl) ;;
esac
pointer_bits=$(rustc --print cfg --target "$target_os" | sed -n 's/^target_pointer_width="\(.*\)"/\1/p')
pointer=$((pointer_bits / 8))
version=$(cargo pkgid -p ctr-edge-ffi | sed 's/.*[@#]//')
cmake_libs=$(printf '%s;' "${libs[@]#-l}")
cmake_libs=${cmake_libs%;}

echo "== install ctr-edge $version into $prefix"
install -d "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/ctr-edge"
install -m 0644 runtime/ffi/include/ctr_edge.h "$prefix/include/"
install -m 0644 "$out/libctr_edge.a" "$prefix/lib/"
install -m 0755 "$out/libctr_edge.so" "$prefix/lib/"
fill() {
  sed -e "s|@VERSION@|$version|g" -e "s|@LIBS_PRIVATE@|${libs[*]}|g" \
    -e "s|@CMAKE_LIBS_PRIVATE@|$cmake_libs|g" -e "s|@SIZEOF_VOID_P@|$pointer|g" "$1" >"$2"
}
fill "$here/ctr-edge.pc.in" "$prefix/lib/pkgconfig/ctr-edge.pc"
fill "$here/ctr-edgeConfig.cmake.in" "$prefix/lib/cmake/ctr-edge/ctr-edgeConfig.cmake"
fill "$here/ctr-edgeConfigVersion.cmake.in" \
  "$prefix/lib/cmake/ctr-edge/ctr-edgeConfigVersion.cmake"
(cd "$prefix" && find include lib -type f | sort | sed 's/^/  /')

#!/usr/bin/env bash
# Installs steer's build into a fresh prefix, then builds the consumers against it: the C++
# one with find_package(steer), the C one with pkg-config. Prints the two binaries' paths.
# usage: build.sh BUILD_DIR OUT_DIR
set -euo pipefail
build=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
prefix=$out/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$here" -B "$out/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$out/cmake-build" >/dev/null
libdir=$(dirname "$(find "$prefix" -name 'steer-client.pc' | head -1)")
export PKG_CONFIG_PATH=$libdir
cc -std=c11 -Wall -Werror "$here/consumer.c" -o "$out/consumer_c" \
   $(pkg-config --cflags --libs steer-client) -Wl,-rpath,"$(pkg-config --variable=libdir steer-client)"
echo "$out/cmake-build/consumer_cpp"
echo "$out/consumer_c"

#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is missing, build (Release), list
# the devices and benchmark the runtime and the graph compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./build/aps devices
./build/aps bench runtime
./build/aps bench graph

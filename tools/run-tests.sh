#!/usr/bin/env bash
# All tests on a fresh Debian 12 machine: install what is missing, build with warnings as
# errors, run ctest (every test under the Khronos validation layer).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DAPS_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"

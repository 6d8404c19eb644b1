#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is missing, build (Release), list
# the devices, draw samples from the shipped diffusion prior (a PNG grid),
# and benchmark the runtime, the graph compiler and the prior.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./build/aps devices
./build/aps prior-sample --model assets/prior-fmnist32.safetensors --sampler ddim --steps 50 --n 16 \
  --out build/prior-samples.png
./build/aps bench runtime
./build/aps bench graph
./build/aps bench prior

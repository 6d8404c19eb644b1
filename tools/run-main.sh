#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is missing, build (Release), list
# the devices, restore damaged test images with the shipped inpainting, blur and super-resolution flows
# (posterior samples, their mean and standard deviation as PNGs; the box and the blur also with the
# flows fitted to the prior's own samples), draw samples from the shipped
# diffusion prior, then benchmark the runtime, the graph compiler, the prior and the flow.
# APS_MAIN_NO_BENCH=1 stops after the pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./build/aps devices
flow=assets/flow-inpaint-fmnist32.safetensors
echo "== restoring a box-masked test image (16 posterior samples, one flow pass each)"
./build/aps sample --model "$flow" --data fashion-mnist --index 0 --op inpaint:box=12 --n 16 --out build/restored/box
echo "== restoring a test image hidden under brush strokes"
./build/aps sample --model "$flow" --data fashion-mnist --index 1 --op inpaint:strokes=3 --n 16 --out build/restored/strokes
echo "== restoring a test image with its left half hidden"
./build/aps sample --model "$flow" --data fashion-mnist --index 2 --op inpaint:half --n 16 --seed 3 --out build/restored/half
blur=assets/flow-blur-fmnist32.safetensors
echo "== deblurring a test image (Gaussian blur, sigma_b 1.5 px, everywhere)"
./build/aps sample --model "$blur" --data fashion-mnist --index 3 --op blur:sigma=1.5 --n 16 --out build/restored/blur
echo "== deblurring a test image blurred only on its left half (a painted blur map)"
./build/aps sample --model "$blur" --data fashion-mnist --index 4 --op blur:sigma=2,map=assets/operators/half-map.png \
  --n 16 --out build/restored/blur-half
echo "== x2 super-resolution of a test image (each output pixel seen through a 2x2 average)"
./build/aps sample --model assets/flow-sr2-fmnist32.safetensors --data fashion-mnist --index 5 --op sr:2 --n 16 \
  --out build/restored/sr2
echo "== the same box and blur with the flows fitted to the prior's own samples (a truer spread, a looser fit)"
./build/aps sample --model assets/flow-inpaint-forward-fmnist32.safetensors --data fashion-mnist --index 0 \
  --op inpaint:box=12 --n 16 --out build/restored/box-forward
./build/aps sample --model assets/flow-blur-forward-fmnist32.safetensors --data fashion-mnist --index 3 \
  --op blur:sigma=1.5 --n 16 --out build/restored/blur-forward
./build/aps prior-sample --model assets/prior-fmnist32.safetensors --sampler ddim --steps 50 --n 16 \
  --out build/prior-samples.png
[ "${APS_MAIN_NO_BENCH:-0}" = 1 ] && exit 0
./build/aps bench runtime
./build/aps bench graph
./build/aps bench prior
./build/aps --device cpu bench aps

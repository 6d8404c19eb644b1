#!/usr/bin/env bash
# One prepared run on a GPU machine that has no package registry: the test suite, the
# benchmarks, the PyTorch twin where PyTorch has CUDA, then training the prior until
# TRAIN_UNTIL seconds after the start (SIGINT: a checkpoint), with everything under $OUT.
# Needs, carried: build/ (built here), .gl/ with the Vulkan loader .debs (fetched here with apt-get download),
# .gl/libs.tar.xz (libdnnl, libgomp, libstb, libOpenCL, zlib and the validation layer),
# .gl/tests.sh (tools/ctest-to-sh.py) and .gl/fashion-mnist/*.gz.
set -u
start=$(date +%s)
TRAIN_UNTIL=${TRAIN_UNTIL:-520}
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
mkdir -p /tmp/glx && tar -C /tmp/glx -xJf .gl/libs.tar.xz
export LD_LIBRARY_PATH=/tmp/glx/lib VK_LAYER_PATH=/tmp/glx/layer XDG_CACHE_HOME=/tmp/cache
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia* >/dev/null 2>&1 && export VK_DRIVER_FILES=$icd
mkdir -p /usr/share/datasets/fashion-mnist && cp .gl/fashion-mnist/*.gz /usr/share/datasets/fashion-mnist/
B=./build
{ nvidia-smi -L; nproc; $B/aps devices; } >"$OUT/bench.txt" 2>&1
for b in "bench runtime" "bench graph" "bench train" "bench prior" "--device cpu bench graph" "--device cpu bench train"; do
  echo "== aps $b" >>"$OUT/bench.txt"
  timeout 120 $B/aps $b >>"$OUT/bench.txt" 2>&1
done
echo "== PyTorch twin (CUDA)" >>"$OUT/bench.txt"
timeout 90 python3 tools/pytorch_unet.py --cuda --train >>"$OUT/bench.txt" 2>&1 || echo "no PyTorch with CUDA here" >>"$OUT/bench.txt"
# Train the prior on the GPU; the tests run beside it (they use the CPU and little GPU).
left=$((TRAIN_UNTIL - ($(date +%s) - start)))
mkdir -p "$OUT/train"
timeout "$left" bash .gl/tests.sh >"$OUT/tests.txt" 2>&1 &
tests=$!
timeout -s INT "$left" $B/aps train-prior --data fashion-mnist --out "$OUT/train/prior.safetensors" \
  --checkpoint /tmp/prior.ckpt --steps 100000 --lr 4e-4 --checkpoint-every 1000 >"$OUT/train/train.log" 2>&1
echo "train exit $?" >>"$OUT/train/train.log"
wait $tests
split -b 15M -d /tmp/prior.ckpt "$OUT/train/ckpt.part"
ls -la "$OUT" "$OUT/train"

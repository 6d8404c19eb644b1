#!/usr/bin/env bash
# The U-Net forward on lavapipe, on the CPU device, and in PyTorch (Debian's python3-torch,
# not a dependency of aps), one after the other in one run, with the ratios to PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
vk=$(./build/aps bench graph --json 2>/dev/null)
cpu=$(./build/aps --device cpu bench graph --json 2>/dev/null)
pt=$(/usr/bin/python3 tools/pytorch_unet.py)
/usr/bin/python3 - "$vk" "$cpu" "$pt" <<'PY'
import json, sys
vk, cpu, pt = (json.loads(a) for a in sys.argv[1:])
def ms(d, b): return d["unet"][f"batch{b}"]["ms"] if "unet" in d else d["cpu_device"][f"unet_b{b}_ms"]
for b in (1, 64):
    p = pt[f"batch{b}_ms"]
    print(f"batch {b:2}: PyTorch {p:8.1f} ms | lavapipe {ms(vk, b):8.1f} ms ({p / ms(vk, b):.2f}x) "
          f"| CPU device {ms(cpu, b):8.1f} ms ({p / ms(cpu, b):.2f}x)   (x: PyTorch time / ours)")
print(f"parameters: aps {vk['unet']['params']}, PyTorch {pt['params']}")
PY

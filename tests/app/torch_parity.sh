#!/usr/bin/env bash
# The PyTorch parity test (ctest -L torch): the runtime writes its outputs on the shipped
# prior and flow (test_app torch_reference), tools/torch_twin.py recomputes them in torch
# and compares. Skipped (77) where Debian's python3-torch is absent: it is large, and no
# part of aps needs it.
# Usage: torch_parity.sh TEST_APP DEVICE [--break WHAT]
set -u
test_app=$1 device=$2
shift 2
py=${APS_TORCH_PYTHON:-/usr/bin/python3} # another interpreter, to try the skip
if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
  echo "skipped: python3-torch is not installed (apt-get install python3-torch python3-numpy)"
  exit 77
fi
dir=$(mktemp -d /tmp/aps-torch-parity-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
APS_TORCH_REF=$dir/ref.safetensors APS_TORCH_DEVICE=$device "$test_app" torch_reference || exit 1
twin=$(dirname "$0")/../../tools/torch_twin.py
"$py" "$twin" --parity "$dir/ref.safetensors" "$@" || exit 1
"$py" "$twin" --parity "$dir/ref.safetensors" --float32 "$@"

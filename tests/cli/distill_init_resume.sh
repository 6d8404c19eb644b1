#!/usr/bin/env bash
# aps distill --init, then --resume after the --init file is gone: the checkpoint holds the
# weights, so the file is not opened again, only its name compared with the first run's
# settings; another name is refused, as any other changed setting is.
# Usage: distill_init_resume.sh APS PRIOR BUNDLE
set -u
aps=$1 prior=$2 bundle=$3
dir=$(mktemp -d /tmp/aps-init-resume-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
common=(--device cpu distill --prior "$prior" --measurements "$bundle" --batch 2 --levels 2 --flow-steps 1 --hidden 8
  --checkpoint "$dir/run.ckpt" --checkpoint-every 1 --out "$dir/run.safetensors")
"$aps" "${common[@]}" --out "$dir/start.safetensors" --checkpoint "$dir/start.ckpt" --steps 1 || exit 1
"$aps" "${common[@]}" --init "$dir/start.safetensors" --steps 2 || exit 1
rm "$dir/start.safetensors"
out=$("$aps" "${common[@]}" --init "$dir/start.safetensors" --steps 3 --resume 2>&1) || { echo "$out"; exit 1; }
echo "$out" | grep -q "wrote .*run.safetensors" || { echo "resume without the --init file: $out"; exit 1; }
out=$("$aps" "${common[@]}" --init "$dir/other.safetensors" --steps 4 --resume 2>&1)
if [ $? -eq 0 ] || ! echo "$out" | grep -q "other.safetensors"; then
  echo "another --init on resume was not refused by name: $out"
  exit 1
fi
echo "ok: resumed without the --init file; another --init refused"

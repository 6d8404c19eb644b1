#!/usr/bin/env bash
# The forward objective end to end: aps prior-sample --dir writes the prior's samples, one PNG
# each; aps distill --objective forward fits a tiny flow (with the conditional affine head)
# to them (their measurements simulated from an inpainting family) and writes it; aps sample
# then draws from that flow; the mixed objective continues from it on the same samples, and
# --train-only head trains only the head (and resumes), also of a flow that grows it. Real
# images (the fashion-mnist training set, a bundle) are refused with both objectives.
# Usage: distill_forward.sh APS PRIOR
set -u
aps=$1 prior=$2
dir=$(mktemp -d /tmp/aps-forward-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
"$aps" --device cpu prior-sample --model "$prior" --dir "$dir/samples" --sampler ddim --steps 3 --n 6 --batch 3 || exit 1
n=$(ls "$dir/samples" | grep -c '^sample-[0-9]*\.png$')
[ "$n" = 6 ] || { echo "prior-sample --dir wrote $n PNGs, not 6"; exit 1; }
tiny=(--levels 2 --flow-steps 1 --hidden 8 --batch 4 --steps 3 --checkpoint-every 0)
out=$("$aps" --device cpu distill --objective forward --prior "$prior" --data "$dir/samples" --op inpaint:box=8-12 \
  --head 1 --out "$dir/flow.safetensors" "${tiny[@]}" 2>&1) || { echo "distill --objective forward failed: $out"; exit 1; }
echo "$out" | grep -q "fitting a glow flow .* to the prior's samples" || { echo "no fitting line: $out"; exit 1; }
tail -n 1 "$dir/flow.safetensors.csv" | awk -F, '$1 == 3 && $2 + 0 == $2 + 0 && $2 < 1e30 { ok = 1 } END { exit !ok }' ||
  { echo "the loss log lacks a finite step 3:"; cat "$dir/flow.safetensors.csv"; exit 1; }
"$aps" --device cpu sample --model "$dir/flow.safetensors" --data "$dir/samples" --index 0 --n 2 \
  --out "$dir/s" >/dev/null 2>&1 || { echo "aps sample from the fitted flow failed"; exit 1; }
out=$("$aps" --device cpu distill --objective mixed --forward-weight 0.5 --prior "$prior" --data "$dir/samples" \
  --op inpaint:box=8-12 --init "$dir/flow.safetensors" --out "$dir/mixed.safetensors" "${tiny[@]}" 2>&1) ||
  { echo "distill --objective mixed failed: $out"; exit 1; }
echo "$out" | grep -q "simulated from the prior's samples .* (weight 0.5)" || { echo "no mixed line: $out"; exit 1; }
tail -n 1 "$dir/mixed.safetensors.csv" | awk -F, '$1 == 3 && $2 + 0 == $2 + 0 && $2 < 1e30 { ok = 1 } END { exit !ok }' ||
  { echo "the mixed loss log lacks a finite step 3:"; cat "$dir/mixed.safetensors.csv"; exit 1; }
# Only the head, from the fitted flow; then resumed: the head comes from the checkpoint's config.
head=(--objective mixed --train-only head --prior "$prior" --data "$dir/samples" --op inpaint:box=8-12
  --init "$dir/flow.safetensors" --out "$dir/head.safetensors")
out=$("$aps" --device cpu distill "${head[@]}" "${tiny[@]}" 2>&1) || { echo "distill --train-only head failed: $out"; exit 1; }
out=$("$aps" --device cpu distill "${head[@]}" "${tiny[@]}" --steps 5 --resume 2>&1) ||
  { echo "resuming --train-only head failed: $out"; exit 1; }
echo "$out" | grep -q "resumed from .* at step 3" || { echo "no resumed line: $out"; exit 1; }
tail -n 1 "$dir/head.safetensors.csv" | awk -F, '$1 == 5 { ok = 1 } END { exit !ok }' ||
  { echo "the head's loss log lacks step 5:"; cat "$dir/head.safetensors.csv"; exit 1; }
# A flow without the head grows one (--init, --head 1) and trains only it.
"$aps" --device cpu distill --objective forward --prior "$prior" --data "$dir/samples" --op inpaint:box=8-12 \
  --out "$dir/plain.safetensors" "${tiny[@]}" >/dev/null 2>&1 || { echo "distill without the head failed"; exit 1; }
out=$("$aps" --device cpu distill "${head[@]/flow.safetensors/plain.safetensors}" --head 1 "${tiny[@]}" 2>&1) ||
  { echo "growing the head failed: $out"; exit 1; }
out=$("$aps" --device cpu distill "${head[@]/flow.safetensors/plain.safetensors}" "${tiny[@]}" 2>&1) &&
  { echo "--train-only head of a flow without one was accepted"; exit 1; }
out=$("$aps" --device cpu distill "${head[@]/head.safetensors/never.safetensors}" "${tiny[@]}" --train-only cond.x 2>&1) &&
  { echo "--train-only cond.x (no such part) was accepted"; exit 1; }
echo "$out" | grep -q "no parameter to train named flow.cond.x." || { echo "unclear refusal: $out"; exit 1; }
for objective in forward mixed; do
  for bad in "--data fashion-mnist" "--measurements $dir/none.safetensors"; do
    # shellcheck disable=SC2086
    if out=$("$aps" --device cpu distill --objective $objective --prior "$prior" --op inpaint:box=8 $bad \
      --out "$dir/never.safetensors" "${tiny[@]}" 2>&1) || ! echo "$out" | grep -q "fits the prior's own samples"; then
      echo "--objective $objective with $bad was not refused: $out"
      exit 1
    fi
  done
done
[ ! -e "$dir/never.safetensors" ] || { echo "a refused run wrote a model"; exit 1; }
echo "ok: forward and mixed objectives"

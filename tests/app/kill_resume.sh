#!/usr/bin/env bash
# kill -9 in the middle of `aps train-prior`, then --resume: training continues from the
# last checkpoint, and no corrupt or temporary file is left behind.
set -euo pipefail
aps=$1
dir=$(mktemp -d /tmp/aps-kill-XXXXXX)
trap 'rm -rf "$dir"' EXIT
args=(--device cpu train-prior --data fashion-mnist --out "$dir/m.safetensors" --batch 4 --widths 8,16 --blocks 1
  --attention 0 --groups 4 --time-dim 8 --checkpoint-every 3 --warmup 2)
"$aps" "${args[@]}" --steps 100000 >"$dir/first.log" 2>&1 &
pid=$!
# Wait for a few checkpoints, then kill without warning (checkpoints are written every 3 steps).
for _ in $(seq 600); do
  rows=0
  [ -f "$dir/m.safetensors.csv" ] && rows=$(($(wc -l <"$dir/m.safetensors.csv") - 1))
  [ "$rows" -ge 10 ] && break
  sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
[ -f "$dir/m.safetensors.ckpt" ] || { echo "FAIL: no checkpoint after $rows steps"; cat "$dir/first.log"; exit 1; }
[ ! -e "$dir/m.safetensors" ] || { echo "FAIL: the model file was written by a killed run"; exit 1; }
# Resume a few steps past the checkpoint.
"$aps" "${args[@]}" --steps 40 --resume >"$dir/second.log" 2>&1 || { echo "FAIL: resume"; cat "$dir/second.log"; exit 1; }
cat "$dir/second.log"
from=$(sed -n 's/.*resumed from .* at step \([0-9]*\)$/\1/p' "$dir/second.log")
[ -n "$from" ] && [ "$from" -ge 3 ] && [ $((from % 3)) -eq 0 ] || { echo "FAIL: resumed at step '$from'"; exit 1; }
echo "killed after $rows logged steps; resumed at checkpoint step $from"
grep -q "wrote $dir/m.safetensors (EMA weights, step 40" "$dir/second.log" || { echo "FAIL: no final model"; exit 1; }
leftovers=$(find "$dir" -name '*.tmp.*')
[ -z "$leftovers" ] || { echo "FAIL: temporary files left: $leftovers"; exit 1; }
# The log continues after the checkpoint's step, and the saved model samples.
tail -n +2 "$dir/m.safetensors.csv" | awk -F, -v from="$from" 'BEGIN{ok=0} $1 == from + 1 {ok=1} END{exit !ok}' ||
  { echo "FAIL: the loss log does not continue at step $((from + 1))"; exit 1; }
# ... and holds every step once, in order: the rows past the checkpoint that the killed run had
# logged were cut on resume (they run again).
tail -n +2 "$dir/m.safetensors.csv" | awk -F, 'NR != $1 {exit 1} END {exit NR != 40}' ||
  { echo "FAIL: the loss log repeats or skips steps"; cut -d, -f1 "$dir/m.safetensors.csv" | tr '\n' ' '; exit 1; }
"$aps" --device cpu prior-sample --model "$dir/m.safetensors" --out "$dir/s.png" --n 4 --steps 3 >/dev/null 2>&1 ||
  { echo "FAIL: sampling the resumed model"; exit 1; }
echo "ok"

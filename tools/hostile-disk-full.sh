#!/usr/bin/env bash
# A full disk (a 2 MiB tmpfs; root only, else skipped with 77): a PNG, a model, its
# checkpoint and its loss log are written, the disk is filled, and writing each again must
# fail with a message naming the file, leave every file byte-identical and no temporary.
set -u
aps=$1
root=$(cd "$(dirname "$0")/.." && pwd)
prior=$root/assets/prior-fmnist32.safetensors
[ "$(id -u)" = 0 ] || { echo "skipped: mounting a tmpfs needs root"; exit 77; }
d=$(mktemp -d /tmp/aps-full-XXXXXX)
mount -t tmpfs -o size=2M tmpfs "$d" || { rmdir "$d"; echo "skipped: cannot mount a tmpfs"; exit 77; }
trap 'umount "$d"; rmdir "$d"' EXIT
train=(--device cpu train-prior --data fashion-mnist --out "$d/m.safetensors" --batch 2 --widths 8 --blocks 1
  --attention 0 --groups 4 --time-dim 8 --checkpoint-every 1)
"$aps" --device cpu prior-sample --model "$prior" --out "$d/s.png" --n 4 --steps 2 2>/dev/null || { echo "FAIL: first PNG"; exit 1; }
"$aps" "${train[@]}" --steps 3 2>/dev/null || { echo "FAIL: first training"; exit 1; }
before=$(cd "$d" && md5sum s.png m.safetensors m.safetensors.ckpt m.safetensors.csv)
head -c 4000000 /dev/zero >"$d/filler" 2>/dev/null
fail=0
if "$aps" --device cpu prior-sample --model "$prior" --out "$d/s.png" --n 4 --steps 2 --seed 5 2>"$d/../full1.err"; then
  echo "FAIL: a PNG written to a full disk was reported written"; fail=1
fi
if "$aps" "${train[@]}" --steps 6 --resume 2>"$d/../full2.err"; then
  echo "FAIL: training on a full disk reported success"; fail=1
fi
grep -q "No space left" "$d/../full1.err" && grep -q "No space left" "$d/../full2.err" ||
  { echo "FAIL: the errors do not say the disk is full"; cat "$d/../full1.err" "$d/../full2.err"; fail=1; }
sed 's/^/  png: /' "$d/../full1.err"; sed 's/^/  train: /' "$d/../full2.err" | tail -n 2
rm -f "$d/../full1.err" "$d/../full2.err"
after=$(cd "$d" && md5sum s.png m.safetensors m.safetensors.ckpt m.safetensors.csv)
[ "$before" = "$after" ] || { echo "FAIL: a file changed on the full disk"; fail=1; }
left=$(find "$d" -name '*.tmp.*')
[ -z "$left" ] || { echo "FAIL: temporaries left: $left"; fail=1; }
[ $fail = 0 ] && echo "ok: on a full disk every write failed by name and the PNG, model, checkpoint and log are intact"
exit $fail

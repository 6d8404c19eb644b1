#!/usr/bin/env bash
# A distillation checkpoint names its prior by content (aps.prior_digest), not by path: it
# resumes with the same prior kept elsewhere (another folder, a relative path), and refuses
# a prior whose bytes differ, naming the digest.
# Usage: distill_resume_moved_prior.sh APS PRIOR BUNDLE
set -u
aps=$1 prior=$2 bundle=$3
dir=$(mktemp -d /tmp/aps-moved-prior-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/a" "$dir/b"
cp "$prior" "$dir/a/prior.safetensors" && cp "$prior" "$dir/b/moved.safetensors" || exit 1
cp "$prior" "$dir/changed.safetensors" || exit 1
# the last byte lies in the last tensor's data: still a valid prior, other bytes
size=$(stat -c %s "$prior")
last=$(tail -c 1 "$prior" | od -An -tu1 | tr -d ' ')
printf "\\$(printf '%03o' $(((last + 1) % 256)))" | dd of="$dir/changed.safetensors" bs=1 seek=$((size - 1)) conv=notrunc \
  status=none || exit 1
common=(--device cpu distill --measurements "$bundle" --batch 2 --levels 2 --flow-steps 1 --hidden 8
  --checkpoint "$dir/run.ckpt" --checkpoint-every 1 --out "$dir/run.safetensors")
"$aps" "${common[@]}" --prior "$dir/a/prior.safetensors" --steps 1 || exit 1
rm -r "$dir/a"
out=$(cd "$dir" && "$aps" "${common[@]}" --prior b/moved.safetensors --steps 2 --resume 2>&1) || { echo "$out"; exit 1; }
echo "$out" | grep -q "wrote .*run.safetensors" || { echo "resume with the prior moved: $out"; exit 1; }
out=$("$aps" "${common[@]}" --prior "$dir/changed.safetensors" --steps 3 --resume 2>&1)
if [ $? -eq 0 ] || ! echo "$out" | grep -q "aps.prior_digest"; then
  echo "a prior with other bytes was not refused by its digest: $out"
  exit 1
fi
echo "ok: resumed with the prior moved; another prior refused"

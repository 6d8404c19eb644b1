#!/usr/bin/env bash
# What --resume compares with the checkpoint. --init: the checkpoint holds the weights, so the
# file need not exist any more, only its name must be the first run's (another is refused by
# name). The prior: named by its bytes (aps.prior_digest), not its path, so the same prior
# kept elsewhere (another folder, a relative path) resumes, and a prior with other bytes is
# refused, naming the digest.
# Usage: distill_resume.sh APS PRIOR BUNDLE
set -u
aps=$1 prior=$2 bundle=$3
dir=$(mktemp -d /tmp/aps-resume-XXXXXX) || exit 1
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
resumes() { # STEP WHAT ARGS...: resuming to STEP with ARGS writes the model
  local step=$1 what=$2 out
  shift 2
  out=$(cd "$dir" && "$aps" "${common[@]}" "$@" --steps "$step" --resume 2>&1) || { echo "$what: $out"; exit 1; }
  echo "$out" | grep -q "wrote .*run.safetensors" || { echo "$what: $out"; exit 1; }
}
refused() { # PATTERN WHAT ARGS...: resuming with ARGS fails with PATTERN in the message
  local pattern=$1 what=$2 out
  shift 2
  if out=$("$aps" "${common[@]}" "$@" --steps 9 --resume 2>&1) || ! echo "$out" | grep -q "$pattern"; then
    echo "$what was not refused by $pattern: $out"
    exit 1
  fi
}
"$aps" "${common[@]}" --prior "$prior" --out "$dir/start.safetensors" --checkpoint "$dir/start.ckpt" --steps 1 || exit 1
"$aps" "${common[@]}" --prior "$dir/a/prior.safetensors" --init "$dir/start.safetensors" --steps 2 || exit 1
rm -r "$dir/start.safetensors" "$dir/a"
resumes 3 "resume without the --init file, the prior moved" --prior b/moved.safetensors --init "$dir/start.safetensors"
refused other.safetensors "another --init" --prior "$dir/b/moved.safetensors" --init "$dir/other.safetensors"
refused aps.prior_digest "a prior with other bytes" --prior "$dir/changed.safetensors" --init "$dir/start.safetensors"
echo "ok: resumed without the --init file and with the prior moved; another --init and another prior refused"

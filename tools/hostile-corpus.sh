#!/usr/bin/env bash
# The malformed-input corpus: generates bad model files, PNGs, IDX files,
# operator specs, command-line values and output targets, runs `aps` on each with a
# timeout, and checks each case's class:
#   error   non-zero exit and a message naming the file or option (the case's needle);
#   accept  exit 0;
#   either  one of the two.
# Whatever the class, a crash (a signal), a hang past the timeout, a sanitizer report, or
# a non-finite number printed with exit 0 fails the case.
#
# usage: tools/hostile-corpus.sh APS TEST_HOSTILE CLASS
#   CLASS: model | png | idx | spec | cli | out | all;  APS_HOSTILE_TIMEOUT (60 s) per case.
# Nothing is committed as a blob: every file is made here from the shipped prior and bytes
# written by printf. Device nodes are only ever reached through links made in a temporary
# folder, so a broken rule replaces the link, never /dev itself.
set -u
export LC_ALL=C
aps=$1 th=$2 want=$3
root=$(cd "$(dirname "$0")/.." && pwd)
prior=$root/assets/prior-fmnist32.safetensors
T=${APS_HOSTILE_TIMEOUT:-60}
work=$(mktemp -d /tmp/aps-hostile-XXXXXX)
trap 'rm -rf "$work"' EXIT
ncase=0 nfail=0
declare -A count

on() { [ "$want" = all ] || [ "$want" = "$1" ]; }

# run CLASS NAME EXPECT NEEDLE CMD...
run() {
  local cls=$1 name=$2 expect=$3 needle=$4
  shift 4
  [ "$want" = all ] || [ "$want" = "$cls" ] || return 0
  ncase=$((ncase + 1))
  count[$cls]=$((${count[$cls]:-0} + 1))
  local out=$work/stdout err=$work/stderr rc why=""
  timeout -k 5 "$T" "$@" >"$out" 2>"$err" </dev/null
  rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then why="hung past ${T}s"
  elif [ $rc -ge 128 ]; then why="killed by signal $((rc - 128))"
  elif grep -Eq 'AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|runtime error:' "$err"; then why="sanitizer report"
  elif [ $rc -eq 0 ] && grep -Eiq '(^|[^a-z])-?(nan|inf)([^a-z]|$)' "$out"; then why="non-finite output with exit 0"
  elif [ $rc -eq 0 ] && [ "$expect" = error ]; then why="accepted, expected a clear error"
  elif [ $rc -ne 0 ] && [ "$expect" = accept ]; then why="refused, expected acceptance"
  elif [ $rc -ne 0 ] && ! grep -qF -- "$needle" "$err"; then why="the message does not name '$needle'"
  fi
  if [ -n "$why" ]; then
    nfail=$((nfail + 1))
    echo "FAIL $cls/$name: $why (exit $rc): $*"
    tail -n 5 "$err" | sed 's/^/    /'
  else
    printf 'ok   %s/%s [%s] (exit %d)\n' "$cls" "$name" "$expect" "$rc"
  fi
}

le64() { # a little-endian u64 as 8 bytes
  local v=$1 s="" i
  for i in 0 1 2 3 4 5 6 7; do s+=$(printf '\\%03o' $(((v >> (8 * i)) & 255))); done
  printf "$s"
}
hlen=$(od -An -tu8 -N8 "$prior" | tr -d ' \n')
header=$(tail -c +9 "$prior" | head -c "$hlen")
tail -c +$((9 + hlen)) "$prior" >"$work/data"
dsize=$(stat -c %s "$work/data")
st() { { le64 "${#2}"; printf '%s' "$2"; cat "${3:-$work/data}"; } >"$1"; } # st OUT HEADER [DATA]
fill() {                                                                  # fill OUT BYTES4 SIZE
  printf "$2" >"$1"
  while [ "$(stat -c %s "$1")" -lt "$3" ]; do cat "$1" "$1" >"$1.2" && mv "$1.2" "$1"; done
  truncate -s "$3" "$1"
}
flip() { # flip OUT IN OFFSET: one byte xor 0x5a
  cp "$2" "$1"
  local b
  b=$(od -An -tu1 -j "$3" -N1 "$2" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 0x5a)))" | dd of="$1" bs=1 seek="$3" conv=notrunc status=none
}
sample() { run "$1" "$2/sample" "$3" "$4" "$aps" --device cpu prior-sample --model "$4" --out "$work/s.png" --n 1 --batch 1 --steps 2; }
elbo() { run "$1" "$2/elbo" "$3" "$4" "$aps" --device cpu elbo --model "$4" --n 2 --batch 2; }

# ---------------------------------------------------------------- model files
m=$work/models
mkdir -p "$m"
i=0
for e in 's/size=32/size=65536/' 's/size=32/size=32768/' 's/size=32/size=0/' 's/size=32/size=7/' \
  's/size=32/size=-1/' 's/size=32/size=abc/' 's/size=32/size=99999999999999999999/' 's/ size=32//' \
  's/channels=1/channels=0/' 's/channels=1/channels=5/' 's/widths=32,64,64/widths=4096,4096,4096,4096/' \
  's/widths=32,64,64/widths=0/' 's/widths=32,64,64/widths=/' 's/widths=32,64,64/widths=32,64,64,64,64/' \
  's/widths=32,64,64/widths=32,64,65/' 's/widths=32,64,64/widths=8,16,16/' 's/blocks=2/blocks=0/' \
  's/blocks=2/blocks=100/' 's/groups=8/groups=0/' 's/groups=8/groups=3/' 's/groups=8/groups=65536/' \
  's/time_dim=32/time_dim=1/' 's/time_dim=32/time_dim=33/' 's/time_dim=32/time_dim=65536/' \
  's/attention=4/attention=99/' 's/attention=4/attention=-1/' 's/beta0=0.10000000000000001/beta0=0/' \
  's/beta0=0.10000000000000001/beta0=-5/' 's/beta1=20/beta1=1e30/' 's/beta1=20/beta1=nan/' \
  's/beta1=20/beta1=inf/' 's/beta1=20/beta1=0.05/' 's/eps=0.001/eps=0/' 's/eps=0.001/eps=0.9/' \
  's|prior/vp-eps|flow/conditional|' 's/aps.kind/aps.kinx/' 's/aps.unet/aps.unex/' 's/aps.sde/aps.sdx/' \
  's/"F32"/"F16"/' 's/"F32"/"I64"/' 's/"F32"/"Q8"/' 's/"shape":\[/"shape":[9999999,/'; do
  i=$((i + 1))
  f=$m/meta$i.safetensors
  st "$f" "$(printf '%s' "$header" | sed "$e")"
  sample model "meta$i:$e" error "$f"
  elbo model "meta$i:$e" error "$f"
done
f=$m/eps-tiny.safetensors
st "$f" "$(printf '%s' "$header" | sed 's/eps=0.001/eps=1e-300/')"
sample model eps-1e-300 either "$f"
# structure: lengths, truncations, headers
: >"$m/empty.safetensors"
printf 'abcd' >"$m/four.safetensors"
le64 "$hlen" >"$m/lenonly.safetensors"
head -c $((8 + hlen / 2)) "$prior" >"$m/halfheader.safetensors"
head -c $((8 + hlen)) "$prior" >"$m/nodata.safetensors"
head -c $((8 + hlen + dsize / 2)) "$prior" >"$m/halfdata.safetensors"
head -c $((8 + hlen + dsize - 1)) "$prior" >"$m/minus1.safetensors"
{ le64 $((1 << 40)); tail -c +9 "$prior"; } >"$m/len2e40.safetensors"
{ le64 0; tail -c +9 "$prior"; } >"$m/len0.safetensors"
{ le64 $((hlen + dsize + 100)); tail -c +9 "$prior"; } >"$m/lenpast.safetensors"
st "$m/array.safetensors" "[${header:1}"
st "$m/trailing.safetensors" "${header}}}"
st "$m/nul.safetensors" "$(printf '%s' "$header" | sed 's/aps.sde/aps\x01sde/')"
st "$m/badutf8.safetensors" "$(printf '%s' "$header" | sed 's/"stem/"\xff\xfestem/')"
st "$m/dupkey.safetensors" "{\"__metadata__\":{},${header:1}"
st "$m/deep.safetensors" "$(printf '[%.0s' $(seq 200))"
cp "$root/README.md" "$m/readme.safetensors"
for f in empty four lenonly halfheader nodata halfdata minus1 len2e40 len0 lenpast array trailing nul badutf8 \
  dupkey deep readme; do
  sample model "$f" error "$m/$f.safetensors"
done
# data: huge, NaN and zero weights, and bit flips
fill "$m/huge.data" '\xe6\xb1\x61\x7f' "$dsize" && st "$m/huge.safetensors" "$header" "$m/huge.data"
fill "$m/nan.data" '\x00\x00\xc0\x7f' "$dsize" && st "$m/nan.safetensors" "$header" "$m/nan.data"
fill "$m/zero.data" '\x00\x00\x00\x00' "$dsize" && st "$m/zero.safetensors" "$header" "$m/zero.data"
sample model huge-weights error "$m/huge.safetensors"
elbo model huge-weights error "$m/huge.safetensors"
sample model nan-weights error "$m/nan.safetensors"
sample model zero-weights accept "$m/zero.safetensors"
for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
  off=$(((k * 7919 * 131) % hlen + 8))
  flip "$m/hflip$k.safetensors" "$prior" "$off"
  sample model "header-flip@$off" either "$m/hflip$k.safetensors"
  off=$(((k * 104729 * 61) % dsize + 8 + hlen))
  flip "$m/dflip$k.safetensors" "$prior" "$off"
  sample model "data-flip@$off" either "$m/dflip$k.safetensors"
done
# not files
mkfifo "$m/fifo.safetensors"
mkdir "$m/dir.safetensors"
ln -s /dev/zero "$m/zero-dev.safetensors"
ln -s "$m/nowhere" "$m/dangling.safetensors"
for f in fifo dir zero-dev dangling; do sample model "$f" error "$m/$f.safetensors"; done
sample model missing error "$m/missing.safetensors"

# ---------------------------------------------------------------- PNG files
p=$work/png
mkdir -p "$p/src"
if on png; then
  "$aps" --device cpu degrade --op denoise --data fashion-mnist --out "$p/src" --n 1 >/dev/null 2>&1
  "$aps" --device cpu prior-sample --model "$prior" --out "$p/src/grid.png" --n 1 --steps 1 >/dev/null 2>&1
fi
good=$p/src/00000-clean.png
gsize=$(stat -c %s "$good" 2>/dev/null || echo 100)
pngcase() { # pngcase NAME EXPECT-as-data EXPECT-as-mask MAKE-COMMAND (writes $f)
  local name=$1 e1=$2 e2=$3
  on png || return 0
  mkdir -p "$p/$name"
  f=$p/$name/x.png
  eval "$4"
  run png "$name/data" "$e1" "$p/$name" "$aps" --device cpu elbo --model "$prior" --data "$p/$name" --n 1 --batch 1
  run png "$name/mask" "$e2" "$f" "$aps" --device cpu degrade --op "inpaint:mask=$f" --data fashion-mnist \
    --out "$p/$name.out" --n 1
}
pngcase good accept accept 'cp "$good" "$f"'
pngcase gif error error 'printf "GIF89a\x20\x00\x20\x00\x00\x00\x00;" >"$f"'
pngcase gif0 error error 'printf "GIF89a\x00\x00\x00\x00\x00\x00\x00;" >"$f"'
pngcase jpeg error error 'printf "\xff\xd8\xff\xe0\x00\x10JFIF" >"$f"'
pngcase bmp error error 'printf "BM\x00\x00" >"$f"'
pngcase empty error error ': >"$f"'
pngcase signature error error 'head -c 8 "$good" >"$f"'
pngcase sig-cut error error 'head -c 5 "$good" >"$f"'
pngcase no-iend either either 'head -c $((gsize - 12)) "$good" >"$f"' # stb needs no IEND chunk
pngcase iend-cut either either 'head -c $((gsize - 1)) "$good" >"$f"'
for cut in 16 33 50 $((gsize / 2)) $((gsize - 40)) $((gsize - 30)); do
  pngcase "cut$cut" error error "head -c $cut \"\$good\" >\"\$f\""
done
pngcase wrong-size error error 'cp "$p/src/grid.png" "$f"'
for off in 12 16 20 29 33 41; do
  pngcase "flip$off" either either "flip \"\$f\" \"\$good\" $off"
done
pngcase fifo error error 'mkfifo "$f"'
pngcase folder error error 'mkdir "$f"'
pngcase zero-dev error error 'ln -s /dev/zero "$f"'

# ---------------------------------------------------------------- IDX files
x=$work/idx
mkdir -p "$x"
idx() { # idx NAME EXPECT BYTES-COMMAND
  on idx || return 0
  f=$x/$1-idx3-ubyte
  eval "$3"
  run idx "$1" "$2" "$f" env APS_HOSTILE_IDX="$f" "$th" idx_file
}
head16() { printf "\x00\x00\x08\x03$1"; }
idx good accept 'head16 "\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x04" >"$f"; head -c 32 /dev/zero >>"$f"'
idx good-gz accept 'head16 "\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x04" | cat - <(head -c 32 /dev/zero) | gzip >"$f"'
idx magic error 'printf "\x00\x00\x09\x03\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00" >"$f"'
idx dims1 error 'printf "\x00\x00\x08\x01\x00\x00\x00\x01\x00" >"$f"'
idx count0 error 'head16 "\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x04" >"$f"'
idx rows0 error 'head16 "\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x04" >"$f"'
idx huge-count error 'head16 "\x7f\xff\xff\xff\x00\x00\x00\x04\x00\x00\x00\x04" >"$f"; head -c 64 /dev/zero >>"$f"'
idx huge-sides error 'head16 "\x00\x00\x00\x01\x00\x01\x00\x00\x00\x01\x00\x00" >"$f"'
idx neg-sides error 'head16 "\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff\xff\xff" >"$f"'
idx short-data error 'head16 "\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x04" >"$f"; head -c 31 /dev/zero >>"$f"'
idx trailing either 'head16 "\x00\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00\x04" >"$f"; head -c 40 /dev/zero >>"$f"'
idx header-cut error 'printf "\x00\x00\x08\x03\x00\x00" >"$f"'
idx empty error ': >"$f"'
idx gz-cut error 'head16 "\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x04" | cat - <(head -c 32 /dev/zero) | gzip | head -c 30 >"$f"'
idx gz-garbage error 'printf "\x1f\x8b\x08\x00garbage-not-deflate" >"$f"'
idx fifo error 'mkfifo "$f"'
idx folder error 'mkdir "$f"'
idx zero-dev error 'ln -s /dev/zero "$f"'
idx missing error 'rm -f "$f"'

# ---------------------------------------------------------------- operator specs
o=$work/spec
mkdir -p "$o"
mkfifo "$o/fifo.png"
long=$(printf 'inpaint:box=8-16,%.0s' $(seq 300))
for spec in "" ":" "smear:3" "inpaint" "inpaint:" "inpaint:box=16-8" "inpaint:box=999" "inpaint:box=0" \
  "inpaint:box=-4" "inpaint:box=nan" "inpaint:pixels=1.5" "inpaint:pixels=-0.1" "inpaint:strokes=0" \
  "inpaint:strokes=1e9" "inpaint:box=8,box=9" "inpaint:box=8,noise=-1" \
  "inpaint:box=8,noise=inf" "blur:sigma=-1" "blur:sigma=nan" "blur:sigma=1e30" "blur:sigma=0" "sr:3" "sr:0" \
  "sr:99999999999" "sr:0x2" "mix:" "mix:+" "mix:sr:2+inpaint:half" "denoise,noise=0.1,noise=0.2" \
  "inpaint:mask=$o/missing.png" "inpaint:mask=$o/fifo.png" "inpaint:mask=$o" "blur:sigma=1,map=$o/fifo.png" \
  "$long" "inpaint:box=8$(printf '\xff\xfe')" "inpaint:half,noise=0.05,extra=1"; do
  run spec "'${spec:0:40}'" error "op" "$aps" --device cpu degrade --op "$spec" --data fashion-mnist \
    --out "$o/out" --n 1
done
for spec in "inpaint:box=8,noise=2" "denoise,noise=2"; do # strong noise: a choice, not an error
  run spec "'$spec'" either "op" "$aps" --device cpu degrade --op "$spec" --data fashion-mnist --out "$o/out" --n 1
done
run spec good accept "" "$aps" --device cpu degrade --op "inpaint:box=8-16,noise=0.01-0.1" --data fashion-mnist \
  --out "$o/good" --n 1

# ---------------------------------------------------------------- command-line values
c=$work/cli
mkdir -p "$c"
psc() { run cli "$1" error "$2" "$aps" --device cpu prior-sample --model "$prior" --out "$c/o.png" --steps 1 "${@:3}"; }
psc n-hex --n --n 0x2
psc n-zero --n --n 0
psc n-neg --n --n -1
psc n-huge --n --n 99999999999
psc n-float --n --n 1.5
psc n-empty --n --n ""
psc n-space --n --n " 2"
psc n-text --n --n two
psc n-missing --n --n
psc steps-nan --steps --steps nan
psc steps-inf --steps --steps inf
psc batch-zero --batch --batch 0
psc cols-neg --cols --cols -1
psc seed-neg --seed --seed -1
psc sampler --sampler --sampler foo
psc unknown --bogus --bogus 1
psc model-empty --model --model ""
psc out-empty --out --out ""
psc longvalue --n --n "$(printf '1%.0s' $(seq 5000))"
run cli device-empty error "--device" "$aps" --device "" prior-sample --model "$prior" --out "$c/o.png"
run cli device-99 error "device" "$aps" --device 99 prior-sample --model "$prior" --out "$c/o.png"
run cli aps-device-empty error "APS_DEVICE" env APS_DEVICE= "$aps" prior-sample --model "$prior" \
  --out "$c/o.png" --steps 1 --n 1
run cli unknown-command error "unknown command" "$aps" sampel
run cli elbo-split error "--split" "$aps" elbo --model "$prior" --split dev
run cli elbo-draws error "--draws" "$aps" elbo --model "$prior" --draws 0
tp() { run cli "$1" error "$2" "$aps" --device cpu train-prior --data fashion-mnist --out "$c/t.safetensors" --steps 1 "${@:3}"; }
tp widths-text --widths --widths abc
tp widths-five --widths --widths 1,2,3,4,5
tp widths-hex --widths --widths 0x10
tp lr-zero --lr --lr 0
tp lr-nan --lr --lr nan
tp groups-big --groups --groups 1000
tp data-missing "$c/none" --data "$c/none"
run cli good accept "" "$aps" --device cpu prior-sample --model "$prior" --out "$c/good.png" --n 1 --steps 1

# ---------------------------------------------------------------- output targets
t=$work/out
mkdir -p "$t/folder.png"
mkfifo "$t/fifo.png" "$t/fifo.csv"
ln -s /dev/null "$t/null.png"
ln -s /dev/full "$t/full.csv"
if [ "$(id -u)" = 0 ]; then mknod "$t/char.png" c 1 3; else ln -s /dev/null "$t/char.png"; fi
for name in folder.png fifo.png null.png char.png; do
  run out "$name" error "$t/$name" "$aps" --device cpu prior-sample --model "$prior" --out "$t/$name" --n 1 --steps 1
done
run out no-folder error "$t/no/such" "$aps" --device cpu prior-sample --model "$prior" --out "$t/no/such/x.png" --n 1 \
  --steps 1
run out long-name error "$t" "$aps" --device cpu prior-sample --model "$prior" --out "$t/$(printf 'n%.0s' $(seq 300)).png" \
  --n 1 --steps 1
cp "$prior" "$t/model.safetensors"
run out out-is-model error "--out" "$aps" --device cpu prior-sample --model "$t/model.safetensors" \
  --out "$t/model.safetensors" --n 1 --steps 1
trn() { run out "$1" error "$2" "$aps" --device cpu train-prior --data fashion-mnist --out "$t/m.safetensors" --steps 1 \
  --batch 2 --widths 8 --blocks 1 --attention 0 --groups 4 --time-dim 8 "${@:3}"; }
trn csv-fifo "$t/fifo.csv" --csv "$t/fifo.csv"
trn csv-full "$t/full.csv" --csv "$t/full.csv"
trn csv-folder "$t/folder.png" --csv "$t/folder.png"
trn csv-is-out "the loss log" --csv "$t/m.safetensors"
trn ckpt-is-out "the checkpoint" --checkpoint "$t/m.safetensors"
trn ckpt-is-csv "the loss log" --checkpoint "$t/x.ckpt" --csv "$t/x.ckpt"
trn out-folder "$t/folder.png" --out "$t/folder.png"
run out train-good accept "" "$aps" --device cpu train-prior --data fashion-mnist --out "$t/good.safetensors" \
  --steps 2 --batch 2 --widths 8 --blocks 1 --attention 0 --groups 4 --time-dim 8
# the nodes are what they were
on out && for n in fifo.png fifo.csv; do
  [ -p "$t/$n" ] || { echo "FAIL out: $t/$n is no longer a FIFO"; nfail=$((nfail + 1)); }
done
on out && for n in null.png full.csv; do
  [ -L "$t/$n" ] || { echo "FAIL out: $t/$n is no longer a link"; nfail=$((nfail + 1)); }
done

for k in "${!count[@]}"; do echo "class $k: ${count[$k]} cases"; done
echo "$ncase cases, $nfail failed"
[ "$ncase" -gt 0 ] && [ "$nfail" -eq 0 ]

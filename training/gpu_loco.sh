#!/usr/bin/env bash
# The GPU recipe: the four leave-one-case-out folds and the final model, trained side by side on ONE GPU.
#
#   training/gpu_loco.sh CASES OUT MINUTES
#
# Each run is `python -m training.train --device "${DEVICE:-cuda}" --no-export` with the same recipe ($GPU_RECIPE,
# defined once, in the Makefile): OUT/fold-<case>/fold.safetensors for each case held out, OUT/final/default.safetensors
# on all cases. The checkpoints carry their manifests' contents; export them where the product's ONNX toolchain
# is (`python -m training.export_checkpoint`), then score the folds with `python -m training.loco --out OUT --no-train`
# (it finds each fold.json and only evaluates). Training stops at MINUTES of wall clock (the cosine learning
# rate follows that budget; the step count reached is in each checkpoint's training record). If any run fails,
# the others are stopped at once and the script exits non-zero.
set -uo pipefail
CASES=${1:?CASES folder}
OUT=${2:?OUT folder}
MINUTES=${3:-7}
PY=${PY:-python3}
GPU_RECIPE=${GPU_RECIPE:?the trainer options, e.g. make train-gpu passes the Makefile\'s GPU_RECIPE}

mkdir -p "$OUT"
pids=()
names=()
launch() {  # launch NAME DIR ARGS...
    local name=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    PYTHONUNBUFFERED=1 $PY -m training.train --cases "$CASES" --device "${DEVICE:-cuda}" --no-export --minutes "$MINUTES" \
        $GPU_RECIPE --out "$dir" --checkpoint-dir "$dir" "$@" >"$dir/train.log" 2>&1 &
    pids+=($!)
    names+=("$name")
}
for case in $(ls "$CASES"); do
    [ -d "$CASES/$case" ] && launch "fold-$case" "$OUT/fold-$case" --holdout "$case" --name fold
done
launch final "$OUT/final" --name default

status=0
while :; do
    running=0
    for i in "${!pids[@]}"; do
        pid=${pids[$i]}
        [ "$pid" = done ] && continue
        if kill -0 "$pid" 2>/dev/null; then
            running=1
            continue
        fi
        wait "$pid"
        rc=$?
        pids[$i]=done
        echo "${names[$i]}: exit $rc ($(date +%T))"
        if [ "$rc" != 0 ]; then
            status=1
            for p in "${pids[@]}"; do [ "$p" != done ] && kill "$p" 2>/dev/null; done
        fi
    done
    [ "$running" = 0 ] && break
    sleep 2
done
for n in "${names[@]}"; do
    echo "== $n"
    tail -n 3 "$OUT/$n/train.log"
done
exit $status

#!/usr/bin/env bash
# Save/kill soak: a checkpoint survives SIGKILL at any moment of a save.
#
# Trains a small model (synthetic 28x28 data from tests/cli/cli_test_helper,
# a checkpoint of ~12 MB with Adam's state) for one epoch, then runs CYCLES
# cycles of: resume it for one more epoch with `convvae train --resume`, and
# kill -9 the process a random 0..MAX_DELAY_US microseconds after the save's
# temporary file (.NAME.tmp) appears. After each kill the checkpoint must be
# either
#   - the previous one, byte for byte, and still load and predict exactly as
#     before (`convvae cluster` rows identical): the kill landed before the
#     rename ("previous intact"), or
#   - the new one, complete: it loads (checksums verified), has one epoch
#     more, and becomes the reference ("save completed").
# Anything else fails the cycle. A temporary file left by a kill must be
# taken over by the next save: at the end, one save without a kill must
# leave no temporary file behind.
#
# Prints the counts; exits 1 if any cycle failed. Logs go to <build>/savekill.
#
# Usage: scripts/check-savekill.sh [build-dir]      (default: build-savekill)
# Environment: SAVEKILL_CYCLES        cycles (default 200)
#              SAVEKILL_MAX_DELAY_US  upper end of the random delay (default
#                                     40000, the order of one save of this
#                                     model with its fsyncs; a larger value
#                                     lets more saves complete before the kill)
#              SAVEKILL_SEED          first random seed (default 1)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-savekill}
cycles=${SAVEKILL_CYCLES:-200}
max_delay=${SAVEKILL_MAX_DELAY_US:-40000}
seed=${SAVEKILL_SEED:-1}

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCVAE_WERROR=ON -DBUILD_TESTING=ON \
    -DCVAE_BUILD_BENCH=OFF -DCVAE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target convvae_cli cli_test_helper >/dev/null
cli=$build/src/convvae
helper=$build/src/cli_test_helper

w=$build/savekill
rm -rf "$w"
mkdir -p "$w"
"$helper" idx "$w/img" "$w/lbl" 60 1
ck=$w/ck.safetensors
tmp=$w/.ck.safetensors.tmp
model=(--images "$w/img" --batch-size 20 --encoder-units 128 --decoder-units 128
       --category-units 8 --latent-dim 2 --clusters 3 --threads 1)

"$cli" train "${model[@]}" --epochs 1 --quiet --out "$ck"
predict() { "$cli" cluster --model "$1" --images "$w/img" >"$2"; }
epochs_of() { "$cli" info --model "$1" | sed -n 's/^epochs_done = //p'; }
cp "$ck" "$w/prev.safetensors"
predict "$ck" "$w/prev.csv"
epochs=$(epochs_of "$ck")

intact=0 completed=0 stale=0 failed=0 nosave=0
t0=$SECONDS
for ((i = 1; i <= cycles; i++)); do
    [ -e "$tmp" ] && stale=$((stale + 1))
    set +e
    "$helper" kill9 "$tmp" "$max_delay" "$((seed + i))" "$cli" train "${model[@]}" \
        --resume "$ck" --epochs $((epochs + 1)) --quiet >"$w/train.log" 2>&1
    rc=$?
    set -e
    case $rc in
    209 | 0) ;; # killed, or finished just before the kill
    101)
        nosave=$((nosave + 1))
        echo "cycle $i: no save seen (train exited first):" >&2
        sed 's/^/  | /' "$w/train.log" >&2
        failed=$((failed + 1))
        continue
        ;;
    *)
        echo "cycle $i: train exited $rc:" >&2
        sed 's/^/  | /' "$w/train.log" >&2
        failed=$((failed + 1))
        continue
        ;;
    esac
    if cmp -s "$ck" "$w/prev.safetensors"; then
        # killed before the rename: the previous checkpoint, as it was
        if predict "$ck" "$w/now.csv" && cmp -s "$w/now.csv" "$w/prev.csv"; then
            intact=$((intact + 1))
        else
            echo "cycle $i: the previous checkpoint no longer predicts as before" >&2
            failed=$((failed + 1))
        fi
    elif now=$(epochs_of "$ck" 2>"$w/info.err") && [ "$now" = $((epochs + 1)) ] &&
        predict "$ck" "$w/now.csv"; then
        completed=$((completed + 1))
        epochs=$now
        cp "$ck" "$w/prev.safetensors"
        cp "$w/now.csv" "$w/prev.csv"
    else
        echo "cycle $i: the checkpoint is neither the previous nor a complete new one:" >&2
        sed 's/^/  | /' "$w/info.err" >&2
        failed=$((failed + 1))
        cp "$ck" "$w/damaged-$i.safetensors" 2>/dev/null || true
        cp "$w/prev.safetensors" "$ck"
    fi
done

# One more save, not killed: it takes over a leftover temporary file.
left_before=0
[ -e "$tmp" ] && left_before=1
"$cli" train "${model[@]}" --resume "$ck" --epochs $((epochs + 1)) --quiet
for f in "$w"/.*.tmp*; do
    [ -e "$f" ] || continue
    echo "check-savekill: $f is left after a clean save" >&2
    failed=$((failed + 1))
done
[ "$(epochs_of "$ck")" = $((epochs + 1)) ] || { echo "final save lost" >&2; failed=$((failed + 1)); }

echo "check-savekill: $cycles cycles in $((SECONDS - t0)) s: previous checkpoint intact $intact," \
    "save completed before the kill $completed, failed $failed (no save seen $nosave);" \
    "a stale temporary file was there at $stale cycle starts (and $left_before before the final save)"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# What the default recipe's training step and gradient accumulation cost,
# side by side in one run: bench/bench_train's training throughput on the
# default MNIST model at 1 thread for
#   plain      the step without the augmentation (--augment 0)
#   augmented  the default recipe's fine-tuning step (a random affine warp of
#              every image)
#   contrastive the default recipe's pretraining step: the augmented step
#              with the contrastive consistency term (weight 10, temperature
#              4): the clean images forward once more and back through
#              the encoder
#   consistency the augmented step with the plain consistency term (weight 5)
#   parts      the augmented step with each batch of 100 computed in parts of
#              25 (cvae_model_set_micro_batch), as gradient accumulation does
#   batch 400  a batch of 400 in parts of 100: the memory of the 100 batch
# run alternately --reps times (default 3); prints the medians and the ratios
# to the augmented step, with the load average before and after.
#
#   bench/step_variants.sh [--reps N] [--batches N] [--build DIR]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
reps=3 batches=60 build=$here/build-bench
while [ $# -gt 0 ]; do
    case $1 in
    --reps) reps=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: bench/step_variants.sh [--reps N] [--batches N] [--build DIR]" >&2; exit 2 ;;
    esac
done
if [ ! -x "$build/bench/bench_train" ]; then
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" --target bench_train -j2 >/dev/null
fi
bt=$build/bench/bench_train
names="plain augmented contrastive consistency parts batch400"
args_plain="--augment 0"
args_augmented="--augment 1"
args_contrastive="--augment 1 --consistency 10 --contrast 4"
args_consistency="--augment 1 --consistency 5 --contrast 0"
args_parts="--augment 1 --micro 25"
args_batch400="--augment 1 --batch 400 --micro 100"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$reps"); do
    for n in $names; do
        eval "a=\$args_$n"
        w=5
        [ "$n" = batch400 ] && w=2
        b=$batches
        [ "$n" = batch400 ] && b=$((batches / 4))
        # every variant is a step of the default (manifold) recipe
        # shellcheck disable=SC2086
        "$bt" --recipe manifold --threads 1 --warmup $w --batches $b $a |
            awk '$1 == "RESULT" && $2 == "train_img_s" { print $3 }' >>"$tmp/$n"
    done
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
med() { sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ref=$(med "$tmp/augmented")
printf '| step | images/s (median of %d) | against the augmented step |\n|---|---|---|\n' "$reps"
for n in $names; do
    m=$(med "$tmp/$n")
    printf '| %s | %.0f | %.2f |\n' "$n" "$m" "$(awk -v a="$m" -v b="$ref" 'BEGIN { print a / b }')"
done

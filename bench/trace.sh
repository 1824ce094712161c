#!/usr/bin/env bash
# Same-training check: libconvvae's training steps against PyTorch's.
#
#   bench/trace.sh [--steps N] [--dataset NAME] [--latent S] [--layers N]
#                  [--units M] [--seed S] [--threads T] [--build DIR] [--out DIR]
#                  [--float64] [--gate-steps K] [--gate-rel T]
#
# bench_train --trace runs N (default 300) steps of the library's own
# cvae_model_train from a fresh model and records every batch's indices,
# sampling noise and loss terms; bench/torch_reference.py --trace replays
# them in the same model in PyTorch (torch.optim.Adam with the library's
# settings, the same initial weights, batches and noise) and prints the
# total loss of both at steps 0, 1, 10, 50, 100, 200, ..., N-1 with their
# relative difference, the final weights' difference per tensor, and
#     RESULT trace_first_diverging_step K   (first step > 1e-4 relative)
#     RESULT trace_max_rel_first100 X
# It exits 1 if the total loss of step 0 or 1 differs by more than 1e-6
# relative (seen: 3e-7 at most; a 1% change of lambda or of the balance
# weight, or Adam's eps x10, gives 3e-6 to 2e-5). Later steps are only
# reported: a ReLU or max-pool decision within rounding of its threshold
# makes the two part by 1e-4 or more sooner or later (step 7 to 232 over
# seeds 1-8, see bench/torch_reference.py's docstring). --gate-steps K and
# --gate-rel T set another gate (the first K steps within T). PyTorch's
# replay takes about four times as long as the library's run.
#
# --float64 also replays the steps in float64 PyTorch and reports how far
# float32 training (both implementations) is from float64 training (MNIST,
# seed 1: 1e-4 relative by step 39, while the two float32 ones agree to
# 2.5e-7 until step 200). Reported only; about 6x slower than float32.
#
# The files go to --out (default bench/runs/trace/, ~40 MB), the data
# directory is $CONVVAE_DATA or ./data. bench_train comes from bench/run.sh's
# build directory ($CVAE_BENCH_BUILD or build-bench, or --build), built or
# rebuilt if it is missing or older than lib/ or bench/. The machine's load
# matters only for the time: the result is the same on a busy one.
# Needs: the build dependencies, the data (scripts/fetch-data.sh) and
# Debian's python3-torch.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${CVAE_BENCH_BUILD:-$here/build-bench}
out=$here/bench/runs/trace
steps=300 threads=1 float64=0
model=() gate=()
while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --float64) float64=1; shift; continue ;;
        --steps|--dataset|--latent|--layers|--units|--seed|--threads|--build|--out|--gate-steps|--gate-rel)
            [ $# -ge 2 ] || { echo "trace.sh: $1 needs a value" >&2; exit 2; } ;;
        *) echo "trace.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    case $1 in
        --steps) steps=$2 ;;
        --threads) threads=$2 ;;
        --build) build=$2 ;;
        --out) out=$2 ;;
        --gate-steps|--gate-rel) gate+=("$1" "$2") ;;
        *) model+=("$1" "$2") ;;
    esac
    shift 2
done

py=/usr/bin/python3
if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
    echo "trace.sh: $py cannot import torch and numpy; install them with" >&2
    echo "    sudo apt-get install -y python3-torch python3-numpy" >&2
    exit 1
fi
export CONVVAE_DATA=${CONVVAE_DATA:-$here/data}

if [ ! -x "$build/bench/bench_train" ] || [ -n "$(find "$here/lib" "$here/bench" -newer "$build/bench/bench_train" -name '*.[ch]' 2>/dev/null | head -1)" ]; then
    echo "trace.sh: building bench_train in $build" >&2
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCVAE_BUILD_BENCH=ON \
        -DBUILD_TESTING=OFF >/dev/null
    cmake --build "$build" --target bench_train -j2 >/dev/null
fi

mkdir -p "$out"
rm -f "$out"/trace_*
echo "[$(date +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)] libconvvae: $steps steps of cvae_model_train" >&2
"$build/bench/bench_train" --trace "$out" --trace-steps "$steps" --threads "$threads" \
    ${model[@]+"${model[@]}"} >"$out/lib.txt"
echo "[$(date +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)] PyTorch: replaying them" >&2
"$py" "$here/bench/torch_reference.py" --trace "$out" --threads "$threads" ${gate[@]+"${gate[@]}"} |
    tee "$out/torch.txt"
if [ "$float64" = 1 ]; then
    echo "[$(date +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)] PyTorch float64: replaying them" >&2
    "$py" "$here/bench/torch_reference.py" --trace "$out" --threads "$threads" --float64 |
        tee "$out/torch-f64.txt"
fi

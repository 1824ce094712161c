#!/usr/bin/env bash
# libconvvae against the same model in PyTorch, on the machine it runs on.
#
#   bench/run.sh [--quick] [--rows "N ..."] [--reps N] [--build DIR] [--out DIR]
#                [--torch-blas DIR] [--torch-core NAME] [--isa avx2]
#
# For every convolutional configuration of the paper's Table 1 (rows 1-14 of
# bench/reproduce.sh --list: MNIST s=2..100 with n=1-2, m=128-512;
# Fashion-MNIST s=10..100 with n=4-6, m=512; batch 100), or the rows given
# with --rows (e.g. --rows "5 12", the paper's best MNIST and Fashion-MNIST
# rows), at 1 and 2 threads, runs
# bench/bench_train (libconvvae) and bench/torch_reference.py (PyTorch)
# alternately N times (default 3) and prints the medians as a Markdown table:
# training and inference throughput with ratios, batch-1 latency, the
# training step's GFLOP/s next to cvae__sgemm's on the step's own GEMM shapes
# and on 2000^3, and peak RSS. Before that, a same-model check per
# configuration (parameter counts, forward losses of a libconvvae checkpoint
# loaded into PyTorch within 1e-4); after it, the per-layer breakdown of one
# libconvvae training step. The load average goes with every table: the
# numbers are only as good as the machine was quiet.
#
# --quick: 1 repetition, 20 timed batches, shorter latency and GEMM runs (for
# development; not for quoting). Raw outputs are kept in --out (default
# bench/runs/run-sh/), the data directory is $CONVVAE_DATA or ./data.
# The same-training check (300 training steps of both, loss by loss) is
# bench/trace.sh.
#
# --isa avx2 holds both sides to AVX2 on a CPU that also has AVX-512, to
# see what a CPU without it would give: libconvvae under CVAE_ISA=avx2,
# PyTorch's oneDNN convolutions under ONEDNN_MAX_CPU_ISA=AVX2, and the
# OpenBLAS trial below only among its AVX2 sets (Haswell, Zen). The two
# kinds of core differ in more than vector width, so this approximates
# such a CPU; it does not replace running on one.
#
# PyTorch runs with OMP_WAIT_POLICY=PASSIVE (unless set): its OpenMP threads
# otherwise spin while waiting, and with more runnable threads than cores
# (a machine shared with other jobs) a spinning thread holds the core its
# partner needs: 2-thread training was measured at under a third of its
# speed. libconvvae's threads always block.
#
# --torch-blas DIR puts DIR first in PyTorch's LD_LIBRARY_PATH: Debian's
# python3-torch does its matrix products through the system libblas.so.3,
# which with libblis installed is BLIS 0.9, and on CPUs newer than that
# release BLIS runs its slow generic kernel. To give PyTorch OpenBLAS without changing
# the system's choice:
#     apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb ob
#     bench/run.sh --torch-blas "$PWD/ob/usr/lib/x86_64-linux-gnu/openblas-pthread"
# OpenBLAS's kernel set is then the fastest of its recent x86-64 sets in a
# short trial (printed first); --torch-core NAME (an OPENBLAS_CORETYPE value,
# or auto for OpenBLAS's own choice) skips the trial.
# Needs: the build dependencies (scripts/install-deps.sh), the data
# (scripts/fetch-data.sh) and Debian's python3-torch.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
reps=3 batches=100 warmup=5 latency=200 gemm_reps=5 breakdown_reps=15 quick=0 torch_blas='' torch_core=''
rows_sel= isa=
build=${CVAE_BENCH_BUILD:-$here/build-bench}
out=$here/bench/runs/run-sh
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1 reps=1 batches=20 warmup=2 latency=50 gemm_reps=2 breakdown_reps=3 ;;
        --reps) reps=$2; shift ;;
        --rows) rows_sel=$2; shift ;;
        --build) build=$2; shift ;;
        --out) out=$2; shift ;;
        --torch-blas) torch_blas=$2; shift ;;
        --torch-core) torch_core=$2; shift ;;
        --isa) isa=$2; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

case $isa in
    '') ;;
    avx2) export CVAE_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ;;
    *) echo "run.sh: --isa takes avx2 (got $isa)" >&2; exit 2 ;;
esac

py=/usr/bin/python3
if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
    echo "run.sh: $py cannot import torch and numpy; install them with" >&2
    echo "    sudo apt-get install -y python3-torch python3-numpy" >&2
    exit 1
fi
data=${CONVVAE_DATA:-$here/data}
export CONVVAE_DATA=$data
for f in mnist/train-images-idx3-ubyte fashion-mnist/train-images-idx3-ubyte.gz; do
    if [ ! -f "$data/$f" ]; then
        echo "run.sh: $data/$f missing; run scripts/fetch-data.sh" >&2
        exit 1
    fi
done

if [ ! -x "$build/bench/bench_train" ] || [ -n "$(find "$here/lib" "$here/bench" -newer "$build/bench/bench_train" -name '*.[ch]' 2>/dev/null | head -1)" ]; then
    echo "run.sh: building bench_train in $build" >&2
    # The tests are left out of a new build directory only: a development
    # build given with --build keeps its own setting, so its ctest does not
    # go on running test binaries that are no longer rebuilt.
    testing=(-DBUILD_TESTING=OFF)
    [ -f "$build/CMakeCache.txt" ] && testing=()
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCVAE_BUILD_BENCH=ON \
        "${testing[@]}" >/dev/null
    cmake --build "$build" --target bench_train -j2 >/dev/null
fi
bt=$build/bench/bench_train
tr=$here/bench/torch_reference.py
mkdir -p "$out/raw"
rm -f "$out"/raw/*.txt

load1() { cut -d' ' -f1 /proc/loadavg; }
# value of "RESULT key value" in a file (empty if absent)
get() { awk -v k="$2" '$1 == "RESULT" && $2 == k { print $3 }' "$1"; }
# median of the key over the files given
med() {
    local key=$1; shift
    for f in "$@"; do get "$f" "$key"; done | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "-" || v == "") print "-"; else printf f, v }'; }

torch_ld=${LD_LIBRARY_PATH:-}
[ -z "$torch_blas" ] || torch_ld=$torch_blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# name dataset s n m: the convolutional rows of Table 1, as bench/reproduce.sh
# lists them (row N is named rN)
table1=("r1 mnist 2 2 128" "r2 mnist 5 2 128" "r3 mnist 10 2 128" "r4 mnist 20 1 512"
        "r5 mnist 50 1 512" "r6 mnist 60 1 512" "r7 mnist 100 1 512"
        "r8 fashion-mnist 10 4 512" "r9 fashion-mnist 20 6 512" "r10 fashion-mnist 30 4 512"
        "r11 fashion-mnist 40 5 512" "r12 fashion-mnist 60 5 512" "r13 fashion-mnist 70 5 512"
        "r14 fashion-mnist 100 5 512")
configs=()
for c in "${table1[@]}"; do
    read -r name _ <<<"$c"
    if [ -z "$rows_sel" ] || [[ " $rows_sel " == *" ${name#r} "* ]]; then
        configs+=("$c")
    fi
done
if [ ${#configs[@]} -eq 0 ]; then
    echo "run.sh: --rows \"$rows_sel\" selects none of rows 1-14" >&2
    exit 2
fi
threads=(1 2)

echo "bench/run.sh $(date -u '+%Y-%m-%d %H:%M UTC'), reps $reps, $batches timed batches after $warmup warm-up"
# Virtual machines often name the CPU only "AMD EPYC": the family and model
# numbers and the widest vector set tell its generation apart (AMD family 25
# is Zen 3 or Zen 4, 26 Zen 5), and the ratios differ a lot between them.
cpu_vec=AVX2
grep -qw avx512f /proc/cpuinfo 2>/dev/null && cpu_vec=AVX-512
grep -qw avx2 /proc/cpuinfo 2>/dev/null || cpu_vec="no AVX2"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') (family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'), $cpu_vec), $(nproc) CPUs; $(uptime | sed 's/^ *//')"
[ -z "$isa" ] || echo "instruction sets: both sides held to $isa (CVAE_ISA=$CVAE_ISA, ONEDNN_MAX_CPU_ISA=$ONEDNN_MAX_CPU_ISA)"
echo "PyTorch's BLAS: ${torch_blas:-the system libblas.so.3 ($(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown))}"

# OpenBLAS picks its kernels by CPU model, and a release older than the CPU
# may pick worse ones than it has: on AMD's Zen 5, OpenBLAS 0.3.21's
# SkylakeX AVX-512 kernels trained the n=5 Fashion-MNIST model 9% faster at
# 1 thread than its Haswell AVX2 ones. So unless --torch-core names a set,
# PyTorch trains the default model (row 5, where the dense layers' products
# take the largest share of the step) briefly under each kernel set
# OpenBLAS has for recent x86-64 CPUs, and under OPENBLAS_CORETYPE as
# inherited, and keeps the fastest for every run. A set this CPU cannot run
# fails its trial and is skipped; with a BLAS other than OpenBLAS the
# variable does nothing and the trials differ only by noise.

# torch_run CORE THREADS ARGS...: torch_reference.py under OpenBLAS's kernel
# set CORE (auto: OpenBLAS's own choice) and THREADS threads
torch_run() {
    local core=(-u OPENBLAS_CORETYPE)
    [ "$1" = auto ] || core=("OPENBLAS_CORETYPE=$1")
    env "${core[@]}" LD_LIBRARY_PATH="$torch_ld" OPENBLAS_NUM_THREADS="$2" \
        OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" "$py" "$tr" "${@:3}"
}
if [ -z "$torch_core" ]; then
    cores=("${OPENBLAS_CORETYPE:-auto}") candidates=(auto Haswell Zen SkylakeX Cooperlake)
    [ -z "$isa" ] || cores=() candidates=(Haswell Zen)
    for core in "${candidates[@]}"; do
        [[ " ${cores[*]} " == *" $core "* ]] || cores+=("$core")
    done
    declare -A best_of=()
    # Three rounds, each trying every set in turn, so that a slow phase of
    # the machine falls on all of them; a set's best round counts.
    for _ in 1 2 3; do
        for core in "${cores[@]}"; do
            w=$(torch_run "$core" 1 --dataset mnist --latent 50 --layers 1 --units 512 --batch 100 \
                --threads 1 --warmup 2 --batches 10 2>/dev/null | awk '$1 == "RESULT" && $2 == "train_img_s" { print $3 }') || w=
            [ -n "$w" ] && best_of[$core]=$(awk -v a="${best_of[$core]:-0}" -v b="$w" 'BEGIN { print (b > a) ? b : a }')
        done
    done
    best=0
    for core in "${cores[@]}"; do
        v=${best_of[$core]:-0}
        if [ "$v" = 0 ]; then
            echo "OpenBLAS kernels for PyTorch: $core did not run"
            continue
        fi
        echo "OpenBLAS kernels for PyTorch: $core trained $(fmt "$v" %.0f) img/s (row 5, 1 thread, best of 3 rounds)"
        if awk -v a="$v" -v b="$best" 'BEGIN { exit !(a > b) }'; then best=$v torch_core=$core; fi
    done
fi
[ -n "$torch_core" ] || torch_core=auto
echo "OpenBLAS kernels for PyTorch: $torch_core"
echo

echo "== same-model check (libconvvae checkpoint after 20 steps -> PyTorch, first 100 test images)"
for c in "${configs[@]}"; do
    read -r name ds s n m <<<"$c"
    dir=$out/check-$name
    mkdir -p "$dir"
    "$bt" --check "$dir" --dataset "$ds" --latent "$s" --layers "$n" --units "$m" --batches 20 \
        >"$dir/check.txt"
    echo "-- $name"
    "$py" "$tr" --check "$dir" --dataset "$ds" | grep -v '^RESULT' | tee "$dir/torch.txt"
done
echo

for c in "${configs[@]}"; do
    read -r name ds s n m <<<"$c"
    for t in "${threads[@]}"; do
        echo "$(load1)" >"$out/raw/$name-t$t-load.txt"
        model=(--dataset "$ds" --latent "$s" --layers "$n" --units "$m" --batch 100 --threads "$t")
        common=("${model[@]}" --warmup "$warmup" --batches "$batches" --infer --latency "$latency")
        for r in $(seq 1 "$reps"); do
            echo "[$(date +%H:%M:%S) load $(load1)] $name, $t thread(s), run $r/$reps: libconvvae" >&2
            "$bt" "${common[@]}" >"$out/raw/$name-t$t-lib-$r.txt"
            echo "[$(date +%H:%M:%S) load $(load1)] $name, $t thread(s), run $r/$reps: PyTorch" >&2
            torch_run "$torch_core" "$t" "${common[@]}" >"$out/raw/$name-t$t-torch-$r.txt"
        done
        echo "[$(date +%H:%M:%S)] $name, $t thread(s): GEMM rates and breakdown" >&2
        "$bt" "${model[@]}" --batches 0 --gemm "$gemm_reps" --breakdown "$breakdown_reps" \
            >"$out/raw/$name-t$t-gemm.txt"
    done
done

echo "== results (medians of $reps alternated runs; load = 1-min load average when the row started)"
echo
echo "| config | thr | load | train img/s lib | torch | ratio | infer img/s lib | torch | ratio | batch-1 ms lib | torch | step GFLOP/s | GEMM on step shapes | GEMM 2000^3 | step / shapes | peak RSS MB lib | torch |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for c in "${configs[@]}"; do
    read -r name ds s n m <<<"$c"
    for t in "${threads[@]}"; do
        lib=("$out"/raw/$name-t$t-lib-*.txt)
        pt=("$out"/raw/$name-t$t-torch-*.txt)
        g=$out/raw/$name-t$t-gemm.txt
        tl=$(med train_img_s "${lib[@]}") tt=$(med train_img_s "${pt[@]}")
        il=$(med infer_img_s "${lib[@]}") it=$(med infer_img_s "${pt[@]}")
        ll=$(med latency_ms "${lib[@]}") lt=$(med latency_ms "${pt[@]}")
        gf=$(med train_gflops "${lib[@]}")
        gs=$(med gemm_step_shapes_gflops "$g") g2=$(med gemm_2000_gflops "$g")
        rl=$(med rss_train_mb "${lib[@]}") rt=$(med rss_train_mb "${pt[@]}")
        eff=$(awk -v a="$gf" -v b="$gs" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.0f%%", 100 * a / b }')
        echo "| $name $ds s=$s n=$n m=$m | $t | $(cat "$out/raw/$name-t$t-load.txt") | $(fmt "$tl" %.0f) | $(fmt "$tt" %.0f) | $(ratio "$tl" "$tt") | $(fmt "$il" %.0f) | $(fmt "$it" %.0f) | $(ratio "$il" "$it") | $(fmt "$ll" %.3f) | $(fmt "$lt" %.3f) | $(fmt "$gf" %.1f) | $(fmt "$gs" %.1f) | $(fmt "$g2" %.1f) | $eff | $(fmt "$rl" %.0f) | $(fmt "$rt" %.0f) |"
    done
done
echo
for c in "${configs[@]}"; do
    read -r name ds s n m <<<"$c"
    f=$(get "$out/raw/$name-t1-lib-1.txt" flops_per_train_image)
    fi=$(get "$out/raw/$name-t1-lib-1.txt" flops_per_infer_image)
    echo "$name: $(fmt "$f" %.0f) FLOP per training image, $(fmt "$fi" %.0f) per inferred image (matrix products, 2 per multiply-add)"
done
echo "load after the run: $(uptime | sed 's/^ *//')"
echo
for c in "${configs[@]}"; do
    read -r name ds s n m <<<"$c"
    for t in "${threads[@]}"; do
        echo "== $name, $t thread(s): per-layer breakdown of one libconvvae training step"
        sed -n '/^per-layer/,/^RESULT segments_ms/p' "$out/raw/$name-t$t-gemm.txt" | grep -v '^RESULT'
        echo
    done
done

#!/usr/bin/env bash
# The CMocka unit tests and the fuzz corpus replays under valgrind memcheck:
# no invalid read or write, no use of uninitialised memory, no definite leak
# (--leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1).
# Builds a plain gcc RelWithDebInfo tree of its own (valgrind needs no
# instrumentation; debug info gives line numbers) and runs every
# tests/test_* executable and tests/fuzz/fuzz_replay_* on its corpus.
#
# tests/valgrind.supp holds the known, explained "possibly lost" blocks of
# BLIS's memory pools and of the worker threads of an OpenMP runtime; it
# suppresses nothing that is definitely lost and no error, and each summary
# line prints whatever possibly-lost bytes remain.
#
# Left out (valgrind runs code 20-50x slower): test_train, the real-MNIST
# training run, and test_recipe_accuracy, the default recipe trained on
# real images (seconds natively, tens of minutes under valgrind); their code
# paths are the ones test_model, test_robust, test_threads, test_recipe and
# test_manifold exercise on small data. The executables run VALGRIND_JOBS at a time (default: one per core).
# VALGRIND_ARGS adds options (e.g. --track-origins=yes to find where an
# uninitialised value came from; it doubles the run time).
#
# Usage: scripts/check-valgrind.sh [build-dir]   (default: build-vg)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-vg}
command -v valgrind >/dev/null ||
    { echo "check-valgrind: valgrind not found (apt-get install valgrind)" >&2; exit 2; }

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCVAE_WERROR=ON \
    -DCVAE_BUILD_TOOL=OFF -DCVAE_BUILD_BENCH=OFF -DCVAE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 >/dev/null

# libjpeg-turbo's SIMD decoding computes on whole vectors whose padding
# lanes memcheck cannot follow, and reports the decoded rows as depending on
# uninitialised memory; its portable C path decodes the same files cleanly,
# so the image tests run on that path here (JSIMD_FORCENONE is
# libjpeg-turbo's own switch). ASan and UBSan still run the SIMD path.
export JSIMD_FORCENONE=1
# Tests whose full set of geometries takes minutes under valgrind check the
# small ones only (each still reaches every branch of its kernels); the
# native, ASan and TSan runs check them all.
export CVAE_TEST_LIGHT=1
jobs=${VALGRIND_JOBS:-$(nproc)}
export CONVVAE_DATA=${CONVVAE_DATA:-$here/data}
logs="$build/valgrind"
rm -rf "$logs"
mkdir -p "$logs"
vg=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite
    --error-exitcode=1 --num-callers=30 --suppressions="$here/tests/valgrind.supp"
    ${VALGRIND_ARGS:-})

# One log per process: test_robust and test_badinput fork children, and
# each child is checked (and counted) on its own.
run_one() {
    local exe=$1 name args=() t0=$SECONDS trc
    name=$(basename "$exe")
    case $name in
    fuzz_replay_*) args=("$here/tests/fuzz/corpus/${name#fuzz_replay_}") ;;
    esac
    set +e
    "${vg[@]}" --log-file="$logs/$name.%p.log" "$exe" "${args[@]}" >"$logs/$name.out" 2>&1
    trc=$?
    set -e
    sum() { # total of "<label>: N <unit>" over this executable's process logs
        cat "$logs/$name".*.log | sed -n "s/.*$1: \([0-9,]*\) $2.*/\1/p" | tr -d , |
            awk '{s += $1} END {print s + 0}'
    }
    local procs errors definite possible suppressed verdict=OK
    procs=$(ls "$logs/$name".*.log | wc -l)
    errors=$(sum "ERROR SUMMARY" errors)
    definite=$(sum "definitely lost" bytes)
    possible=$(sum "possibly lost" bytes)
    suppressed=$(sum "suppressed" bytes)
    if [ $trc -ne 0 ] || [ "$errors" != 0 ] || [ "$definite" != 0 ]; then
        verdict="FAILED (exit $trc)"
        touch "$logs/$name.failed"
    fi
    printf '%-24s %4ds %2d proc  errors %s, definitely lost %s B, possibly lost %s B, suppressed %s B  %s\n' \
        "$name" $((SECONDS - t0)) "$procs" "$errors" "$definite" "$possible" "$suppressed" \
        "$verdict" >"$logs/$name.summary"
}

skipped=(test_train test_recipe_accuracy)
# Slowest first, so that the two job slots finish close together.
exes=()
for slow in test_gemm test_badinput test_model test_metrics; do
    [ -x "$build/tests/$slow" ] && exes+=("$build/tests/$slow")
done
for exe in "$build"/tests/test_* "$build"/tests/fuzz/fuzz_replay_*; do
    [ -x "$exe" ] || continue
    case " ${exes[*]} " in *" $exe "*) continue ;; esac
    case " ${skipped[*]} " in *" $(basename "$exe") "*) continue ;; esac
    exes+=("$exe")
done
if [ ${#exes[@]} -eq 0 ]; then
    echo "check-valgrind: FAILED, no test executable in $build/tests" >&2
    exit 1
fi
start=$SECONDS
for exe in "${exes[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run_one "$exe" &
done
wait
cat "$logs"/*.summary
failed=()
for f in "$logs"/*.failed; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .failed)
    failed+=("$name")
    echo "--- $name"
    grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|[0-9,]+ bytes in .* definitely)' \
        "$logs/$name".*.log | head -10 || true
    tail -20 "$logs/$name.out"
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "check-valgrind: FAILED: ${failed[*]} (logs in $logs)"
    exit 1
fi
echo "check-valgrind: OK, ${#exes[@]} executables, 0 errors, 0 bytes definitely lost, in $((SECONDS - start)) s with $jobs jobs (skipped: ${skipped[*]})"

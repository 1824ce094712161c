#!/usr/bin/env bash
# The whole ctest suite (unit tests, CLI tests, fuzz corpus replays, the
# short MNIST training run, header and export checks) under AddressSanitizer
# + UndefinedBehaviorSanitizer: builds with -DCVAE_SANITIZE=ON (gcc,
# -fsanitize=address,undefined -fno-sanitize-recover=all) in its own build
# directory and runs ctest there.
#
# Sanitizer reports go to files (ASAN/UBSAN log_path), not to stderr, so that
# a report from a child process whose failure a test expects (the CLI tests
# check exit codes and messages of failing commands; test_robust and
# test_badinput fork) cannot hide behind that test's expected failure: any
# report file fails the run, whatever ctest says.
#
# No test needs to be skipped: the forked RLIMIT_FSIZE, uid-drop and tmpfs
# children of test_robust and the 2-GEMM-thread test run under ASan as they
# do natively (LeakSanitizer checks each child process at its exit too).
#
# Usage: scripts/check-sanitize.sh [build-dir]   (default: build-asan)
# Environment: CONVVAE_DATA (default ./data) as for scripts/test.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-asan}

# Without MPI: its run-time's own allocations are not ours to report; the
# library's data-parallel path is checked here by test_data_parallel.
cmake -S "$here" -B "$build" -DCVAE_SANITIZE=ON -DCVAE_WERROR=ON -DCVAE_WITH_MPI=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCVAE_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j2 >/dev/null

# A build that silently lost its instrumentation would pass everything.
for bin in "$build/tests/test_config" "$build/libconvvae.so"; do
    syms=$(nm -D "$bin" 2>/dev/null || true) # not piped into grep -q: SIGPIPE + pipefail
    if ! grep -q __asan_init <<<"$syms" || ! grep -q __ubsan_handle_ <<<"$syms"; then
        echo "check-sanitize: FAILED, $bin is not instrumented with ASan and UBSan" >&2
        exit 1
    fi
done

reports="$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export CONVVAE_DATA=${CONVVAE_DATA:-$here/data}
# test_recipe_accuracy checks accuracy, which the plain ctest run already
# does; here its 8x8 case alone runs the default recipe's whole path (its
# other cases take minutes under ASan and run the same code on other shapes).
export CVAE_ACCURACY_QUICK=1

# test_train's run under CVAE_ISA=avx2 trains real MNIST again (40 s here);
# the AVX2 kernels it reaches run under the sanitizers in the layers' own
# *_isa_avx2 tests.
log="$build/ctest.log"
set +e
ctest --test-dir "$build" --output-on-failure -E '^test_train_isa_avx2$' >"$log" 2>&1
rc=$?
set -e
summary=$(grep -E 'tests passed|tests failed' "$log" | tail -1)
nreports=$(find "$reports" -type f | wc -l)
if [ "$nreports" -ne 0 ]; then
    echo "check-sanitize: $nreports sanitizer report(s):" >&2
    for f in "$reports"/*; do
        echo "--- $f" >&2
        head -60 "$f" >&2
    done
    rc=1
fi
if [ $rc -ne 0 ]; then
    grep -E '\*\*\*Failed|Not Run|Timeout|Exception' "$log" >&2 || true
    echo "--- end of $log ---" >&2
    tail -60 "$log" >&2
    echo "check-sanitize: FAILED (ASan+UBSan): ${summary:-no ctest summary}, $nreports sanitizer reports"
    exit 1
fi
echo "check-sanitize: OK (ASan+UBSan): $summary, 0 sanitizer reports"

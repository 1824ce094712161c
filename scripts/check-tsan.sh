#!/usr/bin/env bash
# ThreadSanitizer check of tests/test_threads.c (the worker pool),
# tests/test_data_parallel.c (ranks as threads, and the helper thread that
# overlaps the gradient's reduction with the backward pass), the layers'
# and heads' tests that run two products as the parts of one job
# (tests/test_dense.c, tests/test_vae_head.c), and the tests of the split
# products with work after each part and of Adam's ranges cut at a share of
# the work (tests/test_gemm.c, tests/test_optimizer.c), of the loss terms
# cut into the threads' rows (tests/test_loss.c), of the convolutions'
# batches cut at the threads' share (tests/test_conv.c) and of the manifold
# step's runs shared out to the threads (tests/test_manifold.c): builds
# libconvvae and those tests with clang -fsanitize=thread in its own build
# directory and runs them. Fails on any TSan report (halt_on_error=1, exit
# code 66).
#
# All of the test runs, the 2-thread determinism test included: the
# library's worker pool is plain pthreads, compiled with the instrumentation,
# and BLIS is always asked for one thread, so it runs in the calling thread
# and no synchronisation happens where TSan cannot see it (an uninstrumented
# OpenMP runtime would hide its barriers). No suppressions are used.
#
# Usage: scripts/check-tsan.sh [build-dir]   (default: build-tsan)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-tsan}
cc=${CC:-clang}
command -v "$cc" >/dev/null || { echo "check-tsan: $cc not found (apt-get install clang)" >&2; exit 2; }

CC=$cc cmake -S "$here" -B "$build" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
    -DCVAE_WERROR=ON -DCVAE_BUILD_TOOL=OFF -DCVAE_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j2 --target test_threads test_data_parallel test_dense test_vae_head test_gemm test_optimizer test_loss test_conv test_manifold >/dev/null

export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
for t in test_threads test_data_parallel test_dense test_vae_head test_gemm test_optimizer test_loss test_conv test_manifold; do
    log="$build/tsan-$t.log"
    set +e
    "$build/tests/$t" >"$log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] && grep -q "unexpected memory mapping" "$log"; then
        # clang 14's TSan cannot map its shadow with the high mmap
        # randomisation of recent kernels; without ASLR it can.
        setarch "$(uname -m)" -R "$build/tests/$t" >"$log" 2>&1
        rc=$?
    fi
    set -e
    cat "$log"
    if grep -q "WARNING: ThreadSanitizer" "$log"; then
        echo "check-tsan: FAILED, ThreadSanitizer reported a problem in $t (see above)" >&2
        exit 1
    fi
    if [ $rc -ne 0 ]; then
        echo "check-tsan: FAILED, $t exited with $rc" >&2
        exit $rc
    fi
done
echo "check-tsan: OK, no ThreadSanitizer reports (test_threads, test_data_parallel, test_dense, test_vae_head, test_gemm, test_optimizer, test_loss, test_conv, test_manifold)"

#!/usr/bin/env bash
# Run every test of libconvvae: installs what is missing (Debian 12), fetches
# the data sets, builds with warnings as errors (gcc, and clang when
# available) and runs the ctest suite (C unit tests, CLI tests, the short
# training run on real MNIST). Prints the runners' summary lines.
# Usage: scripts/test.sh [build-dir]   (default: build-test)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build=${1:-build-test}

scripts/install-deps.sh
scripts/fetch-data.sh >/dev/null
export CONVVAE_DATA="$here/data"
export CVAE_REQUIRE_DATA=1

cmake -S . -B "$build" -DCVAE_WERROR=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 >/dev/null

if command -v clang >/dev/null; then
    # The code must be warning-free with clang too: compile only, the tests
    # run on gcc's build.
    CC=clang cmake -S . -B "$build-clang" -DCVAE_WERROR=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build-clang" -j2 >/dev/null
    echo "clang build: OK (-Wall -Wextra -Wpedantic -Werror)"
fi

/usr/bin/python3 scripts/gen-api-doc.py --check
scripts/gen-cli-doc.sh --check "$build/src/convvae"

log="$build/ctest.log"
set +e
ctest --test-dir "$build" -V >"$log" 2>&1
rc=$?
set -e
# cmocka's per-executable summaries, then ctest's.
# Named as ctest names them: the *_isa_* runs repeat an executable under
# CVAE_ISA (tests/CMakeLists.txt).
awk '/^ *Start +[0-9]+: /{n=$2; sub(":","",n); name[n]=$3}
     /^[0-9]+: \[ *(PASSED|FAILED|SKIPPED) *\]/{n=$1; sub(":","",n); $1=""; printf "%-24s%s\n", name[n], $0}' "$log" || true
grep -E 'tests passed|tests failed|Total Test time|\*\*\*Failed|Not Run' "$log" || true
if [ $rc -ne 0 ]; then
    echo "--- output of failing tests ---"
    ctest --test-dir "$build" --rerun-failed --output-on-failure 2>&1 | tail -100
fi
# The Python package (ctypes), with numpy and with numpy hidden.
scripts/test-python.sh "$build" || rc=1
# Install to a temporary prefix, consumers against it, header and ABI checks.
scripts/check-install.sh "$build-install" || rc=1

# Robustness jobs (docs/robustness.md); the fuzz corpus replays already ran
# in ctest. Each builds in its own directory and logs to $build/<job>.log;
# one summary line each, the log's end on failure.
robust() {
    local name=$1 lines=$2 t0=$SECONDS
    shift 2
    local log="$build/$name.log"
    if "$@" >"$log" 2>&1; then
        tail -n "$lines" "$log"
        echo "$name: OK in $((SECONDS - t0)) s"
    else
        tail -n 60 "$log"
        echo "$name: FAILED in $((SECONDS - t0)) s (log: $log)"
        rc=1
    fi
}
# libFuzzer, each fuzzer for FUZZ_SECONDS (one line per fuzzer).
robust check-fuzz 3 env FUZZ_SECONDS="${FUZZ_SECONDS:-60}" scripts/check-fuzz.sh
# The whole ctest suite under ASan + UBSan.
robust check-sanitize 1 scripts/check-sanitize.sh
# The unit tests and corpus replays under valgrind memcheck.
robust check-valgrind 1 scripts/check-valgrind.sh
# test_threads under ThreadSanitizer.
robust check-tsan 1 scripts/check-tsan.sh
exit $rc

#!/usr/bin/env bash
# Fuzz libconvvae's parsers with libFuzzer (clang, -fsanitize=fuzzer,address,
# undefined): the IDX reader raw and gzip (fuzz_idx), the checkpoint reader
# and loader (fuzz_checkpoint), the config text input (fuzz_config) and image
# decoding, PNG and JPEG (fuzz_image). See
# docs/robustness.md.
#
# Builds with -DCVAE_FUZZ=ON in its own build directory, then runs each
# fuzzer, one at a time, for FUZZ_SECONDS, starting from the seed corpus in
# tests/fuzz/corpus/<name> plus what earlier runs in the same build directory
# found (<build>/corpus/<name>; the seed directory is never written). Fails on
# any finding: crash, sanitizer report, leak, failed harness check, timeout
# (> 10 s for one input) or out-of-memory (> 2 GB). The input that caused it
# is saved as <build>/artifacts/<name>-crash-* (or leak-, timeout-, oom-);
# replay it with: <build>/tests/fuzz/fuzz_<name> <that file>.
#
# Prints one line per fuzzer: executions (libFuzzer's final
# stat::number_of_executed_units), coverage (cov: edges, ft: features),
# corpus size and executions per second.
#
# Usage: scripts/check-fuzz.sh [build-dir]      (default: build-fuzz)
# Environment: FUZZ_SECONDS  seconds per fuzzer (default 60)
#              FUZZERS       which ones (default "idx checkpoint config image")
#              CC            compiler (default clang-14, else clang)
#              FUZZ_ARGS     extra libFuzzer flags (e.g. "-max_len=65536")
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-fuzz}
secs=${FUZZ_SECONDS:-60}
fuzzers=${FUZZERS:-idx checkpoint config image}
cc=${CC:-}
if [ -z "$cc" ]; then
    cc=clang-14
    command -v "$cc" >/dev/null || cc=clang
fi
command -v "$cc" >/dev/null ||
    { echo "check-fuzz: $cc not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }

CC=$cc cmake -S "$here" -B "$build" -DCVAE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCVAE_WERROR=ON -DCVAE_BUILD_TOOL=OFF -DCVAE_BUILD_BENCH=OFF -DCVAE_BUILD_EXAMPLES=OFF \
    -DCVAE_INSTALL=OFF >/dev/null
targets=()
for f in $fuzzers; do targets+=("fuzz_$f"); done
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null

# Inputs larger than the seeds by a margin (a tiny checkpoint is ~5 KB).
declare -A maxlen=([idx]=4096 [checkpoint]=16384 [config]=2048 [image]=4096)
export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
rc=0
mkdir -p "$build/artifacts"
for f in $fuzzers; do
    work="$build/corpus/$f"
    mkdir -p "$work"
    log="$build/fuzz_$f.log"
    dict=()
    [ -f "$here/tests/fuzz/$f.dict" ] && dict=(-dict="$here/tests/fuzz/$f.dict")
    t0=$SECONDS
    set +e
    # shellcheck disable=SC2086
    "$build/tests/fuzz/fuzz_$f" "$work" "$here/tests/fuzz/corpus/$f" "${dict[@]}" \
        -max_total_time="$secs" -max_len="${maxlen[$f]:-4096}" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/artifacts/$f-" \
        ${FUZZ_ARGS:-} >"$log" 2>&1
    frc=$?
    set -e
    took=$((SECONDS - t0))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    summary="fuzz_$f: ${execs:-?} executions in ${took} s (${speed:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
    if [ $frc -ne 0 ] || grep -qE '^==[0-9]+==ERROR|runtime error:|fuzz check failed' "$log"; then
        echo "$summary: FAILED (exit $frc)"
        grep -E 'ERROR|runtime error|fuzz check failed|SUMMARY|Test unit written|artifact_prefix' "$log" | head -20
        echo "--- last lines of $log ---"
        tail -40 "$log"
        rc=1
    else
        echo "$summary: OK"
    fi
done
exit $rc

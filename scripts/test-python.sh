#!/usr/bin/env bash
# Run the Python package's tests (python/tests) against a freshly built
# libconvvae: once with numpy and once with numpy hidden. Prints pytest's
# summary lines; on failure also the failing output.
# Usage: scripts/test-python.sh [build-dir]   (default: build-test, as scripts/test.sh)
# Uses /usr/bin/python3 (Debian's numpy and pytest); override with PYTHON=...
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build=${1:-build-test}
py=${PYTHON:-/usr/bin/python3}

if ! "$py" -c 'import numpy, pytest' 2>/dev/null || ! command -v cmake >/dev/null; then
    scripts/install-deps.sh
fi

# Configure only if the build directory is new; the library target is
# rebuilt incrementally (a no-op after scripts/test.sh).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { [ -f "$build/CMakeCache.txt" ] ||
       cmake -S . -B "$build" -DCVAE_WERROR=ON -DCMAKE_BUILD_TYPE=Release; } >"$log" 2>&1 ||
   ! cmake --build "$build" -j2 --target convvae >"$log" 2>&1; then
    cat "$log"
    echo "test-python: building libconvvae in $build failed" >&2
    exit 1
fi
lib=$(cd "$build" && pwd)/libconvvae.so.0
[ -e "$lib" ] || { echo "test-python: $lib was not built" >&2; exit 1; }
export CONVVAE_LIBRARY="$lib"
export PYTHONDONTWRITEBYTECODE=1

rc=0
run() {  # run <label> [env assignments...]
    local label=$1
    shift
    if env "$@" "$py" -m pytest -q -p no:cacheprovider python/tests >"$log" 2>&1; then
        echo "python tests ($label): $(tail -n 1 "$log")"
    else
        rc=1
        echo "python tests ($label): FAILED"
        cat "$log"
    fi
}
run "numpy $("$py" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo absent)"
run "numpy hidden" CONVVAE_HIDE_NUMPY=1
exit $rc

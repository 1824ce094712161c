#!/usr/bin/env bash
# Install the Debian 12 packages libconvvae needs to build, test and fetch its
# data. Idempotent: does nothing (and needs no network) when all are present.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail

pkgs=(build-essential cmake pkg-config libblis-dev libarpack2-dev libcmocka-dev zlib1g-dev libpng-dev libjpeg62-turbo-dev
      # what a fully static link needs behind libarpack.a (check-install's -static consumers)
      liblapack-dev libgfortran-12-dev
      python3 python3-numpy python3-pytest dataset-fashion-mnist ca-certificates
      # robustness jobs: clang build, libFuzzer and TSan runtimes, valgrind
      clang clang-14 libclang-rt-14-dev valgrind
      # mpirun -np N convvae (data-parallel training) and its tests; mpi4py for
      # the Python example
      libopenmpi-dev openmpi-bin python3-mpi4py)
# The machine's own Node.js/npm (if any) is kept; Debian's npm would conflict with it.
command -v npm >/dev/null || pkgs+=(npm)
pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Another apt process (unattended-upgrades, a second job) may hold apt's
# locks for a while: wait for them, up to INSTALL_DEPS_LOCK_TIMEOUT seconds,
# instead of failing at once. apt-get install waits for the dpkg lock itself
# (DPkg::Lock::Timeout); apt-get update takes the package lists' lock, which
# that option does not cover (apt 2.6), so it is retried while that lock is
# the reason it failed.
lock_timeout=${INSTALL_DEPS_LOCK_TIMEOUT:-900}
apt_update() {
    local waited=0 out
    while :; do
        if out=$($SUDO apt-get update -qq 2>&1); then
            return 0
        fi
        if [[ $out == *"Could not get lock"* ]] && [ "$waited" -lt "$lock_timeout" ]; then
            [ "$waited" -eq 0 ] &&
                echo "install-deps: another apt process holds its lock; waiting (up to ${lock_timeout}s)" >&2
            sleep 5
            waited=$((waited + 5))
            continue
        fi
        echo "$out" >&2
        return 1
    done
}
apt_update
$SUDO apt-get install -y -qq -o DPkg::Lock::Timeout="$lock_timeout" --no-install-recommends \
    "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Install the Debian 12 packages libconvvae needs to build, test and fetch its
# data. Idempotent: does nothing (and needs no network) when all are present.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail

pkgs=(build-essential cmake pkg-config libblis-dev libarpack2-dev libcmocka-dev zlib1g-dev libpng-dev
      python3 python3-numpy python3-pytest dataset-fashion-mnist ca-certificates
      # robustness jobs: clang build, libFuzzer and TSan runtimes, valgrind
      clang clang-14 libclang-rt-14-dev valgrind)
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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

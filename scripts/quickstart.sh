#!/usr/bin/env bash
# Set up a fresh Debian 12 machine and run the main job: install packages,
# fetch MNIST and Fashion-MNIST, build, and train the default model on MNIST
# (per-epoch loss and test accuracy; checkpoint in convvae-mnist.safetensors).
# Extra arguments go to `convvae train` (e.g. --epochs 5).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/install-deps.sh
scripts/fetch-data.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec build/src/convvae train --dataset mnist --data-dir "$here/data" "$@"

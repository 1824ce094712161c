#!/usr/bin/env python3
"""Data-parallel training from Python with mpi4py (Debian: python3-mpi4py).

    CONVVAE_LIBRARY=build/libconvvae.so.0 PYTHONPATH=python \\
        mpirun -np 2 /usr/bin/python3 examples/python/train_mpi.py [train-count] [--epochs 1]

Every process reads the same MNIST training images and builds the same
model; the library asks for each sum over the processes and mpi4py's
Allreduce answers. batch_size is the global batch, so N processes train the
model one process would. Each process then predicts its part of the images
(convvae.shard) and rank 0 gathers the clusters, scores them and saves the
model.
"""
import argparse
import os
import sys

import numpy as np
from mpi4py import MPI

import convvae

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_digits import read_idx  # noqa: E402  (the IDX reader of the other example)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("count", type=int, nargs="?", default=10000, help="training images")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", default="mnist-mpi.safetensors")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()

    data_dir = os.path.join(os.environ.get("CONVVAE_DATA", "data"), "mnist")
    images = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte"))[:args.count]
    labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte"))[:args.count]
    data = convvae.Dataset.from_array(images[:, None, :, :])

    model = convvae.Model(seed=42)  # the same seed on every process

    def allreduce(buf):
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    model.set_data_parallel(rank, size, allreduce)
    # Sum the gradient while the backward pass runs (allreduce is then called
    # from a helper thread; mpi4py initialises MPI for that), and compute
    # each process's share of a batch in parts of at most 100 images.
    if MPI.Query_thread() >= MPI.THREAD_SERIALIZED:
        model.set_reduce_overlap(True)
    model.micro_batch = 100

    def progress(p):
        if rank == 0 and p.batch == p.batches:
            print("epoch %d  loss %.2f" % (p.epoch + 1, p.losses.total), flush=True)

    model.train(data, epochs=args.epochs, progress=progress)

    # Inference is local: each process its part, gathered on rank 0.
    begin, n = convvae.shard(len(images), rank, size)
    mine = model.predict(images[begin:begin + n, None, :, :].astype(np.float32) / 255.0) \
        if n else np.empty(0, np.int32)
    parts = comm.gather(mine, root=0)
    if rank == 0:
        clusters = np.concatenate(parts)
        acc = convvae.cluster_metrics(labels.astype(np.int32), clusters)["acc"]
        print("%d processes: training ACC %.4f" % (size, acc))
        model.save(args.out)  # every process holds the same model


if __name__ == "__main__":
    main()

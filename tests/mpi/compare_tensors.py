#!/usr/bin/env python3
"""Compare the float32 tensors of two safetensors checkpoints.

Usage: compare_tensors.py A B TOL
Prints the largest max|a - b| / max|b| of a tensor (its largest difference
against its own scale, so a weight that happens to be near 0 is not judged
alone) and exits 1 if it is not below TOL, or if the tensor names or shapes
differ. Needs numpy.
"""
import json
import struct
import sys

import numpy as np


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"])
    return out


def main():
    a, b, tol = tensors(sys.argv[1]), tensors(sys.argv[2]), float(sys.argv[3])
    if a.keys() != b.keys():
        print("tensor names differ:", sorted(a.keys() ^ b.keys()))
        return 1
    worst, where = 0.0, ""
    for name in a:
        if a[name].shape != b[name].shape:
            print("shapes differ for", name)
            return 1
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        d = float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30)) if x.size else 0.0
        if d > worst:
            worst, where = d, name
    print("max relative difference %.3g (%s) over %d tensors, tolerance %g"
          % (worst, where or "-", len(a), tol))
    return 0 if worst < tol else 1


if __name__ == "__main__":
    sys.exit(main())

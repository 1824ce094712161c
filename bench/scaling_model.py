#!/usr/bin/env python3
"""Cost model of data-parallel training (docs/scaling.md): ring all-reduce
time of the gradient against the compute time of a step, and the
per-process batch that keeps communication under a share of the step.

    bench/scaling_model.py [--params 4139939] [--ms-per-image 0.71]
                           [--latency-us 20] [--share 0.2]

Computed, not measured: a ring all-reduce of S bytes over N processes moves
2 (N-1)/N S bytes through each link and takes 2 (N-1) latency steps; the two
small reductions of a step (batch statistics, stop flag) cost 2 log2(N)
latencies each. Nothing overlaps (the library reduces once, after the whole
backward pass).
"""
import argparse
import math


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=int, default=4139939,
                    help="floats in the gradient (default model on MNIST)")
    ap.add_argument("--ms-per-image", type=float, default=0.71,
                    help="compute time of one image's forward+backward on one process")
    ap.add_argument("--latency-us", type=float, default=20.0, help="per-message latency")
    ap.add_argument("--share", type=float, default=0.2, help="communication share allowed")
    a = ap.parse_args()
    size = a.params * 4
    lat = a.latency_us * 1e-6
    print("gradient: %d floats = %.2f MB per step" % (a.params, size / 1e6))
    print("| link | nodes | all-reduce ms | per-process batch for <= %d%% | global batch |"
          % round(100 * a.share))
    print("|---|---|---|---|---|")
    for gbit in (10, 25, 100):
        bw = gbit * 1e9 / 8
        for n in (16, 64):
            ring = 2 * (n - 1) / n * size / bw + 2 * (n - 1) * lat
            small = 2 * (2 * math.log2(n) * lat)
            comm = ring + small
            # comm <= share * (b * t + comm)  <=>  b >= comm (1 - share) / (share t)
            b = math.ceil(comm * (1 - a.share) / (a.share * a.ms_per_image * 1e-3))
            print("| %d Gb/s | %d | %.1f | %d | %d |" % (gbit, n, comm * 1e3, b, b * n))


if __name__ == "__main__":
    main()

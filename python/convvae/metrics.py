"""Clustering metrics (cvae_cluster_metrics)."""
import ctypes

from . import _buffers
from ._native import lib, invalid

__all__ = ["cluster_metrics"]

METRIC_NAMES = ("acc", "purity", "nmi", "ari")


def _metrics_call(fn, *args):
    vals = [ctypes.c_double() for _ in METRIC_NAMES]
    fn(*args, *(ctypes.byref(v) for v in vals))
    return {name: v.value for name, v in zip(METRIC_NAMES, vals)}


def cluster_metrics(labels, clusters):
    """Compare a clustering with ground-truth labels (equal-length integer
    sequences, values in [0, 65535]).

    Returns {"acc", "purity", "nmi", "ari"}: accuracy under the best
    one-to-one cluster-to-label mapping (Hungarian), purity, normalised
    mutual information (arithmetic mean) and adjusted Rand index.
    """
    lk, lp, n = _buffers.ints_in(labels, "i32", "labels")
    ck, cp, m = _buffers.ints_in(clusters, "i32", "clusters")
    if n != m:
        raise invalid("%d labels but %d clusters" % (n, m))
    out = _metrics_call(lib.cvae_cluster_metrics, lp, cp, n)
    del lk, ck
    return out

"""convvae: image clustering with a convolution-optimised VAE (libconvvae),
through ctypes.

    import convvae
    with convvae.Dataset.from_idx("train-images-idx3-ubyte",
                                  "train-labels-idx1-ubyte") as data, \\
         convvae.Model(latent_dim=50, clusters=10, epochs=5) as model:
        model.train(data)
        print(model.evaluate(data)["acc"])

The shared library is found through $CONVVAE_LIBRARY (a path), then a copy
next to this package, then the system loader (libconvvae.so.0). numpy is
optional: with it, arrays go in and come out without copies; without it,
bytes / bytearray / array.array / memoryview go in and array.array comes out.
Every failure raises ConvVAEError (status name, code and the library's
message).
"""
from . import _native
from ._buffers import HAVE_NUMPY
from .config import (MAX_BRANCHES, MAX_CLUSTERS, Activation, Branch, CategoryInput, Config,
                     ManifoldStart, OptimizerKind, OptionInfo, Prior, Recipe,
                     ReconTarget)
from .dataset import Dataset
from .errors import ConvVAEError, Status
from .metrics import cluster_metrics
from .model import Losses, Model, Progress, shard
from .optimizer import Optimizer

__version__ = "0.1.0"

#: Path or name the shared library was loaded from.
library_path = _native.library_path

__all__ = ["Activation", "Branch", "CategoryInput", "Config", "ConvVAEError", "Dataset",
           "HAVE_NUMPY", "Losses", "MAX_BRANCHES", "MAX_CLUSTERS", "ManifoldStart", "Model", "Optimizer",
           "OptimizerKind", "OptionInfo", "Prior", "Progress", "Recipe", "ReconTarget", "Status",
           "cluster_metrics", "get_num_threads", "last_error", "library_path",
           "library_version", "library_version_number", "set_num_threads", "shard", "strerror"]


def library_version():
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _native.lib.cvae_version_string().decode()


def library_version_number():
    """The loaded library's version as 0x00MMmmpp."""
    return _native.lib.cvae_version_number()


def strerror(status):
    """Short English description of a status code."""
    return _native.lib.cvae_strerror(_native.to_int(status, "status")).decode()


def last_error():
    """The library's message for the last failure on this thread ("" if
    none). ConvVAEError already carries it; this is for completeness."""
    return _native.lib.cvae_last_error().decode("utf-8", "replace")


def set_num_threads(n):
    """Threads the GEMM kernels may use, process-wide (n >= 1). Note that
    Model.train applies the model config's ``threads`` option."""
    _native.lib.cvae_set_num_threads(_native.to_int(n, "threads"))


def get_num_threads():
    return _native.lib.cvae_get_num_threads()

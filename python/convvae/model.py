"""The clustering VAE (cvae_model): train, infer, generate, save, load."""
import ctypes
from collections import namedtuple

from . import _buffers, _native
from ._handle import Handle
from ._native import lib, invalid, to_int, to_path, INT64_MAX, UINT64_MAX
from .config import Config
from .dataset import Dataset
from .errors import ConvVAEError, Status
from .metrics import _metrics_call
from .optimizer import Optimizer

__all__ = ["Model", "Losses", "Progress", "shard"]

LOSS_NAMES = ("total", "recon", "kl", "category", "balance")
Losses = namedtuple("Losses", LOSS_NAMES)
Losses.__doc__ = """Loss terms in the library's order (CVAE_LOSS_*): total =
lambda*recon + kl + category + balance; recon is unweighted."""

Progress = namedtuple("Progress", "epoch batch batches losses")
Progress.__doc__ = """What a progress callback receives after every
mini-batch: epoch (0-based, counting every epoch the model has trained),
batch (1..batches), batches per epoch, and losses (Losses, running means
over the epoch so far)."""


def _dataset(data, what):
    if not isinstance(data, Dataset):
        raise TypeError("%s needs a Dataset, not %s (build one with Dataset(images, labels))"
                        % (what, type(data).__name__))
    return data._p()


def _losses(ptr, n):
    vals = [ptr[i] for i in range(min(n, len(LOSS_NAMES)))]
    vals += [float("nan")] * (len(LOSS_NAMES) - len(vals))
    return Losses(*vals)


class Model(Handle):
    """A convolution-optimised VAE with a category head.

    ``Model(config)`` builds untrained weights from a Config (or a mapping
    of options; keyword options are applied on top of a copy), seeded by
    the config's seed. ``Model.load(path)`` reads a checkpoint.

    Inference methods take images as a numpy array (N, C, H, W), (N, H, W)
    when C == 1, one image (C, H, W) / (H, W), or a flat buffer of N*C*H*W
    values; float32 in [0, 1] (uint8 is scaled by 1/255). A C-contiguous
    float32 array is read in place. Every inference method also takes a
    Dataset.
    """

    __slots__ = ("_c", "_h", "_w", "_k", "_s", "_reduce_cb")
    _destroy_name = "cvae_model_destroy"

    def __init__(self, config=None, **options):
        own = None
        if config is None or not isinstance(config, Config) or options:
            own = config.copy() if isinstance(config, Config) else Config(config)
            own.update(options)
            config = own
        try:
            ptr = _native.ModelP()
            lib.cvae_model_create(config._p(), ctypes.byref(ptr))
        finally:
            if own is not None:
                own.close()
        self._adopt(ptr)
        self._cache_shape()

    @classmethod
    def create(cls, config=None, **options):
        """Same as Model(config, **options)."""
        return cls(config, **options)

    @classmethod
    def load(cls, path):
        """A model saved by save(); it predicts bit-identically. Missing or
        unreadable files raise CVAE_E_IO; corrupt, truncated, foreign or
        incompatible ones CVAE_E_FORMAT."""
        ptr = _native.ModelP()
        lib.cvae_model_load(to_path(path), ctypes.byref(ptr))
        obj = cls._wrap(ptr)
        obj._cache_shape()
        return obj

    def save(self, path):
        """Write a safetensors checkpoint atomically (a failed save leaves any
        previous file intact). It holds the weights and, if the model's own
        optimizer has state (see train() and clear_optimizer()), the
        optimizer's moments and step count, so a loaded model trains on
        exactly as this one would. CVAE_E_IO on failure."""
        lib.cvae_model_save(self._p(), to_path(path))

    def _cache_shape(self):
        with self.config as cfg:
            self._c, self._h, self._w = cfg.input_shape
            self._k = cfg.clusters
            self._s = cfg.latent_dim

    # -- properties --------------------------------------------------------------

    @property
    def config(self):
        """A copy of the model's configuration (a new Config each time)."""
        ptr = _native.ConfigP()
        lib.cvae_model_get_config(self._p(), ctypes.byref(ptr))
        return Config._wrap(ptr)

    @property
    def num_params(self):
        """Number of trainable scalars."""
        v = ctypes.c_int64()
        lib.cvae_model_num_params(self._p(), ctypes.byref(v))
        return v.value

    @property
    def epochs_done(self):
        """Epochs trained so far (saved in checkpoints)."""
        v = ctypes.c_int()
        lib.cvae_model_epochs_done(self._p(), ctypes.byref(v))
        return v.value

    def manifold_step_due(self, data):
        """True when the next train() on this Dataset starts with the
        manifold recipe's clustering step (it encodes and clusters the
        whole data set, about as long as an epoch)."""
        v = ctypes.c_int()
        lib.cvae_model_manifold_step_due(self._p(), _dataset(data, "manifold_step_due()"),
                                         ctypes.byref(v))
        return bool(v.value)

    @property
    def optimizer_steps(self):
        """Steps taken by the model's own optimizer (restored by load()); 0
        if it has none."""
        v = ctypes.c_int64()
        lib.cvae_model_optimizer_steps(self._p(), ctypes.byref(v))
        return v.value

    def clear_optimizer(self):
        """Drop the model's own optimizer and its state: later saves hold the
        weights only (a third of the size with Adam), later training starts
        a fresh optimizer."""
        lib.cvae_model_clear_optimizer(self._p())

    @property
    def image_shape(self):
        """(channels, height, width) the model takes."""
        self._p()
        return (self._c, self._h, self._w)

    @property
    def clusters(self):
        """Number of clusters k."""
        self._p()
        return self._k

    @property
    def latent_dim(self):
        self._p()
        return self._s

    def __repr__(self):
        if self.closed:
            return "<Model (closed)>"
        return "<Model %dx%dx%d k=%d latent=%d params=%d epochs_done=%d>" % (
            self._c, self._h, self._w, self._k, self._s, self.num_params, self.epochs_done)

    # -- training ------------------------------------------------------------------

    def set_data_parallel(self, rank, size, reduce=None):
        """Make this model process ``rank`` of ``size`` training data-parallel
        (see cvae_model_set_data_parallel in convvae.h). ``reduce(buf)`` must
        sum ``buf`` over all processes in place, e.g. with mpi4py
        ``comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)``; ``buf`` is a float32
        numpy array (a ctypes float array without numpy) that is only valid
        during the call. Every process passes the same whole data set to
        train() and loss(); batch_size is the global batch. An exception in
        reduce makes train() raise ConvVAEError (CVAE_E_IO).
        ``set_data_parallel(0, 1)`` returns to one process."""
        mp = self._p()
        rank, size = to_int(rank, "rank"), to_int(size, "size")
        if reduce is None:
            cb = _native.REDUCE_FN()  # NULL
        else:
            if not callable(reduce):
                raise TypeError("reduce must be callable")

            def trampoline(buf, n, user):
                # Nothing may propagate into C: a failure is reported as such.
                try:
                    if _buffers.HAVE_NUMPY:
                        # a plain float32 view: the '<f' buffer format of
                        # ctypeslib's array is not understood by every consumer
                        np = _buffers.np
                        arr = np.ctypeslib.as_array(buf, shape=(n,)).view(np.float32)
                    else:
                        arr = (ctypes.c_float * n).from_address(ctypes.addressof(buf.contents))
                    reduce(arr)
                    return 0
                except BaseException:  # noqa: B902
                    return 1

            cb = _native.REDUCE_FN(trampoline)
        lib.cvae_model_set_data_parallel(mp, rank, size, cb, None)
        self._reduce_cb = cb  # C calls it until it is replaced

    @property
    def micro_batch(self):
        """Most images computed at once in training; a larger batch (or
        data-parallel share of it) is computed in parts whose gradients are
        added before the update (gradient accumulation; see
        cvae_model_set_micro_batch). 0, the default: the whole batch at
        once. Not saved in checkpoints."""
        v = ctypes.c_int()
        lib.cvae_model_get_micro_batch(self._p(), ctypes.byref(v))
        return v.value

    @micro_batch.setter
    def micro_batch(self, rows):
        lib.cvae_model_set_micro_batch(self._p(), to_int(rows, "micro_batch"))

    def set_reduce_overlap(self, on=True):
        """Sum the gradient over the processes in parts while the backward
        pass runs (see cvae_model_set_reduce_overlap): ``reduce`` is then
        called from a helper thread, one call at a time, which mpi4py's
        default thread level allows."""
        lib.cvae_model_set_reduce_overlap(self._p(), 1 if on else 0)

    def train(self, data, epochs=None, optimizer=None, progress=None):
        """Train for ``epochs`` more epochs (default: the config's epochs) on
        a Dataset whose images match the model's input shape.

        optimizer: an Optimizer, or None for the model's own one built from
        its config (kept across calls and saved with the model).

        progress: None or a callable taking a Progress after every
        mini-batch; a truthy return value stops training after that batch.
        An exception raised by the callback (KeyboardInterrupt included)
        also stops training and is re-raised here once the library has
        returned.

        Returns True when all epochs ran, False when the callback stopped
        training (the model stays consistent: it can be saved, evaluated
        and trained further; the interrupted epoch does not count in
        epochs_done, and the next train() on data of the same size
        finishes it first, in the same order, so stopping and going on
        trains exactly as not stopping). Raises ConvVAEError:
        CVAE_E_INVALID_ARG (shape mismatch), CVAE_E_NUMERIC (non-finite
        loss; the weights are those before the failing step).
        """
        mp, dp = self._p(), _dataset(data, "train()")
        if self._busy:
            raise ConvVAEError(Status.STATE, "train() called from this model's own progress "
                               "callback")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError("optimizer must be an Optimizer or None")
        op = optimizer._p() if optimizer is not None else _native.OptimizerP()
        if epochs is None:
            with self.config as cfg:
                epochs = cfg.epochs
        epochs = to_int(epochs, "epochs")
        raised = []
        if progress is None:
            cb = _native.PROGRESS_FN()  # NULL
        else:
            if not callable(progress):
                raise TypeError("progress must be callable")

            def trampoline(user, epoch, batch, batches, losses, num_losses):
                # Nothing may propagate into C: keep the exception for later.
                try:
                    info = Progress(epoch, batch, batches, _losses(losses, num_losses))
                    return 1 if progress(info) else 0
                except BaseException as e:  # noqa: B902 - KeyboardInterrupt too
                    raised.append(e)
                    return 1

            cb = _native.PROGRESS_FN(trampoline)
        users = [self, data] + ([optimizer] if optimizer is not None else [])
        for h in users:
            h._busy += 1
        try:
            lib.cvae_model_train(mp, dp, epochs, op, cb, None)
        except ConvVAEError as e:
            if raised:
                raise raised[0] from None
            if e.status == Status.CANCELLED:
                return False
            raise
        finally:
            for h in users:
                h._busy -= 1
            del cb  # referenced until here: C calls it until train returns
        if raised:  # cannot happen (a stop is CANCELLED), but never lose one
            raise raised[0]
        return True

    def loss(self, data):
        """Mean loss terms (Losses) over a Dataset, without training and
        without sampling noise."""
        n = len(LOSS_NAMES)
        buf = (ctypes.c_double * n)()
        lib.cvae_model_loss(self._p(), _dataset(data, "loss()"), buf, n)
        return _losses(buf, n)

    def evaluate(self, data):
        """Cluster metrics of the predictions on a labelled Dataset:
        {"acc", "purity", "nmi", "ari"}; CVAE_E_STATE without labels."""
        return _metrics_call(lib.cvae_model_evaluate, self._p(), _dataset(data, "evaluate()"))

    # -- inference -------------------------------------------------------------------

    def _images(self, images):
        """Pixels and image count for a buffer call, checked against the
        model's input shape."""
        px = _buffers.Pixels(images, want_float=True)
        c, h, w = self._c, self._h, self._w
        per = c * h * w
        shp = tuple(px.shape)
        if len(shp) == 4 and shp[1:] == (c, h, w):
            n = shp[0]
        elif len(shp) == 3 and c == 1 and shp[1:] == (h, w):
            n = shp[0]
        elif shp in ((c, h, w), (h, w) if c == 1 else None):
            n = 1
        elif len(shp) == 1 and shp[0] % per == 0:
            n = shp[0] // per
        else:
            raise invalid("images of shape %s do not fit the model's %dx%dx%d input"
                          % (shp, c, h, w))
        if n < 1:
            raise invalid("no images given")
        return px, n

    def encode(self, images, out=None):
        """(mu, logvar) of the latent Gaussian, each (N, latent_dim)
        float32. out: optional (mu, logvar) buffers to fill."""
        if isinstance(images, Dataset):
            images = images.images()  # no data-set variant in the C API: one float copy
        px, n = self._images(images)
        om, ol = (None, None) if out is None else out
        mu, mup = _buffers.output(om, "f32", (n, self._s), "encode mu")
        lv, lvp = _buffers.output(ol, "f32", (n, self._s), "encode logvar")
        lib.cvae_model_encode(self._p(), px.ptr, n, mup, lvp)
        return mu, lv

    def predict(self, images, out=None):
        """Cluster index per image (int32, N): argmax of q(y | mu)."""
        if isinstance(images, Dataset):
            n = len(images)
            buf, ptr = _buffers.output(out, "i32", (n,), "predict")
            lib.cvae_model_predict_dataset(self._p(), images._p(), ptr, None)
            return buf
        px, n = self._images(images)
        buf, ptr = _buffers.output(out, "i32", (n,), "predict")
        lib.cvae_model_predict(self._p(), px.ptr, n, ptr)
        return buf

    def predict_proba(self, images, out=None):
        """q(y | mu) per image (float32, N x k; rows sum to 1)."""
        if isinstance(images, Dataset):
            n = len(images)
            buf, ptr = _buffers.output(out, "f32", (n, self._k), "predict_proba")
            clusters, cptr = _buffers.output(None, "i32", (n,), "predict_proba")
            lib.cvae_model_predict_dataset(self._p(), images._p(), cptr, ptr)
            return buf
        px, n = self._images(images)
        buf, ptr = _buffers.output(out, "f32", (n, self._k), "predict_proba")
        lib.cvae_model_predict_proba(self._p(), px.ptr, n, ptr)
        return buf

    def reconstruct(self, images, out=None):
        """Decoded mean images for mu(x), float32, the same shape as the
        input ((N, C, H, W) for a Dataset)."""
        if isinstance(images, Dataset):
            images = images.images()
        px, n = self._images(images)
        buf, ptr = _buffers.output(out, "f32", px.shape, "reconstruct")
        lib.cvae_model_reconstruct(self._p(), px.ptr, n, ptr)
        return buf

    def generate(self, cluster, count=1, seed=0, out=None):
        """count new images of cluster (float32, count x C x H x W), decoded
        from z ~ N(M_cluster, I) (mixture prior) or N(0, I); the same seed
        gives the same images, and training is not affected."""
        cluster = to_int(cluster, "cluster")
        count = to_int(count, "count", 0, INT64_MAX)
        seed = to_int(seed, "seed", 0, UINT64_MAX)
        buf, ptr = _buffers.output(out, "f32", (count, self._c, self._h, self._w), "generate")
        lib.cvae_model_generate(self._p(), cluster, count, seed, ptr)
        return buf


def shard(count, rank, size):
    """(begin, n): the contiguous part of ``count`` items (a data set or a
    global batch) that process ``rank`` of ``size`` takes (cvae_shard)."""
    b, n = ctypes.c_int64(), ctypes.c_int64()
    lib.cvae_shard(to_int(count, "count"), to_int(rank, "rank"), to_int(size, "size"),
                   ctypes.byref(b), ctypes.byref(n))
    return b.value, n.value

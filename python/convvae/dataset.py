"""Image data sets (cvae_dataset)."""
import ctypes

from . import _buffers, _native
from ._handle import Handle
from ._native import lib, invalid, to_int, to_path, INT64_MAX

__all__ = ["Dataset"]


def _image_shape(shape, size, what="images"):
    """(count, channels, height, width) from an array shape or a shape=
    argument: (N, H, W) or (N, C, H, W)."""
    shape = tuple(shape)
    if len(shape) == 3:
        shape = (shape[0], 1) + shape[1:]
    if len(shape) != 4:
        raise invalid("%s must be (N, H, W) or (N, C, H, W), got shape %s "
                      "(pass shape= for flat buffers)" % (what, shape))
    n = to_int(shape[0], "image count", 0, INT64_MAX)
    c, h, w = (to_int(d, "image dimension") for d in shape[1:])
    if n * c * h * w != size:
        raise invalid("shape %s needs %d values, the buffer holds %d" % (shape, n * c * h * w, size))
    return n, c, h, w


class Dataset(Handle):
    """An immutable set of images (count x C x H x W) with optional labels.

    Build one from arrays::

        Dataset(images)                     # uint8 or float32 in [0, 1]
        Dataset(images, labels)             # labels: ints >= 0, one per image
        Dataset(buf, labels, shape=(n, 8, 8))  # flat buffers need a shape

    ``images`` is a numpy array (N, H, W) or (N, C, H, W) of uint8 (kept as
    uint8, scaled by 1/255 when used) or float32; other dtypes are converted.
    Without numpy: bytes / bytearray / array('B') (uint8), array('f')
    (float32), a memoryview, or nested lists. The library copies the pixels,
    so the input may change afterwards.

    Or from IDX files: ``Dataset.from_idx(images_path, labels_path)``.
    """

    __slots__ = ()
    _destroy_name = "cvae_dataset_destroy"

    def __init__(self, images, labels=None, *, shape=None):
        px = _buffers.Pixels(images)
        n, c, h, w = _image_shape(px.shape if shape is None else shape, px.size)
        lab_keep, lab_ptr = None, None
        if labels is not None:
            lab_keep, lab_ptr, nl = _buffers.ints_in(labels, "i32", "labels")
            if nl != n:
                raise invalid("%d labels for %d images" % (nl, n))
        ptr = _native.DatasetP()
        fn = lib.cvae_dataset_from_u8 if px.kind == "u8" else lib.cvae_dataset_from_f32
        fn(px.ptr, n, c, h, w, lab_ptr, ctypes.byref(ptr))
        del px, lab_keep  # copied by the library
        self._adopt(ptr)

    @classmethod
    def from_array(cls, images, labels=None, *, shape=None):
        """Same as Dataset(images, labels, shape=shape)."""
        return cls(images, labels, shape=shape)

    @classmethod
    def from_idx(cls, images_path, labels_path=None):
        """Read IDX files (raw or gzip-compressed), as MNIST is distributed.
        Missing or unreadable files raise CVAE_E_IO, malformed ones
        CVAE_E_FORMAT."""
        ptr = _native.DatasetP()
        lib.cvae_dataset_load_idx(to_path(images_path),
                                  None if labels_path is None else to_path(labels_path),
                                  ctypes.byref(ptr))
        return cls._wrap(ptr)

    # -- shape -----------------------------------------------------------------

    @property
    def shape(self):
        """(count, channels, height, width)."""
        n = ctypes.c_int64()
        c, h, w = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.cvae_dataset_shape(self._p(), ctypes.byref(n), ctypes.byref(c), ctypes.byref(h),
                               ctypes.byref(w))
        return (n.value, c.value, h.value, w.value)

    @property
    def image_shape(self):
        """(channels, height, width) of one image."""
        return self.shape[1:]

    def __len__(self):
        return self.shape[0]

    @property
    def has_labels(self):
        v = ctypes.c_int()
        lib.cvae_dataset_has_labels(self._p(), ctypes.byref(v))
        return bool(v.value)

    # -- contents --------------------------------------------------------------

    def labels(self, out=None):
        """All labels as int32 (numpy array or array('i')); CVAE_E_STATE if
        the data set has none."""
        n = len(self)
        buf, ptr = _buffers.output(out, "i32", (n,), "labels")
        lib.cvae_dataset_labels(self._p(), ptr, n)
        return buf

    def images(self, start=0, count=None, out=None):
        """Images [start, start+count) as float32 in [0, 1], shape
        (count, C, H, W) (flat array('f') without numpy)."""
        n, c, h, w = self.shape
        start = to_int(start, "start", 0, INT64_MAX)
        count = n - start if count is None else to_int(count, "count", 0, INT64_MAX)
        buf, ptr = _buffers.output(out, "f32", (count, c, h, w), "images")
        lib.cvae_dataset_images_f32(self._p(), start, count, ptr)
        return buf

    # -- subsets -----------------------------------------------------------------

    def first(self, n):
        """A new data set of the first n images (and labels)."""
        ptr = _native.DatasetP()
        lib.cvae_dataset_subset_first(self._p(), to_int(n, "n", 0, INT64_MAX), ctypes.byref(ptr))
        return Dataset._wrap(ptr)

    def subset(self, indices):
        """A new data set of the images at the given indices (repeats allowed)."""
        keep, ptr_idx, n = _buffers.ints_in(indices, "i64", "indices")
        ptr = _native.DatasetP()
        lib.cvae_dataset_subset_indices(self._p(), ptr_idx, n, ctypes.byref(ptr))
        del keep
        return Dataset._wrap(ptr)

    def __getitem__(self, key):
        """ds[a:b:c] or ds[[i, j, ...]]: a new data set (a copy)."""
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if start == 0 and step == 1 and stop > 0:
                return self.first(stop)
            return self.subset(range(start, stop, step))
        if isinstance(key, int):
            raise TypeError("index a Dataset with a slice or a sequence of indices; "
                            "use images(i, 1) for one image")
        return self.subset(key)

    def __repr__(self):
        if self.closed:
            return "<Dataset (closed)>"
        return "<Dataset %d x %d x %d x %d%s>" % (self.shape + (
            ", labelled" if self.has_labels else "",))

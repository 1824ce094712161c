"""Image data sets (cvae_dataset)."""
import ctypes
import os
import warnings

from . import _buffers, _native
from ._handle import Handle
from ._native import lib, invalid, to_int, to_path, INT64_MAX
from .errors import ConvVAEError, Status

__all__ = ["Dataset"]


def _to_nchw(px, n, c, h, w):
    """Pixels of an (N, H, W, C) input, reordered to (N, C, H, W)."""
    if _buffers.HAVE_NUMPY:
        np = _buffers.np
        a = px.keep if _buffers.is_ndarray(px.keep) else np.frombuffer(
            memoryview(px.keep).cast("B"), dtype=np.uint8 if px.kind == "u8" else np.float32)
        a = a.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        return _buffers.Pixels(np.ascontiguousarray(a))
    out = _buffers.empty(px.kind, (n * c * h * w,))
    mv_in = memoryview(px.keep).cast("B").cast(out.typecode)
    hw = h * w
    for i in range(n):
        base = i * hw * c
        for ch in range(c):
            out[(i * c + ch) * hw:(i * c + ch + 1) * hw] = \
                _buffers.array.array(out.typecode, mv_in[base + ch:base + hw * c:c])
    return _buffers.Pixels(out)


def _image_shape(shape, size, what="images", layout="NCHW"):
    """(count, channels, height, width) from an array shape or a shape=
    argument: (N, H, W) or (N, C, H, W), or (N, H, W, C) with layout NHWC."""
    shape = tuple(shape)
    if len(shape) == 3:
        shape = (shape[0], 1) + shape[1:] if layout == "NCHW" else shape + (1,)
    if len(shape) != 4:
        raise invalid("%s must be (N, H, W) or %s, got shape %s (pass shape= for flat "
                      "buffers)" % (what, "(N, C, H, W)" if layout == "NCHW" else "(N, H, W, C)",
                                    shape))
    if layout == "NHWC":
        shape = (shape[0], shape[3], shape[1], shape[2])
    elif shape[3] in (1, 3) and shape[1] > 4:
        # (N, 8, 8, 1) read as N x C x H x W would be 8 channels of 8x1
        # images: almost certainly a channels-last array. Refuse to guess.
        raise invalid("%s of shape %s look channels-last (N, H, W, C); pass layout='NHWC' "
                      "(or transpose to (N, C, H, W))" % (what, shape))
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

    Channels-last arrays (N, H, W, C), as most image libraries give them,
    are read with ``layout="NHWC"``; a 4-D array whose last dimension is 1
    or 3 and whose second is larger than 4 is refused under the default
    layout rather than misread.

    Or from IDX files: ``Dataset.from_idx(images_path, labels_path)``, or
    image files: ``Dataset.from_images(folder_or_paths, size=(32, 32))``.
    """

    __slots__ = ()
    _destroy_name = "cvae_dataset_destroy"

    def __init__(self, images, labels=None, *, shape=None, layout="NCHW"):
        if layout not in ("NCHW", "NHWC"):
            raise invalid("layout must be 'NCHW' or 'NHWC', not %r" % (layout,))
        px = _buffers.Pixels(images)
        n, c, h, w = _image_shape(px.shape if shape is None else shape, px.size, layout=layout)
        if layout == "NHWC" and c > 1:
            px = _to_nchw(px, n, c, h, w)
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
    def from_array(cls, images, labels=None, *, shape=None, layout="NCHW"):
        """Same as Dataset(images, labels, shape=shape, layout=layout)."""
        return cls(images, labels, shape=shape, layout=layout)

    @classmethod
    def from_images(cls, paths_or_dir, size=(32, 32), channels=3, *, list_file=None,
                    threads=None, skip_bad=False, skipped=None, progress=None):
        """Read PNG and JPEG files into a data set of ``channels`` (1 grey,
        3 RGB) x ``size`` (height, width; an int for square) images.

        ``paths_or_dir``: a directory (every image file under it, recursive,
        sorted by name; names starting with '.' skipped), one file, or an
        iterable of file paths (kept in that order); None with
        ``list_file`` (a text file of paths, one per line). Images are
        resized by area averaging (shrinking) or bilinear interpolation
        (growing), transparency goes onto white, colour to grey by luma.

        ``threads``: decoding threads (default: all cores). A file that
        cannot be read raises ConvVAEError naming it; with
        ``skip_bad=True`` such files are left out, a warning says how many,
        and ``skipped`` (a list, if given) receives (path, reason) pairs.
        ``progress(done, total)`` is called now and then; returning True
        stops (CVAE_E_CANCELLED). ``ds.paths()`` gives each image's file.
        """
        if isinstance(size, int):
            size = (size, size)
        h, w = (to_int(v, "size") for v in size)
        threads = _native.cores() if threads is None else to_int(threads, "threads")
        rp = _native.ImageReaderP()
        lib.cvae_image_reader_create(to_int(channels, "channels"), h, w, ctypes.byref(rp))
        try:
            lib.cvae_image_reader_set_threads(rp, threads)
            lib.cvae_image_reader_set_skip_bad(rp, 1 if skip_bad else 0)
            cb = None
            if progress is not None:
                def cb_impl(user, done, total):
                    try:
                        return 1 if progress(done, total) else 0
                    except Exception:  # an exception cannot cross C: stop instead
                        return 1
                cb = _native.LOAD_PROGRESS_FN(cb_impl)
                lib.cvae_image_reader_set_progress(rp, cb, None)
            if list_file is not None:
                lib.cvae_image_reader_add_list(rp, to_path(list_file))
            if paths_or_dir is None:
                if list_file is None:
                    raise invalid("from_images needs a directory, files or list_file")
            elif isinstance(paths_or_dir, (str, bytes, os.PathLike)):
                if os.path.isdir(paths_or_dir):
                    lib.cvae_image_reader_add_dir(rp, to_path(paths_or_dir))
                else:
                    lib.cvae_image_reader_add_file(rp, to_path(paths_or_dir))
            else:
                for p in paths_or_dir:
                    lib.cvae_image_reader_add_file(rp, to_path(p))
            ptr = _native.DatasetP()
            lib.cvae_image_reader_load(rp, ctypes.byref(ptr))
            ds = cls._wrap(ptr)
            n = ctypes.c_int64()
            lib.cvae_image_reader_num_skipped(rp, ctypes.byref(n))
            if n.value:
                pairs = []
                for i in range(n.value):
                    path, why = ctypes.c_char_p(), ctypes.c_char_p()
                    lib.cvae_image_reader_skipped(rp, i, ctypes.byref(path), ctypes.byref(why))
                    pairs.append((os.fsdecode(path.value), why.value.decode("utf-8", "replace")))
                if skipped is not None:
                    skipped.extend(pairs)
                warnings.warn("skipped %d image file(s) that could not be read; the first: %s"
                              % (len(pairs), pairs[0][1]), stacklevel=2)
            return ds
        finally:
            lib.cvae_image_reader_destroy(rp)

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

    def paths(self):
        """The file each image was read from (a list of str), or None for
        data sets not made by from_images."""
        p = ctypes.c_char_p()
        out = []
        for i in range(len(self)):
            try:
                lib.cvae_dataset_path(self._p(), i, ctypes.byref(p))
            except ConvVAEError as e:
                if e.status == Status.STATE:
                    return None
                raise
            out.append(os.fsdecode(p.value))
        return out

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

"""Buffers in and out of the C library, with numpy or without it.

With numpy, a C-contiguous, aligned, native-endian array of the dtype C
wants is passed as it is (its data pointer goes to C: no copy); anything else
is converted once with np.require / np.ascontiguousarray. Outputs are
allocated here with np.empty and filled by C.

Without numpy, bytes / bytearray / array.array / memoryview / (nested)
lists are accepted; writable buffers of the right type (array('f'),
bytearray, array('B')) are passed without a copy, and outputs are
array.array objects (flat, row-major) filled by C.

The objects returned as ``keep`` must stay referenced for as long as C may
read the pointer; every caller holds them in a local variable across the
call (the library copies what it keeps, so no longer).
"""
import array
import ctypes
from ctypes import POINTER, c_float, c_int32, c_int64, c_uint8

from ._native import invalid

try:
    import numpy as np
except ImportError:  # numpy is optional
    np = None

HAVE_NUMPY = np is not None

# array.array type codes of the C widths we need.
F32 = "f"
U8 = "B"
I32 = "i" if array.array("i").itemsize == 4 else "l"
I64 = "q"

_CTYPES = {"f32": c_float, "u8": c_uint8, "i32": c_int32, "i64": c_int64}
_CODES = {"f32": F32, "u8": U8, "i32": I32, "i64": I64}
_MEMORYVIEW_KIND = {"B": "u8", "f": "f32", I32: "i32", "q": "i64"}
if HAVE_NUMPY:
    _DTYPES = {"f32": np.dtype(np.float32), "u8": np.dtype(np.uint8),
               "i32": np.dtype(np.int32), "i64": np.dtype(np.int64)}


def prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def is_ndarray(obj):
    return HAVE_NUMPY and isinstance(obj, np.ndarray)


# ---------------------------------------------------------------------------
# numpy
# ---------------------------------------------------------------------------

def as_c_array(a, kind):
    """a as a C-contiguous, aligned ndarray of kind's dtype: a itself if it
    already is one (the zero-copy path), else a converted copy."""
    dt = _DTYPES[kind]
    if isinstance(a, np.ndarray) and a.dtype == dt and a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.require(np.ascontiguousarray(a, dtype=dt), requirements=("C", "A"))


def _np_pixels(a, want_float):
    """(array, kind) for image pixels given as an ndarray."""
    k = a.dtype.kind
    if a.dtype == np.uint8:
        if not want_float:
            return as_c_array(a, "u8"), "u8"
        f = np.array(a, dtype=np.float32, order="C")  # a C-ordered copy whatever a's order
        f /= np.float32(255)  # float32 division: what the library does for uint8 data
        return f, "f32"
    if k in "iu":
        if a.size and (a.min() < 0 or a.max() > 255):
            raise invalid("integer pixels must be in [0, 255], got [%d, %d]"
                          % (a.min(), a.max()))
        return _np_pixels(a.astype(np.uint8), want_float)
    if k in "fb":
        return as_c_array(a, "f32"), "f32"
    raise TypeError("images of dtype %s are not supported (use uint8 or float32)" % a.dtype)


# ---------------------------------------------------------------------------
# plain Python buffers
# ---------------------------------------------------------------------------

def _flatten(obj):
    """Nested lists/tuples of numbers -> (flat list, shape)."""
    if not isinstance(obj, (list, tuple)):
        return [obj], ()
    if not obj:
        return [], (0,)
    parts = [_flatten(x) for x in obj]
    sub = parts[0][1]
    if any(p[1] != sub for p in parts):
        raise invalid("nested sequences are ragged")
    flat = [v for p in parts for v in p[0]]
    return flat, (len(obj),) + sub


def _py_pixels(obj, want_float):
    """(keep, kind, shape or None) for pixels given without numpy."""
    shape = None
    if isinstance(obj, (list, tuple)):
        flat, shape = _flatten(obj)
        if all(isinstance(v, int) for v in flat):
            obj = _u8_from_ints(flat)
        else:
            obj = array.array(F32, [float(v) for v in flat])
    if isinstance(obj, array.array):
        code = obj.typecode
        if code == U8:
            kind = "u8"
        elif code == F32:
            kind = "f32"
        elif code == "d":
            obj, kind = array.array(F32, obj), "f32"
        elif code in "bhHiIlLqQ":
            obj, kind = _u8_from_ints(obj), "u8"
        else:
            raise TypeError("array.array('%s') is not a pixel type (use 'B' or 'f')" % code)
    else:
        try:
            mv = memoryview(obj)
        except TypeError:
            raise TypeError("images must be a numpy array, bytes, bytearray, array.array, "
                            "memoryview or a list, not %s" % type(obj).__name__) from None
        if mv.ndim > 1:
            shape = mv.shape
        fmt = mv.format.lstrip("@=")
        if fmt in ("B", "c"):
            kind = "u8"
        elif fmt == "f":
            kind = "f32"
        elif fmt == "d":
            obj, kind = array.array(F32, array.array("d", mv.tobytes())), "f32"
        else:
            raise TypeError("buffer format '%s' is not a pixel type (use 'B' or 'f')" % mv.format)
        if kind in ("u8", "f32") and not isinstance(obj, array.array):
            if not mv.c_contiguous:
                obj = bytearray(mv.tobytes())
            elif isinstance(obj, (bytes, bytearray)):
                pass
            elif mv.readonly:
                obj = bytearray(mv.cast("B"))  # one copy of a read-only view
            else:
                obj = mv
    if want_float and kind == "u8":
        obj, kind = array.array(F32, [v / 255.0 for v in bytes(memoryview(obj).cast("B"))]), "f32"
    return obj, kind, shape


def _u8_from_ints(values):
    try:
        return array.array(U8, values)
    except OverflowError:
        raise invalid("integer pixels must be in [0, 255]") from None


def _pointer(obj, kind, count):
    """ctypes pointer to count elements of kind in obj, without copying
    when obj is writable (a read-only bytes object is pointed at directly;
    other read-only buffers were copied by the caller)."""
    ct = _CTYPES[kind]
    if is_ndarray(obj):
        return obj.ctypes.data_as(POINTER(ct))
    if isinstance(obj, array.array):
        return ctypes.cast(obj.buffer_info()[0], POINTER(ct))
    if isinstance(obj, bytes):
        return ctypes.cast(ctypes.c_char_p(obj), POINTER(ct))
    nbytes = memoryview(obj).nbytes
    if nbytes < count * ctypes.sizeof(ct):
        raise invalid("buffer of %d bytes holds fewer than %d values" % (nbytes, count))
    return ctypes.cast((ct * count).from_buffer(obj), POINTER(ct))


def _nelems(obj, kind):
    if is_ndarray(obj):
        return obj.size
    return memoryview(obj).nbytes // ctypes.sizeof(_CTYPES[kind])


class Pixels:
    """Images on their way into C: keep (the object C reads), kind ('u8' or
    'f32'), shape (the input's own shape, or (count,) for flat buffers),
    size (number of values) and ptr."""

    __slots__ = ("keep", "kind", "shape", "size", "ptr")

    def __init__(self, obj, want_float=False):
        if is_ndarray(obj) or (HAVE_NUMPY and not isinstance(
                obj, (bytes, bytearray, array.array, memoryview))):
            a = obj if is_ndarray(obj) else np.asarray(obj)
            self.keep, self.kind = _np_pixels(a, want_float)
            self.shape = a.shape
        else:
            self.keep, self.kind, shape = _py_pixels(obj, want_float)
            self.size = _nelems(self.keep, self.kind)
            self.shape = tuple(shape) if shape is not None else (self.size,)
        self.size = prod(self.shape)
        self.ptr = _pointer(self.keep, self.kind, self.size)


def ints_in(obj, kind, what):
    """(keep, ptr, count) for a 1-D sequence of int32 ('i32') or int64 ('i64')."""
    if is_ndarray(obj) or (HAVE_NUMPY and isinstance(obj, (list, tuple, range))):
        a = obj if is_ndarray(obj) else np.asarray(obj)
        if a.ndim != 1:
            raise invalid("%s must be 1-D, got shape %s" % (what, a.shape))
        if a.size and a.dtype.kind not in "iub":
            raise TypeError("%s must be integers, not %s" % (what, a.dtype))
        if a.size and a.dtype != _DTYPES[kind]:
            info = np.iinfo(_DTYPES[kind])
            if a.min() < info.min or a.max() > info.max:
                raise invalid("%s has values outside the %s range" % (what, kind))
        keep = as_c_array(a, kind)
    else:
        code = _CODES[kind]
        if isinstance(obj, array.array) and obj.typecode == code:
            keep = obj
        else:
            try:
                mv = memoryview(obj)
            except TypeError:
                mv = None
            if mv is not None and _MEMORYVIEW_KIND.get(mv.format.lstrip("@=")) == kind \
                    and mv.ndim == 1 and mv.c_contiguous:
                keep = array.array(code)
                keep.frombytes(mv.cast("B"))
            else:
                try:
                    keep = array.array(code, obj)
                except OverflowError:
                    raise invalid("%s has values outside the %s range" % (what, kind)) from None
                except TypeError:
                    raise TypeError("%s must be a sequence of integers" % what) from None
    n = len(keep)
    return keep, _pointer(keep, kind, n), n


def empty(kind, shape):
    """A new output buffer of the given shape (numpy) or flat size (array)."""
    if HAVE_NUMPY:
        return np.empty(shape, dtype=_DTYPES[kind])
    return array.array(_CODES[kind], bytes(prod(shape) * ctypes.sizeof(_CTYPES[kind])))


def output(out, kind, shape, what):
    """(buffer, ptr): a new buffer, or out checked to be usable as one."""
    if out is None:
        buf = empty(kind, shape)
    elif is_ndarray(out):
        if out.dtype != _DTYPES[kind] or not (out.flags.c_contiguous and out.flags.aligned
                                              and out.flags.writeable):
            raise invalid("%s: out must be a writable C-contiguous %s array"
                          % (what, _DTYPES[kind]))
        if out.size != prod(shape):
            raise invalid("%s: out holds %d values, %d needed (shape %s)"
                          % (what, out.size, prod(shape), tuple(shape)))
        buf = out
    elif isinstance(out, array.array):
        if out.typecode != _CODES[kind] or len(out) != prod(shape):
            raise invalid("%s: out must be array('%s') of %d values"
                          % (what, _CODES[kind], prod(shape)))
        buf = out
    else:
        raise TypeError("%s: out must be a numpy array or array.array" % what)
    return buf, _pointer(buf, kind, prod(shape))

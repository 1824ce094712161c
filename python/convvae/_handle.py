"""Common life cycle of the objects that own a C handle."""
from .errors import ConvVAEError, Status


class Handle:
    """Owns one C handle: close() frees it (idempotent), ``with`` closes it,
    and so does garbage collection. Methods called after close() raise
    ConvVAEError(CVAE_E_STATE). While a C call that can run Python code
    (training with a progress callback) uses the handle, close() raises
    instead of freeing memory the C call is still using."""

    __slots__ = ("_ptr", "_busy", "__weakref__")
    _destroy_name = None  # the C destroy function, set by subclasses

    def _adopt(self, ptr):
        self._ptr = ptr
        self._busy = 0

    @classmethod
    def _wrap(cls, ptr):
        obj = cls.__new__(cls)
        obj._adopt(ptr)
        return obj

    @property
    def closed(self):
        """True once close() has run."""
        return not getattr(self, "_ptr", None)

    def _p(self):
        ptr = getattr(self, "_ptr", None)
        if not ptr:
            raise ConvVAEError(Status.STATE, "%s is closed" % type(self).__name__)
        return ptr

    def close(self):
        """Free the C object. Safe to call more than once."""
        ptr = getattr(self, "_ptr", None)
        if not ptr:
            return
        if self._busy:
            raise ConvVAEError(Status.STATE, "%s is in use by a running call and cannot be "
                               "closed now" % type(self).__name__)
        self._ptr = None
        from . import _native  # looked up late: may run during interpreter shutdown
        getattr(_native.lib, self._destroy_name)(ptr)

    def __enter__(self):
        self._p()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

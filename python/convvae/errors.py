"""Status codes and the exception every failing libconvvae call raises."""
import enum

__all__ = ["Status", "ConvVAEError"]


class Status(enum.IntEnum):
    """cvae_status. The values are the C library's, pinned forever."""

    OK = 0
    INVALID_ARG = 1
    NOMEM = 2
    IO = 3
    FORMAT = 4
    NUMERIC = 5
    STATE = 6
    CANCELLED = 7
    UNSUPPORTED = 8
    INTERNAL = 9

    @property
    def c_name(self):
        """The C enumerator, e.g. ``"CVAE_E_INVALID_ARG"``."""
        return "CVAE_OK" if self is Status.OK else "CVAE_E_" + self.name


def status_name(code):
    """C name of a status code; codes newer than this package get a generic name."""
    try:
        return Status(code).c_name
    except ValueError:
        return "CVAE_STATUS_%d" % code


class ConvVAEError(Exception):
    """A libconvvae call failed.

    Attributes:
        status  the numeric cvae_status (compare with :class:`Status`)
        name    its C name, e.g. ``"CVAE_E_INVALID_ARG"``
        message the library's detail (cvae_last_error()) or, for checks done
                in Python before calling C, a message in the same style
    """

    def __init__(self, status, message=""):
        self.status = int(status)
        self.name = status_name(self.status)
        self.message = message
        super().__init__(self.status, message)

    def __str__(self):
        return "%s: %s" % (self.name, self.message) if self.message else self.name

    def __repr__(self):
        return "ConvVAEError(%s, %r)" % (self.name, self.message)

    def __reduce__(self):
        return (type(self), (self.status, self.message))

"""Optimizers (cvae_optimizer)."""
import ctypes

from . import _native
from ._handle import Handle
from ._native import lib, to_float

__all__ = ["Optimizer"]


class Optimizer(Handle):
    """Adam or SGD with momentum, to pass to Model.train(). Its moment state
    is created on first use and fits any model with the same parameter
    layout. Build with ``Optimizer.adam(...)``, ``Optimizer.sgd(...)`` or
    ``Optimizer.from_config(config)``."""

    __slots__ = ("_lr",)
    _destroy_name = "cvae_optimizer_destroy"

    def __init__(self, *args, **kwargs):
        raise TypeError("use Optimizer.adam(), Optimizer.sgd() or Optimizer.from_config()")

    @classmethod
    def _make(cls, ptr, lr):
        obj = cls._wrap(ptr)
        obj._lr = lr
        return obj

    @classmethod
    def adam(cls, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        ptr = _native.OptimizerP()
        lr = to_float(learning_rate, "learning_rate")
        lib.cvae_optimizer_create_adam(lr, to_float(beta1, "beta1"), to_float(beta2, "beta2"),
                                       to_float(eps, "eps"), to_float(weight_decay, "weight_decay"),
                                       ctypes.byref(ptr))
        return cls._make(ptr, lr)

    @classmethod
    def sgd(cls, learning_rate, momentum=0.9, weight_decay=0.0):
        ptr = _native.OptimizerP()
        lr = to_float(learning_rate, "learning_rate")
        lib.cvae_optimizer_create_sgd(lr, to_float(momentum, "momentum"),
                                      to_float(weight_decay, "weight_decay"), ctypes.byref(ptr))
        return cls._make(ptr, lr)

    @classmethod
    def from_config(cls, config):
        """The optimizer a Config describes (optimizer, learning_rate, ...)."""
        ptr = _native.OptimizerP()
        lib.cvae_optimizer_create_from_config(config._p(), ctypes.byref(ptr))
        return cls._make(ptr, config.learning_rate)

    @property
    def learning_rate(self):
        """The learning rate; assign to change it (e.g. for a schedule)."""
        self._p()
        return self._lr

    @learning_rate.setter
    def learning_rate(self, lr):
        lr = to_float(lr, "learning_rate")
        lib.cvae_optimizer_set_learning_rate(self._p(), lr)
        self._lr = lr

    def __repr__(self):
        if self.closed:
            return "<Optimizer (closed)>"
        return "<Optimizer learning_rate=%g>" % self._lr

"""Model and training options (cvae_config)."""
import ctypes
import warnings
import enum
import numbers
from collections import namedtuple

from . import _native
from ._handle import Handle
from .errors import ConvVAEError
from ._native import lib, to_float, to_int, invalid

__all__ = ["Config", "OptionInfo", "Branch", "Activation", "CategoryInput", "Prior",
           "ReconTarget", "OptimizerKind", "MAX_BRANCHES", "MAX_CLUSTERS"]

MAX_BRANCHES = 4
MAX_CLUSTERS = 1024


class _TextEnum(enum.IntEnum):
    """A C enumeration whose text form (str(), and what by-name options take)
    is the lower-case member name."""

    def __str__(self):
        return self.name.lower()

    def __repr__(self):
        return "%s.%s" % (type(self).__name__, self.name)

    @classmethod
    def parse(cls, text):
        try:
            return cls[text.upper()]
        except KeyError:
            return text


class Activation(_TextEnum):
    RELU = 0
    IDENTITY = 1


class CategoryInput(_TextEnum):
    Z = 0
    FEATURES = 1


class Prior(_TextEnum):
    STANDARD = 0
    MIXTURE = 1


class ReconTarget(_TextEnum):
    IMAGE = 0
    FEATURES = 1


class Recipe(_TextEnum):
    PAPER = 0
    MANIFOLD = 1


class ManifoldStart(_TextEnum):
    RANDOM = 0
    SPECTRAL = 1


class OptimizerKind(_TextEnum):
    ADAM = 0
    SGD = 1


OptionInfo = namedtuple("OptionInfo", "name help kind")
OptionInfo.__doc__ = """One option: name, one-line help (from the library) and
kind ('int', 'bool', 'float', 'uint64', 'a|b' for enumerations, or None
for an option this package does not know, which is then text)."""

Branch = namedtuple("Branch", "layers filters kernel")

# The value kind of every option, by name. The C API lists names and help
# but not kinds, so this table is kept in step with lib/model/config.c (a test
# checks both directions).
_KINDS = {
    "input_channels": int, "input_height": int, "input_width": int, "branches": int,
    "encoder_units": int, "encoder_activation": Activation, "decoder_units": int,
    "latent_dim": int, "clusters": int, "category_units": int,
    "category_input": CategoryInput, "prior": Prior, "recon_target": ReconTarget,
    "conv_trainable": bool, "lambda": float, "balance_weight": float,
    "category_weight": float, "warmup_epochs": int, "kmeans_init": bool,
    "optimizer": OptimizerKind, "learning_rate": float, "adam_beta1": float,
    "adam_beta2": float, "adam_eps": float, "weight_decay": float, "momentum": float,
    "batch_size": int, "epochs": int, "seed": "uint64", "threads": int,
    "recipe": Recipe, "augment": bool, "augment_rotation": float, "augment_shift": float,
    "augment_scale": float, "augment_gain": float, "consistency_weight": float,
    "contrast_temperature": float, "consistency_finetune": bool, "pretrain_epochs": int,
    "manifold_neighbors": int, "embedding_dim": int, "pseudo_label_weight": float,
    "pseudo_label_threshold": float, "manifold_every": int, "manifold_runs": int,
    "manifold_overcluster": float, "manifold_start": ManifoldStart,
    "finetune_prior": Prior,
}
for _i in range(1, MAX_BRANCHES + 1):
    for _f in ("layers", "filters", "kernel"):
        _KINDS["branch%d_%s" % (_i, _f)] = int

# Options with their own typed C setter/getter: Python attribute -> C suffix.
_TYPED = {"branches": "num_branches"}
_TYPED.update({n: n for n in _native.CONFIG_INT_ACCESSORS + _native.CONFIG_ENUM_ACCESSORS
               + _native.CONFIG_DOUBLE_ACCESSORS if n != "num_branches"})
# "lambda" is a Python keyword: the attribute is lambda_, the option "lambda".
_ATTR_OF = {"lambda": "lambda_"}


def _kind_name(kind):
    if kind is None:
        return None
    if isinstance(kind, str):
        return kind
    if issubclass(kind, _TextEnum):
        return "|".join(str(m) for m in kind)
    return kind.__name__


def _canonical(name):
    if not isinstance(name, str):
        raise TypeError("option names are strings, not %s" % type(name).__name__)
    return name.replace("-", "_")


def _to_text(name, value):
    """The text cvae_config_set takes for a Python value."""
    kind = _KINDS.get(_canonical(name))
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, enum.Enum):
        return str(value)
    if isinstance(value, numbers.Integral):  # int, numpy integers
        value = int(value)
        if isinstance(kind, type) and issubclass(kind, _TextEnum):
            try:
                return str(kind(value))
            except ValueError:
                pass
        return str(value)
    if isinstance(value, numbers.Real):  # float, numpy floats
        return repr(float(value))  # shortest text that reads back exactly
    raise TypeError("option %s: cannot use a %s as its value" % (name, type(value).__name__))


def _from_text(name, text):
    kind = _KINDS.get(_canonical(name))
    if kind is None:
        return text
    if kind is bool:
        return text != "0"
    if kind in (int, "uint64"):
        return int(text)
    if kind is float:
        return float(text)
    return kind.parse(text)


class Config(Handle):
    """A bag of model and training options, defaults = the paper's best MNIST
    configuration.

    Every option is reachable three ways::

        cfg = Config(latent_dim=10, clusters=3, input_shape=(1, 8, 8))
        cfg.latent_dim = 20               # typed attribute (C typed setter)
        cfg["latent_dim"] = 20            # by name, as the CLI flag
        cfg.set("latent-dim", "20")       # by name with text, dashes allowed
        cfg.latent_dim, cfg["prior"]      # 20, Prior.MIXTURE

    Out-of-range values raise ConvVAEError(CVAE_E_INVALID_ARG) and leave the
    config unchanged; unknown names raise the same. The option ``lambda`` is
    the attribute ``lambda_``. ``Config.options()`` lists names with help.
    """

    __slots__ = ()
    _destroy_name = "cvae_config_destroy"

    def __init__(self, options=None, **kwargs):
        ptr = _native.ConfigP()
        lib.cvae_config_create(ctypes.byref(ptr))
        self._adopt(ptr)
        # The package trains on every core unless told otherwise (the C
        # library's default is 1 thread, for embedders).
        lib.cvae_config_set_threads(self._p(), _native.cores())
        self.update(options, **kwargs)

    # -- by name -----------------------------------------------------------

    def set(self, name, value):
        """Set an option by name (dashes or underscores) from a Python value
        or the CLI's text."""
        lib.cvae_config_set(self._p(), _canonical(name).encode(), _to_text(name, value).encode())

    def get_text(self, name):
        """An option's value as the library formats it."""
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            try:
                lib.cvae_config_get(self._p(), _canonical(name).encode(), buf, size)
                return buf.value.decode()
            except ConvVAEError as e:
                # The same status means "unknown option" and "buffer too
                # small"; only the second can be helped by a bigger buffer.
                if size >= 1 << 16 or "too small" not in e.message:
                    raise
                size *= 16

    def get(self, name):
        """An option's value as a Python int, float, bool or enum member."""
        return _from_text(name, self.get_text(name))

    __getitem__ = get
    __setitem__ = set

    def __contains__(self, name):
        return isinstance(name, str) and _canonical(name) in self.names()

    def __iter__(self):
        return iter(self.names())

    def keys(self):
        return self.names()

    def items(self):
        return [(n, self.get(n)) for n in self.names()]

    def to_dict(self):
        """{option name: value} for every option."""
        return dict(self.items())

    def update(self, options=None, **kwargs):
        """Set several options from a mapping and/or keywords. Keywords may
        also be the tuple-valued attributes input_shape and adam_betas."""
        items = list(dict(options).items()) if options is not None else []
        items += kwargs.items()
        for name, value in items:
            attr = _canonical(name)
            if attr in ("input_shape", "adam_betas", "lambda_"):
                setattr(self, attr, value)
            else:
                self.set(name, value)
        return self

    @staticmethod
    def names():
        """Every option name, in the library's order."""
        out = []
        while True:
            n = lib.cvae_config_option_name(len(out))
            if n is None:
                return out
            out.append(n.decode())

    @staticmethod
    def options():
        """[OptionInfo(name, help, kind)] for every option the library has."""
        out = []
        for i, name in enumerate(Config.names()):
            h = lib.cvae_config_option_help(i)
            out.append(OptionInfo(name, h.decode() if h else "", _kind_name(_KINDS.get(name))))
        return out

    @staticmethod
    def help(name):
        """One-line description of an option."""
        want = _canonical(name)
        for o in Config.options():
            if o.name == want:
                return o.help
        raise invalid("unknown option '%s'" % name)

    # -- copies, comparison --------------------------------------------------

    def copy(self):
        """An independent deep copy (cvae_config_clone)."""
        ptr = _native.ConfigP()
        lib.cvae_config_clone(self._p(), ctypes.byref(ptr))
        return Config._wrap(ptr)

    __copy__ = copy

    def __deepcopy__(self, memo):
        return self.copy()

    def __eq__(self, other):
        if not isinstance(other, Config):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self):
        if self.closed:
            return "<Config (closed)>"
        default = Config()
        try:
            changed = ["%s=%r" % (_ATTR_OF.get(n, n), v) for n, v in self.items()
                       if default.get(n) != v]
        finally:
            default.close()
        return "Config(%s)" % ", ".join(changed)

    # -- options with several values -----------------------------------------

    @property
    def input_shape(self):
        """(channels, height, width) of the input images."""
        c, h, w = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.cvae_config_get_input_shape(self._p(), ctypes.byref(c), ctypes.byref(h),
                                        ctypes.byref(w))
        return (c.value, h.value, w.value)

    @input_shape.setter
    def input_shape(self, shape):
        if len(shape) == 2:
            shape = (1,) + tuple(shape)
        if len(shape) != 3:
            raise invalid("input_shape is (channels, height, width) or (height, width)")
        c, h, w = (to_int(v, "input_shape") for v in shape)
        lib.cvae_config_set_input_shape(self._p(), c, h, w)

    @property
    def adam_betas(self):
        """(beta1, beta2) of Adam."""
        b1, b2 = ctypes.c_double(), ctypes.c_double()
        lib.cvae_config_get_adam_betas(self._p(), ctypes.byref(b1), ctypes.byref(b2))
        return (b1.value, b2.value)

    @adam_betas.setter
    def adam_betas(self, betas):
        b1, b2 = betas
        lib.cvae_config_set_adam_betas(self._p(), to_float(b1, "beta1"), to_float(b2, "beta2"))

    def conv_branch(self, number):
        """Branch(layers, filters, kernel) of convolution branch `number`,
        counted from 1 like the options (branch1_filters) and the checkpoint
        tensors (branch1.conv1.weight)."""
        n = to_int(number, "branch number")
        vals = [ctypes.c_int() for _ in range(3)]
        lib.cvae_config_get_conv_branch(self._p(), n, *(ctypes.byref(v) for v in vals))
        return Branch(*(v.value for v in vals))

    def set_conv_branch(self, number, layers=None, filters=None, kernel=None):
        """Set convolution branch `number` (from 1); arguments left None keep
        their value."""
        cur = self.conv_branch(number)
        layers = cur.layers if layers is None else layers
        filters = cur.filters if filters is None else filters
        kernel = cur.kernel if kernel is None else kernel
        lib.cvae_config_set_conv_branch(self._p(), to_int(number, "branch number"),
                                        to_int(layers, "layers"), to_int(filters, "filters"),
                                        to_int(kernel, "kernel"))

    def branch(self, index):
        """Deprecated: counts from 0. Use conv_branch(index + 1)."""
        warnings.warn("Config.branch(i) counts from 0 and is deprecated; use "
                      "conv_branch(i + 1)", DeprecationWarning, stacklevel=2)
        return self.conv_branch(to_int(index, "branch index") + 1)

    def set_branch(self, index, layers=None, filters=None, kernel=None):
        """Deprecated: counts from 0. Use set_conv_branch(index + 1, ...)."""
        warnings.warn("Config.set_branch(i, ...) counts from 0 and is deprecated; use "
                      "set_conv_branch(i + 1, ...)", DeprecationWarning, stacklevel=2)
        self.set_conv_branch(to_int(index, "branch index") + 1, layers, filters, kernel)

    @property
    def seed(self):
        """Random seed (unsigned 64-bit)."""
        v = ctypes.c_uint64()
        lib.cvae_config_get_seed(self._p(), ctypes.byref(v))
        return v.value

    @seed.setter
    def seed(self, value):
        lib.cvae_config_set_seed(self._p(), to_int(value, "seed", 0, _native.UINT64_MAX))


def _typed_property(option, suffix, kind):
    getter = getattr(lib, "cvae_config_get_" + suffix)
    setter = getattr(lib, "cvae_config_set_" + suffix)
    ctype = ctypes.c_double if kind is float else ctypes.c_int

    def fget(self):
        v = ctype()
        getter(self._p(), ctypes.byref(v))
        if kind is float:
            return v.value
        if kind is bool:
            return bool(v.value)
        if kind is int:
            return v.value
        try:
            return kind(v.value)
        except ValueError:  # a value newer than this package
            return v.value

    def fset(self, value):
        if kind is float:
            setter(self._p(), to_float(value, option))
        elif isinstance(kind, type) and issubclass(kind, _TextEnum) and isinstance(value, str):
            self.set(option, value)  # the library checks the name
        else:
            setter(self._p(), to_int(value, option))

    doc = "Option %r (%s); typed cvae_config_get/set_%s." % (option, _kind_name(kind), suffix)
    return property(fget, fset, doc=doc)


def _named_property(option):
    def fget(self):
        return self.get(option)

    def fset(self, value):
        self.set(option, value)

    return property(fget, fset, doc="Option %r (%s), by name." % (option, _kind_name(_KINDS[option])))


for _name in _KINDS:
    _attr = _ATTR_OF.get(_name, _name)
    if _name == "seed":
        continue
    if _name in _TYPED:
        setattr(Config, _attr, _typed_property(_name, _TYPED[_name], _KINDS[_name]))
    else:
        setattr(Config, _attr, _named_property(_name))

"""Finding libconvvae and declaring its C API for ctypes.

Every public function of include/convvae.h is declared in PROTOTYPES with
its restype and argtypes; functions returning a cvae_status get an errcheck
that turns a non-zero status into ConvVAEError with cvae_last_error()'s text
(read right after the call, on the same thread, as the library requires).
"""
import ctypes
import ctypes.util
import operator
import os
import sys
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int,
                    c_int32, c_int64, c_size_t, c_uint8, c_uint32, c_uint64)

from .errors import ConvVAEError, Status

#: The major version this package is written for; the library's must match.
ABI_MAJOR = 0


# Opaque handle types, so that ctypes refuses a dataset where a model belongs.
class cvae_config(Structure):
    pass


class cvae_dataset(Structure):
    pass


class cvae_optimizer(Structure):
    pass


class cvae_model(Structure):
    pass


class cvae_image_reader(Structure):
    pass


ConfigP = POINTER(cvae_config)
DatasetP = POINTER(cvae_dataset)
OptimizerP = POINTER(cvae_optimizer)
ModelP = POINTER(cvae_model)
ImageReaderP = POINTER(cvae_image_reader)

c_int_p = POINTER(c_int)
c_int32_p = POINTER(c_int32)
c_int64_p = POINTER(c_int64)
c_uint64_p = POINTER(c_uint64)
c_float_p = POINTER(c_float)
c_double_p = POINTER(c_double)
c_uint8_p = POINTER(c_uint8)

#: int (*)(void *user, int epoch, int64_t batch, int64_t batches,
#:         const double *losses, int num_losses)
PROGRESS_FN = CFUNCTYPE(c_int, ctypes.c_void_p, c_int, c_int64, c_int64, c_double_p, c_int)

#: int (*)(void *user, int64_t done, int64_t total)
LOAD_PROGRESS_FN = CFUNCTYPE(c_int, ctypes.c_void_p, c_int64, c_int64)
#: int (*)(float *buf, size_t n, void *user): sum buf over all processes, in place
REDUCE_FN = CFUNCTYPE(c_int, c_float_p, ctypes.c_size_t, ctypes.c_void_p)

STATUS = "status"  # marker: returns cvae_status, checked by errcheck

# Config options with one typed setter/getter pair: (C suffix, C type).
CONFIG_INT_ACCESSORS = ("num_branches", "encoder_units", "decoder_units", "latent_dim",
                        "clusters", "category_units", "conv_trainable", "warmup_epochs",
                        "kmeans_init", "batch_size", "epochs", "threads", "augment",
                        "pretrain_epochs", "manifold_neighbors", "embedding_dim",
                        "manifold_every", "manifold_runs", "consistency_finetune")
CONFIG_ENUM_ACCESSORS = ("encoder_activation", "category_input", "prior", "recon_target",
                         "optimizer", "recipe", "manifold_start",
                         "finetune_prior")
CONFIG_DOUBLE_ACCESSORS = ("lambda", "balance_weight", "category_weight", "learning_rate",
                           "adam_eps", "weight_decay", "momentum", "consistency_weight",
                           "contrast_temperature", "augment_gain", "pseudo_label_weight",
                           "pseudo_label_threshold", "manifold_overcluster")


def _prototypes():
    p = [
        ("cvae_strerror", c_char_p, [c_int]),
        ("cvae_last_error", c_char_p, []),
        ("cvae_version_string", c_char_p, []),
        ("cvae_version_number", c_uint32, []),
        ("cvae_set_num_threads", STATUS, [c_int]),
        ("cvae_get_num_threads", c_int, []),
        # data sets
        ("cvae_dataset_load_idx", STATUS, [c_char_p, c_char_p, POINTER(DatasetP)]),
        ("cvae_dataset_from_u8", STATUS,
         [c_uint8_p, c_int64, c_int, c_int, c_int, c_int32_p, POINTER(DatasetP)]),
        ("cvae_dataset_from_f32", STATUS,
         [c_float_p, c_int64, c_int, c_int, c_int, c_int32_p, POINTER(DatasetP)]),
        ("cvae_dataset_subset_first", STATUS, [DatasetP, c_int64, POINTER(DatasetP)]),
        ("cvae_dataset_subset_indices", STATUS, [DatasetP, c_int64_p, c_int64, POINTER(DatasetP)]),
        ("cvae_dataset_destroy", None, [DatasetP]),
        ("cvae_dataset_shape", STATUS, [DatasetP, c_int64_p, c_int_p, c_int_p, c_int_p]),
        ("cvae_dataset_has_labels", STATUS, [DatasetP, c_int_p]),
        ("cvae_dataset_labels", STATUS, [DatasetP, c_int32_p, c_int64]),
        ("cvae_dataset_images_f32", STATUS, [DatasetP, c_int64, c_int64, c_float_p]),
        ("cvae_dataset_path", STATUS, [DatasetP, c_int64, POINTER(c_char_p)]),
        # image files
        ("cvae_images_supported", c_int, []),
        ("cvae_image_reader_create", STATUS, [c_int, c_int, c_int, POINTER(ImageReaderP)]),
        ("cvae_image_reader_destroy", None, [ImageReaderP]),
        ("cvae_image_reader_set_threads", STATUS, [ImageReaderP, c_int]),
        ("cvae_image_reader_set_skip_bad", STATUS, [ImageReaderP, c_int]),
        ("cvae_image_reader_set_progress", STATUS,
         [ImageReaderP, LOAD_PROGRESS_FN, ctypes.c_void_p]),
        ("cvae_image_reader_add_file", STATUS, [ImageReaderP, c_char_p]),
        ("cvae_image_reader_add_dir", STATUS, [ImageReaderP, c_char_p]),
        ("cvae_image_reader_add_list", STATUS, [ImageReaderP, c_char_p]),
        ("cvae_image_reader_count", STATUS, [ImageReaderP, c_int64_p]),
        ("cvae_image_reader_load", STATUS, [ImageReaderP, POINTER(DatasetP)]),
        ("cvae_image_reader_num_skipped", STATUS, [ImageReaderP, c_int64_p]),
        ("cvae_image_reader_skipped", STATUS,
         [ImageReaderP, c_int64, POINTER(c_char_p), POINTER(c_char_p)]),
        # metrics
        ("cvae_cluster_metrics", STATUS,
         [c_int32_p, c_int32_p, c_int64, c_double_p, c_double_p, c_double_p, c_double_p]),
        # configuration
        ("cvae_config_create", STATUS, [POINTER(ConfigP)]),
        ("cvae_config_clone", STATUS, [ConfigP, POINTER(ConfigP)]),
        ("cvae_config_destroy", None, [ConfigP]),
        ("cvae_config_set", STATUS, [ConfigP, c_char_p, c_char_p]),
        ("cvae_config_get", STATUS, [ConfigP, c_char_p, POINTER(c_char), c_size_t]),
        ("cvae_config_option_name", c_char_p, [c_int]),
        ("cvae_config_option_help", c_char_p, [c_int]),
        ("cvae_config_set_input_shape", STATUS, [ConfigP, c_int, c_int, c_int]),
        ("cvae_config_get_input_shape", STATUS, [ConfigP, c_int_p, c_int_p, c_int_p]),
        ("cvae_config_set_branch", STATUS, [ConfigP, c_int, c_int, c_int, c_int]),
        ("cvae_config_get_branch", STATUS, [ConfigP, c_int, c_int_p, c_int_p, c_int_p]),
        ("cvae_config_set_conv_branch", STATUS, [ConfigP, c_int, c_int, c_int, c_int]),
        ("cvae_config_get_conv_branch", STATUS, [ConfigP, c_int, c_int_p, c_int_p, c_int_p]),
        ("cvae_config_set_branches", STATUS, [ConfigP, c_int]),
        ("cvae_config_get_branches", STATUS, [ConfigP, c_int_p]),
        ("cvae_config_set_adam_betas", STATUS, [ConfigP, c_double, c_double]),
        ("cvae_config_get_adam_betas", STATUS, [ConfigP, c_double_p, c_double_p]),
        ("cvae_config_set_augment_ranges", STATUS, [ConfigP, c_double, c_double, c_double]),
        ("cvae_config_get_augment_ranges", STATUS,
         [ConfigP, c_double_p, c_double_p, c_double_p]),
        ("cvae_config_set_seed", STATUS, [ConfigP, c_uint64]),
        ("cvae_config_get_seed", STATUS, [ConfigP, c_uint64_p]),
        # optimizers
        ("cvae_optimizer_create_adam", STATUS,
         [c_double, c_double, c_double, c_double, c_double, POINTER(OptimizerP)]),
        ("cvae_optimizer_create_sgd", STATUS, [c_double, c_double, c_double, POINTER(OptimizerP)]),
        ("cvae_optimizer_create_from_config", STATUS, [ConfigP, POINTER(OptimizerP)]),
        ("cvae_optimizer_set_learning_rate", STATUS, [OptimizerP, c_double]),
        ("cvae_optimizer_destroy", None, [OptimizerP]),
        # models
        ("cvae_model_create", STATUS, [ConfigP, POINTER(ModelP)]),
        ("cvae_model_destroy", None, [ModelP]),
        ("cvae_model_get_config", STATUS, [ModelP, POINTER(ConfigP)]),
        ("cvae_model_num_params", STATUS, [ModelP, c_int64_p]),
        ("cvae_model_epochs_done", STATUS, [ModelP, c_int_p]),
        ("cvae_model_manifold_step_due", STATUS, [ModelP, DatasetP, c_int_p]),
        ("cvae_model_optimizer_steps", STATUS, [ModelP, POINTER(c_int64)]),
        ("cvae_model_clear_optimizer", STATUS, [ModelP]),
        ("cvae_model_train", STATUS,
         [ModelP, DatasetP, c_int, OptimizerP, PROGRESS_FN, ctypes.c_void_p]),
        ("cvae_model_loss", STATUS, [ModelP, DatasetP, c_double_p, c_int]),
        ("cvae_model_encode", STATUS, [ModelP, c_float_p, c_int64, c_float_p, c_float_p]),
        ("cvae_model_predict", STATUS, [ModelP, c_float_p, c_int64, c_int32_p]),
        ("cvae_model_predict_proba", STATUS, [ModelP, c_float_p, c_int64, c_float_p]),
        ("cvae_model_reconstruct", STATUS, [ModelP, c_float_p, c_int64, c_float_p]),
        ("cvae_model_predict_dataset", STATUS, [ModelP, DatasetP, c_int32_p, c_float_p]),
        ("cvae_model_evaluate", STATUS,
         [ModelP, DatasetP, c_double_p, c_double_p, c_double_p, c_double_p]),
        ("cvae_model_generate", STATUS, [ModelP, c_int, c_int64, c_uint64, c_float_p]),
        ("cvae_model_save", STATUS, [ModelP, c_char_p]),
        ("cvae_model_load", STATUS, [c_char_p, POINTER(ModelP)]),
        ("cvae_model_set_data_parallel", STATUS,
         [ModelP, c_int, c_int, REDUCE_FN, ctypes.c_void_p]),
        ("cvae_shard", STATUS, [c_int64, c_int, c_int, c_int64_p, c_int64_p]),
        ("cvae_model_set_micro_batch", STATUS, [ModelP, c_int]),
        ("cvae_model_get_micro_batch", STATUS, [ModelP, c_int_p]),
        ("cvae_model_set_reduce_overlap", STATUS, [ModelP, c_int]),
    ]
    # C enums are passed as int: the header pins their values.
    for name in CONFIG_INT_ACCESSORS + CONFIG_ENUM_ACCESSORS:
        p.append(("cvae_config_set_" + name, STATUS, [ConfigP, c_int]))
        p.append(("cvae_config_get_" + name, STATUS, [ConfigP, c_int_p]))
    for name in CONFIG_DOUBLE_ACCESSORS:
        p.append(("cvae_config_set_" + name, STATUS, [ConfigP, c_double]))
        p.append(("cvae_config_get_" + name, STATUS, [ConfigP, c_double_p]))
    return p


PROTOTYPES = _prototypes()


# ---------------------------------------------------------------------------
# Finding the shared library
# ---------------------------------------------------------------------------

if sys.platform == "darwin":
    _SONAME = "libconvvae.%d.dylib" % ABI_MAJOR
elif sys.platform == "win32":
    _SONAME = "convvae.dll"
else:
    _SONAME = "libconvvae.so.%d" % ABI_MAJOR


def library_candidates(environ=None, package_dir=None):
    """Where the library is looked for, in order, as (origin, path_or_name).

    1. $CONVVAE_LIBRARY (and nothing else when it is set: an explicit choice
       that fails must not silently pick another library);
    2. a copy next to this package (python/convvae/libconvvae.so.0);
    3. the SONAME through the system loader (LD_LIBRARY_PATH, ld.so.cache).
    """
    environ = os.environ if environ is None else environ
    package_dir = os.path.dirname(os.path.abspath(__file__)) if package_dir is None else package_dir
    explicit = environ.get("CONVVAE_LIBRARY")
    if explicit:
        return [("CONVVAE_LIBRARY", explicit)]
    out = []
    local = os.path.join(package_dir, _SONAME)
    if os.path.exists(local):
        out.append(("package", local))
    out.append(("loader", _SONAME))
    return out


def _open():
    tried = []
    for origin, where in library_candidates():
        try:
            return ctypes.CDLL(where), where
        except OSError as e:
            tried.append("%s (%s): %s" % (where, origin, e))
    # Last resort for systems where only the unversioned dev link is known.
    found = ctypes.util.find_library("convvae")
    if found and not os.environ.get("CONVVAE_LIBRARY"):
        try:
            return ctypes.CDLL(found), found
        except OSError as e:
            tried.append("%s (find_library): %s" % (found, e))
    raise ImportError("cannot load libconvvae; set CONVVAE_LIBRARY to the path of %s.\nTried:\n  %s"
                      % (_SONAME, "\n  ".join(tried)))


def _errcheck(result, func, args):
    if result != 0:
        msg = lib.cvae_last_error()
        raise ConvVAEError(result, msg.decode("utf-8", "replace") if msg else "")
    return result


def _declare(dll):
    missing = []
    for name, restype, argtypes in PROTOTYPES:
        try:
            f = getattr(dll, name)
        except AttributeError:
            missing.append(name)
            continue
        f.argtypes = argtypes
        if restype is STATUS:
            f.restype = c_int
            f.errcheck = _errcheck
        else:
            f.restype = restype
    return missing


lib, library_path = _open()
_missing = _declare(lib)
if _missing:
    raise ImportError("%s lacks %d function(s) this package needs (%s ...): too old?"
                      % (library_path, len(_missing), ", ".join(_missing[:3])))
if lib.cvae_version_number() >> 16 != ABI_MAJOR:
    raise ImportError("%s is version %s; this package needs major version %d"
                      % (library_path, lib.cvae_version_string().decode(), ABI_MAJOR))


# ---------------------------------------------------------------------------
# Argument checks done in Python, so that ctypes never truncates silently
# ---------------------------------------------------------------------------

INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
UINT64_MAX = 2 ** 64 - 1


def invalid(message):
    return ConvVAEError(Status.INVALID_ARG, message)


def to_int(value, what, lo=INT_MIN, hi=INT_MAX):
    """An integer argument for a C int / int64_t / uint64_t parameter.

    Non-integers (floats included) are a TypeError, as for range(); values
    that the C type cannot hold are ConvVAEError(CVAE_E_INVALID_ARG) rather
    than being wrapped by ctypes into something valid-looking.
    """
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (what, type(value).__name__)) from None
    if not lo <= v <= hi:
        raise invalid("%s = %d is outside [%d, %d]" % (what, v, lo, hi))
    return v


def to_float(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError("%s must be a number, not %s" % (what, type(value).__name__)) from None


def cores():
    """The machine's processor count in [1, 1024]: the package's default for
    threads (the C library's own default stays 1)."""
    return max(1, min(1024, os.cpu_count() or 1))


def to_path(path):
    """bytes for a char * path parameter (str, bytes or os.PathLike)."""
    return os.fsencode(path)

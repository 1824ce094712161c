"""The package without numpy (run with CONVVAE_HIDE_NUMPY=1): plain Python
buffers in, array.array out."""
import array
import ctypes
import sys

import pytest

import convvae
from convvae import ConvVAEError, Dataset, _native

pytestmark = pytest.mark.skipif(convvae.HAVE_NUMPY, reason="numpy is present; "
                                "run with CONVVAE_HIDE_NUMPY=1")


def test_numpy_is_really_absent():
    assert not convvae.HAVE_NUMPY
    with pytest.raises(ImportError):
        import numpy  # noqa: F401
    assert "numpy" not in [m for m in sys.modules if sys.modules[m] is not None]


def test_outputs_are_arrays(trained, dataset):
    images = dataset.images()
    assert isinstance(images, array.array) and images.typecode == "f" and len(images) == 120 * 64
    pred = trained.predict(images)
    assert isinstance(pred, array.array) and pred.itemsize == 4 and len(pred) == 120
    proba = trained.predict_proba(images)
    assert proba.typecode == "f" and len(proba) == 360
    mu, logvar = trained.encode(images)
    assert mu.typecode == logvar.typecode == "f" and len(mu) == 240
    assert len(trained.generate(0, 2)) == 128
    assert isinstance(dataset.labels(), array.array)


def test_plain_buffers_of_every_kind(trained, data):
    px, labels = data
    want = list(trained.predict(Dataset(px, shape=(120, 8, 8))))
    f = array.array("f", [v / 255.0 for v in px])
    inputs = [
        px, bytearray(px), array.array("B", px), memoryview(px), f,
        memoryview(f).cast("B").cast("f", shape=[120, 1, 8, 8]),
        array.array("d", f), list(px), [[list(f[i * 64 + r * 8:i * 64 + r * 8 + 8]) for r in range(8)] for i in range(120)],
    ]
    for obj in inputs:
        assert list(trained.predict(obj)) == want, type(obj)
        with Dataset(obj, labels, shape=(120, 8, 8)) as ds:
            assert list(trained.predict(ds)) == want, type(obj)


def test_writable_array_reaches_c_without_a_copy(monkeypatch, trained, dataset):
    images = dataset.images()
    real = _native.lib.cvae_model_predict
    seen = []

    def spy(*args):
        seen.append(ctypes.cast(args[1], ctypes.c_void_p).value)
        return real(*args)

    monkeypatch.setattr(_native.lib, "cvae_model_predict", spy)
    trained.predict(images)
    assert seen == [images.buffer_info()[0]]


def test_out_buffers(trained, dataset):
    images = dataset.images()
    out = array.array("f", [0.0]) * 360
    assert trained.predict_proba(images, out=out) is out
    assert list(out) == list(trained.predict_proba(images))
    with pytest.raises(ConvVAEError) as e:
        trained.predict_proba(images, out=array.array("f", [0.0]) * 10)
    assert e.value.name == "CVAE_E_INVALID_ARG"


def test_flat_buffers_need_a_shape(data):
    px, _ = data
    with pytest.raises(ConvVAEError) as e:
        Dataset(px)
    assert e.value.name == "CVAE_E_INVALID_ARG" and "shape" in e.value.message
    with Dataset(memoryview(px).cast("B", shape=[120, 8, 8])) as ds:  # shaped view: no need
        assert ds.shape == (120, 1, 8, 8)

"""numpy in and out: zero-copy for C-contiguous float32/uint8, conversion
otherwise, outputs allocated in Python and filled by C."""
import ctypes
import os
import subprocess
import sys

import pytest

np = pytest.importorskip("numpy")

import convvae  # noqa: E402
from convvae import ConvVAEError, Dataset, _buffers, _native  # noqa: E402


@pytest.fixture(scope="module")
def arrays(data):
    px, labels = data
    u8 = np.frombuffer(px, dtype=np.uint8).reshape(120, 8, 8).copy()
    f32 = u8.astype(np.float32) / np.float32(255)
    return u8, f32, np.array(labels)


def address(ptr):
    return ctypes.cast(ptr, ctypes.c_void_p).value


class Spy:
    """Wraps a C function: records the address of argument `index`."""

    def __init__(self, monkeypatch, name, index):
        self.real = getattr(_native.lib, name)
        self.index = index
        self.addresses = []
        monkeypatch.setattr(_native.lib, name, self)

    def __call__(self, *args):
        self.addresses.append(address(args[self.index]))
        return self.real(*args)


def test_conversion_returns_the_same_object_when_it_can():
    a = np.zeros((4, 1, 8, 8), dtype=np.float32)
    assert _buffers.as_c_array(a, "f32") is a
    u = np.zeros((4, 8, 8), dtype=np.uint8)
    assert _buffers.as_c_array(u, "u8") is u
    px = _buffers.Pixels(a)
    assert px.keep is a and px.kind == "f32" and px.shape == a.shape
    base = np.zeros((4, 8, 16), dtype=np.float32)
    unaligned = np.frombuffer(bytearray(4 * 64 + 1), dtype=np.float32, count=64, offset=1)
    for other in (base[:, :, ::2], np.asfortranarray(np.zeros((4, 8, 8), np.float32)),
                  a.astype(np.float64), a.astype(">f4"), unaligned):
        conv = _buffers.as_c_array(other, "f32")
        assert conv is not other and not np.shares_memory(conv, other)
        assert conv.dtype == np.float32 and conv.flags.c_contiguous and conv.flags.aligned
        assert np.array_equal(conv, other)


def test_float32_images_reach_c_without_a_copy(monkeypatch, trained, arrays):
    _, f32, _ = arrays
    spy = Spy(monkeypatch, "cvae_model_predict", 1)
    trained.predict(f32)
    assert spy.addresses == [f32.ctypes.data]
    # a strided view cannot be passed as it is: it is copied once
    view = np.repeat(f32, 2, axis=2)[:, :, ::2]
    assert np.array_equal(view, f32)
    trained.predict(view)
    assert spy.addresses[-1] not in (view.ctypes.data, f32.ctypes.data)


def test_dataset_pixels_reach_c_without_a_copy(monkeypatch, arrays):
    u8, f32, labels = arrays
    s8 = Spy(monkeypatch, "cvae_dataset_from_u8", 0)
    s32 = Spy(monkeypatch, "cvae_dataset_from_f32", 0)
    lab32 = labels.astype(np.int32)
    sl = Spy(monkeypatch, "cvae_dataset_from_f32", 5)
    Dataset(u8).close()
    Dataset(f32, lab32).close()
    assert s8.addresses == [u8.ctypes.data]
    assert sl.addresses == [lab32.ctypes.data]
    assert s32.real is not None and sl.real is s32  # the spies are chained
    assert s32.addresses == [f32.ctypes.data]


def test_outputs_are_numpy_and_out_is_filled_in_place(trained, arrays):
    _, f32, _ = arrays
    pred = trained.predict(f32)
    assert isinstance(pred, np.ndarray) and pred.dtype == np.int32 and pred.shape == (120,)
    proba = trained.predict_proba(f32)
    assert proba.dtype == np.float32 and proba.shape == (120, 3)
    assert np.array_equal(pred, proba.argmax(axis=1))
    mu, logvar = trained.encode(f32)
    assert mu.shape == logvar.shape == (120, 2) and mu.dtype == np.float32
    gen = trained.generate(0, 5, seed=1)
    assert gen.shape == (5, 1, 8, 8) and gen.dtype == np.float32
    out = np.full((120, 3), -1, dtype=np.float32)
    got = trained.predict_proba(f32, out=out)
    assert got is out and np.array_equal(out, proba)
    big = np.zeros((2, 120, 3), dtype=np.float32)
    got = trained.predict_proba(f32, out=big[1])  # a contiguous view: filled in place
    assert np.shares_memory(got, big) and np.array_equal(big[1], proba)
    mo, lo = np.empty_like(mu), np.empty_like(logvar)
    assert trained.encode(f32, out=(mo, lo))[0] is mo and np.array_equal(lo, logvar)
    p = np.empty(120, dtype=np.int32)
    assert trained.predict(f32, out=p) is p and np.array_equal(p, pred)


def test_bad_out_arrays(trained, arrays):
    _, f32, _ = arrays
    for out in (np.empty((120, 3), np.float64), np.empty((120, 4), np.float32),
                np.empty((3, 120), np.float32).T):
        with pytest.raises(ConvVAEError) as e:
            trained.predict_proba(f32, out=out)
        assert e.value.name == "CVAE_E_INVALID_ARG"
    ro = np.empty((120, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ConvVAEError):
        trained.predict_proba(f32, out=ro)
    with pytest.raises(TypeError):
        trained.predict_proba(f32, out=[0.0] * 360)


def test_shapes_and_dtypes_in(trained, arrays):
    u8, f32, labels = arrays
    want = trained.predict(f32)
    assert np.array_equal(trained.predict(f32[:, None]), want)      # (N, C, H, W)
    assert np.array_equal(trained.predict(f32.ravel()), want)       # flat
    assert np.array_equal(trained.predict(u8), want)                # uint8 scaled by 1/255
    assert np.array_equal(trained.predict(np.asfortranarray(u8)), want)
    assert np.array_equal(trained.predict(np.asfortranarray(f32)), want)
    assert np.array_equal(trained.predict(u8.astype(np.int64)), want)
    assert np.array_equal(trained.predict(f32.astype(np.float64)), want)
    assert trained.predict(f32[7]).shape == (1,)                    # one image
    assert np.array_equal(trained.predict(f32[7]), want[7:8])
    rec = trained.reconstruct(f32)
    assert rec.shape == f32.shape                                   # mirrors the input
    assert trained.reconstruct(f32[:3, None]).shape == (3, 1, 8, 8)
    with pytest.raises(ConvVAEError) as e:
        trained.predict(f32.reshape(120, 4, 16))
    assert e.value.name == "CVAE_E_INVALID_ARG"
    with pytest.raises(ConvVAEError) as e:
        trained.predict((u8.astype(np.int64) * 2))                 # ints above 255
    assert e.value.name == "CVAE_E_INVALID_ARG"
    with pytest.raises(TypeError):
        trained.predict(f32.astype(np.complex64))


def test_dataset_from_numpy(arrays, dataset):
    u8, f32, labels = arrays
    with Dataset(u8, labels) as a, Dataset(f32[:, None], labels.astype(np.uint8)) as b:
        assert a.shape == b.shape == (120, 1, 8, 8)
        ia, ib = a.images(), b.images()
        assert isinstance(ia, np.ndarray) and ia.shape == (120, 1, 8, 8)
        assert np.array_equal(ia, ib) and np.array_equal(ia, dataset.images())
        assert np.array_equal(a.labels(), labels) and a.labels().dtype == np.int32
        with a.subset(np.array([3, 1])) as s:
            assert np.array_equal(s.labels(), labels[[3, 1]])
    with Dataset(f32.astype(np.float64)) as c:
        assert np.array_equal(c.images()[:, 0], f32)
    with pytest.raises(ConvVAEError) as e:
        Dataset(f32, labels.reshape(60, 2))
    assert e.value.name == "CVAE_E_INVALID_ARG"
    with pytest.raises(TypeError):
        Dataset(f32, labels.astype(np.float32))
    with pytest.raises(ConvVAEError) as e:
        Dataset(f32, labels.astype(np.int64) + 2 ** 40)
    assert e.value.name == "CVAE_E_INVALID_ARG"
    with pytest.raises(ConvVAEError) as e:
        Dataset(f32[0])  # (8, 8): no count
    assert e.value.name == "CVAE_E_INVALID_ARG"
    nan = f32.copy()
    nan[5, 2, 2] = np.nan
    with pytest.raises(ConvVAEError) as e:
        Dataset(nan)
    assert e.value.name == "CVAE_E_NUMERIC"


def test_config_takes_numpy_scalars():
    with convvae.Config() as c:
        c["latent_dim"] = np.int64(7)
        c["learning_rate"] = np.float32(0.5)
        c.clusters = np.int32(4)
        c.lambda_ = np.float64(0.25)
        assert (c.latent_dim, c.learning_rate, c.clusters, c["lambda"]) == (7, 0.5, 4, 0.25)


def test_metrics_accept_numpy(arrays, trained):
    _, f32, labels = arrays
    pred = trained.predict(f32)
    assert convvae.cluster_metrics(labels, pred) == convvae.cluster_metrics(
        labels.tolist(), pred.tolist())


def test_suite_without_numpy_in_a_subprocess():
    """The no-numpy tests, run here too so that a plain `pytest` covers them."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, CONVVAE_HIDE_NUMPY="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        os.path.join(here, "test_nonumpy.py")],
                       env=env, capture_output=True, text=True, cwd=here)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed" in r.stdout and "skipped" not in r.stdout, r.stdout

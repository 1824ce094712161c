"""Dataset: from buffers and IDX files, shape, labels, images, subsets, errors."""
import array

import pytest

from convvae import ConvVAEError, Dataset
from helpers import flat, f32, write_idx_images, write_idx_labels, int32_array


def status(excinfo):
    return excinfo.value.name


def test_from_uint8_buffer(data):
    px, labels = data
    with Dataset(px, labels, shape=(120, 8, 8)) as ds:
        assert ds.shape == (120, 1, 8, 8) and len(ds) == 120 and ds.image_shape == (1, 8, 8)
        assert ds.has_labels
        assert flat(ds.labels()) == labels
        # uint8 pixels are scaled by 1/255 in float32
        first = flat(ds.images(0, 2))
        assert first == [f32(v / 255.0) for v in px[:128]]
        assert "120 x 1 x 8 x 8, labelled" in repr(ds)


def test_from_float32_is_exact_and_nchw():
    vals = [i / 97.0 for i in range(2 * 3 * 4 * 4)]
    buf = array.array("f", vals)
    with Dataset(buf, shape=(2, 3, 4, 4)) as ds:
        assert ds.shape == (2, 3, 4, 4) and not ds.has_labels
        assert flat(ds.images()) == list(buf)
        assert flat(ds.images(1, 1)) == list(buf[48:])


def test_same_pixels_as_nhw_or_nchw(data):
    px, labels = data
    with Dataset(px, shape=(120, 8, 8)) as a, Dataset(px, shape=(120, 1, 8, 8)) as b:
        assert a.shape == b.shape and flat(a.images()) == flat(b.images())


def test_labels_accept_sequences_and_arrays(data):
    px, labels = data
    for lab in (labels, tuple(labels), int32_array(labels), array.array("q", labels)):
        with Dataset(px, lab, shape=(120, 8, 8)) as ds:
            assert flat(ds.labels()) == labels


def test_input_is_copied(data):
    px, labels = data
    buf = bytearray(px)
    with Dataset(buf, shape=(120, 8, 8)) as ds:
        before = flat(ds.images(0, 1))
        buf[0] ^= 0xFF
        assert flat(ds.images(0, 1)) == before


@pytest.mark.parametrize("kwargs", [
    dict(shape=(121, 8, 8)),          # more values than the buffer has
    dict(shape=(60, 8, 8)),           # fewer
    dict(shape=(120, 64)),            # not (N,H,W) / (N,C,H,W)
    dict(),                           # a flat buffer needs a shape
    dict(shape=(120, 8, 8), labels=[0] * 119),
    dict(shape=(0, 8, 8)),
])
def test_bad_shapes_are_invalid_arg(data, kwargs):
    px, _ = data
    if kwargs.get("shape") == (0, 8, 8):
        px = b""
    with pytest.raises(ConvVAEError) as e:
        Dataset(px, **kwargs)
    assert status(e) == "CVAE_E_INVALID_ARG"


def test_pixel_and_label_validation():
    with pytest.raises(ConvVAEError) as e:
        Dataset(array.array("f", [0.5, float("nan"), 0.0, 0.0]), shape=(1, 2, 2))
    assert status(e) == "CVAE_E_NUMERIC" and "NaN" in e.value.message
    with pytest.raises(ConvVAEError) as e:
        Dataset(array.array("f", [0.5, 1.5, 0.0, 0.0]), shape=(1, 2, 2))
    assert status(e) == "CVAE_E_INVALID_ARG" and "outside [0, 1]" in e.value.message
    with pytest.raises(ConvVAEError) as e:
        Dataset(bytes(8), [0, -1], shape=(2, 2, 2))
    assert status(e) == "CVAE_E_INVALID_ARG" and "negative" in e.value.message
    with pytest.raises(ConvVAEError) as e:
        Dataset(bytes(8), [0, 2 ** 31], shape=(2, 2, 2))
    assert status(e) == "CVAE_E_INVALID_ARG"
    with pytest.raises(TypeError):
        Dataset(bytes(8), [0, 0.5], shape=(2, 2, 2))
    with pytest.raises(TypeError):
        Dataset(object(), shape=(1, 1, 1))


def test_labels_of_unlabelled_set_is_state_error():
    with Dataset(bytes(4), shape=(1, 2, 2)) as ds:
        with pytest.raises(ConvVAEError) as e:
            ds.labels()
        assert status(e) == "CVAE_E_STATE"


def test_images_range_checked(dataset):
    for start, count in ((120, 1), (0, 121), (119, 2), (0, 0)):
        with pytest.raises(ConvVAEError) as e:
            dataset.images(start, count)
        assert status(e) == "CVAE_E_INVALID_ARG"
    with pytest.raises(ConvVAEError):
        dataset.images(-1, 1)


def test_subsets(dataset, data):
    px, labels = data
    with dataset.first(10) as a:
        assert len(a) == 10 and flat(a.labels()) == labels[:10]
        assert flat(a.images()) == flat(dataset.images(0, 10))
    with dataset.subset([5, 5, 0]) as b:
        assert flat(b.labels()) == [labels[5], labels[5], labels[0]]
        assert flat(b.images()) == flat(dataset.images(5, 1)) * 2 + flat(dataset.images(0, 1))
    with dataset[:7] as c, dataset[10:20:5] as d, dataset[-2:] as e:
        assert len(c) == 7
        assert flat(d.labels()) == [labels[10], labels[15]]
        assert flat(e.labels()) == labels[-2:]
    for bad in (lambda: dataset.first(0), lambda: dataset.first(121),
                lambda: dataset.subset([0, 120]), lambda: dataset.subset([]),
                lambda: dataset.subset([-1]), lambda: dataset[5:5]):
        with pytest.raises(ConvVAEError) as e:
            bad()
        assert status(e) == "CVAE_E_INVALID_ARG"
    with pytest.raises(TypeError):
        dataset[3]


@pytest.mark.parametrize("compress", [False, True])
def test_from_idx(tmp_path, data, compress):
    px, labels = data
    img, lab = tmp_path / "img", tmp_path / "lab"
    write_idx_images(img, px, 120, 8, 8, compress=compress)
    write_idx_labels(lab, labels, compress=compress)
    with Dataset.from_idx(img, str(lab)) as ds, Dataset(px, labels, shape=(120, 8, 8)) as ref:
        assert ds.shape == (120, 1, 8, 8)
        assert flat(ds.labels()) == labels
        assert flat(ds.images()) == flat(ref.images())
    with Dataset.from_idx(str(img).encode()) as ds:
        assert not ds.has_labels


def test_idx_errors(tmp_path, data):
    px, labels = data
    missing = tmp_path / "nope"
    with pytest.raises(ConvVAEError) as e:
        Dataset.from_idx(missing)
    assert status(e) == "CVAE_E_IO"
    img = tmp_path / "img"
    write_idx_images(img, px, 120, 8, 8)
    with pytest.raises(ConvVAEError) as e:
        Dataset.from_idx(img, missing)
    assert status(e) == "CVAE_E_IO"
    bad_magic = tmp_path / "bad"
    write_idx_images(bad_magic, px, 120, 8, 8, magic=0x00000903)
    trunc = tmp_path / "trunc"
    write_idx_images(trunc, px, 120, 8, 8, truncate=10)
    few = tmp_path / "few"
    write_idx_labels(few, labels[:-1])
    for args in ((bad_magic,), (trunc,), (img, few), (img, img)):
        with pytest.raises(ConvVAEError) as e:
            Dataset.from_idx(*args)
        assert status(e) == "CVAE_E_FORMAT", args


def test_close_is_idempotent_and_later_use_raises(data):
    px, labels = data
    ds = Dataset(px, labels, shape=(120, 8, 8))
    ds.close()
    ds.close()
    assert ds.closed and repr(ds) == "<Dataset (closed)>"
    for call in (lambda: len(ds), ds.labels, ds.images, lambda: ds.first(1)):
        with pytest.raises(ConvVAEError) as e:
            call()
        assert status(e) == "CVAE_E_STATE"

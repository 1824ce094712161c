"""Shared fixtures. Set CONVVAE_HIDE_NUMPY=1 to run the suite as if numpy
were not installed (numpy-only tests then skip, test_nonumpy.py runs)."""
import os
import sys

if os.environ.get("CONVVAE_HIDE_NUMPY") == "1":
    # None in sys.modules makes every "import numpy" raise ImportError,
    # exactly as on a machine without numpy.
    sys.modules["numpy"] = None

# Import the package from this source tree unless it is installed.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_here))

import pytest  # noqa: E402

import convvae  # noqa: E402
import helpers  # noqa: E402


def pytest_report_header(config):
    return "convvae: library %s (%s), numpy %s" % (
        convvae.library_version(), convvae.library_path,
        "present" if convvae.HAVE_NUMPY else "hidden/absent")


@pytest.fixture(scope="session")
def data():
    """(pixels as bytes, labels as list): 3 classes x 40 of 8x8 uint8 images."""
    return helpers.make_data()


@pytest.fixture
def dataset(data):
    px, labels = data
    with convvae.Dataset(px, labels, shape=(len(labels), 8, 8)) as ds:
        yield ds


@pytest.fixture(scope="session")
def trained(data):
    """A model trained on the tiny data set (shared: do not train it further
    or close it in tests)."""
    px, labels = data
    with convvae.Dataset(px, labels, shape=(len(labels), 8, 8)) as ds:
        model = convvae.Model(helpers.TINY)
        assert model.train(ds, helpers.TRAIN_EPOCHS) is True
    yield model
    model.close()


@pytest.fixture
def model():
    with convvae.Model(helpers.TINY) as m:
        yield m

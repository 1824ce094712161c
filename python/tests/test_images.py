"""Image files: Dataset.from_images on a tree the tests write (PNG in pure
Python, one small JPEG kept inline), channels-last numpy input, integer
range checks, and an RGB model trained and clustered end to end."""
import base64
import os
import struct
import zlib

import pytest

import convvae
from convvae import ConvVAEError, Dataset, Status

pytestmark = pytest.mark.skipif(not convvae._native.lib.cvae_images_supported(),
                                reason="libconvvae built without image files")

# A 7x9 RGB JPEG (written by libjpeg-turbo at quality 90).
JPEG_7x9 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsK"
    "CwsNDhIQDQ4RDgsLEBYQERMUFRUVDA8XGBYUGBIUFRT/2wBDAQMEBAUEBQkFBQkUDQsNFBQUFBQU"
    "FBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBT/wAARCAAJAAcDASIA"
    "AhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQA"
    "AAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3"
    "ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWm"
    "p6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEA"
    "AwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSEx"
    "BhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElK"
    "U1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3"
    "uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDB+Ef7"
    "M2YEH2PPy9Nnt6Y9vTt04+Ur7D+FH/IOH/XL+kdFdHEPiDmODxzp8t7q+9ur8jp4C45zWWQUHzf1"
    "of/Z"
)


def png_bytes(w, h, rows, color_type=0, depth=8, palette=None, trns=None):
    """A PNG from rows of samples (lists of ints), written from the spec."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    raw = b""
    for row in rows:
        if depth == 16:
            raw += b"\0" + b"".join(struct.pack(">H", v) for v in row)
        else:
            raw += b"\0" + bytes(row)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type,
                                                            0, 0, 0))
    if palette:
        out += chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    if trns:
        out += chunk(b"tRNS", bytes(trns))
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Every kind of file: grey, RGB, palette (with transparency), 16-bit,
    alpha, JPEG, nested folders, mixed sizes, and bad or ignored files."""
    d = tmp_path_factory.mktemp("images")
    write(d / "a_grey.png", png_bytes(4, 2, [[0, 50, 100, 150], [200, 250, 255, 10]]))
    write(d / "b_rgb.png", png_bytes(2, 1, [[255, 0, 0, 0, 0, 255]], color_type=2))
    write(d / "c_pal.png", png_bytes(2, 1, [[0, 1]], color_type=3,
                                     palette=[(0, 255, 0), (0, 0, 0)], trns=[255, 0]))
    write(d / "d_16.png", png_bytes(2, 1, [[0, 65535]], depth=16))
    write(d / "e_alpha.png", png_bytes(1, 1, [[0, 0, 0, 0]], color_type=6))
    write(d / "sub" / "deeper" / "f.jpg", JPEG_7x9)
    write(d / "sub" / "g_big.png", png_bytes(40, 30, [[(x * 6) % 256 for x in range(40)]] * 30))
    write(d / "zz_bad" / "corrupt.png", b"\x89PNG\r\n\x1a\n garbage")
    write(d / "zz_bad" / "empty.jpg", b"")
    write(d / "zz_bad" / "text.png", b"not an image\n")
    write(d / "notes.txt", b"ignored\n")
    write(d / ".hidden.png", png_bytes(1, 1, [[0]]))
    os.symlink(".", d / "loop")
    return d


GOOD = ["a_grey.png", "b_rgb.png", "c_pal.png", "d_16.png", "e_alpha.png",
        "sub/deeper/f.jpg", "sub/g_big.png"]


def test_directory_sorted_recursive_skip(tree):
    skipped = []
    with pytest.warns(UserWarning, match="skipped 3"):
        ds = Dataset.from_images(str(tree), size=(4, 6), channels=3, skip_bad=True,
                                 skipped=skipped, threads=2)
    with ds:
        assert ds.shape == (len(GOOD), 3, 4, 6)
        assert ds.paths() == [os.path.join(str(tree), p) for p in GOOD]
        assert [os.path.basename(p) for p, _ in skipped] == ["corrupt.png", "empty.jpg",
                                                             "text.png"]
        assert "is empty" in skipped[1][1]


def test_error_names_the_file(tree):
    with pytest.raises(ConvVAEError) as e:
        Dataset.from_images(tree, size=8)
    assert e.value.status == Status.FORMAT
    assert "corrupt.png" in e.value.message


def test_pixel_conventions(tree):
    """Exact values at the files' own sizes: grey as stored, RGB to luma,
    a transparent palette entry and a transparent pixel on white, 16-bit."""
    np = pytest.importorskip("numpy")
    with Dataset.from_images(tree / "a_grey.png", size=(2, 4), channels=1) as ds:
        assert ds.images().reshape(2, 4).tolist() == \
            (np.array([[0, 50, 100, 150], [200, 250, 255, 10]], np.float32) / 255).tolist()
    with Dataset.from_images([tree / "b_rgb.png"], size=(1, 2), channels=1) as ds:
        got = np.round(ds.images().ravel() * 255)
        assert got.tolist() == [round(0.299 * 255), round(0.114 * 255)]
    with Dataset.from_images([tree / "c_pal.png", tree / "d_16.png"], size=(1, 2)) as ds:
        im = np.round(ds.images() * 255).astype(int)
        assert im[0, :, 0, 0].tolist() == [0, 255, 0]        # opaque green
        assert im[0, :, 0, 1].tolist() == [255, 255, 255]    # transparent: white
        assert im[1, :, 0, :].tolist() == [[0, 255]] * 3     # 16-bit extremes
    with Dataset.from_images(tree / "e_alpha.png", size=1, channels=1) as ds:
        assert ds.images().ravel().tolist() == [1.0]


def test_list_file_and_resize(tree, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("%s\n\n%s\n" % (tree / "sub/g_big.png", tree / "sub/deeper/f.jpg"))
    seen = []
    with Dataset.from_images(None, list_file=lst, size=(3, 4), channels=1,
                             progress=lambda d, t: seen.append((d, t))) as ds:
        assert len(ds) == 2 and ds.paths()[1].endswith("f.jpg")
        assert seen[-1] == (2, 2)
    with Dataset.from_images(tree / "sub/g_big.png", size=(30, 40), channels=1) as full, \
            Dataset.from_images(tree / "sub/g_big.png", size=(3, 4), channels=1) as small:
        # Shrinking by 10 averages 10x10 blocks of the decoded pixels.
        np = pytest.importorskip("numpy")
        f = full.images().reshape(30, 40).astype(np.float64)
        want = f.reshape(3, 10, 4, 10).mean(axis=(1, 3))
        assert np.abs(small.images().reshape(3, 4) - want).max() <= 0.5 / 255 + 1e-6


def test_cancel(tree):
    with pytest.raises(ConvVAEError) as e:
        Dataset.from_images([tree / p for p in GOOD], size=4, progress=lambda d, t: True)
    assert e.value.status == Status.CANCELLED


def test_paths_absent_for_arrays():
    with Dataset(bytes(16), shape=(1, 4, 4)) as ds:
        assert ds.paths() is None


def test_channels_last_numpy():
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    with Dataset(nhwc, layout="NHWC") as ds:
        assert ds.shape == (5, 3, 8, 8)
        assert np.array_equal(ds.images(), nhwc.transpose(0, 3, 1, 2) / np.float32(255))
    # The silent misread of (N, 8, 8, 1) is now an error under the default layout ...
    with pytest.raises(ConvVAEError, match="channels-last"):
        Dataset(nhwc[..., :1])
    # ... and right when asked for.
    with Dataset(nhwc[..., :1], layout="NHWC") as ds:
        assert ds.shape == (5, 1, 8, 8)
        assert np.array_equal(ds.images()[:, 0], nhwc[..., 0] / np.float32(255))
    with pytest.raises(ConvVAEError):
        Dataset(nhwc, layout="HWC")


def test_channels_last_without_numpy():
    data = bytearray(range(2 * 2 * 2 * 3))  # (N=2, H=2, W=2, C=3)
    with Dataset(data, shape=(2, 2, 2, 3), layout="NHWC") as ds:
        im = ds.images()
        got = [round(v * 255) for v in (im.ravel().tolist() if hasattr(im, "ravel") else im)]
    want = [data[((n * 2 + y) * 2 + x) * 3 + c]
            for n in range(2) for c in range(3) for y in range(2) for x in range(2)]
    assert got == want


@pytest.mark.parametrize("bad", [256, -1])
def test_integer_pixels_out_of_range(bad):
    np = pytest.importorskip("numpy")
    a = np.zeros((2, 4, 4), dtype=np.int32)
    a[1, 2, 3] = bad
    with pytest.raises(ConvVAEError, match=r"\[0, 255\]"):
        Dataset(a)
    with pytest.raises(ConvVAEError, match=r"\[0, 255\]"):
        Dataset([[[0, bad]]])


def test_threads_default_to_cores():
    with convvae.Config() as c:
        assert c.threads == min(1024, os.cpu_count() or 1)


def two_class_images(d, n):
    """n reddish PNGs with a bright square and n bluish striped ones, of
    mixed sizes."""
    for cls in range(2):
        for i in range(n):
            w, h = 16 + (i * 7) % 20, 16 + (i * 11) % 20
            rows = []
            for y in range(h):
                row = []
                for x in range(w):
                    noise = (x * 13 + y * 7 + i * 5) % 25
                    if cls == 0:
                        inside = w // 4 <= x < 3 * w // 4 and h // 4 <= y < 3 * h // 4
                        row += [230 - noise, 200 - noise if inside else 40 + noise, 30 + noise]
                    else:
                        row += [20 + noise, 180 - noise if (x // 3) % 2 else 60 + noise,
                                240 - noise]
                rows.append(row)
            write(d / ("class%d_%02d.png" % (cls, i)), png_bytes(w, h, rows, color_type=2))


def test_rgb_model_end_to_end(tmp_path):
    """Train an RGB model on two kinds of pictures from files and cluster
    them: each cluster should hold mostly one kind."""
    two_class_images(tmp_path, 20)
    with Dataset.from_images(tmp_path, size=(16, 16), channels=3) as ds, \
            convvae.Model(input_shape=(3, 16, 16), encoder_units=64, decoder_units=64,
                          category_units=32, latent_dim=8, clusters=2, batch_size=10,
                          epochs=25, recipe="paper") as model:
        model.train(ds)
        clusters = list(model.predict(ds))
        kinds = [0 if "class0" in os.path.basename(p) else 1 for p in ds.paths()]
    agree = sum(c == k for c, k in zip(clusters, kinds))
    assert max(agree, len(kinds) - agree) >= 0.75 * len(kinds), (clusters, kinds)

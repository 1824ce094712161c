"""The helpers of bench/figures.py: the Hungarian matching against brute
force and the library's ACC, the diversity numbers against plain loops,
and the PNG writer decoded by an independent reader."""
import importlib.util
import itertools
import os
import struct
import zlib

import pytest

np = pytest.importorskip("numpy")

import convvae  # noqa: E402
import helpers  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "figures", os.path.join(helpers.REPO, "bench", "figures.py"))
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)


def brute_min(cost):
    n = len(cost)
    return min(sum(cost[i][p[i]] for i in range(n)) for p in itertools.permutations(range(n)))


def test_hungarian_finds_the_minimum_of_random_6x6():
    rng = np.random.default_rng(7)
    for trial in range(40):
        # small integer ranges give many ties, the hard case for the potentials
        cost = rng.integers(0, 4 if trial % 2 else 1000, size=(6, 6))
        col = figures.hungarian(cost)
        assert sorted(col.tolist()) == list(range(6))
        assert cost[np.arange(6), col].sum() == brute_min(cost.tolist())


def test_hungarian_trivial_sizes_and_bad_shape():
    assert figures.hungarian(np.array([[5.0]])).tolist() == [0]
    assert figures.hungarian(np.array([[1, 0], [0, 1]])).tolist() == [1, 0]
    with pytest.raises(ValueError):
        figures.hungarian(np.zeros((2, 3)))


@pytest.mark.parametrize("k,nl", [(4, 6), (6, 4), (5, 5)])
def test_match_clusters_maximises_the_matched_count(k, nl):
    rng = np.random.default_rng(k * 10 + nl)
    for _ in range(10):
        counts = rng.integers(0, 50, size=(k, nl))
        hung = figures.match_clusters(counts)
        matched = [l for l in hung if l >= 0]
        assert len(matched) == min(k, nl) and len(set(matched)) == len(matched)
        best = max(sum(counts[c, l] for c, l in zip(cs, ls))
                   for cs in itertools.permutations(range(k), min(k, nl))
                   for ls in itertools.permutations(range(nl), min(k, nl)))
        assert sum(counts[c, l] for c, l in enumerate(hung) if l >= 0) == best


def test_acc_and_purity_agree_with_the_library():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, size=500)
    clusters = np.where(rng.random(500) < 0.6, (labels * 3) % 10, rng.integers(0, 10, size=500))
    counts = figures.contingency(labels, clusters, 10, 10)
    hung = figures.match_clusters(counts)
    acc = sum(counts[c, l] for c, l in enumerate(hung)) / 500
    purity = counts[np.arange(10), figures.majority_labels(counts)].sum() / 500
    lib = convvae.cluster_metrics(labels.astype(np.int32), clusters.astype(np.int32))
    assert acc == pytest.approx(lib["acc"], abs=1e-12)
    assert purity == pytest.approx(lib["purity"], abs=1e-12)


def test_diversity_matches_loops():
    rng = np.random.default_rng(1)
    x = rng.random((7, 3, 4)).astype(np.float32)
    flat = x.reshape(7, -1).astype(np.float64)
    dists = [np.sqrt(((flat[i] - flat[j]) ** 2).sum()) for i in range(7) for j in range(i + 1, 7)]
    stds = [np.sqrt(((flat[:, p] - flat[:, p].mean()) ** 2).mean()) for p in range(12)]
    l2, std = figures.diversity(x)
    assert l2 == pytest.approx(np.mean(dists), rel=1e-9)
    assert std == pytest.approx(np.mean(stds), rel=1e-9)
    assert figures.diversity(np.repeat(x[:1], 5, axis=0)) == pytest.approx((0.0, 0.0), abs=1e-6)


def read_png(data):
    """A minimal decoder for 8-bit greyscale, non-interlaced PNGs, checking
    every CRC; knows all five filter types."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, kinds = 8, b"", []
    while pos < len(data):
        n, = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body)
        kinds.append(kind)
        if kind == b"IHDR":
            w, h, depth, colour, comp, filt, inter = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, comp, filt, inter) == (8, 0, 0, 0, 0)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and pos == len(data)
    raw, rows, prev = zlib.decompress(idat), [], [0] * w
    assert len(raw) == h * (w + 1)
    for y in range(h):
        f, line = raw[y * (w + 1)], list(raw[y * (w + 1) + 1:(y + 1) * (w + 1)])
        for x in range(w):
            a, b, c = (line[x - 1] if x else 0), prev[x], (prev[x - 1] if x else 0)
            p = a + b - c
            pred = [0, a, b, (a + b) // 2,
                    a if abs(p - a) <= min(abs(p - b), abs(p - c)) else
                    b if abs(p - b) <= abs(p - c) else c][f]
            line[x] = (line[x] + pred) & 0xFF
        rows.append(line)
        prev = line
    return np.array(rows, dtype=np.uint8)


def test_png_round_trips():
    rng = np.random.default_rng(5)
    for shape in [(1, 1), (3, 7), (40, 29)]:
        px = rng.integers(0, 256, size=shape).astype(np.uint8)
        assert np.array_equal(read_png(figures.png_bytes(px)), px)
    with pytest.raises(ValueError):
        figures.png_bytes(np.zeros((0, 4), dtype=np.uint8))


def test_grid_places_every_image():
    imgs = np.arange(1, 24, dtype=np.float64).reshape(23, 1, 1) / 255
    g = figures.grid(imgs[:, 0:1, 0:1].repeat(2, 1).repeat(3, 2), cols=10, scale=2, gap=1,
                     fill=0)
    assert g.shape == (1 + 3 * (4 + 1), 1 + 10 * (6 + 1))
    for i in range(23):
        r, c = divmod(i, 10)
        cell = g[1 + r * 5:1 + r * 5 + 4, 1 + c * 7:1 + c * 7 + 6]
        assert (cell == i + 1).all()
    assert (g[1 + 2 * 5:, 1 + 3 * 7:] == 0).all()  # the unused cells of the last row
    both = figures.side_by_side([g, g[:5]], gap=3, fill=9)
    assert both.shape == (g.shape[0], 2 * g.shape[1] + 3)
    assert (both[5:, g.shape[1] + 3:] == 9).all()

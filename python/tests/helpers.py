"""Test data and independent references (plain Python, no numpy)."""
import array
import gzip
import itertools
import math
import os
import random
import struct

# A model small enough to train in well under a second on 120 8x8 images.
TINY = dict(input_shape=(1, 8, 8), latent_dim=2, clusters=3, encoder_units=32,
            decoder_units=32, category_units=16, batch_size=16, learning_rate=3e-3,
            branch1_filters=4, branch2_filters=8, warmup_epochs=5, kmeans_init=True, seed=5,
            # the paper's recipe on the network and weight it was tuned with, not
            # the ones the 8x8 shape would pick
            recipe="paper", branches=2, **{"lambda": 2.5})
TRAIN_EPOCHS = 12

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(REPO, "include", "convvae.h")


def make_data(per_class=40, seed=0, size=8):
    """Three well separated classes: a bright top-left quadrant, a bright
    top-right quadrant, a bright bottom half; noisy. Returns (bytes, labels)."""
    rng = random.Random(seed)
    h = size // 2
    regions = [(0, h, 0, h), (0, h, h, size), (h, size, 0, size)]
    px = bytearray()
    labels = []
    for i in range(per_class * 3):
        c = i % 3
        r0, r1, c0, c1 = regions[c]
        for y in range(size):
            for x in range(size):
                on = r0 <= y < r1 and c0 <= x < c1
                px.append(rng.randint(180, 255) if on else rng.randint(0, 40))
        labels.append(c)
    return bytes(px), labels


def flat(x):
    """Any output (numpy array, array.array, list) as a flat list."""
    if hasattr(x, "ravel"):
        return x.ravel().tolist()
    return list(x)


def f32(v):
    """v rounded to float32, as a Python float."""
    return struct.unpack("f", struct.pack("f", v))[0]


def write_idx_images(path, pixels, n, h, w, magic=0x00000803, compress=False, truncate=0):
    data = struct.pack(">I", magic) + struct.pack(">III", n, h, w) + bytes(pixels)
    if truncate:
        data = data[:-truncate]
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


def write_idx_labels(path, labels, magic=0x00000801, compress=False):
    data = struct.pack(">II", magic, len(labels)) + bytes(labels)
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


# -- reference clustering metrics (brute force, small k only) -----------------

def ref_metrics(labels, clusters):
    n = len(labels)
    ls, cs = sorted(set(labels)), sorted(set(clusters))
    cont = {(a, b): 0 for a in ls for b in cs}
    for a, b in zip(labels, clusters):
        cont[a, b] += 1
    # accuracy: best one-to-one map of clusters to labels; clusters beyond
    # the label count map to nothing.
    best = 0
    for perm in itertools.permutations(ls + [None] * max(0, len(cs) - len(ls)), len(cs)):
        best = max(best, sum(cont[p, c] for c, p in zip(cs, perm) if p is not None))
    acc = best / n
    purity = sum(max(cont[a, b] for a in ls) for b in cs) / n
    # NMI, arithmetic mean normalisation
    pa = {a: sum(cont[a, b] for b in cs) / n for a in ls}
    pb = {b: sum(cont[a, b] for a in ls) / n for b in cs}
    mi = sum(cont[a, b] / n * math.log(cont[a, b] / n / (pa[a] * pb[b]))
             for a in ls for b in cs if cont[a, b])
    ha = -sum(p * math.log(p) for p in pa.values())
    hb = -sum(p * math.log(p) for p in pb.values())
    nmi = 1.0 if ha == 0 and hb == 0 else (mi / ((ha + hb) / 2) if ha + hb > 0 else 0.0)
    # ARI
    c2 = lambda k: k * (k - 1) / 2  # noqa: E731
    s_ij = sum(c2(v) for v in cont.values())
    s_a = sum(c2(sum(cont[a, b] for b in cs)) for a in ls)
    s_b = sum(c2(sum(cont[a, b] for a in ls)) for b in cs)
    expected = s_a * s_b / c2(n) if n > 1 else 0.0
    top = (s_a + s_b) / 2
    ari = 1.0 if top == expected else (s_ij - expected) / (top - expected)
    return {"acc": acc, "purity": purity, "nmi": nmi, "ari": ari}


def int32_array(values):
    return array.array("i" if array.array("i").itemsize == 4 else "l", values)

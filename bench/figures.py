#!/usr/bin/python3
"""Figs. 2-4 of the paper, generated samples of the clusters matched to
Bag, T-shirt/top and Ankle boot, plain VAE beside ours, plus the diversity
numbers the paper only eyeballs:

    bench/figures.py --model plainvae=plain.safetensors --model convvae=ours.safetensors

Per checkpoint: predict the test set, map clusters to labels (Hungarian, and
majority/purity), generate --samples images of the cluster matched to each
class, write a PNG grid per model and class to --out-dir and one per class
with the models side by side in --model order (plain VAE first is the paper's
layout); print a markdown page (also written to --md, by default
docs/figures.md, which docs/results.md links) with the mean pairwise L2
distance and mean per-pixel standard deviation of the samples (and of real
test images of the class) and the share the model assigns back to the
cluster. Needs numpy and python/convvae; the library comes from --library,
else $CONVVAE_LIBRARY, else the package's own search.
"""
import argparse
import os
import re
import struct
import sys
import zlib

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLASS_NAMES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(d) for d in range(10)],
}
DEFAULT_CLASSES = {"fashion-mnist": [8, 0, 9], "mnist": [0, 1, 2]}
FILE_PREFIX = {"fashion-mnist": "fashion", "mnist": "mnist"}


class UsageError(Exception):
    pass


# -- cluster to label mappings -----------------------------------------------------

def hungarian(cost):
    """Minimum-cost assignment of a square matrix (Kuhn-Munkres with
    potentials, O(n^3)): returns col, where row i is assigned column col[i]."""
    a = np.asarray(cost, dtype=np.float64)
    n = a.shape[0]
    if a.ndim != 2 or a.shape[1] != n:
        raise ValueError("hungarian() needs a square matrix, got shape %s" % (a.shape,))
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    p = np.zeros(n + 1, dtype=np.int64)  # p[j]: row (1-based) holding column j; 0 = free
    way = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = np.flatnonzero(~used[1:]) + 1
            cur = a[i0 - 1, free - 1] - u[i0] - v[free]
            better = cur < minv[free]
            minv[free[better]] = cur[better]
            way[free[better]] = j0
            j1 = free[np.argmin(minv[free])]
            delta = minv[j1]
            u[p[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    col = np.zeros(n, dtype=np.int64)
    col[p[1:] - 1] = np.arange(n)
    return col


def contingency(labels, clusters, num_labels, num_clusters):
    """counts[c, l]: test images of label l predicted in cluster c."""
    counts = np.zeros((num_clusters, num_labels), dtype=np.int64)
    np.add.at(counts, (np.asarray(clusters), np.asarray(labels)), 1)
    return counts


def match_clusters(counts):
    """The one-to-one cluster -> label map maximising the matched count
    (clusters or labels left over when k != labels map to -1)."""
    k, nl = counts.shape
    size = max(k, nl)
    square = np.zeros((size, size), dtype=np.int64)
    square[:k, :nl] = counts
    col = hungarian(square.max() - square)
    return np.array([c if c < nl else -1 for c in col[:k]])


def majority_labels(counts):
    """Purity mapping: each cluster -> its most frequent label (-1 if empty)."""
    return np.where(counts.sum(1) > 0, counts.argmax(1), -1)


# -- numbers and pictures -----------------------------------------------------------

def diversity(images):
    """(mean pairwise L2 distance, mean per-pixel standard deviation) of a
    set of images, each flattened, pixels in [0, 1]."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    if len(x) < 2:
        raise ValueError("diversity needs at least two images")
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    upper = np.triu_indices(len(x), 1)
    return float(np.sqrt(d2[upper]).mean()), float(x.std(axis=0).mean())


def grid(images, cols=10, scale=2, gap=2, fill=128):
    """uint8 picture of images (N, H, W) in [0, 1], `cols` per row, each
    upscaled `scale` times, with `gap` pixels of grey between and around."""
    imgs = np.clip(np.rint(np.asarray(images, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    n, h, w = imgs.shape
    rows, hs, ws = -(-n // cols), h * scale + gap, w * scale + gap
    cells = np.full((rows * cols, hs, ws), fill, dtype=np.uint8)
    cells[:n, :hs - gap, :ws - gap] = imgs.repeat(scale, axis=1).repeat(scale, axis=2)
    out = cells.reshape(rows, cols, hs, ws).transpose(0, 2, 1, 3).reshape(rows * hs, cols * ws)
    return np.pad(out, ((gap, 0), (gap, 0)), constant_values=fill)


def side_by_side(pictures, gap=16, fill=255):
    h = max(len(p) for p in pictures)
    padded = [np.pad(p, ((0, h - len(p)), (0, gap)), constant_values=fill) for p in pictures]
    return np.hstack(padded)[:, :-gap]


def png_bytes(pixels):
    """An 8-bit greyscale PNG of a 2-D uint8 array."""
    px = np.ascontiguousarray(pixels, dtype=np.uint8)
    if px.ndim != 2 or px.shape[0] < 1 or px.shape[1] < 1:
        raise ValueError("png_bytes needs a non-empty 2-D array, got shape %s" % (px.shape,))
    h, w = px.shape

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = np.hstack([np.zeros((h, 1), dtype=np.uint8), px]).tobytes()  # filter 0 per row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_png(path, pixels):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(png_bytes(pixels))
    os.replace(tmp, path)


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# -- the run --------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, metavar="NAME=PATH",
                    help="a checkpoint and its name in file names and the table (repeatable)")
    ap.add_argument("--dataset", default="fashion-mnist", choices=sorted(CLASS_NAMES))
    ap.add_argument("--data-dir", default=os.path.join(REPO, "data"),
                    help="holds DATASET/t10k-{images-idx3,labels-idx1}-ubyte[.gz]")
    ap.add_argument("--classes", help="comma-separated labels (default: 8,0,9 for "
                    "fashion-mnist = Bag, T-shirt/top, Ankle boot; 0,1,2 for mnist)")
    ap.add_argument("--samples", type=int, default=100, help="images per model and class")
    ap.add_argument("--seed", type=int, default=1, help="seed of generate()")
    ap.add_argument("--out-dir", default=os.path.join(REPO, "docs", "img"))
    ap.add_argument("--md", default=os.path.join(REPO, "docs", "figures.md"))
    ap.add_argument("--library", help="path of libconvvae.so.0 (sets $CONVVAE_LIBRARY)")
    a = ap.parse_args(argv)
    models = []
    for spec in a.model:
        name, sep, path = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", name) or not path:
            raise UsageError("--model wants NAME=PATH with NAME of letters, digits, - and _; "
                             "got %r" % spec)
        if not os.path.isfile(path):
            raise UsageError("checkpoint %s (model %s) does not exist" % (path, name))
        if name in [m[0] for m in models]:
            raise UsageError("model name %s given twice" % name)
        models.append((name, path))
    a.models = models
    names = CLASS_NAMES[a.dataset]
    try:
        a.classes = ([int(c) for c in a.classes.split(",")] if a.classes
                     else DEFAULT_CLASSES[a.dataset])
    except ValueError:
        raise UsageError("--classes wants comma-separated integers, got %r" % a.classes)
    if not all(0 <= c < len(names) for c in a.classes):
        raise UsageError("--classes must lie in 0..%d" % (len(names) - 1))
    if not 2 <= a.samples <= 10000 or a.seed < 0:
        raise UsageError("--samples must be in 2..10000 and --seed >= 0")
    return a


def idx_path(data_dir, dataset, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, dataset, name)
        if os.path.isfile(path):
            return path
    raise UsageError("%s[.gz] not found in %s (scripts/fetch-data.sh downloads it)"
                     % (stem, os.path.join(data_dir, dataset)))


def shown(path):
    """path relative to the repository if it is inside it."""
    rel = os.path.relpath(os.path.abspath(path), REPO)
    return path if rel.startswith("..") else rel


def fmt(x, digits=3):
    return "–" if x is None else "%.*f" % (digits, x)


def main(argv=None):
    a = parse_args(argv)
    if a.library:
        os.environ["CONVVAE_LIBRARY"] = os.path.abspath(a.library)
    sys.path.insert(0, os.path.join(REPO, "python"))
    import convvae  # noqa: E402 - after $CONVVAE_LIBRARY is settled

    names = CLASS_NAMES[a.dataset]
    with convvae.Dataset.from_idx(idx_path(a.data_dir, a.dataset, "t10k-images-idx3-ubyte"),
                                  idx_path(a.data_dir, a.dataset, "t10k-labels-idx1-ubyte")) as ds:
        images, labels = ds.images()[:, 0], np.asarray(ds.labels(), dtype=np.int64)
    if labels.min() < 0 or labels.max() >= len(names):
        raise UsageError("test labels outside 0..%d: is this %s?" % (len(names) - 1, a.dataset))
    real = {}
    for c in a.classes:
        idx = np.flatnonzero(labels == c)[:a.samples]
        if len(idx) < 2:
            raise UsageError("class %d has fewer than two test images" % c)
        real[c] = diversity(images[idx])

    summary, mapping, rows, grids, written, notes = [], [], [], {}, [], []
    prefix = FILE_PREFIX[a.dataset]
    for name, path in a.models:
        try:
            model = convvae.Model.load(path)
        except convvae.ConvVAEError as e:
            raise UsageError("cannot load model %s from %s: %s" % (name, path, e))
        with model:
            if model.image_shape != (1,) + images.shape[1:]:
                raise UsageError("model %s takes %s images, the %s test set has %s"
                                 % (name, model.image_shape, a.dataset, (1,) + images.shape[1:]))
            k = model.clusters
            pred = np.asarray(model.predict(images), dtype=np.int64)
            counts = contingency(labels, pred, len(names), k)
            hung, major = match_clusters(counts), majority_labels(counts)
            acc = sum(counts[i, l] for i, l in enumerate(hung) if l >= 0) / len(labels)
            purity = counts.max(1).sum() / len(labels)
            lib = convvae.cluster_metrics(labels.astype(np.int32), pred.astype(np.int32))
            if abs(lib["acc"] - acc) > 1e-9 or abs(lib["purity"] - purity) > 1e-9:
                print("warning: %s: our ACC/purity %.4f/%.4f differ from the library's %.4f/%.4f"
                      % (name, acc, purity, lib["acc"], lib["purity"]), file=sys.stderr)
            with model.config as cfg:
                prior = cfg.get_text("prior")
                arch = "%s, m %d, s %d, %s prior" % (
                    "%d branches x %d layers" % (cfg.branches, cfg.branch1_layers)
                    if cfg.branches else "no branches", cfg.encoder_units, cfg.latent_dim, prior)
            if prior != "mixture":
                notes.append("%s has the %s prior: generate() ignores the cluster, so its "
                             "samples are the same for every class." % (name, prior))
                print("warning: " + notes[-1], file=sys.stderr)
            summary.append("| %s | `%s` | %s | %d | %d | %.4f | %.4f | %.4f | %.4f |" % (
                name, os.path.basename(path), arch, model.epochs_done, k, acc, purity,
                lib["nmi"], lib["ari"]))
            for i in range(k):
                size = int(counts[i].sum())
                share = counts[i, major[i]] / size if size else 0.0
                mapping.append("| %s | %d | %d | %s | %s (%.2f) |" % (
                    name, i, size, names[hung[i]] if hung[i] >= 0 else "–",
                    names[major[i]] if major[i] >= 0 else "–", share))
            for c in a.classes:
                hit = np.flatnonzero(hung == c)
                maj = ", ".join(str(i) for i in np.flatnonzero(major == c)) or "none"
                if not len(hit):
                    rows.append((c, "| %s | %s | none | – | – | %s | – | – | – |"
                                 % (names[c], name, maj)))
                    continue
                cl = int(hit[0])
                size = counts[cl].sum()
                prec = counts[cl, c] / size if size else None
                recall = counts[cl, c] / counts[:, c].sum()
                gen = np.asarray(model.generate(cl, a.samples, a.seed))[:, 0]
                l2, std = diversity(gen)
                back = float(np.mean(np.asarray(model.predict(gen)) == cl))
                rows.append((c, "| %s | %s | %d | %s | %s | %s | %s | %s | %s |" % (
                    names[c], name, cl, fmt(prec), fmt(recall), maj, fmt(l2, 2), fmt(std, 4),
                    fmt(back))))
                picture = grid(gen)
                grids.setdefault(c, []).append(picture)
                out = os.path.join(a.out_dir, "%s-%s-%s.png" % (prefix, slug(names[c]), name))
                write_png(out, picture)
                written.append(out)
    for c in a.classes:
        if len(grids.get(c, [])) > 1:
            out = os.path.join(a.out_dir, "%s-%s.png" % (prefix, slug(names[c])))
            write_png(out, side_by_side(grids[c]))
            written.append(out)

    command = " ".join(["bench/figures.py"] + ["--model %s=%s" % (n, shown(p)) for n, p in a.models]
                       + ([] if a.dataset == "fashion-mnist" else ["--dataset", a.dataset])
                       + ([] if a.classes == DEFAULT_CLASSES[a.dataset]
                          else ["--classes", ",".join(str(c) for c in a.classes)])
                       + ([] if a.samples == 100 else ["--samples", str(a.samples)])
                       + ([] if a.seed == 1 else ["--seed", str(a.seed)]))
    md_dir = os.path.dirname(os.path.abspath(a.md))
    lines = [
        "# Generated samples: %s" % ", ".join(names[c] for c in a.classes), "",
        "Written by `%s`; regenerate rather than edit." % command, "",
        "Test set: %s, %d images; %d samples per model and class, generate() seed %d."
        % (a.dataset, len(labels), a.samples, a.seed), "",
        "| model | checkpoint | configuration | epochs | k | ACC (Hungarian) | purity | NMI | ARI |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|", *summary, "",
        *(notes + [""] if notes else []),
        "Samples of the cluster the Hungarian mapping matches to each class. *precision*: "
        "share of the test images in that cluster that are of the class; *recall*: share of "
        "the class's test images in that cluster; *majority clusters*: the clusters whose "
        "most frequent label is the class (the purity mapping); *L2*: mean pairwise L2 "
        "distance (pixels in [0, 1], %d dimensions); *pixel std*: mean over pixels of the "
        "standard deviation across the images; *same cluster*: share of the samples the "
        "same model assigns back to the cluster. The *real* rows are the first %d test "
        "images of the class." % (images[0].size, a.samples), "",
        "| class | model | cluster | precision | recall | majority clusters | L2 | pixel std "
        "| same cluster |", "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for c in a.classes:
        lines.append("| %s | *real* | – | – | – | – | %.2f | %.4f | – |"
                     % ((names[c],) + real[c]))
        lines += [r for cc, r in rows if cc == c]
    lines += ["", "<details><summary>Cluster to label mappings</summary>", "",
              "| model | cluster | test images | Hungarian label | majority label (share) |",
              "|---|---:|---:|---|---|", *mapping, "", "</details>", ""]
    if written:
        lines += ["Figures (side-by-side ones in the order %s): %s" % (
            ", ".join(n for n, _ in a.models),
            ", ".join("[%s](%s)" % (os.path.basename(p), os.path.relpath(os.path.abspath(p), md_dir))
                      for p in written)), ""]
    text = "\n".join(lines)
    os.makedirs(md_dir, exist_ok=True)
    with open(a.md, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (UsageError, ImportError) as e:
        sys.exit("figures.py: %s" % e)

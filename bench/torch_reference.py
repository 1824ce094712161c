#!/usr/bin/python3
"""libconvvae's model (the paper's design, the library's default options) in PyTorch,
for bench/run.sh and bench/trace.sh.

Same layers and shapes, same parameter names as a libconvvae checkpoint (so a
checkpoint loads with load_state_dict(strict=True)), same losses, batch,
thread count and data (the IDX files of scripts/fetch-data.sh, uint8 kept and
converted per batch).

  torch_reference.py --check DIR      same-model check against DIR/check.safetensors
                                      and DIR/check.txt (written by bench_train --check)
  torch_reference.py --trace DIR      same-training check: replays bench_train --trace DIR
  torch_reference.py --train-epochs E [--init FILE] [--seed S]
                                      trains this model with the library's recipe, test
                                      ACC per epoch
  torch_reference.py [timing options] "RESULT key value" lines like bench_train's

--trace DIR replays the training steps bench_train --trace DIR recorded
(cvae_model_train from DIR/trace_init.safetensors: each batch's indices,
sampling noise and five loss terms) in this model with torch.optim.Adam and
the checkpoint's lr, betas, eps and weight decay, and compares the losses
step by step (PyTorch's go to DIR/trace_torch_loss.txt) and the final
weights (DIR/trace_final.safetensors) tensor by tensor.

It exits 1 if a total loss of the first --gate-steps steps (default 2)
differs by more than --gate-rel (default 1e-6) relative. Step 0 is the
forward pass from the same weights, step 1 follows one Adam step from them:
both are free of the chaos below (a loss is continuous in the weights) and
agree to 3e-7 or better (seeds 1-8, full MNIST; 1e-8 typical), while a 1%
change of a loss weight (lambda, balance) moves step 1 by 6e-6 to 2.4e-5,
Adam's eps x10 by 2.7e-6, lr -1% by 1.5e-3. (Not seen at step 1: beta2,
and anything that scales one tensor's gradient, which Adam ignores.)

Later steps drift apart and are only reported, with the first step beyond
1e-4 and the largest difference of the first 100 steps. Both compute in
float32 with different summation orders (GEMM blocking, conv lowering,
reductions), and a pre-activation within rounding of 0 (a ReLU or max-pool
near-tie) goes one way in one and the other way in the other: the gradient
jumps (seed 2, step 1: decoder1 unit 225 of image 48 is -3.6e-7 in float64
from terms of total size 9.8, +3.3e-7 from the library's float32 z, which
is as close to float64's as PyTorch's: decoder1's gradient then differs by
2e-3 relative), Adam turns the jump into whole-lr weight differences, and
the difference grows by ~10x per 5 steps to ~1e-4..1e-3, where it stays
(the batches and noise are shared). When that happens is luck: the first
step beyond 1e-4 was 232, 7, >100, >100, 54, 39, 79, 82 for seeds 1-8, so
--gate-steps 100 --gate-rel 1e-4 fails for 5 of these 8 seeds without any
implementation difference. Afterwards the losses stay statistically the
same (seed 1, step 599: total loss 63.75 in PyTorch vs 63.72 in the
library). --float64 replays in float64 instead and reports the distance
(never fails): float64 training parts from both float32 implementations
earlier still (seed 1: 1e-4 at step 39, 2e-3 at step 100, the same for
both, while the two float32 ones agree to 2.5e-7 until step 200).

--train-epochs E trains this model for E epochs with the library's recipe
(Adam, the configured batch, a new shuffle and noise per batch, mixture
prior from the start) from a library checkpoint's weights (--init FILE,
e.g. a --trace DIR's trace_init.safetensors) or PyTorch's default
initialisation, and prints the epoch's mean training loss terms and the
test ACC (Hungarian matching of clusters to labels) per epoch, so the
accuracy of the two implementations can be compared seed by seed.

Runs with Debian's python3-torch (1.13, CPU) and numpy; the safetensors file
is parsed by hand (8-byte little-endian header length, JSON header, raw F32).
"""
import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from figures import hungarian  # bench/figures.py: the tested Kuhn-Munkres

# The library's defaults (lib/config.c), under its option names.
DEFAULTS = {
    'input_channels': 1, 'input_height': 28, 'input_width': 28, 'branches': 2,
    'branch1_layers': 1, 'branch1_filters': 16, 'branch1_kernel': 3,
    'branch2_layers': 1, 'branch2_filters': 32, 'branch2_kernel': 5,
    'encoder_units': 512, 'encoder_activation': 'relu', 'decoder_units': 512,
    'latent_dim': 50, 'clusters': 10, 'category_units': 512, 'category_input': 'z',
    'prior': 'mixture', 'recon_target': 'image', 'conv_trainable': 1,
    'lambda': 2.5, 'balance_weight': 1.0, 'category_weight': 1.0,
    'learning_rate': 1e-3, 'adam_beta1': 0.9, 'adam_beta2': 0.999, 'adam_eps': 1e-8,
    'batch_size': 100,
}


# ------------------------------------------------------------------ data
def read_idx(path):
    """uint8 array of an IDX file, raw or gzip (detected from the content)."""
    with open(path, 'rb') as f:
        data = f.read()
    if data[:2] == b'\x1f\x8b':
        data = gzip.decompress(data)
    magic, = struct.unpack('>I', data[:4])
    nd = magic & 0xff
    dims = struct.unpack('>' + 'I' * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def find_idx(data_dir, dataset, split, kind):
    base = os.path.join(data_dir, dataset, f'{split}-{kind}-ubyte')
    for p in (base, base + '.gz'):
        if os.path.exists(p):
            return p
    sys.exit(f'torch_reference: {base}[.gz] not found (run scripts/fetch-data.sh)')


def load_images(data_dir, dataset, split):
    """N x 1 x H x W uint8 tensor."""
    x = read_idx(find_idx(data_dir, dataset, split, 'images-idx3'))
    return torch.from_numpy(x.copy()).unsqueeze(1)


# ------------------------------------------------------------------ model
class ConvVAE(nn.Module):
    """Attribute names make state_dict keys equal to the checkpoint's tensor names."""

    def __init__(self, cfg):
        super().__init__()
        c = cfg
        assert c['recon_target'] == 'image' and c['category_input'] == 'z', 'default options only'
        assert c['prior'] == 'mixture' and c['encoder_activation'] == 'relu'
        self.cfg = c
        cin, h, w = c['input_channels'], c['input_height'], c['input_width']
        self.nb = c['branches']
        self.sizes = []
        for b in range(1, self.nb + 1):
            br = nn.Module()
            f, k, n = c[f'branch{b}_filters'], c[f'branch{b}_kernel'], c[f'branch{b}_layers']
            for l in range(1, n + 1):
                # odd kernel, stride 1: "same" padding is (k-1)/2 on every side
                setattr(br, f'conv{l}', nn.Conv2d(cin if l == 1 else f, f, k, padding=(k - 1) // 2))
            br.layers = n
            setattr(self, f'branch{b}', br)
            h, w, cin = h // 2, w // 2, f
            self.sizes.append(f * h * w)
        D = sum(self.sizes)
        m, s, du, cu, kk = (c['encoder_units'], c['latent_dim'], c['decoder_units'],
                            c['category_units'], c['clusters'])
        f1, k1, n1 = c['branch1_filters'], c['branch1_kernel'], c['branch1_layers']
        self.f1, self.h1, self.w1 = f1, c['input_height'] // 2, c['input_width'] // 2
        self.encoder = nn.Linear(D, m)
        self.mu = nn.Linear(m, s)
        self.logvar = nn.Linear(m, s)
        self.decoder1 = nn.Linear(s, du)
        # only branch 1's slice of the decoder output feeds the image loss, so,
        # as in the library, only that slice is computed
        self.decoder2 = nn.Linear(du, self.sizes[0])
        self.ndec = n1
        for l in range(1, n1):
            setattr(self, f'deconv{l}', nn.ConvTranspose2d(f1, f1, k1, padding=(k1 - 1) // 2))
        setattr(self, f'deconv{n1}', nn.ConvTranspose2d(f1, c['input_channels'], 2, stride=2))
        self.category1 = nn.Linear(s, cu)
        self.category2 = nn.Linear(cu, kk)
        self.means = nn.Parameter(torch.randn(kk, s) * 0.05)

    def encode(self, x):
        feats = []
        for b in range(1, self.nb + 1):
            br = getattr(self, f'branch{b}')
            for l in range(1, br.layers + 1):
                x = F.relu(getattr(br, f'conv{l}')(x))
            x = F.max_pool2d(x, 2)
            feats.append(x.flatten(1))
        h = F.relu(self.encoder(torch.cat(feats, 1)))
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        d = self.decoder2(F.relu(self.decoder1(z))).view(-1, self.f1, self.h1, self.w1)
        for l in range(1, self.ndec):
            d = F.relu(getattr(self, f'deconv{l}')(d))
        return torch.sigmoid(getattr(self, f'deconv{self.ndec}')(d))

    def category(self, u):
        return F.softmax(self.category2(F.relu(self.category1(u))), dim=1)

    def forward(self, x, sample):
        mu, lv = self.encode(x)
        z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu) if sample else mu
        return mu, lv, z, self.category(z), self.decode(z)

    def losses(self, x, out):
        """Per-image means of the library's loss terms (lib/loss.c), mixture prior."""
        mu, lv, z, q, xhat = out
        c, n = self.cfg, x.shape[0]
        recon = 0.5 * ((xhat - x) ** 2).sum() / n
        dist = ((z[:, None, :] - self.means[None]) ** 2).sum(2)            # n x k
        kl = (q * 0.5 * (dist - lv.sum(1, keepdim=True))).sum() / n
        cat = c['category_weight'] * (q * torch.log(q.clamp_min(1e-30))).sum() / n
        qbar = q.mean(0)
        bal = c['balance_weight'] * (qbar * torch.log(qbar.clamp_min(1e-30))).sum()
        total = c['lambda'] * recon + kl + cat + bal
        return total, recon, kl, cat, bal


def num_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ checkpoints
def read_safetensors(path):
    """The model's tensors and the metadata of a libconvvae checkpoint; the
    optional optimizer state (tensors named optimizer.*, docs/format.md) is
    left out, as a model's state_dict does not hold it."""
    with open(path, 'rb') as f:
        buf = f.read()
    n, = struct.unpack('<Q', buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop('__metadata__', {})
    tensors = {}
    for name, t in header.items():
        if name.startswith('optimizer.'):
            continue
        assert t['dtype'] == 'F32', (name, t['dtype'])
        b, e = t['data_offsets']
        arr = np.frombuffer(buf, dtype='<f4', count=(e - b) // 4, offset=8 + n + b)
        tensors[name] = torch.from_numpy(arr.reshape(t['shape']).copy())
    return tensors, meta


def adam_for(model, cfg):
    """torch.optim.Adam with the library's settings. Its weight decay is L2 added to the
    gradient (lib/optimizer.c), as torch's Adam does; its epsilon is folded into the bias
    correction (eps * sqrt(1 - beta2^t)), which differs from torch's by ~eps, nothing at
    this scale."""
    if cfg.get('optimizer', 'adam') != 'adam':
        sys.exit('torch_reference: only the adam optimizer is replayed')
    return torch.optim.Adam(model.parameters(), lr=cfg['learning_rate'],
                            betas=(cfg['adam_beta1'], cfg['adam_beta2']), eps=cfg['adam_eps'],
                            weight_decay=cfg.get('weight_decay', 0.0))


def check_recipe(cfg):
    """The recipe this model can follow: mixture prior from the first step, trainable convs."""
    if cfg.get('warmup_epochs', 0) != 0 or cfg.get('kmeans_init', 0) != 0:
        sys.exit('torch_reference: warm-up epochs and k-means initialisation are not modelled')
    if not cfg['conv_trainable']:
        sys.exit('torch_reference: frozen convolutions are not modelled')


def check(args):
    tensors, meta = read_safetensors(os.path.join(args.check, 'check.safetensors'))
    cfg = dict(DEFAULTS)
    cfg.update(json.loads(meta['config']))
    model = ConvVAE(cfg)
    lib = {}
    with open(os.path.join(args.check, 'check.txt')) as f:
        for line in f:
            p = line.split()
            if len(p) == 3 and p[0] == 'RESULT':
                lib[p[1]] = p[2]
    torch_params = num_params(model)
    lib_params = int(lib['params'])
    print(f'parameters: libconvvae {lib_params}, PyTorch {torch_params}')
    ok = torch_params == lib_params
    # strict: every name and shape must match both ways
    model.load_state_dict(tensors, strict=True)
    x = load_images(args.data, args.dataset, 't10k')[:100].float().div_(255)
    model.eval()
    with torch.no_grad():
        got = [v.item() for v in model.losses(x, model(x, sample=False))]
    worst = 0.0
    print(f'{"term":10} {"libconvvae":>16} {"PyTorch":>16} {"rel. diff":>10}')
    for name, t in zip(('total', 'recon', 'kl', 'category', 'balance'), got):
        ref = float(lib['loss_' + name])
        rel = abs(t - ref) / max(abs(ref), 1e-30)
        worst = max(worst, rel)
        print(f'{name:10} {ref:16.9g} {t:16.9g} {rel:10.2e}')
        print(f'RESULT check_rel_{name} {rel:.3e}')
    print(f'RESULT check_max_rel {worst:.3e}')
    ok = ok and worst <= 1e-4
    print('same model: ' + ('yes' if ok else 'NO'))
    return 0 if ok else 1


# ------------------------------------------------------------------ same training
def trace(args):
    d = args.trace
    tensors, meta = read_safetensors(os.path.join(d, 'trace_init.safetensors'))
    final, _ = read_safetensors(os.path.join(d, 'trace_final.safetensors'))
    cfg = dict(DEFAULTS)
    cfg.update(json.loads(meta['config']))
    check_recipe(cfg)
    info = {}
    mp = os.path.join(d, 'trace_meta.txt')
    if os.path.exists(mp):
        with open(mp) as f:
            info = dict(line.split(None, 1) for line in f if line.strip())
    dataset = info.get('dataset', args.dataset).strip()
    model = ConvVAE(cfg)
    model.load_state_dict(tensors, strict=True)
    dtype = torch.float64 if args.float64 else torch.float32
    model.to(dtype)
    # step epoch n total recon kl category balance
    rows = np.loadtxt(os.path.join(d, 'trace_loss.txt'), ndmin=2)
    steps, s = len(rows), cfg['latent_dim']
    ns = rows[:, 2].astype(np.int64)
    lib = rows[:, 3:8]
    idx = np.fromfile(os.path.join(d, 'trace_idx.bin'), dtype='<i8')
    eps = np.fromfile(os.path.join(d, 'trace_eps.bin'), dtype='<f4')
    if idx.size != ns.sum() or eps.size != ns.sum() * s:
        sys.exit(f'torch_reference: {d}: {idx.size} indices and {eps.size} noise values '
                 f'for {steps} steps of {ns.sum()} images, latent {s}')
    off = np.concatenate([[0], np.cumsum(ns)])
    xtr = load_images(args.data, dataset, 'train')
    opt = adam_for(model, cfg)
    print(f'replaying {steps} steps of bench_train --trace {d} ({dataset}, batch '
          f'{cfg["batch_size"]}, seed {cfg["seed"]}) in PyTorch {torch.__version__}, '
          f'{torch.get_num_threads()} thread(s), {str(dtype)[6:]}', flush=True)
    got = np.zeros_like(lib)
    model.train()
    t0 = time.perf_counter()
    for b in range(steps):
        x = xtr[torch.from_numpy(idx[off[b]:off[b + 1]])].to(dtype).div_(255)
        mu, lv = model.encode(x)
        e = torch.from_numpy(eps[off[b] * s:off[b + 1] * s].reshape(-1, s)).to(dtype)
        z = mu + torch.exp(0.5 * lv) * e
        ls = model.losses(x, (mu, lv, z, model.category(z), model.decode(z)))
        opt.zero_grad(set_to_none=True)
        ls[0].backward()
        opt.step()
        got[b] = [v.item() for v in ls]
        if (b + 1) % 100 == 0:
            print(f'  [{b + 1}/{steps} steps, {time.perf_counter() - t0:.0f} s]', file=sys.stderr,
                  flush=True)
    tag = 'trace_f64' if args.float64 else 'trace'
    np.savetxt(os.path.join(d, f'{tag}_torch_loss.txt'), got, fmt='%.12g',
               header=f'total recon kl category balance (torch_reference.py --trace, {dtype})')
    rel = np.abs(got[:, 0] - lib[:, 0]) / np.maximum(np.abs(lib[:, 0]), 1e-30)
    over = np.nonzero(rel > 1e-4)[0]
    first = int(over[0]) if over.size else None
    show = {t for t in [0, 1, 10, 50, *range(100, steps, 100), steps - 1] if t < steps}
    show = sorted(show | ({first} if first is not None else set()))
    print(f'\n{"step":>5} {"lib total":>14} {"torch total":>14} {"rel. diff":>10} '
          f'{"max since":>10}   (max: of the steps after the previous row)')
    prev = -1
    for t in show:
        mark = '  <- first > 1e-4' if t == first else ''
        print(f'{t:5d} {lib[t, 0]:14.7f} {got[t, 0]:14.7f} {rel[t]:10.2e} '
              f'{rel[prev + 1:t + 1].max():10.2e}{mark}')
        prev = t
    print('\nfinal weights, PyTorch vs library: |diff| / |lib| and |diff| / |lib final - init|')
    print(f'{"tensor":24} {"rel. diff":>10} {"of update":>10}')
    for name, p in model.named_parameters():
        a = p.detach().numpy().ravel().astype(np.float64)
        f = final[name].numpy().ravel().astype(np.float64)
        i = tensors[name].numpy().ravel().astype(np.float64)
        diff = np.linalg.norm(a - f)
        print(f'{name:24} {diff / max(np.linalg.norm(f), 1e-30):10.2e} '
              f'{diff / max(np.linalg.norm(f - i), 1e-30):10.2e}')
    head = float(rel[:100].max())
    gate = float(rel[:args.gate_steps].max())
    print(f'RESULT {tag}_steps {steps}')
    print(f'RESULT {tag}_first_diverging_step {first if first is not None else "none"}')
    print(f'RESULT {tag}_max_rel_first100 {head:.3e}')
    print(f'RESULT {tag}_rel_last {rel[-1]:.3e}')
    if args.float64:
        print('float64 replay: the distance of float32 training from float64 training, '
              'reported only')
        return 0
    print(f'RESULT trace_max_rel_gate {gate:.3e}')
    ok = gate <= args.gate_rel
    print(f'same training (the first {min(args.gate_steps, steps)} step(s) within '
          f'{args.gate_rel:g}): ' + ('yes' if ok else 'NO'))
    return 0 if ok else 1


# ------------------------------------------------------------------ recipe training
def cluster_acc(labels, pred):
    """Clustering accuracy: the share of images whose cluster maps to their label under the
    best one-to-one map of clusters to labels (as cvae_cluster_metrics' acc)."""
    labels, pred = np.asarray(labels, np.int64), np.asarray(pred, np.int64)
    n = int(max(labels.max(), pred.max())) + 1
    counts = np.zeros((n, n), np.int64)
    np.add.at(counts, (pred, labels), 1)
    a = hungarian(-counts)
    return counts[np.arange(n), a].sum() / len(labels)


def train_epochs(args):
    torch.manual_seed(args.seed)
    if args.init:
        tensors, meta = read_safetensors(args.init)
        cfg = dict(DEFAULTS)
        cfg.update(json.loads(meta['config']))
        model = ConvVAE(cfg)
        model.load_state_dict(tensors, strict=True)
        origin = f'the weights of {args.init}'
    else:
        cfg = dict(DEFAULTS)
        cfg['latent_dim'], cfg['encoder_units'], cfg['batch_size'] = (args.latent, args.units,
                                                                     args.batch)
        for b in (1, 2):
            cfg[f'branch{b}_layers'] = args.layers
        model = ConvVAE(cfg)
        origin = "PyTorch's default initialisation"
    check_recipe(cfg)
    print(f'PyTorch {torch.__version__}: {args.dataset}, {args.train_epochs} epoch(s) from '
          f'{origin}, batch {cfg["batch_size"]}, lr {cfg["learning_rate"]}, lambda '
          f'{cfg["lambda"]}, seed {args.seed}, {torch.get_num_threads()} thread(s)', flush=True)
    xtr = load_images(args.data, args.dataset, 'train')
    xte = load_images(args.data, args.dataset, 't10k').float().div_(255)
    yte = read_idx(find_idx(args.data, args.dataset, 't10k', 'labels-idx1'))
    opt = adam_for(model, cfg)
    N, B = xtr.shape[0], cfg['batch_size']
    g = torch.Generator().manual_seed(args.seed)
    acc = float('nan')
    for e in range(1, args.train_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        sums = np.zeros(5)
        perm = torch.randperm(N, generator=g)
        for b in range(0, N, B):
            x = xtr[perm[b:b + B]].float().div_(255)
            ls = model.losses(x, model(x, sample=True))
            if not torch.isfinite(ls[0]):
                sys.exit(f'torch_reference: non-finite loss at epoch {e}, batch {b // B + 1}')
            opt.zero_grad(set_to_none=True)
            ls[0].backward()
            opt.step()
            sums += np.array([v.item() for v in ls]) * x.shape[0]
        model.eval()
        with torch.no_grad():
            q = torch.cat([model(xte[i:i + 1000], sample=False)[3]
                           for i in range(0, xte.shape[0], 1000)])
        acc = cluster_acc(yte, q.argmax(1).numpy())
        print(f'epoch {e} train loss ' + ' '.join(f'{v:.3f}' for v in sums / N) +
              f' test_acc {acc:.4f} ({time.perf_counter() - t0:.0f} s)', flush=True)
        print(f'RESULT test_acc_epoch{e} {acc:.4f}', flush=True)
    print(f'RESULT test_acc {acc:.4f}')
    return 0


# ------------------------------------------------------------------ timing
def timing(args):
    cfg = dict(DEFAULTS)
    cfg['latent_dim'], cfg['encoder_units'], cfg['batch_size'] = args.latent, args.units, args.batch
    for b in (1, 2):
        cfg[f'branch{b}_layers'] = args.layers
    torch.manual_seed(1)
    model = ConvVAE(cfg)
    print(f'PyTorch {torch.__version__}, {args.dataset}, s={args.latent} n={args.layers} '
          f'm={args.units} batch {args.batch}, {torch.get_num_threads()} thread(s)')
    print(f'RESULT params {num_params(model)}')
    B = args.batch
    if args.batches > 0:
        xtr = load_images(args.data, args.dataset, 'train')
        opt = torch.optim.Adam(model.parameters(), lr=cfg['learning_rate'],
                               betas=(cfg['adam_beta1'], cfg['adam_beta2']), eps=cfg['adam_eps'],
                               foreach=args.foreach)
        perm = torch.randperm(xtr.shape[0])
        model.train()
        t0 = None
        for b in range(args.warmup + args.batches):
            if b == args.warmup:
                t0 = time.perf_counter()
            x = xtr[perm[b * B:(b + 1) * B]].float().div_(255)
            total = model.losses(x, model(x, sample=True))[0]
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
        dt = time.perf_counter() - t0
        print(f'RESULT train_img_s {args.batches * B / dt:.2f}')
        print(f'RESULT rss_train_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}')
    if args.infer or args.latency > 0:
        xte = load_images(args.data, args.dataset, 't10k')
        model.eval()
        with torch.inference_mode():
            if args.infer:
                def predict_all():
                    out = torch.empty(xte.shape[0], dtype=torch.int64)
                    for i in range(0, xte.shape[0], 1000):
                        mu, _ = model.encode(xte[i:i + 1000].float().div_(255))
                        out[i:i + 1000] = model.category(mu).argmax(1)
                    return out
                model.category(model.encode(xte[:1000].float().div_(255))[0])  # warm-up
                t0 = time.perf_counter()
                predict_all()
                print(f'RESULT infer_img_s {xte.shape[0] / (time.perf_counter() - t0):.2f}')
            if args.latency > 0:
                K = min(args.latency, xte.shape[0])
                xf = xte[:K].float().div_(255)

                def one(i):
                    mu, _ = model.encode(xf[i:i + 1])
                    return int(model.category(mu).argmax(1))
                for i in range(20):
                    one(i % K)
                ts = []
                for i in range(K):
                    t0 = time.perf_counter()
                    one(i)
                    ts.append(time.perf_counter() - t0)
                print(f'RESULT latency_ms {float(np.median(ts)) * 1e3:.4f}')
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=os.environ.get('CONVVAE_DATA') or 'data')
    p.add_argument('--dataset', default='mnist', choices=['mnist', 'fashion-mnist'])
    p.add_argument('--latent', type=int, default=50)
    p.add_argument('--layers', type=int, default=1)
    p.add_argument('--units', type=int, default=512)
    p.add_argument('--batch', type=int, default=100)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--batches', type=int, default=100)
    p.add_argument('--infer', action='store_true')
    p.add_argument('--latency', type=int, default=0)
    p.add_argument('--foreach', type=int, default=1,
                   help="Adam's multi-tensor path (1, usually faster) or the per-tensor loop (0)")
    p.add_argument('--check', metavar='DIR')
    p.add_argument('--trace', metavar='DIR', help='replay bench_train --trace DIR')
    p.add_argument('--float64', action='store_true',
                   help='--trace: replay in float64 (the size of float32 rounding effects; '
                   'reported, never fails)')
    p.add_argument('--gate-steps', type=int, default=2, metavar='K',
                   help='--trace: fail if one of the first K total losses differs by more '
                   'than --gate-rel (default 2: the steps free of chaos, see the module docstring)')
    p.add_argument('--gate-rel', type=float, default=1e-6, metavar='T',
                   help='--trace: relative bound of the gate (default 1e-6)')
    p.add_argument('--train-epochs', type=int, default=0, metavar='E',
                   help="train E epochs with the library's recipe, test ACC per epoch")
    p.add_argument('--init', metavar='FILE',
                   help='--train-epochs: start from this libconvvae checkpoint')
    p.add_argument('--seed', type=int, default=1,
                   help='--train-epochs: seed of the shuffles, noise and default init')
    args = p.parse_args()
    args.foreach = bool(args.foreach)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    if args.check:
        return check(args)
    if args.trace:
        return trace(args)
    if args.train_epochs > 0:
        return train_epochs(args)
    return timing(args)


if __name__ == '__main__':
    sys.exit(main())

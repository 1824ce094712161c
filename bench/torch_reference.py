#!/usr/bin/python3
"""libconvvae's model (SPEC section 4, default options) in PyTorch, for bench/run.sh.

Same layers and shapes, same parameter names as a libconvvae checkpoint (so a
checkpoint loads with load_state_dict(strict=True)), same losses, batch,
thread count and data (the IDX files of scripts/fetch-data.sh, uint8 kept and
converted per batch).

  torch_reference.py --check DIR      same-model check against DIR/check.safetensors
                                      and DIR/check.txt (written by bench_train --check)
  torch_reference.py [timing options] "RESULT key value" lines like bench_train's

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
        # only branch 1's slice of the decoder output feeds a loss (SPEC: may be skipped)
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
    with open(path, 'rb') as f:
        buf = f.read()
    n, = struct.unpack('<Q', buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop('__metadata__', {})
    tensors = {}
    for name, t in header.items():
        assert t['dtype'] == 'F32', (name, t['dtype'])
        b, e = t['data_offsets']
        arr = np.frombuffer(buf, dtype='<f4', count=(e - b) // 4, offset=8 + n + b)
        tensors[name] = torch.from_numpy(arr.reshape(t['shape']).copy())
    return tensors, meta


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
                   help="Adam's multi-tensor path (1, faster here) or the per-tensor loop (0)")
    p.add_argument('--check', metavar='DIR')
    args = p.parse_args()
    args.foreach = bool(args.foreach)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    return check(args) if args.check else timing(args)


if __name__ == '__main__':
    sys.exit(main())

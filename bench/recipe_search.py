#!/usr/bin/python3
"""Recipe search for the libconvvae model (SPEC section 4), PyTorch reference.

Architecture (fixed, the paper's): per branch n conv layers + ReLU then maxpool2
(branch 1: 16 filters 3x3, branch 2: 32 filters 5x5 reading branch 1), concat D,
encoder h = ReLU(W_e c) with m units, mu/logvar (s dims), decoder
W_d2 ReLU(W_d1 z) -> first 16*H/2*W/2 values -> [n-1 ConvT 3x3 + ReLU] ->
ConvT(16,1,2,stride 2) -> sigmoid; category head softmax(W_c2 ReLU(W_c1 u)).

Only the training recipe varies (see --help).  Prints per-epoch loss terms and
train/test ACC (Hungarian), purity.
"""
import argparse, gzip, os, struct, sys, time, math
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

# ---------------------------------------------------------------- data
MNIST_DIR = '/tmp/mnist/v1.2.5/package/data'
FASHION_DIR = '/usr/share/datasets/fashion-mnist'


def read_idx(path):
    op = gzip.open if path.endswith('.gz') else open
    with op(path, 'rb') as f:
        data = f.read()
    magic, = struct.unpack('>I', data[:4])
    nd = magic & 0xff
    dims = struct.unpack('>' + 'I' * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(dataset):
    if dataset == 'mnist':
        d, sfx = MNIST_DIR, ''
    else:
        d, sfx = FASHION_DIR, '.gz'
    xtr = read_idx(f'{d}/train-images-idx3-ubyte{sfx}')
    ytr = read_idx(f'{d}/train-labels-idx1-ubyte{sfx}')
    xte = read_idx(f'{d}/t10k-images-idx3-ubyte{sfx}')
    yte = read_idx(f'{d}/t10k-labels-idx1-ubyte{sfx}')
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


# ---------------------------------------------------------------- metrics
def hungarian_max(w):
    """Maximum-weight perfect assignment on a square matrix (e-maxx Hungarian)."""
    n = w.shape[0]
    a = -w.astype(np.float64)  # minimise cost
    INF = float('inf')
    u = [0.0] * (n + 1); v = [0.0] * (n + 1); p = [0] * (n + 1); way = [0] * (n + 1)
    for i in range(1, n + 1):
        p[0] = i; j0 = 0
        minv = [INF] * (n + 1); used = [False] * (n + 1)
        while True:
            used[j0] = True; i0 = p[j0]; delta = INF; j1 = 0
            for j in range(1, n + 1):
                if not used[j]:
                    cur = a[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur; way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]; j1 = j
            for j in range(n + 1):
                if used[j]:
                    u[p[j]] += delta; v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]; p[j0] = p[j1]; j0 = j1
            if j0 == 0:
                break
    assign = np.zeros(n, dtype=np.int64)  # row -> col
    for j in range(1, n + 1):
        assign[p[j] - 1] = j - 1
    return assign


def cluster_acc(pred, y, k):
    nl = max(k, int(y.max()) + 1)
    w = np.zeros((nl, nl))
    np.add.at(w, (pred, y), 1)
    a = hungarian_max(w)
    acc = w[np.arange(nl), a].sum() / len(y)
    pur = w.max(axis=1).sum() / len(y)
    return acc, pur


# ---------------------------------------------------------------- k-means++
def kmeanspp(X, k, rng, iters=100, restarts=5):
    X = X.astype(np.float64)
    xx = (X ** 2).sum(1)
    best = None
    for r in range(restarts):
        C = np.empty((k, X.shape[1]))
        C[0] = X[rng.integers(len(X))]
        d2 = ((X - C[0]) ** 2).sum(1)
        for c in range(1, k):
            C[c] = X[rng.choice(len(X), p=d2 / d2.sum())]
            d2 = np.minimum(d2, ((X - C[c]) ** 2).sum(1))
        for it in range(iters):
            D = xx[:, None] - 2 * X @ C.T + (C ** 2).sum(1)[None]
            lab = D.argmin(1)
            newC = C.copy()
            for c in range(k):
                mk = lab == c
                if mk.any():
                    newC[c] = X[mk].mean(0)
            if np.allclose(newC, C):
                break
            C = newC
        D = xx[:, None] - 2 * X @ C.T + (C ** 2).sum(1)[None]
        lab = D.argmin(1)
        inertia = D[np.arange(len(X)), lab].sum()
        if best is None or inertia < best[0]:
            best = (inertia, C.copy(), lab.copy())
    return best[1], best[2]


# ---------------------------------------------------------------- model
class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        n = a.nconv
        l1 = []; cin = 1
        for i in range(n):
            l1 += [nn.Conv2d(cin, 16, 3, padding=1), nn.ReLU()]; cin = 16
        self.b1 = nn.Sequential(*l1, nn.MaxPool2d(2))
        l2 = []; cin = 16
        for i in range(n):
            l2 += [nn.Conv2d(cin, 32, 5, padding=2), nn.ReLU()]; cin = 32
        self.b2 = nn.Sequential(*l2, nn.MaxPool2d(2))
        D = 16 * 14 * 14 + 32 * 7 * 7
        self.d1 = 16 * 14 * 14
        self.enc = nn.Linear(D, a.m)
        self.fmu = nn.Linear(a.m, a.s)
        self.flv = nn.Linear(a.m, a.s)
        self.dec1 = nn.Linear(a.s, a.hid)
        # only the first branch-1 slice of the D outputs feeds a loss
        self.dec2 = nn.Linear(a.hid, self.d1)
        tl = []
        for i in range(n - 1):
            tl += [nn.ConvTranspose2d(16, 16, 3, padding=1), nn.ReLU()]
        self.tdec = nn.Sequential(*tl, nn.ConvTranspose2d(16, 1, 2, stride=2))
        self.c1 = nn.Linear(a.s, a.hid)
        self.c2 = nn.Linear(a.hid, a.k)
        self.M = nn.Parameter(torch.randn(a.k, a.s) * a.m_init_std)
        self.Mlv = nn.Parameter(torch.zeros(a.k, a.s))   # per-cluster log variances
        self.logpi = nn.Parameter(torch.zeros(a.k))

    def encode(self, x):
        f1 = self.b1(x)
        f2 = self.b2(f1)
        c = torch.cat([f1.flatten(1), f2.flatten(1)], 1)
        h = F.relu(self.enc(c))
        return self.fmu(h), self.flv(h)

    def decode(self, z):
        d = self.dec2(F.relu(self.dec1(z)))
        return torch.sigmoid(self.tdec(d.view(-1, 16, 14, 14)))

    def head_logits(self, u):
        return self.c2(F.relu(self.c1(u)))


def gmm_logits(z, M, Mlv, logpi):
    # log pi_y + log N(z; M_y, diag exp(Mlv_y)) (up to const)
    diff = z[:, None, :] - M[None]
    return logpi[None] - 0.5 * ((diff ** 2) * torch.exp(-Mlv)[None] + Mlv[None]).sum(2)


# ---------------------------------------------------------------- main
def main():
    p = argparse.ArgumentParser()
    p.add_argument('--dataset', default='mnist', choices=['mnist', 'fashion'])
    p.add_argument('--ntrain', type=int, default=60000)
    p.add_argument('--ntest', type=int, default=10000)
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--nconv', type=int, default=1)
    p.add_argument('--s', type=int, default=50)
    p.add_argument('--m', type=int, default=512)
    p.add_argument('--hid', type=int, default=512, help='decoder and category head hidden size')
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--batch', type=int, default=100)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--lr_decay', type=float, default=1.0, help='per-epoch multiplicative lr decay (joint phase)')
    p.add_argument('--lam', type=float, default=2.5)
    p.add_argument('--warmup', type=int, default=0, help='warm-up epochs before the mixture phase')
    p.add_argument('--warmup_mode', default='vae', choices=['vae', 'ae'],
                   help='vae: standard-prior VAE; ae: z=mu, recon only')
    p.add_argument('--kmeans', action='store_true', help='k-means++ on train mu after warm-up -> M (and Mlv if --learn_var)')
    p.add_argument('--km_restarts', type=int, default=5)
    p.add_argument('--m_init_std', type=float, default=1.0)
    p.add_argument('--beta', type=float, default=0.0, help='balance weight on sum qbar log qbar')
    p.add_argument('--wcat', type=float, default=1.0, help='weight on sum q log q')
    p.add_argument('--wkl', type=float, default=1.0, help='weight on mixture KL')
    p.add_argument('--kl_anneal', type=int, default=0, help='epochs to ramp wkl 0->wkl in joint phase')
    p.add_argument('--kl_expect', action='store_true', help='analytic E_z: (mu-M)^2+exp(lv) instead of (z-M)^2')
    p.add_argument('--learn_var', action='store_true', help='learned per-cluster per-dim log variances')
    p.add_argument('--learn_pi', action='store_true', help='learned prior weights pi (adds -sum q log pi)')
    p.add_argument('--walign', type=float, default=0.0, help='weight of -sum_y g_y log q_y, g=p(y|z) detached')
    p.add_argument('--align_temp', type=float, default=1.0, help='temperature on gmm logits for g')
    p.add_argument('--align_on', default='z', choices=['z', 'mu'])
    p.add_argument('--wdec', type=float, default=0.0, help='DEC self-training: -sum p log q, p=q^2/f renorm (batch)')
    p.add_argument('--head', default='z', choices=['z', 'mu'], help='category head input in training')
    p.add_argument('--head_detach', action='store_true', help='head input detached from encoder')
    p.add_argument('--head_fit', type=int, default=0, help='epochs fitting the head to k-means labels after init')
    p.add_argument('--eval_every', type=int, default=1)
    p.add_argument('--tag', default='')
    p.add_argument('--save_warm', default='', help='save model after warm-up (before k-means) to this path')
    p.add_argument('--load_warm', default='', help='load model saved by --save_warm and skip warm-up')
    a = p.parse_args()
    print('ARGS', vars(a), flush=True)

    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    xtr, ytr, xte, yte = load(a.dataset)
    if a.ntrain < len(xtr):
        idx = rng.permutation(len(xtr))[:a.ntrain]
        xtr, ytr = xtr[idx], ytr[idx]
    xte, yte = xte[:a.ntest], yte[:a.ntest]
    Xtr = torch.from_numpy(xtr.copy()).float().div_(255).unsqueeze(1)
    Xte = torch.from_numpy(xte.copy()).float().div_(255).unsqueeze(1)
    N = len(Xtr)

    model = Model(a)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    @torch.no_grad()
    def infer(X):
        model.eval()
        mus, qs = [], []
        for i in range(0, len(X), 1000):
            mu, lv = model.encode(X[i:i + 1000])
            mus.append(mu); qs.append(F.softmax(model.head_logits(mu), 1))
        model.train()
        return torch.cat(mus), torch.cat(qs)

    def evaluate(tag, ep):
        mu_te, q_te = infer(Xte)
        acc, pur = cluster_acc(q_te.argmax(1).numpy(), yte, a.k)
        g = gmm_logits(mu_te, model.M, model.Mlv if a.learn_var else torch.zeros_like(model.Mlv),
                       model.logpi if a.learn_pi else torch.zeros_like(model.logpi)).argmax(1)
        gacc, _ = cluster_acc(g.detach().numpy(), yte, a.k)
        sizes = np.bincount(q_te.argmax(1).numpy(), minlength=a.k)
        print(f'EVAL {tag} ep {ep} test_acc {acc:.4f} purity {pur:.4f} gmm_acc {gacc:.4f} '
              f'sizes {sizes.tolist()}', flush=True)
        return acc

    t_start = time.time()
    # ------------------------------------------------ warm-up
    if a.load_warm:
        model.load_state_dict(torch.load(a.load_warm))
        print('loaded', a.load_warm, flush=True)
    for ep in range(0 if a.load_warm else a.warmup):
        t0 = time.time(); perm = torch.randperm(N); tr = tk = 0.0
        for i in range(0, N, a.batch):
            x = Xtr[perm[i:i + a.batch]]
            mu, lv = model.encode(x)
            if a.warmup_mode == 'ae':
                z = mu; kl = torch.zeros(())
            else:
                z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
                kl = 0.5 * (mu ** 2 + lv.exp() - lv - 1).sum(1).mean()
            xh = model.decode(z)
            rec = 0.5 * ((x - xh) ** 2).flatten(1).sum(1).mean()
            loss = a.lam * rec + kl
            opt.zero_grad(); loss.backward(); opt.step()
            tr += rec.item() * len(x); tk += kl.item() * len(x)
        print(f'WARM ep {ep + 1} rec {tr / N:.3f} kl {tk / N:.3f} time {time.time() - t0:.1f}s', flush=True)

    if a.save_warm:
        torch.save(model.state_dict(), a.save_warm)
    if a.kmeans:
        t0 = time.time()
        mu_tr, _ = infer(Xtr)
        C, lab = kmeanspp(mu_tr.numpy(), a.k, rng, restarts=a.km_restarts)
        kacc, kpur = cluster_acc(lab, ytr, a.k)
        with torch.no_grad():
            model.M.copy_(torch.from_numpy(C).float())
            if a.learn_var:
                v = np.stack([mu_tr.numpy()[lab == c].var(0) + 1e-3 if (lab == c).sum() > 1 else np.ones(a.s)
                              for c in range(a.k)])
                model.Mlv.copy_(torch.from_numpy(np.log(v)).float())
            if a.learn_pi:
                cnt = np.bincount(lab, minlength=a.k) + 1.0
                model.logpi.copy_(torch.from_numpy(np.log(cnt / cnt.sum())).float())
        mu_te, _ = infer(Xte)
        g = gmm_logits(mu_te, model.M, torch.zeros_like(model.Mlv), torch.zeros_like(model.logpi)).argmax(1)
        tacc, _ = cluster_acc(g.numpy(), yte, a.k)
        print(f'KMEANS train_acc {kacc:.4f} purity {kpur:.4f} test_acc(nearest mean) {tacc:.4f} '
              f'mu_std {mu_tr.std().item():.3f} time {time.time() - t0:.1f}s', flush=True)
        labt = torch.from_numpy(lab)
        for ep in range(a.head_fit):
            perm = torch.randperm(N); tl = 0.0
            for i in range(0, N, a.batch):
                ii = perm[i:i + a.batch]
                with torch.no_grad():
                    mu, lv = model.encode(Xtr[ii])
                l = F.cross_entropy(model.head_logits(mu), labt[ii])
                opt.zero_grad(); l.backward(); opt.step(); tl += l.item() * len(ii)
            print(f'HEADFIT ep {ep + 1} ce {tl / N:.4f}', flush=True)
        evaluate('init', 0)

    # ------------------------------------------------ joint phase
    best = 0.0
    for ep in range(a.epochs):
        lr = a.lr * (a.lr_decay ** ep)
        for gr in opt.param_groups:
            gr['lr'] = lr
        wkl = a.wkl * min(1.0, (ep + 1) / a.kl_anneal) if a.kl_anneal > 0 else a.wkl
        t0 = time.time(); perm = torch.randperm(N)
        sums = np.zeros(6); pred = np.zeros(N, dtype=np.int64)
        for i in range(0, N, a.batch):
            ii = perm[i:i + a.batch]
            x = Xtr[ii]
            mu, lv = model.encode(x)
            z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            xh = model.decode(z)
            rec = 0.5 * ((x - xh) ** 2).flatten(1).sum(1).mean()
            u = z if a.head == 'z' else mu
            if a.head_detach:
                u = u.detach()
            logit = model.head_logits(u)
            q = F.softmax(logit, 1); logq = F.log_softmax(logit, 1)
            Mlv = model.Mlv if a.learn_var else torch.zeros_like(model.Mlv)
            logpi = model.logpi if a.learn_pi else torch.zeros_like(model.logpi)
            logpi = logpi - torch.logsumexp(logpi, 0)
            if a.kl_expect:
                diff2 = (mu[:, None] - model.M[None]) ** 2 + lv.exp()[:, None]
                per_y = 0.5 * (diff2 * torch.exp(-Mlv)[None] + Mlv[None] - lv[:, None] - 1).sum(2)
            else:
                diff2 = (z[:, None] - model.M[None]) ** 2
                per_y = 0.5 * (diff2 * torch.exp(-Mlv)[None] + Mlv[None] - lv[:, None]).sum(2)
            kl = (q * per_y).sum(1).mean()
            cat = (q * logq).sum(1).mean()
            pil = -(q * logpi[None]).sum(1).mean() if a.learn_pi else torch.zeros(())
            qbar = q.mean(0)
            bal = (qbar * torch.log(qbar + 1e-10)).sum()
            loss = a.lam * rec + wkl * (kl + pil) + a.wcat * cat + a.beta * bal
            if a.walign > 0:
                zz = z if a.align_on == 'z' else mu
                gl = gmm_logits(zz.detach(), model.M, Mlv, logpi) / a.align_temp
                g = F.softmax(gl, 1).detach()
                al = -(g * logq).sum(1).mean()
                loss = loss + a.walign * al
            else:
                al = torch.zeros(())
            if a.wdec > 0:
                with torch.no_grad():
                    pt = q ** 2 / q.sum(0, keepdim=True)
                    pt = pt / pt.sum(1, keepdim=True)
                loss = loss - a.wdec * (pt * logq).sum(1).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            b = len(ii)
            sums += np.array([rec.item(), kl.item(), cat.item(), bal.item(), al.item(), loss.item()]) * b
            pred[ii.numpy()] = q.argmax(1).numpy()
        s = sums / N
        tracc, _ = cluster_acc(pred, ytr, a.k)
        print(f'EPOCH {ep + 1} lr {lr:.2e} wkl {wkl:.2f} rec {s[0]:.3f} kl {s[1]:.3f} cat {s[2]:.4f} '
              f'bal {s[3]:.4f} align {s[4]:.4f} loss {s[5]:.3f} train_acc(online) {tracc:.4f} '
              f'time {time.time() - t0:.1f}s', flush=True)
        if (ep + 1) % a.eval_every == 0 or ep + 1 == a.epochs:
            best = max(best, evaluate('joint', ep + 1))
    print(f'DONE best_test_acc {best:.4f} total_time {time.time() - t_start:.0f}s', flush=True)


if __name__ == '__main__':
    main()

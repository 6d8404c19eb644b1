#!/usr/bin/python3
"""The PyTorch twin of this project's models, loaded from its safetensors files: the prior's
ε-network (app/aps/prior.c, the U-Net of tools/pytorch_unet.py), its −ELBO
(aps_prior_neg_elbo), the conditional Glow (app/aps/flow_glow.c, flow_layers.c) forward,
inverse and log-determinants, and one distillation loss (aps_distill_graph, with gr_random's
Philox and Box-Muller replayed).

Not a dependency of aps: it needs Debian's python3-torch and python3-numpy.
    /usr/bin/python3 tools/torch_twin.py --parity REF.safetensors [--float32] [--break WHAT]
compares the twin with the runtime's outputs that the test helper `test_app torch_reference`
wrote (inputs included) and exits 1 when any quantity is off by more than its tolerance.
The twin computes in float64 (the runtime's own rounding is then all the error), or in
float32 with --float32.
--break WHAT perturbs the twin on purpose (prior, flow, perm, elbo, rng, head), to see the check fail.
"""
import json, math, os, struct, sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_unet import UNet, ResBlock, Attention  # noqa: E402

PRIOR_TIME_SCALE = 1000.0  # APS_PRIOR_TIME_SCALE
LEAKY = 0.2                 # flow_glow.c / flow_layers.c leaky_slope


# ------------------------------------------------------------------ safetensors

def load_safetensors(path):
    """(tensors as float32 numpy arrays by name, metadata dict); F32 only, as aps writes."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(info["shape"]).copy()
    return out, meta


def parse_kv(s):
    return dict(p.split("=", 1) for p in s.split())


# ------------------------------------------------------------------ the prior

def unet_from_meta(meta):
    u = parse_kv(meta["aps.unet"])
    widths = tuple(int(w) for w in u["widths"].split(","))
    net = UNet(ch=int(u["channels"]), widths=widths, blocks=int(u["blocks"]), attn_mask=int(u["attention"]),
               groups=int(u["groups"]), time_dim=int(u["time_dim"]))
    return net, widths, int(u["blocks"]), int(u["attention"])


def load_prior(path, dtype=torch.float64):
    """The U-Net with the file's weights, and the SDE's (beta0, beta1, eps)."""
    w, meta = load_safetensors(path)
    if meta.get("aps.kind") != "prior/vp-eps":
        raise ValueError(f"{path}: not a prior (aps.kind {meta.get('aps.kind')})")
    net, widths, blocks, attn = unet_from_meta(meta)
    sd = {}

    def conv(mod, name):
        sd[mod + ".weight"], sd[mod + ".bias"] = w[name + ".weight"], w[name + ".bias"]

    def linear(mod, name):  # aps stores [in, out]; torch wants [out, in]
        sd[mod + ".weight"], sd[mod + ".bias"] = w[name + ".weight"].T, w[name + ".bias"]

    def gnorm(mod, name):
        sd[mod + ".weight"], sd[mod + ".bias"] = w[name + ".gamma"], w[name + ".beta"]

    def res(mod, name, m):
        gnorm(mod + ".norm1", name + ".norm1"); conv(mod + ".conv1", name + ".conv1")
        gnorm(mod + ".norm2", name + ".norm2"); conv(mod + ".conv2", name + ".conv2")
        if m.skip is not None:
            conv(mod + ".skip", name + ".skip")

    def attention(mod, name):
        gnorm(mod + ".norm", name); conv(mod + ".qkv", name + ".qkv"); conv(mod + ".proj", name + ".proj")

    # The modules in gr_unet's build order (graph/layers.c), each with its aps name.
    linear("mlp.0", "time_mlp.l0"); linear("mlp.2", "time_mlp.l1"); linear("temb_proj", "temb_proj")
    conv("stem", "stem")
    names = []
    for l in range(len(widths)):
        for b in range(blocks):
            names.append(f"down{l}.res{b}")
            if attn & (1 << l):
                names.append(f"down{l}.attn{b}")
        if l + 1 < len(widths):
            names.append(f"down{l}.down")
    ups = []
    for l in reversed(range(len(widths))):
        for b in range(blocks + 1):
            ups.append(f"up{l}.res{b}")
            if attn & (1 << l):
                ups.append(f"up{l}.attn{b}")
        if l > 0:
            ups.append(f"up{l}.up")
    for prefix, mods, apsnames in (("down", net.down, names), ("up", net.up, ups),
                                   ("mid", net.mid, ["mid.res0", "mid.attn", "mid.res1"])):
        assert len(mods) == len(apsnames), (prefix, len(mods), len(apsnames))
        for i, (m, name) in enumerate(zip(mods, apsnames)):
            mod = f"{prefix}.{i}"
            if isinstance(m, ResBlock): res(mod, name, m)
            elif isinstance(m, Attention): attention(mod, name)
            else: conv(mod, name)
    gnorm("out_norm", "out_norm"); conv("out", "out")
    missing = set(net.state_dict()) - set(sd)
    if missing:
        raise ValueError(f"{path}: no weights for {sorted(missing)[:5]}")
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
    s = parse_kv(meta["aps.sde"])
    return net.to(dtype).eval(), (float(s["beta0"]), float(s["beta1"]), float(s["eps"]))


def prior_eps(net, x, t):
    return net(x, t * PRIOR_TIME_SCALE)


def big_b(sde, t):
    b0, b1, _ = sde
    return b0 * t + 0.5 * t * t * (b1 - b0)


def alpha(sde, t):
    return torch.exp(-0.5 * big_b(sde, t)) if torch.is_tensor(t) else math.exp(-0.5 * big_b(sde, t))


def sigma(sde, t):
    return torch.sqrt(-torch.expm1(-big_b(sde, t))) if torch.is_tensor(t) else math.sqrt(-math.expm1(-big_b(sde, t)))


def importance_z(sde):
    def log_expm1(b):
        return b + math.log1p(-math.exp(-b)) if b > 30 else math.log(math.expm1(b))
    return log_expm1(big_b(sde, 1.0)) - log_expm1(big_b(sde, sde[2]))


def neg_elbo(net, sde, x, t, e_t, e_1, e_0):
    """−b_θ(x) per sample (nats), as aps_prior_neg_elbo builds it."""
    n, dim = x.shape[0], x[0].numel()
    eps = sde[2]
    z, a_eps, s_eps = importance_z(sde), alpha(sde, eps), sigma(sde, eps)
    s_q, log2pi = s_eps / a_eps, math.log(2 * math.pi)
    sumsq = lambda v: (v * v).flatten(1).sum(1)
    sig = sigma(sde, t)
    xt = x * alpha(sde, t)[:, None, None, None] + e_t * sig[:, None, None, None]
    xe = a_eps * x + s_eps * e_0
    both = prior_eps(net, torch.cat([xt, xe]), torch.cat([t, torch.full_like(t, eps)]))
    eps_t, eps_e = both[:n], both[n:]
    half_i = 0.5 * z * (sumsq(eps_t - e_t) - sumsq(e_t) + sig * sig * dim)
    x1 = alpha(sde, 1.0) * x + sigma(sde, 1.0) * e_1
    prior = 0.5 * sumsq(x1) + 0.5 * dim * log2pi
    mu = (xe - s_eps * eps_e) / a_eps
    const = 0.5 * dim * (log2pi + 2 * math.log(s_q)) - 0.5 * dim * (log2pi + 2 * math.log(s_eps) + 1)
    return prior + half_i + 0.5 / (s_q * s_q) * sumsq(x - mu) + const


# ------------------------------------------------------------------ the flow's fixed factors

M64 = (1 << 64) - 1


def splitmix(state):
    state[0] = (state[0] + 0x9E3779B97F4A7C15) & M64
    z = state[0]
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def key_state(seed, key):
    h = 1469598103934665603 ^ ((seed * 0x100000001B3) & M64)
    for ch in key.encode():
        h = ((h ^ ch) * 1099511628211) & M64
    return [h]


def uniform01(st):
    return ((splitmix(st) >> 11) + 0.5) * 2.0 ** -53


def invconv_factors(seed, scope, c):
    """P [c, c] and sign [c] of aps_flow_invconv_factors, in the same double arithmetic."""
    st = key_state(seed, scope)
    a = []
    for _ in range(c * c):
        # C leaves the order of the two draws in that expression to the compiler; the dump checks it.
        u1 = uniform01(st); u2 = uniform01(st)
        a.append(math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2))
    for i in range(c):  # Gram-Schmidt, twice, on the rows
        for _ in range(2):
            for j in range(i):
                dot = 0.0
                for k in range(c):
                    dot += a[i * c + k] * a[j * c + k]
                for k in range(c):
                    a[i * c + k] -= dot * a[j * c + k]
        norm = 0.0
        for k in range(c):
            norm += a[i * c + k] * a[i * c + k]
        for k in range(c):
            a[i * c + k] /= math.sqrt(norm)
    piv = list(range(c))
    for k in range(c):  # LU with partial pivoting
        p = k
        for i in range(k + 1, c):
            if abs(a[i * c + k]) > abs(a[p * c + k]):
                p = i
        if p != k:
            for j in range(c):
                a[k * c + j], a[p * c + j] = a[p * c + j], a[k * c + j]
            piv[k], piv[p] = piv[p], piv[k]
        for i in range(k + 1, c):
            a[i * c + k] /= a[k * c + k]
            for j in range(k + 1, c):
                a[i * c + j] -= a[i * c + k] * a[k * c + j]
    perm = np.zeros((c, c), np.float32)
    for j in range(c):
        perm[piv[j], j] = 1.0
    sign = np.array([-1.0 if a[i * c + i] < 0 else 1.0 for i in range(c)], np.float32)
    return perm, sign


# ------------------------------------------------------------------ the flow

class Glow:
    """The multi-scale conditional Glow of app/aps/flow_glow.c with a file's weights."""

    def __init__(self, path, dtype=torch.float64):
        w, meta = load_safetensors(path)
        if meta.get("aps.kind") != "flow/conditional":
            raise ValueError(f"{path}: not a conditional flow (aps.kind {meta.get('aps.kind')})")
        cfg = parse_kv(meta["aps.flow"])
        if cfg["arch"] != "glow":
            raise ValueError(f"{path}: arch={cfg['arch']}; the twin has glow only")
        self.C, self.S, self.L, self.K = (int(cfg[k]) for k in ("channels", "size", "levels", "steps"))
        self.cond, self.bound, self.seed = int(cfg["cond"]), float(cfg["bound"]), int(cfg["seed"])
        self.pixels = int(cfg.get("pixels", "0"))  # absent in files older than the key
        self.head = int(cfg.get("head", "0"))  # absent unless the flow has the head
        self.w = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in w.items() if k.startswith("flow.")}
        self.factors = {}
        for l in range(self.L):
            for k in range(self.K):
                scope = f"flow.l{l}.s{k}.invconv"
                p, s = invconv_factors(self.seed, scope, self.C << (l + 2))
                self.factors[scope] = (torch.from_numpy(p).to(dtype), torch.from_numpy(s).to(dtype))

    def conv(self, name, x, pad):
        return F.conv2d(x, self.w[name + ".weight"], self.w[name + ".bias"], padding=pad)

    def cond_features(self, c):
        if not self.cond:
            return [None] * self.L
        h = F.leaky_relu(self.conv("flow.cond.in", c, 1), LEAKY)
        feats = []
        for l in range(self.L):
            h = F.leaky_relu(self.conv(f"flow.cond.l{l}", F.avg_pool2d(h, 2), 1), LEAKY)
            feats.append(h)
        if self.pixels:  # the finest level also sees the condition itself, space-to-depth
            feats[0] = torch.cat([feats[0], F.pixel_unshuffle(c, 2)], 1)
        return feats

    def invconv_weight(self, scope):
        p, sign = self.factors[scope]
        log_s = self.w[scope + ".log_s"]
        c = log_s.shape[0]
        eye = torch.eye(c, dtype=log_s.dtype)
        lo = torch.tril(self.w[scope + ".lower"], -1) + eye
        up = torch.triu(self.w[scope + ".upper"], 1) + torch.diag(sign * torch.exp(log_s))
        return p @ lo @ up, log_s

    def coupling(self, scope, x, feat, inverse):
        ca = x.shape[1] // 2
        xa, xb = x[:, :ca], x[:, ca:]
        h = torch.cat([xa, feat], 1) if feat is not None else xa
        h = F.leaky_relu(self.conv(scope + ".in", h, 1), LEAKY)
        h = F.leaky_relu(self.conv(scope + ".mid", h, 0), LEAKY)
        h = self.conv(scope + ".out", h, 1)
        cb = xb.shape[1]
        ls = self.bound * torch.tanh(h[:, :cb] / self.bound)
        t = h[:, cb:]
        yb = (xb - t) * torch.exp(-ls) if inverse else xb * torch.exp(ls) + t
        return torch.cat([xa, yb], 1), ls.flatten(1).sum(1)

    def affine_head(self, x, c, inverse):
        """The conditional affine layer after the last level (head=1): per pixel
        x·exp(s(c)) + t(c), s within ±6 (APS_FLOW_HEAD_BOUND)."""
        h = F.leaky_relu(self.conv("flow.head.in", c, 1), LEAKY)
        h = self.conv("flow.head.out", h, 1)
        ls = 6.0 * torch.tanh(h[:, :self.C] / 6.0)
        t = h[:, self.C:]
        y = (x - t) * torch.exp(-ls) if inverse else x * torch.exp(ls) + t
        ld = ls.flatten(1).sum(1)
        return y, -ld if inverse else ld

    def step(self, l, k, h, feat, inverse):
        """One [ActNorm → 1×1 conv → coupling] in the z → x direction, or its inverse; the
        log-det of the direction taken."""
        scope = f"flow.l{l}.s{k}"
        hw = h.shape[2] * h.shape[3]
        logs, bias = self.w[scope + ".actnorm.logs"], self.w[scope + ".actnorm.bias"]
        wmat, log_s = self.invconv_weight(scope + ".invconv")
        ld_fixed = hw * (logs.sum() + log_s.sum())
        if not inverse:
            h = h * torch.exp(logs)[None, :, None, None] + bias[None, :, None, None]
            h = F.conv2d(h, wmat[:, :, None, None])
            h, ld = self.coupling(scope + ".coupling", h, feat, False)
            return h, ld + ld_fixed
        h, ld = self.coupling(scope + ".coupling", h, feat, True)
        h = F.conv2d(h, torch.linalg.inv(wmat)[:, :, None, None])
        h = (h - bias[None, :, None, None]) * torch.exp(-logs)[None, :, None, None]
        return h, -ld - ld_fixed

    def latent(self, l):
        """(count, offset, channels) of level l's latent in the flattened z (flow_glow.c)."""
        d = self.C * self.S * self.S
        count = d >> (l + 1) if l < self.L - 1 else d >> (self.L - 1)
        ch = self.C << (l + 1 if l < self.L - 1 else l + 2)
        return count, d - (d >> l), ch

    def forward(self, z, c):
        """x = G(z; c) and log|det ∂G/∂z| per sample."""
        n = z.shape[0]
        feats, zf, h = self.cond_features(c), z.reshape(n, -1), None
        logdet = torch.zeros(n, dtype=z.dtype)
        for l in reversed(range(self.L)):
            count, off, ch = self.latent(l)
            s = self.S >> (l + 1)
            zl = zf[:, off:off + count].reshape(n, ch, s, s)
            h = zl if h is None else torch.cat([h, zl], 1)
            for k in range(self.K):
                h, ld = self.step(l, k, h, feats[l], False)
                logdet = logdet + ld
            h = F.pixel_shuffle(h, 2)
        if self.head:
            h, ld = self.affine_head(h, c, False)
            logdet = logdet + ld
        return h, logdet

    def inverse(self, x, c):
        """z = G⁻¹(x; c) and log|det ∂G⁻¹/∂x| per sample."""
        n = x.shape[0]
        feats, h, zs = self.cond_features(c), x, []
        logdet = torch.zeros(n, dtype=x.dtype)
        if self.head:
            h, logdet = self.affine_head(h, c, True)
        for l in range(self.L):
            h = F.pixel_unshuffle(h, 2)
            for k in reversed(range(self.K)):
                h, ld = self.step(l, k, h, feats[l], True)
                logdet = logdet + ld
            if l < self.L - 1:
                keep = self.C << (l + 1)
                zs.append(h[:, keep:].reshape(n, -1))
                h = h[:, :keep]
            else:
                zs.append(h.reshape(n, -1))
        return torch.cat(zs, 1).reshape(x.shape), logdet


# ------------------------------------------------------------------ gr_random

def philox4x32_10(ctr0, key):
    """Philox4x32-10 of counters (ctr0, 0, 0, 0) under key (k0, k1): 4 uint32 arrays."""
    c0, c1, c2, c3 = (np.asarray(ctr0, np.uint64), np.zeros_like(ctr0, np.uint64),
                      np.zeros_like(ctr0, np.uint64), np.zeros_like(ctr0, np.uint64))
    k0, k1 = key
    m32 = np.uint64(0xFFFFFFFF)
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
        p0, p1 = np.uint64(0xD2511F53) * c0, np.uint64(0xCD9E8D57) * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)
        c1, c3, c0, c2 = p1 & m32, p0 & m32, n0, n2
    return c0, c1, c2, c3


def box_muller(w0, w1):
    """graph/cpu/reference_random.c's fp32 Box-Muller (its polynomials), in float32."""
    f32 = np.float32
    m = (w0 >> np.uint64(8)) + np.uint64(1)
    e = np.floor(np.log2(m.astype(np.float64))).astype(np.int64)
    f = np.ldexp(m.astype(np.float64), -e).astype(f32)
    big = f > f32(1.41421356)
    f = np.where(big, f * f32(0.5), f)
    e = np.where(big, e + 1, e)
    s = (f - f32(1)) / (f + f32(1))
    z = s * s
    lnf = f32(2) * s * (f32(1) + z * (f32(0.333333333) + z * (f32(0.2) + z * (f32(0.142857143) + z * f32(0.111111111)))))
    lnu = (e - 24).astype(f32) * f32(0.693147181) + lnf
    r = np.sqrt(np.maximum(f32(-2) * lnu, f32(0)))
    y = w1 >> np.uint64(8)
    q = y >> np.uint64(22)
    t = (y & np.uint64(0x3FFFFF)).astype(f32) * f32(2.38418579e-7)
    swap = t > f32(0.5)
    a = np.where(swap, f32(1) - t, t) * f32(1.57079633)
    a2 = a * a
    sa = a * (f32(1) - a2 * (f32(0.166666667) - a2 * (f32(8.33333333e-3) - a2 * (f32(1.98412698e-4) - a2 * f32(2.75573192e-6)))))
    ca = f32(1) - a2 * (f32(0.5) - a2 * (f32(4.16666667e-2) - a2 * (f32(1.38888889e-3) - a2 * (f32(2.48015873e-5) - a2 * f32(2.75573192e-7)))))
    c, sn = np.where(swap, sa, ca), np.where(swap, ca, sa)
    cq = np.select([q == 0, q == 1, q == 2], [c, -sn, -c], sn)
    sq = np.select([q == 0, q == 1, q == 2], [sn, c, -sn], -c)
    return r * cq, r * sq


def gr_random(shape, seed, stream, normal):
    """gr_random(g, shape, seed, stream, GR_NORMAL or GR_UNIFORM) as the runtime draws it."""
    word = lambda v: int(min(v, 16777215.0)) if v >= 1.0 else 0
    key = ((word(seed[0]) & 0xFFFF) | (word(seed[1]) << 16), stream)
    count = int(np.prod(shape))
    w = philox4x32_10(np.arange((count + 3) // 4, dtype=np.uint64), key)
    if normal:
        a, b = box_muller(w[0], w[1])
        c, d = box_muller(w[2], w[3])
        v = np.stack([a, b, c, d], 1)
    else:
        v = np.stack([(x >> np.uint64(8)).astype(np.float32) * np.float32(5.96046448e-8) for x in w], 1)
    return v.reshape(-1)[:count].reshape(shape)


def importance_t(sde, u):
    """t from the importance density given u ~ U[0, 1), as app/aps/distill.c draws it."""
    b0, b1, eps = sde
    c = math.log(math.expm1(big_b(sde, eps)))
    b = F.softplus(u * importance_z(sde) + c)
    return (2 * b / (b0 + torch.sqrt(b0 * b0 + 2 * (b1 - b0) * b))).clamp(eps, 1.0)


def distill_loss(net, sde, glow, seed, cond, mask, y, sigma_y):
    """aps_distill_graph's loss and its parts (batch means, nats) for A = x ⊙ mask."""
    n, dt = y.shape[0], y.dtype
    z = torch.from_numpy(gr_random(tuple(y.shape), seed, 0, True)).to(dt)
    x, logdet = glow.forward(z, cond)
    fit = ((y - x * mask) ** 2).flatten(1).sum(1) / (2 * sigma_y ** 2)
    # one u in each stratum [j/n, (j+1)/n), as distill.c's stratified_u
    u = (torch.arange(n, dtype=dt) + torch.from_numpy(gr_random((n,), seed, 1, False)).to(dt)) / n
    t = importance_t(sde, u)
    e = [torch.from_numpy(gr_random(tuple(y.shape), seed, k, True)).to(dt) for k in (2, 3, 4)]
    nelbo = neg_elbo(net, sde, x, t, *e)
    loss = (fit - logdet + nelbo).mean() / x[0].numel()
    return loss, fit.mean(), nelbo.mean(), logdet.mean()


# ------------------------------------------------------------------ parity

def max_rel(a, b):
    """max |a − b| / max(|b|∞, 1e-12): the error against the reference's scale."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def parity(ref_path, broken=None, dtype=torch.float64):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ref, meta = load_safetensors(ref_path)
    T = lambda k: torch.from_numpy(np.ascontiguousarray(ref[k])).to(dtype)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    results = []  # (quantity, error, tolerance, what the error is)

    net, sde = load_prior(os.path.join(root, "assets/prior-fmnist32.safetensors"), dtype)
    if broken == "prior":  # e.g. the time scale lost
        net.out.bias.data += 1e-3
    with torch.no_grad():
        eps = prior_eps(net, T("prior.x"), T("prior.t"))
        results.append(("prior ε(x, t)", max_rel(eps, ref["prior.eps"]), 1e-4, "max rel"))
        nb = neg_elbo(net, sde, T("prior.x"), T("elbo.t"), T("elbo.e_t"), T("elbo.e_1"), T("elbo.e_0"))
        if broken == "elbo":  # a constant off by 0.1 %
            nb = nb * 1.001
        results.append(("−ELBO(x)", max_rel(nb, ref["elbo.nelbo"]), 1e-4, "max rel"))

    glow = Glow(os.path.join(root, "assets/flow-inpaint-reverse-fmnist32.safetensors"), dtype)
    if broken == "perm":  # one 1×1 conv's permutation rotated by a row
        scope = "flow.l1.s3.invconv"
        glow.factors[scope] = (torch.roll(glow.factors[scope][0], 1, 0), glow.factors[scope][1])
    for name, v in ref.items():
        if name.startswith("factors."):
            scope, what = name[len("factors."):].rsplit(".", 1)
            mine = glow.factors[scope][0 if what == "perm" else 1].numpy()
            results.append((f"1×1 conv {what} {scope}", float(np.abs(mine - v).max()), 0.0, "max abs"))
    if broken == "flow":
        glow.bound *= 1.01
    # and the shipped inpainting flow, with the conditional affine head
    head = Glow(os.path.join(root, "assets/flow-inpaint-fmnist32.safetensors"), dtype)
    if broken == "head":
        head.head = 0
    flows = [("flow", glow, "flow"), ("flowhead", head, "flow with head")]
    for p, g, what in flows:
        with torch.no_grad():
            x, ld = g.forward(T(p + ".z"), T(p + ".cond"))
            z, ldi = g.inverse(T(p + ".x"), T(p + ".cond"))
            z_rt, _ = g.inverse(x, T(p + ".cond"))
        # Log-dets are sums of ~10^3 terms of either sign: compared against their magnitude.
        results += [(f"{what} forward x = G(z; c)", max_rel(x, ref[p + ".x_fwd"]), 1e-4, "max rel"),
                    (f"{what} log|det ∂G/∂z|", max_rel(ld, ref[p + ".logdet_fwd"]), 1e-4, "max rel"),
                    (f"{what} inverse z = G⁻¹(x; c)", max_rel(z, ref[p + ".z_inv"]), 1e-4, "max rel"),
                    (f"{what} log|det ∂G⁻¹/∂x|", max_rel(ldi, ref[p + ".logdet_inv"]), 1e-4, "max rel"),
                    (f"twin round trip G⁻¹(G(z)), {what}", max_rel(z_rt, ref[p + ".z"]),
                     1e-8 if dtype == torch.float64 else 1e-4, "max rel")]
    if "distill.loss" in ref:
        if broken == "rng":  # another stream for z
            global gr_random
            draw = gr_random
            gr_random = lambda shape, seed, stream, normal: draw(shape, seed, stream + (stream == 0) * 7, normal)
        with torch.no_grad():
            parts = distill_loss(net, sde, glow, ref["distill.seed"], T("distill.cond"), T("distill.mask"),
                                 T("distill.y"), T("distill.sigma_y"))
        # Each part is a sum over the image of terms of ~10^3 nats: compared against its magnitude.
        for (q, k), v in zip((("distillation loss (nats/dim)", "loss"), ("its data term", "data_fit"),
                              ("its −ELBO", "neg_elbo"), ("its log-det", "logdet")), parts):
            results.append((q, max_rel(v, ref["distill." + k]), 1e-4, "max rel"))
    print(f"torch {torch.__version__} ({str(dtype)[6:]}) against {ref_path} "
          f"(device {meta.get('aps.torch_reference.device', '?')}):")
    bad = 0
    for q, err, tol, kind in results:
        ok = err <= tol
        bad += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {q:<40} {kind} {err:.3g} (tolerance {tol:g})")
    print("parity: ok" if not bad else f"parity: {bad} of {len(results)} quantities off")
    return 1 if bad else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--parity" not in args or args.index("--parity") + 1 >= len(args):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    broken = args[args.index("--break") + 1] if "--break" in args else None
    dtype = torch.float32 if "--float32" in args else torch.float64
    sys.exit(parity(args[args.index("--parity") + 1], broken, dtype))

#!/usr/bin/python3
"""The PyTorch twin of graph/layers.c gr_unet, for timing side by side with `aps bench graph`
and `aps bench train`.

Not a dependency of aps: install Debian's python3-torch to run it. Prints the parameter count
(which must equal aps's), forward medians at batch 1 and 64, and with --train the median of
a training step (forward, MSE loss, backward, Adam) at batch 64, as JSON.
    /usr/bin/python3 tools/pytorch_unet.py [--quick] [--train] [--cuda]
--cuda runs it on the GPU (where PyTorch has CUDA), for the side-by-side on a GPU machine.
"""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def norm(c, groups):
    return nn.GroupNorm(groups, c, eps=1e-5)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1, self.conv1 = norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, shift):
        h = self.conv1(F.silu(self.norm1(x))) + shift[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm, self.qkv, self.proj = norm(c, groups), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)
        return self.proj((v @ attn.transpose(1, 2)).reshape(n, c, h, w)) + x


class UNet(nn.Module):
    def __init__(self, ch=1, widths=(32, 64, 64), blocks=2, attn_mask=4, groups=8, time_dim=32):
        super().__init__()
        self.time_dim, td = time_dim, 4 * time_dim
        self.mlp = nn.Sequential(nn.Linear(time_dim, td), nn.SiLU(), nn.Linear(td, td))
        self.stem = nn.Conv2d(ch, widths[0], 3, padding=1)
        self.down, skips, c = nn.ModuleList(), [widths[0]], widths[0]
        for l, w in enumerate(widths):
            for b in range(blocks):
                self.down.append(ResBlock(c, w, groups)); c = w
                if attn_mask & (1 << l): self.down.append(Attention(c, groups))
                skips.append(c)
            if l + 1 < len(widths):
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1)); skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, groups), Attention(c, groups), ResBlock(c, c, groups)])
        self.up = nn.ModuleList()
        for l in reversed(range(len(widths))):
            for b in range(blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), widths[l], groups)); c = widths[l]
                if attn_mask & (1 << l): self.up.append(Attention(c, groups))
            if l > 0: self.up.append(nn.Conv2d(c, c, 3, padding=1))
        self.out_norm, self.out = norm(c, groups), nn.Conv2d(c, ch, 3, padding=1)
        # Every block's time shift from one projection, as aps builds it.
        self.widths = [m.conv1.out_channels for m in self.modules() if isinstance(m, ResBlock)]
        self.temb_proj = nn.Linear(td, sum(self.widths))

    def embed(self, t):
        half = self.time_dim // 2
        f = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
        a = t[:, None] * f[None]
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)

    def forward(self, x, t):
        shifts = list(self.temb_proj(F.silu(self.mlp(self.embed(t)))).split(self.widths, dim=1))
        h = self.stem(x); skips = [h]
        for m in self.down:
            if isinstance(m, ResBlock): h = m(h, shifts.pop(0)); skips.append(h)
            elif isinstance(m, Attention): h = m(h); skips[-1] = h
            else: h = m(h); skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, shifts.pop(0))), shifts.pop(0))
        for m in self.up:
            if isinstance(m, ResBlock): h = m(torch.cat([h, skips.pop()], dim=1), shifts.pop(0))
            elif isinstance(m, Attention): h = m(h)
            else: h = m(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))


DEV = "cuda" if "--cuda" in sys.argv else "cpu"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def median_ms(f, reps=5):
    f(); sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); sync(); times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[reps // 2]


if __name__ == "__main__":
    if DEV == "cpu":
        torch.set_num_threads(2)
    net = UNet().eval().to(DEV)
    out = {"torch": torch.__version__, "device": DEV, "params": sum(p.numel() for p in net.parameters())}
    with torch.no_grad():
        for batch in (1, 2 if "--quick" in sys.argv else 64):
            x, t = torch.randn(batch, 1, 32, 32, device=DEV), torch.rand(batch, device=DEV)
            out[f"batch{batch}_ms"] = round(median_ms(lambda: net(x, t)), 2)
    if "--train" in sys.argv:
        batch = 2 if "--quick" in sys.argv else 64
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        x, t = torch.randn(batch, 1, 32, 32, device=DEV), torch.rand(batch, device=DEV)
        target = torch.randn(batch, 1, 32, 32, device=DEV)
        def step():
            opt.zero_grad()
            F.mse_loss(net(x, t), target).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        out[f"train_batch{batch}_ms"] = round(median_ms(step), 1)
    print(json.dumps(out))

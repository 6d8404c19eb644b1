#!/usr/bin/python3
"""PyTorch's side of `aps bench compare`: the figures of aps's `prior`, `aps` and `dps`
suites (same names, units and batches), measured with the PyTorch twin (tools/torch_twin.py)
on the shipped weights, written in the aps-bench/1 schema (docs/BENCH.md).

    /usr/bin/python3 tools/bench_torch.py --json torch.json [--quick] [--cuda]
    build/aps --device cpu bench prior aps dps --json aps.json
    build/aps bench compare aps.json torch.json

Not a dependency of aps: it needs Debian's python3-torch. Eager mode, float32, every core."""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_twin as tw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn, repeats, sync):
    fn()  # warm-up, excluded
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(1e3 * (time.perf_counter() - t0))
    return times


def figure(name, unit, times, batch, per=1.0, rate=False):
    """A figure from run times (ms): per divides them; rate turns them into batch / s."""
    v = [t / per for t in times]
    if rate:
        v = [1e3 * batch / t for t in times]
        return {"name": name, "unit": unit, "median": 1e3 * batch / statistics.median(times), "min": min(v),
                "max": max(v), "repeats": len(v), "batch": batch}
    return {"name": name, "unit": unit, "median": statistics.median(v), "min": min(v), "max": max(v),
            "repeats": len(v), "batch": batch}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args()
    dev = torch.device("cuda" if a.cuda else "cpu")
    sync = (lambda: torch.cuda.synchronize()) if a.cuda else (lambda: None)
    reps, big = (2, 4) if a.quick else (5, 64)
    torch.manual_seed(1)
    torch.set_num_threads(os.cpu_count())  # aps's CPU device uses every core too
    net, sde = tw.load_prior(os.path.join(ROOT, "assets/prior-fmnist32.safetensors"), torch.float32)
    net = net.to(dev)
    for p in net.parameters():
        p.requires_grad_(False)
    # the shipped inpainting flow: the default glow with the head, as aps bench aps builds it
    flow = tw.Glow(os.path.join(ROOT, "assets/flow-inpaint-fmnist32.safetensors"), torch.float32)
    flow.w = {k: v.to(dev) for k, v in flow.w.items()}
    flow.factors = {k: (p.to(dev), s.to(dev)) for k, (p, s) in flow.factors.items()}
    C, S = flow.C, flow.S
    suites = {"prior": [], "aps": [], "dps": []}

    def mask(n):  # a 12x12 box hidden per sample, as inpaint:box=12 draws it
        m = torch.ones(n, 1, S, S, device=dev)
        for i in range(n):
            y0, x0 = torch.randint(0, S - 12, (2,)).tolist()
            m[i, :, y0:y0 + 12, x0:x0 + 12] = 0
        return m

    for b in (1, big):
        x, t = torch.randn(b, C, S, S, device=dev), torch.rand(b, device=dev)
        with torch.no_grad():
            ts = timed(lambda: tw.prior_eps(net, x, t), reps, sync)
        suites["prior"].append(figure("forward", "ms", ts, b))
        if b > 1:
            suites["prior"].append(figure("forward throughput", "images/s", ts, b, rate=True))

        def fwd_grad():
            xg = x.clone().requires_grad_(True)
            torch.autograd.grad(tw.prior_eps(net, xg, t).sum(), xg)
        ts = timed(fwd_grad, reps, sync)
        suites["prior"].append(figure("forward + input gradient", "ms", ts, b))
        if b > 1:
            suites["prior"].append(figure("forward + input gradient throughput", "images/s", ts, b, rate=True))

    for b in (1, 2 if a.quick else 8, big):
        m = mask(b)
        cond = torch.cat([torch.randn(b, C, S, S, device=dev) * m, m, torch.full((b, 1, S, S), 0.05, device=dev)], 1)
        z = torch.randn(b, C, S, S, device=dev)
        with torch.no_grad():
            ts = timed(lambda: flow.forward(z, cond), reps, sync)
        suites["aps"].append(figure("flow sampling", "ms", ts, b))
        suites["aps"].append(figure("flow sampling per sample", "ms", ts, b, per=b))

    # One distillation step: the flow forward, data term, −ELBO through the prior, −log-det,
    # backward into the flow's weights, Adam (docs/METHOD.md §5).
    b = 2 if a.quick else 64
    for v in flow.w.values():
        v.requires_grad_(True)
    opt = torch.optim.Adam(list(flow.w.values()), lr=1e-5)
    m = mask(b)
    y = torch.randn(b, C, S, S, device=dev) * m
    sy = torch.full((b,), 0.05, device=dev)
    cond = torch.cat([y, m, sy[:, None, None, None].expand(b, 1, S, S)], 1)

    def distill_step():
        opt.zero_grad()
        z = torch.randn(b, C, S, S, device=dev)
        xs, logdet = flow.forward(z, cond)
        fit = ((y - m * xs) ** 2).flatten(1).sum(1) / (2 * sy * sy)
        u = torch.rand(b, device=dev)
        tt = sde[2] + (1 - sde[2]) * u  # the time draw's cost, not its density, matters here
        nb = tw.neg_elbo(net, sde, xs, tt, torch.randn_like(xs), torch.randn_like(xs), torch.randn_like(xs))
        loss = (fit + nb - logdet).mean() / xs[0].numel()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(flow.w.values()), 1.0)
        opt.step()
    suites["aps"].append(figure("distillation step", "ms", timed(distill_step, reps, sync), b))

    for b in (1, big):  # one DPS step: ε, x̂₀, ‖y − A x̂₀‖ and its gradient through the network
        m = mask(b)
        y = torch.randn(b, C, S, S, device=dev) * m
        x, t = torch.randn(b, C, S, S, device=dev), torch.full((b,), 0.5, device=dev)
        a_t, s_t = tw.alpha(sde, 0.5), tw.sigma(sde, 0.5)

        def dps_step():
            xg = x.clone().requires_grad_(True)
            e = tw.prior_eps(net, xg, t)
            x0 = (xg - s_t * e) / a_t
            norm = ((y - m * x0) ** 2).flatten(1).sum(1).sqrt()
            torch.autograd.grad(norm.sum(), xg)
        ts = timed(dps_step, reps, sync)
        suites["dps"].append(figure("dps step", "ms", ts, b))
        if b > 1:
            suites["dps"].append(figure("dps step throughput", "images/s", ts, b, rate=True))

    name = torch.cuda.get_device_name(0) if a.cuda else f"PyTorch CPU ({torch.get_num_threads()} threads)"
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    report = {"schema": "aps-bench/1", "device": f"{name}, torch {torch.__version__} eager", "driver": None,
              "library_version": f"torch {torch.__version__}", "vulkan_api": None, "git_commit": commit,
              "cores": os.cpu_count(), "quick": a.quick,
              "suites": {k: {"device": name, "driver": None, "vulkan_api": None, "figures": v}
                         for k, v in suites.items()}}
    with open(a.json + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(a.json + ".tmp", a.json)
    print(a.json)


if __name__ == "__main__":
    main()

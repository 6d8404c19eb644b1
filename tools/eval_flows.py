#!/usr/bin/env python3
"""Evaluates the shipped flows on Fashion-MNIST's test split with `aps eval --json` and
prints the README's quality table (markdown) and writes every result as JSON lines.

Usage: tools/eval_flows.py [--aps build/aps] [--n 1000] [--k 16] [--device cpu] [--out results.jsonl]
                           [--variant forward]
Out-of-family masks come from tools/make_shape_masks.py."""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_io import write_jsonl  # noqa: E402
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def cases(masks, variant=""):
    inpaint = os.path.join(ROOT, f"assets/flow-inpaint{variant}-fmnist32.safetensors")
    blur = os.path.join(ROOT, f"assets/flow-blur{variant}-fmnist32.safetensors")
    sr = os.path.join(ROOT, f"assets/flow-sr2{variant}-fmnist32.safetensors")
    half = os.path.join(ROOT, "assets/operators/half-map.png")
    return [
        ("box 12x12", inpaint, "inpaint:box=12,noise=0.05", "in family"),
        ("free-form strokes", inpaint, "inpaint:strokes,noise=0.05", "in family"),
        ("text mask 'APS'", inpaint, f"inpaint:mask={masks}/text-aps.png,noise=0.05", "out of family"),
        ("ring mask", inpaint, f"inpaint:mask={masks}/ring.png,noise=0.05", "out of family"),
        ("global blur sigma_b 1.5", blur, "blur:sigma=1.5,noise=0.05", "in family"),
        ("painted half-image blur map, sigma_b 1.5", blur, f"blur:sigma=1.5,map={half},noise=0.05", "in family"),
        ("x2 super-resolution", sr, "sr:2,noise=0.05", "in family"),
    ]


def paper_cases(masks):
    """The published method's setting: one flow per task, distilled on 64 recorded
    measurements (test images 0-63 under one centred 12x12 box, aps degrade --seed 1), and
    evaluated on them, against the family flow on the same 64 measurements."""
    op = f"inpaint:mask={masks}/box12-centre.png,noise=0.05"
    return [
        ("one box, 64 recorded measurements (paper's setting)",
         os.path.join(ROOT, "assets/flow-paper-box12-fmnist32.safetensors"), op, "trained on these 64"),
        ("one box, the same 64 measurements", os.path.join(ROOT, "assets/flow-inpaint-fmnist32.safetensors"), op,
         "family flow, never saw them"),
    ]


def run(a, model, op, n, seed):
    cmd = [a.aps, "--device", a.device, "eval", "--model", model, "--op", op, "--n", str(n), "--k", str(a.k),
           "--seed", str(seed), "--json"]
    print("$ " + " ".join(cmd), file=sys.stderr)
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aps", default=os.path.join(ROOT, "build/aps"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    ap.add_argument("--variant", default="", help="e.g. forward: the flow-*-forward-fmnist32 files, "
                    "without the paper's setting")
    ap.add_argument("--only", default="", help="comma-separated cases to run (by the start of their names)")
    a = ap.parse_args()
    variant = f"-{a.variant}" if a.variant else ""
    masks = tempfile.mkdtemp(prefix="aps-masks-")
    subprocess.run([sys.executable, os.path.join(HERE, "make_shape_masks.py"), masks], check=True,
                   stdout=subprocess.DEVNULL)
    rows = []
    only = [o for o in a.only.split(",") if o]
    # the paper's cases on the 64 measurements aps degrade --seed 1 --n 64 recorded
    todo = [(c, a.n) for c in cases(masks, variant)] + [(c, 64) for c in ([] if variant else paper_cases(masks))]
    for (name, model, op, kind), n in todo:
        if only and not any(name.startswith(o) for o in only):
            continue
        if not os.path.exists(model):
            print(f"skipped {name}: {model} is missing", file=sys.stderr)
            continue
        r = run(a, model, op, n, 1)
        r["case"], r["kind"] = name, kind
        rows.append(r)
    if a.out:
        write_jsonl(a.out, rows)
    f = lambda v, p: "-" if v is None else f"{v:.{p}f}"
    pct = lambda v: "-" if v is None else f"{100 * v:.0f}"
    print("| damage | flow | PSNR 1 sample | PSNR mean of K | gain | PSNR measurement | SSIM mean | "
          "consistency | 90 % coverage (inside / outside) | std inside / outside | ms/sample |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = (r["std_inside"] / r["std_outside"]) if r["std_inside"] and r["std_outside"] else None
        flow = os.path.basename(r["model"]).removeprefix("flow-").removesuffix("-fmnist32.safetensors")
        t = (r.get("temperature_damaged", 1), r.get("temperature_elsewhere", 1))
        if t != (1, 1):
            flow += f" (τ {t[0]:g} / {t[1]:g})"
        print(f"| {r['case']} ({r['kind']}, {r['images']} images) | {flow} | "
              f"{f(r['psnr_sample'], 2)} | {f(r['psnr_mean'], 2)} | {f(r['psnr_mean'] - r['psnr_sample'], 2)} | "
              f"{f(r['psnr_measurement'], 2)} | {f(r['ssim_mean'], 3)} | {f(r['data_consistency'], 2)} | "
              f"{f(100 * r['coverage90'], 1)} % ({pct(r.get('coverage90_inside'))} / "
              f"{pct(r.get('coverage90_outside'))}) | {f(r['std_inside'], 3)} / {f(r['std_outside'], 3)} "
              f"({f(ratio, 1)}x) | {f(r['ms_per_sample'], 2)} |")
    print(f"\nK = {a.k}, seed 1, device: {rows[0]['device'] if rows else '-'}")


if __name__ == "__main__":
    main()

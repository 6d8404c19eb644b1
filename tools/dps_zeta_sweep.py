#!/usr/bin/env python3
"""DPS's guidance step ζ per operator family, chosen on training images (never the test
split the comparison reports): `aps eval --method dps --split train` for each family, step
count and ζ; prints a table and writes JSON lines.

Usage: tools/dps_zeta_sweep.py [--aps build/aps] [--device cpu] [--n 8] [--k 2] [--steps 100]
                               [--zetas 0.5,1,2.5,5] [--out sweep.jsonl]"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_io import write_jsonl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = [("box 12x12", "inpaint:box=12,noise=0.05"), ("blur sigma_b 1.5", "blur:sigma=1.5,noise=0.05")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aps", default=os.path.join(ROOT, "build/aps"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--zetas", default="0.5,1,2.5,5")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    prior = os.path.join(ROOT, "assets/prior-fmnist32.safetensors")
    rows = []
    for name, op in FAMILIES:
        for zeta in a.zetas.split(","):
            cmd = [a.aps, "--device", a.device, "eval", "--method", "dps", "--model", prior, "--op", op, "--split",
                   "train", "--n", str(a.n), "--k", str(a.k), "--steps", str(a.steps), "--zeta", zeta, "--json"]
            print("$ " + " ".join(cmd), file=sys.stderr)
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            r["family"], r["zeta"], r["steps"] = name, float(zeta), a.steps
            rows.append(r)
    if a.out:
        write_jsonl(a.out, rows)
    print(f"| family | zeta (x {a.steps} steps) | PSNR of the mean | SSIM of the mean | consistency | 90 % coverage |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['zeta']:g} | {r['psnr_mean']:.2f} | {r['ssim_mean']:.3f} | "
              f"{r['data_consistency']:.2f} | {100 * r['coverage90']:.0f} % |")
    for name, _ in FAMILIES:
        best = max((r for r in rows if r["family"] == name), key=lambda r: r["psnr_mean"])
        print(f"{name}: best zeta {best['zeta']:g} at {a.steps} steps ({best['psnr_mean']:.2f} dB)")


if __name__ == "__main__":
    main()

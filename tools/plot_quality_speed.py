#!/usr/bin/python3
"""PSNR of the K-sample mean against milliseconds per sample (log scale), one panel per
operator, from `aps eval --json` outputs (one JSON object per file or per line): the flow
(one point) and DPS at its step counts (a curve). Needs Debian's python3-matplotlib.

Usage: tools/plot_quality_speed.py OUT.png RESULT.json [RESULT.json ...]"""
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
    return rows


def main():
    out, rows = sys.argv[1], load(sys.argv[2:])
    ops = sorted({r["op"] for r in rows})
    fig, axes = plt.subplots(1, len(ops), figsize=(5 * len(ops), 4), squeeze=False)
    for ax, op in zip(axes[0], ops):
        mine = [r for r in rows if r["op"] == op]
        dps = sorted((r for r in mine if r["method"].startswith("dps")),
                     key=lambda r: int(re.search(r"steps=(\d+)", r["method"]).group(1)))
        if dps:
            ax.plot([r["ms_per_sample"] for r in dps], [r["psnr_mean"] for r in dps], "o-", label="DPS")
            for r in dps:
                ax.annotate(re.search(r"steps=(\d+)", r["method"]).group(1) + f" steps ({r['images']}x{r['k']})",
                            (r["ms_per_sample"], r["psnr_mean"]), textcoords="offset points", xytext=(4, -10))
        flows = [r for r in mine if not r["method"].startswith("dps")]
        for i, r in enumerate(flows):
            name = r["model"].split("/")[-1].removeprefix("flow-").removesuffix("-fmnist32.safetensors")
            t = (r.get("temperature_damaged", 1), r.get("temperature_elsewhere", 1))
            name += f" at τ {t[0]:g} / {t[1]:g}" if t != (1, 1) else ""
            ax.plot([r["ms_per_sample"]], [r["psnr_mean"]], "s^v"[i % 3], color=f"C{3 + i}",
                    label=f"aps flow {name}, one pass ({r['images']}x{r['k']})")
        meas = mine[0]["psnr_measurement"]
        ax.axhline(meas, color="grey", ls=":", label="the measurement itself")
        ax.set_xscale("log")
        ax.set_xlabel("ms per sample")
        ax.set_ylabel(f"PSNR of the mean of K samples (dB)")
        ax.set_title(f"{op}\n(images x samples per image in brackets)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"device: {rows[0]['device']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out + ".tmp.png", dpi=90)
    import os
    os.replace(out + ".tmp.png", out)
    print(out)


if __name__ == "__main__":
    main()

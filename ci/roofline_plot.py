#!/usr/bin/env python3
"""Draws the roofline picture of one or more `kiln run --json` reports into a PNG:
left, decode bandwidth achieved (weight + KV bytes per token x tokens/s) against the copy
bandwidth measured in the same run (the roof); right, the per-kernel time split of one decode
step. Needs matplotlib (pip install matplotlib).

    python3 ci/roofline_plot.py qwen3.json gemma4.json -o roofline.png
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", help="kiln run --json outputs")
    ap.add_argument("-o", "--out", default="roofline.png")
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("roofline_plot.py needs matplotlib: pip install matplotlib")
    runs = []
    for path in args.reports:
        with open(path) as f:
            r = json.load(f)
        r["_label"] = f"{r.get('arch', '?')} ({r.get('model', path)})"
        runs.append(r)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    labels = [r["_label"] for r in runs]
    achieved = [r["achieved_gb_per_s"] for r in runs]
    roof = [r["copy_gb_per_s"] for r in runs]
    xs = range(len(runs))
    ax1.bar([x - 0.2 for x in xs], roof, width=0.4, label="measured copy bandwidth (roof)", color="#bbbbbb")
    ax1.bar([x + 0.2 for x in xs], achieved, width=0.4, label="decode: bytes/token x tok/s", color="#d62728")
    for x, r in zip(xs, runs):
        ax1.annotate(f"{r['pct_of_copy']:.1f}%\n{r['decode_tok_per_s']:.0f} tok/s",
                     (x + 0.2, r["achieved_gb_per_s"]), ha="center", va="bottom", fontsize=9)
    ax1.set_xticks(list(xs))
    ax1.set_xticklabels(labels, fontsize=8)
    ax1.set_ylabel("GB/s")
    ax1.set_title(f"decode vs the bandwidth roof ({runs[0].get('device', '')})")
    ax1.legend(fontsize=8)

    bottom = [0.0] * len(runs)
    names = sorted({k["name"] for r in runs for k in r.get("kernels", [])})
    cmap = plt.get_cmap("tab20")
    for i, name in enumerate(names):
        vals = []
        for r in runs:
            vals.append(sum(k["us"] for k in r.get("kernels", []) if k["name"] == name))
        ax2.bar(list(xs), vals, bottom=bottom, label=name, color=cmap(i % 20))
        bottom = [b + v for b, v in zip(bottom, vals)]
    for x, r in zip(xs, runs):
        ideal = (r["weight_bytes_per_token"] + r["kv_bytes_per_token"]) / (r["copy_gb_per_s"] * 1e3)
        ax2.hlines(ideal, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
        ax2.annotate("bytes / roof", (x, ideal), ha="center", va="bottom", fontsize=8)
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels(labels, fontsize=8)
    ax2.set_ylabel("us per decode step (direct launches)")
    ax2.set_title("per-kernel split of one decode step")
    ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A/B timing of `kiln run` configurations that differ by environment knobs, interleaved.

One end-to-end run per configuration cannot decide a sub-1 % change: alternated runs of one
configuration spread by up to ~0.7 % on an H100, and two H100s of the same model differ by ~2 %
(docs/perf-notes.md, session 26). This runs every configuration REPS times on one machine,
rotating the order each round (no configuration always runs first), and prints per
configuration: decode tok/s mean, min, max and standard deviation, the mean's difference against
the first configuration with its 95 % confidence interval (Welch's t; "*" when the interval
excludes zero, i.e. the difference is outside the run-to-run spread), % of the copy bandwidth,
kernel launches per token, and whether its generated tokens equal the first configuration's
(knobs documented as bit-identical must keep them equal).

    python3 ci/ab.py --preset qwen3-8b --reps 5 base: nocl:KILN_DECODE_CLUSTER=0
    python3 ci/ab.py --model m.gguf --args "--prompt-tokens 2048 --gen 64" a: b:KILN_PDL=0

A configuration is LABEL:VAR=VALUE[,VAR=VALUE...] (LABEL: alone runs with the environment as
is; a comma followed by text without '=' continues the previous value: KILN_SKIP_OPS=a,b).
KILN=PATH in a configuration runs that kiln binary instead of --kiln: two builds, e.g. main
exported and built beside this checkout (`python3 ci/ab_bench.py --snapshot-only main`, then
`cmake --preset gpu && cmake --build build-gpu --target kiln` in .snap/main):

    python3 ci/ab.py --preset qwen3-8b --reps 3 main:KILN=.snap/main/build-gpu/runner/kiln new:
Exit status: 0, or 1 when any run fails (its last output lines are printed), 2 on bad usage.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile


def parse_config(text):
    label, sep, env = text.partition(":")
    if not sep or not label:
        raise ValueError(f"configuration '{text}' is not LABEL:VAR=VALUE[,VAR=VALUE...]")
    pairs = {}
    last = None
    for item in filter(None, env.split(",")):
        var, eq, val = item.partition("=")
        if eq and var:
            pairs[var] = val
            last = var
        elif last:  # a comma inside a value: KILN_SKIP_OPS=rmsnorm,silu_mul
            pairs[last] += "," + item
        else:
            raise ValueError(f"configuration '{text}': '{item}' is not VAR=VALUE")
    return label, pairs


def stats(xs):
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return mean, min(xs), max(xs), sd


# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (standard tables); above
# 30 the normal quantile, which is within 2 % of t there.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def welch_ci95(a, b):
    """(difference of means b - a, half-width of its 95 % confidence interval) by Welch's t-test;
    the Welch-Satterthwaite degrees of freedom are rounded down (a wider, safer interval). None
    when either sample has fewer than two runs."""
    if len(a) < 2 or len(b) < 2:
        return None
    ma, _, _, sa = stats(a)
    mb, _, _, sb = stats(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se2 = va + vb
    if se2 == 0.0:
        return mb - ma, 0.0
    df = se2 * se2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    k = max(1, int(math.floor(df)))
    t = T975[k - 1] if k <= len(T975) else 1.960
    return mb - ma, t * math.sqrt(se2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="kiln run --preset NAME")
    src.add_argument("--model", help="kiln run --model FILE.gguf")
    ap.add_argument("--reps", type=int, default=5, help="runs per configuration (default 5)")
    ap.add_argument("--args", default="--prompt-tokens 512 --gen 128",
                    help="further kiln run arguments (default: %(default)s)")
    ap.add_argument("--kiln", default=os.environ.get("KILN", "build-gpu/runner/kiln"),
                    help="the kiln binary (default: $KILN or %(default)s)")
    ap.add_argument("configs", nargs="+", metavar="LABEL:VAR=VALUE,...")
    args = ap.parse_args()
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    try:
        configs = [parse_config(c) for c in args.configs]
    except ValueError as e:
        ap.error(str(e))
    labels = [c[0] for c in configs]
    if len(set(labels)) != len(labels):
        ap.error("configuration labels must be distinct")
    for label, env in configs:
        kiln = env.get("KILN", args.kiln)
        if not os.access(kiln, os.X_OK):
            where = f"configuration '{label}': KILN=" if "KILN" in env else ""
            ap.error(f"{where}{kiln} is not an executable kiln binary (build it, or pass --kiln / set $KILN)")

    base = ["run", "--preset" if args.preset else "--model", args.preset or args.model]
    base += args.args.split()
    runs = {label: [] for label in labels}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run.json")
        for rep in range(args.reps):
            for i in range(len(configs)):
                label, env = configs[(i + rep) % len(configs)]
                cmd = [env.get("KILN", args.kiln)] + base + ["--json", out]
                p = subprocess.run(cmd, env={**os.environ, **env},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                if p.returncode != 0:
                    tail = "\n".join(p.stdout.splitlines()[-8:])
                    print(f"ab: run {rep + 1} of '{label}' failed (exit {p.returncode}):\n{tail}",
                          file=sys.stderr)
                    return 1
                with open(out) as f:
                    runs[label].append(json.load(f))
                os.remove(out)

    first = runs[labels[0]]
    ref_tps = [r["decode_tok_per_s"] for r in first]
    ref_mean = stats(ref_tps)[0]
    r0 = first[0]
    copy = [r["copy_gb_per_s"] for rs in runs.values() for r in rs]
    print(f"ab: {r0.get('model', '?')} on {r0.get('device', '?')}, {args.reps} runs per configuration, "
          f"copy {min(copy):.0f}-{max(copy):.0f} GB/s")
    print(f"{'config':<16} {'tok/s mean':>10} {'min':>9} {'max':>9} {'sd':>7} {'vs first':>9} "
          f"{'95 % CI':>17} {'% copy':>7} {'launches':>9}  same tokens")
    for label in labels:
        rs = runs[label]
        tps = [r["decode_tok_per_s"] for r in rs]
        mean, lo, hi, sd = stats(tps)
        pct = sum(r["pct_of_copy"] for r in rs) / len(rs)
        launches = rs[0]["kernel_launches_per_token"]
        same = all(r.get("generated") == first[0].get("generated") for r in rs)
        delta = 100.0 * (mean / ref_mean - 1.0) if ref_mean > 0 else float("nan")
        ci = welch_ci95(ref_tps, tps) if label != labels[0] and ref_mean > 0 else None
        if ci is None:
            ci_text = "--"
        else:
            d, h = (100.0 * v / ref_mean for v in ci)
            ci_text = f"[{d - h:+.2f}, {d + h:+.2f}]" + ("*" if abs(d) > h else " ")
        print(f"{label:<16} {mean:>10.2f} {lo:>9.2f} {hi:>9.2f} {sd:>7.2f} {delta:>+8.2f}% "
              f"{ci_text:>17} {pct:>7.1f} {launches:>9.1f}  {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

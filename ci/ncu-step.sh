#!/usr/bin/env bash
# Per-kernel GPU time of one decode step, measured by Nsight Compute: each kernel by itself
# (ncu serializes launches, so no launch gaps and no PDL overlap). Complements `kiln run`'s
# event-timed split (which includes launch gaps) and its graph total (which hides them).
#   bash ci/ncu-step.sh PRESET LAUNCHES_PER_STEP [PROMPT_TOKENS]
# LAUNCHES_PER_STEP: `kiln run`'s "kernel launches / token" (qwen3-8b 363, gemma4-e4b 551).
# Needs build-gpu/runner/kiln (ci/gpu-suite.sh builds it). Output: $OUT/ncu-PRESET.csv and a table.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=$1 per_step=$2 prompt=${3:-8}
out="${OUT:-/tmp/kiln-gpu}"
mkdir -p "$out"
# Skip the bandwidth probe, the two prefills `kiln run` makes (an untimed warm-up and the timed
# one; prompt < 64 tokens: integer-path kernels) and the profiled decode step, with room to spare;
# then one window of LAUNCHES_PER_STEP consecutive launches of the direct decode steps = every
# kernel of a step once. (A skip of 2 steps + 200 still caught the end of the second prefill.)
skip=$(( 4 * per_step + 400 ))
ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw --kernel-name-base function \
    --launch-skip "$skip" --launch-count "$per_step" \
    build-gpu/runner/kiln run --preset "$preset" --prompt-tokens "$prompt" --gen 16 --no-graph \
    >"$out/ncu-$preset.csv" 2>"$out/ncu-$preset.err" || { tail -20 "$out/ncu-$preset.err"; exit 1; }
python3 - "$out/ncu-$preset.csv" <<'PY'
import csv, sys, collections
rows = [l for l in open(sys.argv[1]) if l.startswith('"')]
rd = csv.DictReader(rows)
t = collections.OrderedDict()
n = collections.Counter()
for r in rd:
    v = r.get("gpu__time_duration.sum", "")
    try: us = float(v.replace(",", "")) / 1000.0   # ns -> us
    except ValueError: continue
    k = r["Kernel Name"]
    t[k] = t.get(k, 0.0) + us
    n[k] += 1
tot = sum(t.values())
print(f"{'kernel (ncu, serialized)':44s} {'launches':>8s} {'us':>9s} {'us/launch':>9s} {'%':>6s}")
for k, v in sorted(t.items(), key=lambda kv: -kv[1]):
    print(f"{k[:44]:44s} {n[k]:8d} {v:9.1f} {v/n[k]:9.2f} {100*v/tot:6.1f}")
print(f"{'total':44s} {sum(n.values()):8d} {tot:9.1f}")
if any("prefill" in k for k in t):
    print("WARNING: the window holds prefill kernels: not one decode step (raise the skip)")
PY

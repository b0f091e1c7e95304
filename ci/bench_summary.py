#!/usr/bin/env python3
"""One table from Google Benchmark JSON files: name, time, bytes, GB/s, % of copy bandwidth, % of a
same-size copy (fused kernels), TFLOP/s and % of cuBLAS BF16, from the counters kiln's benchmarks
report (bench_common.h)."""
import json
import sys


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else ""


rows = []
for path in sys.argv[1:]:
    try:
        data = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"{path}: unreadable ({e})")
        continue
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        rows.append(b)

print(f"{'benchmark':64} {'us':>10} {'MB':>10} {'GB/s':>8} {'%copy':>6} {'%same':>6} {'TFLOP/s':>8} {'%cublas':>7}")
for b in rows:
    if b.get("error_occurred"):
        print(f"{b['name'][:64]:64} skipped: {b.get('error_message', '')}")
        continue
    us = b.get("us", b.get("real_time", 0) * {"ns": 1e-3, "us": 1, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")])
    mb = b.get("bytes", None)
    print(f"{b['name'][:64]:64} {us:10.2f} {fmt(mb / 1e6 if mb else None, '10.2f'):>10} "
          f"{fmt(b.get('GB/s'), '8.1f'):>8} {fmt(b.get('pct_copy'), '6.1f'):>6} "
          f"{fmt(b.get('pct_same_size_copy'), '6.1f'):>6} "
          f"{fmt(b.get('TFLOP/s'), '8.1f'):>8} {fmt(b.get('pct_cublas'), '7.1f'):>7}")

#!/usr/bin/env python3
"""A/B timing of one kiln benchmark binary across builds (git revisions), interleaved.

A kernel change is judged against the tree it changes, on the same GPU in the same call: two
H100s of one model differ by ~2 % and back-to-back runs drift (docs/perf-notes.md). This builds
the benchmark of every build, then runs all of them REPS times, rotating the order each round,
and prints per benchmark row and build: the mean of the row's time (the `us` counter every kiln
benchmark reports; real_time where a row has none), min, max, the difference against the first
build with its 95 % confidence interval (ci/ab.py's Welch t; "*" when it excludes zero) and,
with --show, the mean of further counters (e.g. pct_cublas, pct_copy).

    python3 ci/ab_bench.py --bench attention_bench --filter 'BM_prefill/0/(2048|8192)/' main .
    python3 ci/ab_bench.py --bench gemm_n_bench --filter q4_k --reps 5 --show pct_copy base=main .

A build is `.` (this checkout as it is, built in its build-gpu) or a git revision, optionally
LABEL=REVISION. A revision is exported by `git archive` into .snap/NAME (git-ignored), configured
with the gpu preset and built there. REVISION+PATCH exports the revision with a patch file applied
(`git apply`; e.g. main+ci/candidates/gemm-n-wide6.patch, a candidate kept as a patch so that it
survives until a GPU can measure it) into .snap/STEM, STEM being the patch's file name without
.patch; a patch that no longer applies is an error. The GPU machine gets the working tree without
.git: export the snapshots here first (--snapshot-only) and carry ".snap"; a snapshot whose
revision can not be resolved is used as it is (its commit, and its patch's hash, are in
.snap/NAME/.rev).

    python3 ci/ab_bench.py --snapshot-only main main+ci/candidates/gemm-n-wide6.patch
    # device, carrying .snap:  bash ci/gpu-ab.sh main gemm-n-wide6
Exit status: 0; 1 when a build or a benchmark run fails (its last lines are printed); 2 on bad
usage.
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab import stats, welch_ci95  # noqa: E402  (one statistics implementation for both A/B tools)


def git(root, *args):
    p = subprocess.run(["git", "-C", root, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.stdout if p.returncode == 0 else None


def split_patch(rev):
    """REVISION+PATCH -> (REVISION, PATCH); a plain revision -> (rev, None)."""
    base, sep, patch = rev.partition("+")
    return (base, patch) if sep else (rev, None)


def snapshot_name(rev):
    base, patch = split_patch(rev)
    if patch is not None:
        stem = os.path.basename(patch)
        return re.sub(r"[^A-Za-z0-9._-]", "_", stem[:-6] if stem.endswith(".patch") else stem)
    return re.sub(r"[^A-Za-z0-9._-]", "_", rev)


def snapshot(root, rev):
    """The source tree of revision rev (REVISION or REVISION+PATCH) under root/.snap/NAME,
    exported if missing or stale (the stamp .snap/NAME/.rev holds the commit and the patch's
    SHA-256)."""
    base, patch = split_patch(rev)
    name = snapshot_name(rev)
    dest = os.path.join(root, ".snap", name)
    sha = git(root, "rev-parse", "--verify", "--quiet", base + "^{commit}")
    stamp = os.path.join(dest, ".rev")
    have = open(stamp).read().strip() if os.path.exists(stamp) else None
    if sha is None:
        if have is None:
            raise RuntimeError(f"'{base}' is not a git revision here and .snap/{name} holds no snapshot")
        return dest, have
    want = sha.decode().strip()
    if patch is not None:
        path = patch if os.path.isabs(patch) else os.path.join(root, patch)
        if not os.path.isfile(path):
            raise RuntimeError(f"patch '{patch}' is not a file")
        with open(path, "rb") as f:
            want += " patch " + hashlib.sha256(f.read()).hexdigest()
    if have != want:
        data = git(root, "archive", "--format=tar", want.split()[0])
        if data is None:
            raise RuntimeError(f"git archive {base} failed")
        subprocess.run(["rm", "-rf", dest], check=True)
        os.makedirs(dest)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:
                tar.extractall(dest)
        if patch is not None:
            p = subprocess.run(["git", "-C", root, "apply", "--directory=" + os.path.relpath(dest, root), path],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                subprocess.run(["rm", "-rf", dest], check=True)  # never leave a half-patched tree
                raise RuntimeError(f"patch '{patch}' does not apply to {base} ({want[:7]}):\n{tail(p.stdout)}")
        with open(stamp, "w") as f:
            f.write(want + "\n")
    return dest, want


def tail(text, n=12):
    return "\n".join(text.splitlines()[-n:])


def build_all(dirs, bench):
    """Configure (gpu preset) and build the bench target in every directory, in parallel."""
    jobs = max(1, (os.cpu_count() or 2) // len(dirs))
    script = f"cmake --preset gpu >/dev/null && cmake --build build-gpu -j {jobs} --target {bench}"
    procs = [subprocess.Popen(["bash", "-c", script], cwd=d, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for d in dirs]
    failed = []
    for d, p in zip(dirs, procs):
        out = p.communicate()[0]
        if p.returncode != 0:
            failed.append(f"ab_bench: building {bench} in {d} failed:\n{tail(out, 25)}")
    return failed


def run_rows(binary, filt, extra):
    """{row name: benchmark entry} of one run of binary, or raise with its output."""
    cmd = [binary, f"--benchmark_filter={filt}", "--benchmark_format=json", *extra]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise RuntimeError(f"{binary} could not be run: {e}")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{tail(p.stdout + p.stderr)}")
    try:
        entries = json.loads(p.stdout)["benchmarks"]
    except (ValueError, KeyError) as e:
        raise RuntimeError(f"{binary} printed no benchmark JSON ({e}):\n{tail(p.stdout + p.stderr)}")
    return {b["name"]: b for b in entries if b.get("run_type", "iteration") == "iteration"}


TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def time_us(entry):
    if "us" in entry:
        return float(entry["us"])
    return float(entry["real_time"]) * TO_US[entry.get("time_unit", "ns")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", help="benchmark target, e.g. attention_bench (build-gpu/bench/NAME)")
    ap.add_argument("--filter", default=".", help="--benchmark_filter regex (default: every row)")
    ap.add_argument("--reps", type=int, default=3, help="runs per build (default 3)")
    ap.add_argument("--min-time", help="--benchmark_min_time, passed as given (e.g. 0.3s; older Google "
                    "Benchmark releases take a plain number); default: the benchmark's own")
    ap.add_argument("--show", default="", help="further counters to average, comma-separated")
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    help="the kiln checkout (default: this script's)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    ap.add_argument("--snapshot-only", action="store_true",
                    help="export the revisions' snapshots into .snap/ and stop (no build, no GPU)")
    ap.add_argument("builds", nargs="+", metavar="[LABEL=]REVISION[+PATCH]|.")
    args = ap.parse_args()
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    if not args.snapshot_only and not args.bench:
        ap.error("--bench is required (unless --snapshot-only)")
    if args.bench and not re.fullmatch(r"[A-Za-z0-9_]+", args.bench):
        ap.error(f"--bench '{args.bench}' is not a target name")
    builds = []
    for b in args.builds:
        label, sep, rev = b.partition("=")
        if not sep:
            label, rev = b, b
        base, patch = split_patch(rev)
        if not label or not base or patch == "":
            ap.error(f"build '{b}' is not [LABEL=]REVISION[+PATCH]")
        builds.append((label, rev))
    if len({b[0] for b in builds}) != len(builds):
        ap.error("build labels must be distinct")
    root = os.path.abspath(args.root)

    dirs, commits, exported = [], [], []
    for label, rev in builds:
        if rev == ".":
            if args.snapshot_only:
                continue
            head = git(root, "rev-parse", "--short", "HEAD")
            dirty = git(root, "status", "--porcelain", "--untracked-files=no")
            commits.append((head.decode().strip() if head else "?") + (" + changes" if dirty else ""))
            dirs.append(root)
            continue
        try:
            d, sha = snapshot(root, rev)
        except RuntimeError as e:
            print(f"ab_bench: {e}", file=sys.stderr)
            return 1
        short = sha[:7] + (" + patch" if " patch " in sha else "")
        dirs.append(d)
        commits.append(short)
        exported.append(f"{rev} -> {d} ({short})")
    if args.snapshot_only:
        print("ab_bench: snapshots " + ", ".join(exported))
        return 0
    if not args.no_build:
        failed = build_all(dirs, args.bench)
        if failed:
            print("\n".join(failed), file=sys.stderr)
            return 1
    binaries = [os.path.join(d, "build-gpu", "bench", args.bench) for d in dirs]
    for b in binaries:
        if not os.access(b, os.X_OK):
            print(f"ab_bench: {b} is not an executable (build it, or drop --no-build)", file=sys.stderr)
            return 1

    extra = [f"--benchmark_min_time={args.min_time}"] if args.min_time else []
    show = [c for c in args.show.split(",") if c]
    runs = [[] for _ in builds]  # per build: one {row: entry} per rep
    for rep in range(args.reps):
        for i in range(len(builds)):
            k = (i + rep) % len(builds)
            try:
                runs[k].append(run_rows(binaries[k], args.filter, extra))
            except RuntimeError as e:
                print(f"ab_bench: run {rep + 1} of '{builds[k][0]}': {e}", file=sys.stderr)
                return 1

    rows = list(runs[0][0].keys())
    print(f"ab_bench: {args.bench}, {args.reps} run{'s' if args.reps > 1 else ''} per build, alternated; builds: " +
          ", ".join(f"{label} ({c})" for (label, _), c in zip(builds, commits)))
    width = max([len(r) for r in rows] + [8])
    lw = max(len(b[0]) for b in builds)
    print(f"{'row':<{width}} {'build':<{lw}} {'us mean':>10} {'min':>10} {'max':>10} {'vs first':>9} "
          f"{'95 % CI':>17}" + "".join(f" {c:>11}" for c in show))
    for row in rows:
        ref = None
        for k, (label, _) in enumerate(builds):
            entries = [r[row] for r in runs[k] if row in r]
            ok = [e for e in entries if not e.get("error_occurred")]
            name = row if k == 0 else ""
            if not ok:
                why = entries[0].get("error_message", "skipped") if entries else "no such row"
                print(f"{name:<{width}} {label:<{lw}} {why}")
                continue
            t = [time_us(e) for e in ok]
            mean, lo, hi, _ = stats(t)
            if k == 0:
                ref = t
            if ref is None:
                delta, ci_text = "--", "--"
            else:
                rm = stats(ref)[0]
                delta = f"{100.0 * (mean / rm - 1.0):+.2f}%"
                ci = welch_ci95(ref, t) if k > 0 else None
                if ci is None:
                    ci_text = "--"
                else:
                    d, h = (100.0 * v / rm for v in ci)
                    ci_text = f"[{d - h:+.2f}, {d + h:+.2f}]" + ("*" if abs(d) > h else " ")
            cols = ""
            for c in show:
                vals = [float(e[c]) for e in ok if c in e]
                cols += f" {sum(vals) / len(vals):>11.2f}" if vals else f" {'--':>11}"
            print(f"{name:<{width}} {label:<{lw}} {mean:>10.2f} {lo:>10.2f} {hi:>10.2f} {delta:>9} "
                  f"{ci_text:>17}{cols}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# ab_bench (ctest, label cpu): ci/ab_bench.py, the interleaved A/B timer of a benchmark binary
# across git revisions, on a throwaway repository whose "benchmark" is a script reporting a time
# set in its source (100 us in the first commit, 110 in the second, 121 uncommitted): the table
# has every build with the right difference, the filter and --show reach the rows, REVISION+PATCH
# builds the revision with a patch applied (re-exported when the patch changes; one that does not
# apply is an error), a snapshot is used without .git, and failing builds, failing runs and bad
# usage exit 1 / 1 / 2.
# usage: ab_bench_test.sh PYTHON SOURCE_DIR
set -uo pipefail
py=$(command -v "$1") || { echo "ab_bench: no python at $1"; exit 1; }
ab=$2/ci/ab_bench.py
fail() { echo "ab_bench: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
repo=$tmp/repo
mkdir -p "$repo"
cd "$repo" || exit 1

cat >CMakePresets.json <<'EOF'
{"version": 6, "configurePresets": [{"name": "gpu", "generator": "Unix Makefiles", "binaryDir": "${sourceDir}/build-gpu"}]}
EOF
cat >CMakeLists.txt <<'EOF'
cmake_minimum_required(VERSION 3.25)
project(fake NONE)
file(COPY fake_bench DESTINATION ${CMAKE_BINARY_DIR}/bench)
add_custom_target(fake_bench)
EOF
write_bench() {  # a Google-Benchmark-shaped JSON printer; rows BM_a (1x), BM_b (2x), BM_skip
  cat >fake_bench <<EOF
#!$py
import json, os, re, sys
BASE = $1
args = dict(a.split("=", 1) for a in sys.argv[1:])
assert args["--benchmark_format"] == "json" and args.get("--benchmark_min_time", "0.1") == "0.1"
if os.environ.get("FAKE_BENCH_FAIL"):
    print("fake_bench: asked to fail"); sys.exit(3)
count = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".count")
n = int(open(count).read()) if os.path.exists(count) else 0
open(count, "w").write(str(n + 1))
rows = [{"name": "BM_a/1", "us": BASE * 10 + 0.1 * (n % 2), "pct_copy": 50.0},
        {"name": "BM_b/2", "real_time": (BASE * 20 + 0.1 * (n % 2)) * 1000, "time_unit": "ns"},
        {"name": "BM_skip", "error_occurred": True, "error_message": "no CUDA device"}]
rows = [r for r in rows if re.search(args["--benchmark_filter"], r["name"])]
print(json.dumps({"context": {}, "benchmarks": rows}))
EOF
  chmod +x fake_bench
}
git init -q -b main . && git config user.email t@t && git config user.name t
write_bench 100 && git add -A && git commit -qm a && git tag a
write_bench 110 && git add -A && git commit -qm b
write_bench 121  # uncommitted: the "." build

out=$("$py" "$ab" --root "$repo" --bench fake_bench --reps 2 --min-time 0.1 --show pct_copy a main . 2>&1) ||
  fail "three builds failed: $out"
echo "$out"
grep -q "fake_bench, 2 runs per build" <<<"$out" || fail "no run count in the header"
grep -qE "builds: a \([0-9a-f]{7}\), main \([0-9a-f]{7}\), \. \([0-9a-f]{7} \+ changes\)" <<<"$out" ||
  fail "the header does not name the builds' commits"
grep -qE "^BM_a/1 +a +1000\.05 +1000\.00 +1000\.10 +\+0\.00% +-- +50\.00$" <<<"$out" ||
  fail "the first build is not BM_a's reference (mean, min, max, 0 %, --, pct_copy)"
grep -qE "^ +main +1100\.05 .* \+(9\.99|10\.00)% +\[[+-][0-9.]+, [+-][0-9.]+\]\* +50\.00$" <<<"$out" ||
  fail "no +10 % row with a confidence interval for the second commit"
grep -qE "^ +\. +1210\.05 .* \+(20\.99|21\.00)% " <<<"$out" || fail "the working tree's change is not measured"
grep -qE "^BM_b/2 +a +2000\.05 " <<<"$out" || fail "real_time (ns) is not converted to us"
grep -qE "^BM_skip +a +no CUDA device$" <<<"$out" || fail "a skipped row does not show its reason"

out=$("$py" "$ab" --root "$repo" --bench fake_bench --reps 1 --filter 'BM_b' a . 2>&1) || fail "filtered run: $out"
grep -q "BM_a" <<<"$out" && fail "the filter did not reach the benchmark: $out"
grep -q "^BM_b/2" <<<"$out" || fail "the filtered row is missing: $out"

# REVISION+PATCH: a candidate kept as a patch file (text before its first diff is commentary).
cat >"$tmp/slower.patch" <<'EOF'
A candidate: the first commit, 30 % slower.

diff --git a/fake_bench b/fake_bench
--- a/fake_bench
+++ b/fake_bench
@@ -1,4 +1,4 @@
 #!PY
 import json, os, re, sys
-BASE = 100
+BASE = 130
 args = dict(a.split("=", 1) for a in sys.argv[1:])
EOF
sed -i "s|#!PY|#!$py|" "$tmp/slower.patch"
out=$("$py" "$ab" --root "$repo" --bench fake_bench --reps 1 a "a+$tmp/slower.patch" 2>&1) || fail "a patched build failed: $out"
grep -qE "builds: a \([0-9a-f]{7}\), a\+.*slower\.patch \([0-9a-f]{7} \+ patch\)" <<<"$out" ||
  fail "the header does not name the patched build: $out"
grep -qE "^ +a\+.*slower\.patch +1300\.[0-9]+ .* \+(29\.99|30\.00)% " <<<"$out" || fail "the patch was not applied: $out"
[ -f "$repo/.snap/slower/.rev" ] && grep -qE " patch [0-9a-f]{64}$" "$repo/.snap/slower/.rev" ||
  fail "the patched snapshot is not .snap/slower with the patch's hash in its stamp"
grep -q "BASE = 121" fake_bench || fail "the patch touched the checkout"
sed -i "s/BASE = 130/BASE = 140/" "$tmp/slower.patch"  # an edited patch re-exports its snapshot
out=$("$py" "$ab" --root "$repo" --bench fake_bench --reps 1 "a+$tmp/slower.patch" 2>&1) || fail "edited patch: $out"
grep -qE "^BM_a/1 +a\+.*slower\.patch +1400\.[0-9]+ " <<<"$out" || fail "an edited patch did not re-export: $out"
out=$("$py" "$ab" --root "$repo" --snapshot-only "main+$tmp/slower.patch" 2>&1)  # main has BASE = 110
[ $? = 1 ] || fail "a patch that does not apply did not exit 1: $out"
grep -q "does not apply to main" <<<"$out" || fail "no reason for the failed patch: $out"
[ -e "$repo/.snap/slower" ] && fail "a failed patch left a half-patched snapshot"
out=$("$py" "$ab" --root "$repo" --snapshot-only "a+$tmp/none.patch" 2>&1)
[ $? = 1 ] && grep -q "is not a file" <<<"$out" || fail "a missing patch file is not reported: $out"

# The GPU machine has no .git: snapshots exported beforehand are used as they are.
"$py" "$ab" --root "$repo" --snapshot-only a >/dev/null 2>&1 || fail "--snapshot-only failed"
[ -f "$repo/.snap/a/fake_bench" ] || fail "--snapshot-only left no .snap/a"
mv .git .git.off
out=$("$py" "$ab" --root "$repo" --bench fake_bench --reps 1 old=a . 2>&1) || fail "run without .git: $out"
grep -qE "^ +\. +1210\.[0-9]+ .* \+(20\.99|21\.0[01])% " <<<"$out" || fail "without .git the snapshot was not used: $out"
out=$("$py" "$ab" --root "$repo" --bench fake_bench --reps 1 'a~0' . 2>&1)  # never exported
[ $? = 1 ] || fail "a revision with neither git nor a snapshot did not exit 1: $out"
grep -q "holds no snapshot" <<<"$out" || fail "no reason for the missing snapshot: $out"
mv .git.off .git

out=$("$py" "$ab" --root "$repo" --bench no_such_target --reps 1 a 2>&1)
[ $? = 1 ] || fail "a failing build did not exit 1: $out"
grep -q "building no_such_target in .* failed" <<<"$out" || fail "the build failure is not reported: $out"
out=$(FAKE_BENCH_FAIL=1 "$py" "$ab" --root "$repo" --bench fake_bench --reps 1 a . 2>&1)
[ $? = 1 ] || fail "a failing run did not exit 1: $out"
grep -q "exited 3" <<<"$out" && grep -q "asked to fail" <<<"$out" || fail "the run's failure is not shown: $out"

for bad in "--reps 0 a" "a a" "x= a" "--bench 'a;b' a" "a+"; do
  out=$(eval "\"$py\" \"$ab\" --root \"$repo\" --bench fake_bench $bad" 2>&1)
  [ $? = 2 ] || fail "bad usage '$bad' did not exit 2: $out"
done
echo "ab_bench: ok"

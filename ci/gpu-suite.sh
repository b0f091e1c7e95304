#!/usr/bin/env bash
# GPU suite (DESIGN.md §5): Release build for sm_90, the device probe, every `gpu`-labelled test,
# a short benchmark sweep, and one summary table at the end. Needs no package registry: the GPU
# machine has nvcc, CMake, ninja, Eigen, GoogleTest and Google Benchmark.
#
#   bash ci/gpu-suite.sh                 # probe + gpu tests + benchmarks
#   bash ci/gpu-suite.sh --sanitize      # gpu tests under compute-sanitizer memcheck + racecheck
#                                        # + initcheck (each run capped by KILN_SANITIZE_TIMEOUT s,
#                                        # default 900, initcheck by KILN_INITCHECK_TIMEOUT, default
#                                        # 300: slower runs are reported as skipped, not failed;
#                                        # KILN_SANITIZE_TESTS='gemm_n|runner' picks test binaries)
#   KILN_BENCH_FILTER='gemm_n' bash ci/gpu-suite.sh --bench-only
# Logs go to $OUT (or /tmp/kiln-gpu). The external parity set is read from ../shared/parity, or
# from .parity/ in the checkout (copy it there to carry it to a remote GPU machine).
set -uo pipefail
cd "$(dirname "$0")/.."
source ci/env.sh
LOG="${OUT:-/tmp/kiln-gpu}"
mkdir -p "$LOG"
mode=all
for a in "$@"; do
  case "$a" in
    --sanitize) mode=sanitize ;;
    --bench-only) mode=bench ;;
    --tests-only) mode=tests ;;
    *) echo "usage: $0 [--sanitize|--bench-only|--tests-only]" >&2; exit 2 ;;
  esac
done

t0=$(date +%s)
cmake --preset gpu "${KILN_LAUNCHER[@]}" >"$LOG/configure.log" 2>&1 || { cat "$LOG/configure.log"; exit 1; }
if ! cmake --build build-gpu -j "$KILN_JOBS" >"$LOG/build.log" 2>&1; then
  grep -E "error|FAILED" "$LOG/build.log" | head -40
  exit 1
fi
echo "build: $(( $(date +%s) - t0 )) s"

build-gpu/runner/kiln probe 2>&1 | tee "$LOG/probe.txt"

status=0
if [ "$mode" = all ] || [ "$mode" = tests ]; then
  ctest --test-dir build-gpu -L gpu --output-on-failure -j 1 >"$LOG/gpu-tests.txt" 2>&1 || status=1
  tail -n 25 "$LOG/gpu-tests.txt"
fi
if [ "$mode" = sanitize ]; then
  # memcheck (out-of-bounds / misaligned device accesses, API errors), racecheck (shared-memory
  # hazards) and initcheck (reads of uninitialized device memory). Binaries without Gpu* tests are
  # skipped. initcheck is the slowest tool: each run is capped and a timeout is reported, not failed.
  san_tools="${KILN_SANITIZE_TOOLS:-memcheck racecheck initcheck}"
  for t in build-gpu/tests/*_test; do
    n=$(basename "$t")
    [[ "$n" =~ ${KILN_SANITIZE_TESTS:-.} ]] || continue
    "$t" --gtest_list_tests --gtest_filter='*Gpu*' 2>/dev/null | grep -q '^  ' || continue
    for tool in $san_tools; do
      limit="${KILN_SANITIZE_TIMEOUT:-900}"
      [ "$tool" = initcheck ] && limit="${KILN_INITCHECK_TIMEOUT:-300}"
      ts=$(date +%s)
      # *InvalidOrdinal tests exist to make a CUDA call fail; the sanitizer would count that.
      timeout "$limit" compute-sanitizer --tool "$tool" --error-exitcode 99 "$t" \
        --gtest_filter='*Gpu*:-*InvalidOrdinal*' \
        >"$LOG/sanitize-$n-$tool.txt" 2>&1
      rc=$?
      errs=$(grep -Eo "(ERROR|RACECHECK) SUMMARY: [^(]*" "$LOG/sanitize-$n-$tool.txt" | tail -1)
      if [ $rc -eq 124 ]; then
        echo "sanitize $n $tool: skipped (over ${limit} s)"
        continue
      fi
      echo "sanitize $n $tool: rc=$rc ${errs:-no summary} ($(( $(date +%s) - ts )) s)"
      [ $rc -eq 0 ] || status=1
    done
  done
fi
if [ "$mode" = all ] || [ "$mode" = bench ]; then
  for b in build-gpu/bench/*_bench; do
    n=$(basename "$b")
    "$b" --benchmark_min_time=0.05s --benchmark_filter="${KILN_BENCH_FILTER:-.}" \
      --benchmark_out="$LOG/$n.json" --benchmark_out_format=json >"$LOG/$n.txt" 2>&1 || status=1
  done
  python3 ci/bench_summary.py "$LOG"/*_bench.json | tee "$LOG/summary.txt"
fi
echo
echo "== kiln GPU suite summary ($(date -u +%FT%TZ)) =="
grep -E "^(device|SMs|L2|copy|read|bf16)" "$LOG/probe.txt"
[ -f "$LOG/gpu-tests.txt" ] && grep -E "tests passed|tests failed" "$LOG/gpu-tests.txt"
echo "total: $(( $(date +%s) - t0 )) s, status $status"
exit $status

#!/usr/bin/env bash
# GPU suite (DESIGN.md §5): Release build for sm_90, the device probe, every `gpu`-labelled test,
# a short benchmark sweep, and one summary table at the end. Needs no package registry: the GPU
# machine has nvcc, CMake, ninja, Eigen, GoogleTest and Google Benchmark.
#
#   bash ci/gpu-suite.sh                 # probe + gpu tests + benchmarks
#   bash ci/gpu-suite.sh --sanitize      # gpu tests under compute-sanitizer memcheck + racecheck
#                                        # + initcheck, one process per test, KILN_SANITIZE_JOBS
#                                        # (default 12) at once; each capped by KILN_SANITIZE_TIMEOUT
#                                        # s (default 900; initcheck KILN_INITCHECK_TIMEOUT, 600):
#                                        # slower tests are reported as skipped, not failed;
#                                        # KILN_SANITIZE_TESTS='gemm_n|runner' picks test binaries,
#                                        # KILN_SANITIZE_TOOLS='memcheck' picks tools)
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
  # hazards) and initcheck (reads of uninitialized device memory). Every (tool, Gpu* test) pair
  # is its own compute-sanitizer process, KILN_SANITIZE_JOBS (default 12) at a time, the slowest
  # binaries first: the tools are CPU-bound and single tests take minutes under racecheck and
  # initcheck. A process over its cap is reported as skipped, not failed; any error, hazard or
  # failed test fails the suite. --nvtx yes: gemm_n_tc declares cuBLAS's output written
  # (initcheck does not see its stores).
  export LOG
  jobs="$LOG/sanitize-jobs.txt"
  : >"$jobs"
  for t in build-gpu/tests/*_test; do
    n=$(basename "$t")
    [[ "$n" =~ ${KILN_SANITIZE_TESTS:-.} ]] || continue
    # Left out: *InvalidOrdinal (makes a CUDA call fail on purpose; the sanitizer would count it)
    # and GpuProbe.Ceilings* (asserts measured bandwidth and TFLOP/s, meaningless under
    # instrumentation; its 8192^3 cuBLAS GEMM draws racecheck reports inside cuBLAS's own kernel).
    for test in $("$t" --gtest_list_tests --gtest_filter='*Gpu*:-*InvalidOrdinal*:GpuProbe.Ceilings*' 2>/dev/null |
                  awk '/^[^ ]/{s=$1} /^  /{print s $1}'); do
      for tool in ${KILN_SANITIZE_TOOLS:-memcheck racecheck initcheck}; do
        limit="${KILN_SANITIZE_TIMEOUT:-900}"
        [ "$tool" = initcheck ] && limit="${KILN_INITCHECK_TIMEOUT:-600}"
        case "$n" in attention_test|runner_test) prio=0 ;; *) prio=1 ;; esac
        echo "$prio $t $tool $limit $test" >>"$jobs"
      done
    done
  done
  ts=$(date +%s)
  sort -s -k1,1n "$jobs" | cut -d' ' -f2- | xargs -P "${KILN_SANITIZE_JOBS:-12}" -L 1 bash -c '
    n=$(basename "$0")
    f="$LOG/sanitize-$n-$1-$(echo "$3" | tr "/" "_").txt"
    timeout "$2" compute-sanitizer --tool "$1" --nvtx yes --error-exitcode 99 "$0" --gtest_filter="$3" >"$f" 2>&1
    echo "$? $n $1 $3" >"$f.rc"'
  shopt -s nullglob
  declare -A n_run n_bad n_skip n_err
  for r in "$LOG"/sanitize-*.txt.rc; do
    read -r rc n tool name <"$r"
    log="${r%.rc}"
    k="$n $tool"
    e=$(grep -Eo "(ERROR SUMMARY|RACECHECK SUMMARY): [0-9]+ (error|hazard)" "$log" | grep -Eo "[0-9]+" | head -1)
    n_run[$k]=$(( ${n_run[$k]:-0} + 1 ))
    n_err[$k]=$(( ${n_err[$k]:-0} + ${e:-0} ))
    if [ "$rc" -eq 124 ]; then
      n_skip[$k]=$(( ${n_skip[$k]:-0} + 1 )); echo "  $k $name: skipped (over its cap)"
    elif [ "$rc" -ne 0 ]; then
      n_bad[$k]=$(( ${n_bad[$k]:-0} + 1 )); echo "  $k $name: rc=$rc ($(grep -E "SUMMARY|FAILED" "$log" | head -1))"
      status=1
    fi
    rm -f "$r"
  done
  for k in $(printf '%s\n' "${!n_run[@]}" | tr ' ' ':' | sort); do
    k=${k//:/ }
    echo "sanitize $k: ${n_run[$k]} tests, ${n_bad[$k]:-0} failed, ${n_skip[$k]:-0} skipped, ${n_err[$k]} errors"
  done
  echo "sanitize: $(( $(date +%s) - ts )) s"
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

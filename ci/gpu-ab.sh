#!/usr/bin/env bash
# One device call that verifies this checkout AND times it end to end against other revisions.
# Machine starts fail often (docs/perf-notes.md: most sessions lose half their device time to
# them), so a call that only verifies, or only measures, wastes a start. This one:
#   1. builds `kiln` in .snap/NAME for every NAME, in parallel with
#   2. `bash ci/gpu-suite.sh --tests-only` on this checkout (build, probe, every gpu test);
#   3. runs `python3 ci/ab.py --preset P --reps N NAME:KILN=.snap/NAME/build-gpu/runner/kiln ...
#      this:KILN=build-gpu/runner/kiln` for each preset (the first NAME is the reference);
#   4. runs `kiln run --json` per preset on this checkout (its per-kernel split of a decode step).
#
#   here:    python3 ci/ab_bench.py --snapshot-only main [REV ...]   # exports .snap/NAME
#            (REV may be main+ci/candidates/NAME.patch: a prepared candidate, into .snap/NAME)
#   device:  bash ci/gpu-ab.sh [--reps N] [--preset P ...] [--no-suite] NAME [NAME ...]   # carry ".snap"
#
# --no-suite skips step 2, for a further call on a warm machine whose checkout the suite has
# already passed (the machine keeps build outputs between calls while it stays warm).
#
# Presets default to qwen3-8b and gemma4-e4b; --reps defaults to 5 (ci/ab.py: >= 5 to decide a
# sub-1 % change). Logs and JSON go to $OUT (or /tmp/kiln-gpu). Exit status: 0; 1 when the suite,
# a snapshot build, an A/B or a run fails (the A/Bs still run after a failed suite: the timings
# say something, the tree must not land); 2 on bad usage or a missing snapshot.
set -uo pipefail
cd "$(dirname "$0")/.."
source ci/env.sh
LOG="${OUT:-/tmp/kiln-gpu}"
usage() {
  echo "usage: bash ci/gpu-ab.sh [--reps N] [--preset P ...] [--no-suite] NAME [NAME ...]  (.snap/NAME: python3 ci/ab_bench.py --snapshot-only REV)"
}
bad() { echo "gpu-ab: $*" >&2; usage >&2; exit 2; }

reps=5
suite=1
presets=()
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) [ $# -ge 2 ] || bad "--reps wants a value"; reps=$2; shift 2 ;;
    --preset) [ $# -ge 2 ] || bad "--preset wants a value"; presets+=("$2"); shift 2 ;;
    --no-suite) suite=0; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) bad "unknown option '$1'" ;;
    *) names+=("$1"); shift ;;
  esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || bad "--reps wants a positive integer, not '$reps'"
[ ${#names[@]} -gt 0 ] || bad "name at least one snapshot to compare against"
[ ${#presets[@]} -gt 0 ] || presets=(qwen3-8b gemma4-e4b)
for n in "${names[@]}"; do
  [[ "$n" =~ ^[A-Za-z0-9._-]+$ && "$n" != this ]] || bad "'$n' is not a snapshot name (letters, digits, . _ -; not 'this')"
  [ -f ".snap/$n/CMakeLists.txt" ] ||
    bad ".snap/$n holds no snapshot: export it here with 'python3 ci/ab_bench.py --snapshot-only $n' and carry .snap"
done
mkdir -p "$LOG"

t0=$(date +%s)
pids=()
for n in "${names[@]}"; do
  (cd ".snap/$n" && cmake --preset gpu "${KILN_LAUNCHER[@]}" && cmake --build build-gpu -j "$KILN_JOBS" --target kiln) \
    >"$LOG/ab-build-$n.log" 2>&1 &
  pids+=($!)
done
status=0
if [ "$suite" = 1 ]; then
  bash ci/gpu-suite.sh --tests-only || status=1
else
  echo "gpu-ab: --no-suite: the GPU tests are not run in this call"
fi
for i in "${!names[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "gpu-ab: building .snap/${names[$i]} failed:"
    tail -n 20 "$LOG/ab-build-${names[$i]}.log"
    exit 1
  fi
done
# A failed suite may have failed to build: never time a stale binary.
{ [ -f build-gpu/CMakeCache.txt ] || cmake --preset gpu "${KILN_LAUNCHER[@]}"; } >"$LOG/ab-build-this.log" 2>&1 &&
  cmake --build build-gpu -j "$KILN_JOBS" --target kiln >>"$LOG/ab-build-this.log" 2>&1 ||
  { echo "gpu-ab: this checkout's kiln does not build:"; tail -n 20 "$LOG/ab-build-this.log"; exit 1; }
echo "gpu-ab: builds and suite: $(( $(date +%s) - t0 )) s"

configs=()
for n in "${names[@]}"; do configs+=("$n:KILN=.snap/$n/build-gpu/runner/kiln"); done
configs+=("this:KILN=build-gpu/runner/kiln")
for p in "${presets[@]}"; do
  python3 ci/ab.py --preset "$p" --reps "$reps" "${configs[@]}" 2>&1 | tee "$LOG/ab-$p.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
done
for p in "${presets[@]}"; do
  if build-gpu/runner/kiln run --preset "$p" --prompt-tokens 512 --gen 128 --json "$LOG/run-$p.json" \
      >"$LOG/run-$p.txt" 2>&1; then
    echo "gpu-ab: kiln run --preset $p: $LOG/run-$p.txt, $LOG/run-$p.json"
  else
    echo "gpu-ab: kiln run --preset $p failed:"; tail -n 5 "$LOG/run-$p.txt"; status=1
  fi
done
echo "gpu-ab: total $(( $(date +%s) - t0 )) s, status $status"
exit $status

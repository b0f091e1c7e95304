#!/usr/bin/env bash
# The test command (README "Quick start"; .ci/run calls it): installs missing dependencies,
# builds kiln (Release, warnings as errors) and runs every `cpu`-labelled test. GPU tests are
# registered too but only the cpu label runs here: CI has no GPU. Extra args go to the main ctest.
#
# Hardening steps (docs/bad-input.md), both on by default:
#   - the `asan` preset (host code under ASan + UBSan, every report fatal) and the cpu tests under it;
#   - a short libFuzzer run of the GGUF reader + config parser (fuzz/run.sh; clang required).
# KILN_CI_ASAN=0 / KILN_CI_FUZZ=0 skip them; KILN_CI_FUZZ_SECONDS sets the fuzz time (default 60).
# Every step runs even after a failure; the script exits non-zero if any failed, with the main
# ctest summary printed last. Clean run on 2 cores (fresh build dirs and ccache): ~10 min
# (build-ci 200 s, asan build + tests 305 s, fuzz build + 60 s run 82 s, cpu tests 7 s).
set -uo pipefail
cd "$(dirname "$0")/.."
bash ci/deps.sh || exit 1
source ci/env.sh
t0=$(date +%s)
failed=()
step_times=()
stamp() { step_times+=("$1 $(( $(date +%s) - $2 )) s"); }

s=$(date +%s)
cmake --preset ci "${KILN_LAUNCHER[@]}" >/dev/null || exit 1
cmake --build build-ci -j "$KILN_JOBS" || exit 1
stamp build-ci "$s"

if [ "${KILN_CI_ASAN:-1}" != 0 ]; then
  s=$(date +%s)
  # The cpu tests (and the kiln binary the CLI tests run) under ASan + UBSan.
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  # Release flags and -Werror like build-ci: sanitizers only change host C++ compiles, so every
  # CUDA object of build-asan is the same compile as in build-ci and comes from ccache.
  if cmake --preset asan "${KILN_LAUNCHER[@]}" -DCMAKE_BUILD_TYPE=Release -DKILN_WERROR=ON -DCMAKE_CXX_FLAGS=-g \
       >/dev/null && cmake --build build-asan -j "$KILN_JOBS"; then
    if ctest --test-dir build-asan -L cpu --output-on-failure -j "$KILN_JOBS" >build-asan/ctest-cpu.log 2>&1; then
      grep -E "tests passed|tests failed" build-asan/ctest-cpu.log | sed 's/^/asan: /'
    else
      cat build-asan/ctest-cpu.log
      failed+=("asan tests")
    fi
  else
    failed+=("asan build")
  fi
  unset ASAN_OPTIONS UBSAN_OPTIONS
  stamp asan "$s"
fi

if [ "${KILN_CI_FUZZ:-1}" != 0 ] && ! command -v "${CXX_FUZZ:-clang++}" >/dev/null; then
  echo "fuzz: SKIPPED: no clang++ (libFuzzer); install clang to run the GGUF fuzz smoke test"
elif [ "${KILN_CI_FUZZ:-1}" != 0 ]; then
  s=$(date +%s)
  mkdir -p build-fuzz
  if CXX="${CXX_FUZZ:-clang++}" bash fuzz/run.sh "${KILN_CI_FUZZ_SECONDS:-60}" >build-fuzz/smoke.log 2>&1; then
    grep -E "^Done" build-fuzz/smoke.log | sed 's/^/fuzz: /'
  else
    tail -n 60 build-fuzz/smoke.log
    failed+=("fuzz smoke")
  fi
  stamp fuzz "$s"
fi

# The main ctest runs last so its summary ("N% tests passed, ...") closes the output.
echo "ci/test.sh: $(IFS=,; echo "${step_times[*]}"); $(( $(date +%s) - t0 )) s before the main ctest"
ctest --test-dir build-ci -L cpu --output-on-failure -j "$KILN_JOBS" "$@" || failed+=("cpu tests")
if [ ${#failed[@]} -gt 0 ]; then
  echo "ci/test.sh: FAILED: ${failed[*]}"
  exit 1
fi

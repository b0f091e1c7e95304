#!/usr/bin/env bash
# The test command (README "Quick start"; .ci/run calls it): installs missing dependencies,
# builds kiln (Release, warnings as errors) and runs every `cpu`-labelled test. GPU tests are
# registered too but only the cpu label runs here: CI has no GPU. Extra args go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/deps.sh
source ci/env.sh
cmake --preset ci "${KILN_LAUNCHER[@]}" >/dev/null
cmake --build build-ci -j "$KILN_JOBS"
ctest --test-dir build-ci -L cpu --output-on-failure -j "$KILN_JOBS" "$@"

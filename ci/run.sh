#!/usr/bin/env bash
# The main job (README "Quick start"): builds kiln if needed and runs `kiln run` on the embedded
# default, a small synthetic Gemma 4 model: on the GPU when there is one, else the CPU reference
# forward. Arguments go to `kiln run` (e.g. --preset qwen3-8b --prompt-tokens 512 --gen 128).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/deps.sh
source ci/env.sh
if [ ! -x build/runner/kiln ]; then
  cmake --preset default "${KILN_LAUNCHER[@]}" >/dev/null
fi
cmake --build build -j "$KILN_JOBS" --target kiln
if [ $# -eq 0 ]; then
  exec build/runner/kiln run --prompt-tokens 128 --gen 32
fi
exec build/runner/kiln run "$@"

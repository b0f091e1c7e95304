#!/usr/bin/env bash
# Runs the GGUF fuzzer: builds it (fuzz/build.sh), writes the seed corpus (synthetic tiny models,
# small all-types files, and the headers of ../shared/parity/*.gguf or $KILN_PARITY_DIR/*.gguf when
# present), then fuzzes single-process. Finds go to build-fuzz/artifacts/ and fail the run.
#
#   bash fuzz/run.sh [SECONDS] [extra libFuzzer flags]     (default 60 s; CI runs it this way)
#   bash fuzz/run.sh 1500 -runs=10000000                   (the long local run)
# The growing corpus is kept in build-fuzz/corpus between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
B="${KILN_FUZZ_BUILD:-build-fuzz}"
bash fuzz/build.sh
parity="${KILN_PARITY_DIR:-../shared/parity}"
extra=()
if compgen -G "$parity/*.gguf" >/dev/null; then extra=("$parity"/*.gguf); fi
rm -rf "$B/seeds"
"$B/make_seeds" "$B/seeds" "${extra[@]}"
mkdir -p "$B/corpus" "$B/artifacts"
# No allocation stacks and no malloc fill: ~2x more executions per second. To debug a find, rerun
# it with full reports: ASAN_OPTIONS= build-fuzz/gguf_fuzz build-fuzz/artifacts/crash-...
export ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=0:max_malloc_fill_size=0}"
# max_len: a tiny model's header is ~8 KB; longer inputs only slow every execution down.
"$B/gguf_fuzz" -max_len=16384 -dict=fuzz/gguf.dict -max_total_time="$secs" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$B/artifacts/" "$@" \
  "$B/corpus" "$B/seeds"

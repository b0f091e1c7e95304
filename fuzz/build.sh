#!/usr/bin/env bash
# Builds the GGUF fuzzer with clang: build-fuzz/gguf_fuzz (libFuzzer + ASan + UBSan, every UB
# report fatal) and build-fuzz/make_seeds (writes the seed corpus). Host C++ only: models/ needs
# no CUDA, so this does not touch the CMake build.
#   KILN_FUZZ_BUILD=dir (default build-fuzz)   CXX=clang++-NN to pick a clang
set -euo pipefail
cd "$(dirname "$0")/.."
B="${KILN_FUZZ_BUILD:-build-fuzz}"
CXX_FUZZ="${CXX:-clang++}"
case "$("$CXX_FUZZ" --version 2>/dev/null | head -1)" in
  *clang*) ;;
  *) echo "fuzz/build.sh: needs clang (libFuzzer); CXX=$CXX_FUZZ is not clang" >&2; exit 1 ;;
esac
mkdir -p "$B"
MODELS=(models/gguf.cpp models/config.cpp models/quant.cpp)
COMMON=(-std=c++17 -I. -g -Wall -Wextra -Wno-unused-parameter -ffp-contract=off)
"$CXX_FUZZ" "${COMMON[@]}" -O2 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  fuzz/gguf_fuzz.cpp "${MODELS[@]}" -o "$B/gguf_fuzz"
"$CXX_FUZZ" "${COMMON[@]}" -O1 fuzz/make_seeds.cpp "${MODELS[@]}" models/synth.cpp -o "$B/make_seeds"
echo "built $B/gguf_fuzz $B/make_seeds"

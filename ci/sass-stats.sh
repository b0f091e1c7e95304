#!/usr/bin/env bash
# Per-kernel SASS statistics of kiln sources, without a GPU: compiles each .cu for sm_90a with
# kiln's numerics flags, disassembles it and prints, per kernel, the static instruction count, the
# MUFU.EX2 / FSETP / tensor-core (HMMA, HGMMA) instruction counts, local-memory traffic (LDL/STL:
# spills) and registers (ptxas -v). Session 30 found the wgmma prefill softmax's exp2f overhead this way
# (FSETP 149 -> 17 once exp2f became ex2.approx.ftz). Not part of CI (it may fetch a tool).
#
#   bash ci/sass-stats.sh kernels/attention_prefill_wg.cu [more.cu ...] [-- extra nvcc flags]
#
# cuobjdump: $KILN_CUOBJDUMP, else on PATH, else the CUDA toolkit's, else NVIDIA's PyPI wheel
# (nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm) unpacked into .whl/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/env.sh
srcs=()
extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then shift; extra=("$@"); break; fi
  srcs+=("$1"); shift
done
[ ${#srcs[@]} -gt 0 ] || { echo "usage: $0 FILE.cu [FILE.cu ...] [-- nvcc flags]" >&2; exit 2; }

# cuobjdump -sass runs nvdisasm: both come from the same place.
dump=${KILN_CUOBJDUMP:-$(command -v cuobjdump || true)}
if [ -z "$dump" ] || ! command -v nvdisasm >/dev/null && [ ! -x "$(dirname "$dump")/nvdisasm" ]; then
  dump=$(find .whl -name cuobjdump -type f 2>/dev/null | head -n 1 || true)
  if [ -z "$dump" ] || [ ! -x "$(dirname "$dump")/nvdisasm" ]; then
    echo "sass-stats: fetching cuobjdump and nvdisasm (NVIDIA's PyPI wheels) into .whl/" >&2
    python3 -m pip download -q --no-deps nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm -d .whl >&2
    for w in .whl/nvidia_cuda_cuobjdump-*.whl .whl/nvidia_cuda_nvdisasm-*.whl; do
      python3 -m zipfile -e "$w" .whl/x >/dev/null
    done
    dump=$(find .whl -name cuobjdump -type f | head -n 1)
    chmod +x "$dump" "$(dirname "$dump")/nvdisasm"
  fi
fi
export PATH="$(dirname "$dump"):$PATH"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "${srcs[@]}"; do
  nvcc -std=c++17 -O3 --fmad=false --expt-relaxed-constexpr -arch=sm_90a -DKILN_SM90A=1 -I. \
    -Xptxas -v -cubin "$f" -o "$tmp/k.cubin" "${extra[@]}" >"$tmp/ptxas.log" 2>&1 || { cat "$tmp/ptxas.log"; exit 1; }
  echo "== $f"
  printf "  %-62s %7s %5s %6s %5s %8s %5s\n" "kernel" "instr" "ex2" "fsetp" "mma" "ldl/stl" "regs"
  # registers per mangled name, from ptxas -v ("Compiling entry function 'NAME'" ... "Used N registers")
  awk '/Compiling entry function/ { split($0, a, "'"'"'"); fn = a[2] }
       /Used [0-9]+ registers/ && fn != "" { for (i = 1; i <= NF; ++i) if ($i == "Used") print fn, $(i + 1); fn = "" }' \
    "$tmp/ptxas.log" >"$tmp/regs.txt"
  "$dump" -sass "$tmp/k.cubin" | awk -v regs="$tmp/regs.txt" '
    BEGIN { while ((getline line < regs) > 0) { split(line, f, " "); nreg[f[1]] = f[2] } }
    /Function :/ { name = $3; order[++n] = name }
    /^ +\/\*[0-9a-f]+\*\// { ins[name]++
      if ($0 ~ /MUFU\.EX2/) ex2[name]++
      if ($0 ~ /FSETP/) fsetp[name]++
      if ($0 ~ /HMMA|HGMMA/) mma[name]++
      if ($0 ~ /[^A-Z](LDL|STL)[ .]/) local_[name]++ }
    END { for (i = 1; i <= n; ++i) { k = order[i]
            printf "%s %d %d %d %d %d %s\n", k, ins[k], ex2[k], fsetp[k], mma[k], local_[k], (k in nreg) ? nreg[k] : "?" } }' |
  while read -r k a b c d e r; do  # the demangled name without namespaces and parameters
    k=$(echo "$k" | c++filt | sed -e 's/(anonymous namespace):://g' -e 's/kiln:://g' -e 's/^void //' -e 's/(.*//')
    printf "  %-62s %7d %5d %6d %5d %8d %5s\n" "${k:0:62}" "$a" "$b" "$c" "$d" "$e" "$r"
  done
done

#!/usr/bin/env bash
# ptxas_guard (ctest, label cpu): code-generation invariants that compile cleanly when broken and
# show only as lost speed. The wgmma prefill attention (kernels/attention_prefill_wg.cu):
#   - no serialized wgmma (ptxas C7520: e.g. a wgmma under a branch ptxas cannot prove
#     warpgroup-uniform; the session-19 kernel drew it once, from an `if (active)` per tile),
#     no compiler-injected warpgroup arrives (C7519);
#   - no register spills (the consumers run at 224 registers; a spill sits in the tile loop).
# First a canary: the same file with the tile loop's S issue under a per-warpgroup branch must
# draw C7520, or this nvcc no longer reports what the guard looks for (then the guard fails).
# Then: no spills in the tensor-core decode attention kernels and in gemm_n's decode (N <= 2)
# kernels (below).
# usage: ptxas_guard.sh NVCC SOURCE_DIR
set -uo pipefail
nvcc=$1
src=$2
f=$src/kernels/attention_prefill_wg.cu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-std=c++17 -O3 --fmad=false --expt-relaxed-constexpr -gencode arch=compute_90a,code=sm_90a
       -DKILN_SM90A=1 -I"$src" -Xptxas -v -c -o "$tmp/out.o")
spills() {  # ptxas -v lines reporting spills in the last compile (with the function named above)
  grep -B2 -E "(^|[^0-9])[1-9][0-9]* bytes spill (stores|loads)" "$tmp/log"
}
compile() {
  if ! "$nvcc" "${flags[@]}" "$1" >"$tmp/log" 2>&1; then
    cat "$tmp/log"
    echo "ptxas_guard: $1 does not compile"
    exit 1
  fi
}

anchor='      issue_s(j);'
if [ "$(grep -cxF "$anchor" "$f")" != 1 ]; then
  echo "ptxas_guard: the canary's anchor line '$anchor' is not in $f exactly once: update the canary"
  exit 1
fi
sed "s/^      issue_s(j);\$/      if (wq0 < rows) issue_s(j);/" "$f" >"$tmp/canary.cu"
compile "$tmp/canary.cu"
if ! grep -q "C7520" "$tmp/log"; then
  echo "ptxas_guard: the canary (S issued under a branch) drew no C7520 from this nvcc; the guard"
  echo "cannot see wgmma serialization any more"
  exit 1
fi

compile "$f"
kernels=$(grep -c "Compiling entry function" "$tmp/log")
found=$(grep -E "C7520|C7519" "$tmp/log"; spills)
if [ -n "$found" ]; then
  echo "ptxas_guard: kernels/attention_prefill_wg.cu lost a code-generation invariant:"
  echo "$found" | cut -c1-300
  exit 1
fi
if [ "$kernels" -lt 1 ]; then
  echo "ptxas_guard: no kernel compiled for sm_90a (KILN_SM90A path missing?)"
  exit 1
fi
echo "ptxas_guard: $kernels wgmma kernels, no serialized wgmma, no injected arrives, no spills"

# The tensor-core decode attention kernel (the runner's decode path) runs at 251-255 registers
# under __launch_bounds__(128, 2) in every instantiation: an edit that pushes one past the cap
# spills inside its tile loop, which shows only as lost speed. (The CUDA-core decode kernels,
# Registers / SharedRing, spill a few bytes in some instantiations and are not guarded.)
f=$src/kernels/attention_decode_tc.cu
compile "$f"
kernels=$(grep -c "Compiling entry function" "$tmp/log")
found=$(spills)
if [ -n "$found" ]; then
  echo "ptxas_guard: kernels/attention_decode_tc.cu spills:"
  echo "$found" | cut -c1-300
  exit 1
fi
if [ "$kernels" -lt 32 ]; then  # 4 head_dims x 4 GQA groups x (merge launch, cluster merge)
  echo "ptxas_guard: only $kernels decode kernels compiled from $f (expected >= 32)"
  exit 1
fi
echo "ptxas_guard: $kernels tensor-core decode kernels, no spills"

# gemm_n's decode kernels (the dp4a path at N = 1, 2, both activation layouts: every matvec of a
# decode step) must not spill: a run-time layout branch once made the Q6_K N = 1 kernel spill 30
# words (session 37), which is why each layout has its own instantiation. (The N = 8 MMA-path
# kernels spill a few words and are not guarded.)
f=$src/kernels/gemm_n.cu
compile "$f"
# "Function properties for NAME" precedes its "N bytes spill" line; mangled template arguments
# <TT, N, ...> read ILi<TT>ELi<N>E (TT = -1: ILin1E).
report=$(awk '/Function properties for/ {fn = $NF}
              /bytes spill/ && fn ~ /gemm_n_q8_1_kernelILin?[0-9]+ELi[12]E/ {
                n++; if ($0 ~ /(^|[^0-9])[1-9][0-9]* bytes spill (stores|loads)/) print fn ": " $0 }
              END {print "checked " n+0}' "$tmp/log")
checked=$(echo "$report" | sed -n 's/^checked //p')
found=$(echo "$report" | grep -v "^checked ")
if [ -n "$found" ]; then
  echo "ptxas_guard: gemm_n's N <= 2 kernels spill:"
  echo "$found" | cut -c1-300
  exit 1
fi
if [ "$checked" -lt 24 ]; then  # 12 instantiations at N = 1, 2 per activation layout
  echo "ptxas_guard: only $checked gemm_n N <= 2 kernels found in $f's ptxas report (expected >= 24)"
  exit 1
fi
echo "ptxas_guard: $checked gemm_n decode kernels (N <= 2), no spills"

# Sourced by the ci/ scripts: CUDA on PATH, ccache as compiler launcher when present.
export PATH="/usr/local/cuda/bin:$PATH"
KILN_LAUNCHER=()
if command -v ccache >/dev/null; then
  KILN_LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
KILN_JOBS="${KILN_JOBS:-$(nproc)}"

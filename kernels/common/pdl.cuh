// Programmatic dependent launch (PDL, sm_90): a kernel launched with launch_pdl may start while
// the previous kernel in the stream is still running; it must call pdl_wait() before it reads
// anything an earlier kernel writes (activations, positions, caches) or writes anything an earlier
// kernel reads. What it does before pdl_wait() -- launching its CTAs, streaming weights into
// shared memory (gemm_n), loading norm weights into registers (rmsnorm, embed, head_norm_dual) --
// overlaps the previous kernel's tail. Only weights are read that early: kiln's callers write
// them once at load time and synchronize, and no kernel writes them afterwards. (A kernel may
// begin before even the kernel two launches back has finished, because each kernel triggers its
// successor at entry, so "not written by the previous kernel" would not be enough.)
// pdl_trigger() lets the next kernel launch early; kiln's kernels trigger at entry (the next one
// still waits for this one to finish).
// On a kernel launched without the attribute both are no-ops. KILN_PDL=0 launches everything
// without it, for bisecting; CUDA graphs capture the programmatic edges.
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "kernels/common/device.cuh"

namespace kiln {

#if defined(__CUDACC__)
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
#endif

inline bool pdl_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("KILN_PDL");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

// kernel<<<grid, block, smem, s>>>(args...) with the programmatic-serialization attribute and,
// for cluster_x > 0, thread-block clusters of cluster_x x 1 x 1 CTAs (grid.x a multiple of it;
// 0: no cluster attribute).
template <class... KArgs, class... Args>
void launch_pdl_cluster(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                        unsigned cluster_x, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
  attr[1].id = cudaLaunchAttributeClusterDimension;
  attr[1].val.clusterDim.x = cluster_x;
  attr[1].val.clusterDim.y = 1;
  attr[1].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = cluster_x > 0 ? 2 : 1;
  KILN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...));
}

// kernel<<<grid, block, smem, s>>>(args...) with the programmatic-serialization attribute.
template <class... KArgs, class... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args... args) {
  launch_pdl_cluster(kernel, grid, block, smem, s, 0u, args...);
}

}  // namespace kiln

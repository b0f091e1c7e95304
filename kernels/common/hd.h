// kiln common: the host/device qualifier shared by every header that both nvcc and the host
// compiler read. Kept tiny on purpose: models/ and reference/ include common headers without CUDA.
#pragma once

#if defined(__CUDACC__)
#define KILN_HD __host__ __device__ __forceinline__
#define KILN_DEVICE_COMPILE 1
#else
#define KILN_HD inline
#define KILN_DEVICE_COMPILE 0
#endif

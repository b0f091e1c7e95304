#include "kernels/softcap_argmax.cuh"

#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/math.h"

namespace kiln {

namespace {
constexpr int kThreads = 256;
constexpr int kMaxBlocks = 64;  // partial slots per row

struct Best {
  float v;
  int32_t i;  // INT32_MAX: nothing seen
};

__device__ __forceinline__ Best better(Best a, Best b) {
  // a wins on a larger value, or equal value and lower index; "nothing" (i == INT32_MAX) loses.
  if (b.i == INT32_MAX) return a;
  if (a.i == INT32_MAX) return b;
  if (a.v > b.v || (a.v == b.v && a.i < b.i)) return a;
  return b;
}

__device__ __forceinline__ Best warp_best(Best b) {
  for (int o = 16; o > 0; o >>= 1) {
    Best other;
    other.v = __shfl_xor_sync(0xffffffffu, b.v, o);
    other.i = __shfl_xor_sync(0xffffffffu, b.i, o);
    b = better(b, other);
  }
  return b;
}

__device__ __forceinline__ Best block_best(Best b, Best* red) {
  b = warp_best(b);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) red[warp] = b;
  __syncthreads();
  b = lane < kThreads / 32 ? red[lane] : Best{0.f, INT32_MAX};
  return warp_best(b);
}

template <bool VEC>
__global__ void __launch_bounds__(kThreads) softcap_argmax_kernel(SoftcapArgmaxOp op, int64_t seg) {
  if (!op.pos) pdl_trigger();  // a step's end serializes the stream (header)
  pdl_wait();                  // every input may come from the previous kernel
  __shared__ Best red[kThreads / 32];
  __shared__ bool last;
  const int64_t r = blockIdx.y;
  const float* x = op.logits + r * op.n;
  float* z = op.capped ? op.capped + r * op.n : nullptr;
  const int64_t beg = int64_t(blockIdx.x) * seg;
  const int64_t end = min(op.n, beg + seg);
  Best b{0.f, INT32_MAX};
  auto visit = [&](float xv, int64_t i) {
    const float zv = op.cap > 0.f ? softcap(xv, op.cap) : xv;
    if (z) z[i] = zv;
    if (zv == zv) b = better(b, Best{zv, int32_t(i)});
  };
  if (VEC) {  // seg % 4 == 0, n % 4 == 0, 16B-aligned rows
    for (int64_t i = beg + 4 * threadIdx.x; i < end; i += 4 * kThreads) {
      const float4 v = *reinterpret_cast<const float4*>(x + i);
      visit(v.x, i);
      visit(v.y, i + 1);
      visit(v.z, i + 2);
      visit(v.w, i + 3);
    }
  } else {
    for (int64_t i = beg + threadIdx.x; i < end; i += kThreads) visit(x[i], i);
  }
  b = block_best(b, red);
  Best* part = reinterpret_cast<Best*>(op.workspace) + r * kMaxBlocks;
  unsigned* cnt = reinterpret_cast<unsigned*>(reinterpret_cast<Best*>(op.workspace) + op.rows * kMaxBlocks) + r;
  if (threadIdx.x == 0) {
    part[blockIdx.x] = b;
    __threadfence();
    const unsigned ticket = atomicAdd(cnt, 1u);
    last = ticket == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  Best c{0.f, INT32_MAX};
  if (threadIdx.x < gridDim.x) {
    const volatile Best* vp = part + threadIdx.x;
    c.v = vp->v;
    c.i = vp->i;
  }
  __syncthreads();  // red reuse
  c = block_best(c, red);
  if (threadIdx.x == 0) {
    const int32_t id = c.i == INT32_MAX ? -1 : c.i;
    op.idx[r] = id;
    if (op.feed) *op.feed = id;
    if (op.pos) *op.pos += 1;
    *cnt = 0u;  // ready for the next launch / graph replay
  }
}
}  // namespace

size_t softcap_argmax_workspace_bytes(int64_t rows) {
  return size_t(rows) * kMaxBlocks * sizeof(Best) + size_t(rows) * sizeof(unsigned);
}

void softcap_argmax(const SoftcapArgmaxOp& op, cudaStream_t stream) {
  KILN_REQUIRE(op.n > 0 && op.n < (int64_t(1) << 31) - 1 && op.rows >= 0 && op.rows <= 65535,
               "softcap_argmax: bad shape rows=", op.rows, " n=", op.n);
  KILN_REQUIRE(op.logits && op.idx && op.workspace, "softcap_argmax: logits, idx and workspace are required");
  KILN_REQUIRE(op.rows == 1 || (!op.feed && !op.pos), "softcap_argmax: feed and pos need rows == 1, got rows=",
               op.rows);
  if (op.rows == 0) return;
  // ~4096 elements per block (16 per thread), at most kMaxBlocks blocks per row.
  int64_t nb = (op.n + 4095) / 4096;
  if (nb > kMaxBlocks) nb = kMaxBlocks;
  int64_t seg = (op.n + nb - 1) / nb;
  seg = (seg + 3) / 4 * 4;
  nb = (op.n + seg - 1) / seg;
  const bool vec = op.n % 4 == 0 && (reinterpret_cast<uintptr_t>(op.logits) & 15u) == 0;
  const dim3 grid(unsigned(nb), unsigned(op.rows));
  if (vec)
    launch_pdl(softcap_argmax_kernel<true>, dim3(grid), dim3(kThreads), 0, stream, op, seg);
  else
    launch_pdl(softcap_argmax_kernel<false>, dim3(grid), dim3(kThreads), 0, stream, op, seg);
  KILN_CUDA_CHECK_LAUNCH();
}

}  // namespace kiln

#include "kernels/rope.cuh"

#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/error.h"

namespace kiln {

namespace {
constexpr int kThreads = 256;

// Thread = one pair of one head of one token; heads [0, nq) are Q, [nq, nq + nkv) are K.
__global__ void __launch_bounds__(kThreads) rope_kernel(RopeOp op) {
  pdl_trigger();
  pdl_wait();  // every input may come from the previous kernel
  const int half = op.n_rot / 2;
  const int heads = op.n_q_heads + (op.k ? op.n_kv_heads : 0);
  const int64_t g = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (g >= op.n_tokens * heads * half) return;
  const int i = int(g % half);
  const int h = int((g / half) % heads);
  const int64_t t = g / (int64_t(half) * heads);
  float* x = h < op.n_q_heads ? op.q + t * op.q_stride + int64_t(h) * op.head_dim
                              : op.k + t * op.k_stride + int64_t(h - op.n_q_heads) * op.head_dim;
  const int32_t p = op.pos[t];
  float2 cs = make_float2(__int_as_float(0x7fc00000), __int_as_float(0x7fc00000));
  if (p >= 0 && p < op.n_pos) cs = op.table[int64_t(p) * half + i];
  const float x0 = x[i], x1 = x[i + half];
  x[i] = x0 * cs.x - x1 * cs.y;
  x[i + half] = x0 * cs.y + x1 * cs.x;
}
}  // namespace

void rope(const RopeOp& op, cudaStream_t stream) {
  KILN_REQUIRE(op.head_dim > 0 && op.n_rot > 0 && op.n_rot % 2 == 0 && op.n_rot <= op.head_dim,
               "rope: n_rot=", op.n_rot, " must be even and in (0, head_dim=", op.head_dim, "]");
  KILN_REQUIRE(op.q && op.pos && op.table && op.n_pos > 0 && op.n_tokens >= 0 && op.n_q_heads > 0,
               "rope: q, pos, table required");
  KILN_REQUIRE(!op.k || op.n_kv_heads > 0, "rope: k given with n_kv_heads=", op.n_kv_heads);
  KILN_REQUIRE(op.n_tokens <= 1 || op.q_stride >= int64_t(op.n_q_heads) * op.head_dim, "rope: q_stride too short");
  KILN_REQUIRE(!op.k || op.n_tokens <= 1 || op.k_stride >= int64_t(op.n_kv_heads) * op.head_dim,
               "rope: k_stride too short");
  if (op.n_tokens == 0) return;
  const int64_t threads = op.n_tokens * (op.n_q_heads + (op.k ? op.n_kv_heads : 0)) * (op.n_rot / 2);
  launch_pdl(rope_kernel, dim3(unsigned((threads + kThreads - 1) / kThreads)), dim3(kThreads), 0, stream, op);
  KILN_CUDA_CHECK_LAUNCH();
}

}  // namespace kiln

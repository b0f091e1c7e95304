#include "kernels/gelu_tanh_mul_strided.cuh"

#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/math.h"
#include "kernels/rmsnorm.cuh"

namespace kiln {

namespace {
using namespace normdev;

constexpr int kThreads = 256;

template <GatedAct A>
__device__ __forceinline__ float act(float x) {
  return A == GatedAct::Silu ? silu(x) : gelu_tanh(x);
}

// Chunk path (n % 4 == 0): thread = 4 consecutive elements of one row; with n % 32 == 0 eight
// consecutive threads form one Q8_1 block.
template <GatedAct A, bool VEC>
__global__ void __launch_bounds__(kThreads) glu_chunk_kernel(GatedMulOp op) {
  pdl_trigger();
  pdl_wait();  // every input may come from the previous kernel
  const int64_t nc = op.n / 4;
  const int64_t g = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const bool active = g < op.n_tokens * nc;
  const int64_t t = active ? g / nc : 0, c = active ? g % nc : 0;
  float4 y = f4(0.f);
  if (active) {
    const float4 gv = load4<VEC>(op.gate + t * op.gate_stride, c, op.n);
    const float4 bv = load4<VEC>(op.b + t * op.b_stride, c, op.n);
    y = make_float4(act<A>(gv.x) * bv.x, act<A>(gv.y) * bv.y, act<A>(gv.z) * bv.z, act<A>(gv.w) * bv.w);
    if (op.out) store4<VEC>(op.out + t * op.n, c, op.n, y);
  }
  if (op.out_q) q8_1_group8(y, active, {op.out_q + t * (op.n / QK8_1), op.n / QK8_1, op.q_layout}, c / 8, int(c % 8));
}

// Element path (any n, no Q8_1).
template <GatedAct A>
__global__ void __launch_bounds__(kThreads) glu_elem_kernel(GatedMulOp op) {
  pdl_trigger();
  pdl_wait();  // every input may come from the previous kernel
  const int64_t g = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (g >= op.n_tokens * op.n) return;
  const int64_t t = g / op.n, i = g % op.n;
  op.out[t * op.n + i] = act<A>(op.gate[t * op.gate_stride + i]) * op.b[t * op.b_stride + i];
}

bool a16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <GatedAct A>
void launch(const GatedMulOp& op, cudaStream_t s) {
  if (op.n % 4 == 0) {
    const bool vec = a16(op.gate) && a16(op.b) && a16(op.out) && op.gate_stride % 4 == 0 && op.b_stride % 4 == 0;
    const int64_t threads = op.n_tokens * (op.n / 4);
    const dim3 grid(unsigned((threads + kThreads - 1) / kThreads));
    if (vec)
      launch_pdl(glu_chunk_kernel<A, true>, dim3(grid), dim3(kThreads), 0, s, op);
    else
      launch_pdl(glu_chunk_kernel<A, false>, dim3(grid), dim3(kThreads), 0, s, op);
  } else {
    const int64_t threads = op.n_tokens * op.n;
    launch_pdl(glu_elem_kernel<A>, dim3(unsigned((threads + kThreads - 1) / kThreads)), dim3(kThreads), 0, s, op);
  }
}
}  // namespace

void gelu_tanh_mul_strided(const GatedMulOp& op, cudaStream_t stream) {
  KILN_REQUIRE(op.n > 0 && op.n_tokens >= 0, "gelu_tanh_mul_strided: bad shape T=", op.n_tokens, " n=", op.n);
  KILN_REQUIRE(op.gate && op.b && (op.out || op.out_q), "gelu_tanh_mul_strided: gate, b and an output are required");
  KILN_REQUIRE(op.n_tokens <= 1 || (op.gate_stride >= op.n && op.b_stride >= op.n),
               "gelu_tanh_mul_strided: strides (", op.gate_stride, ", ", op.b_stride, ") shorter than n=", op.n);
  KILN_REQUIRE(!op.out_q || op.n % QK8_1 == 0, "gelu_tanh_mul_strided: Q8_1 output needs n % 32 == 0, n=", op.n);
  KILN_REQUIRE(q8_layout_valid(op.q_layout), "gelu_tanh_mul_strided: unknown Q8_1 layout ", int(op.q_layout));
  KILN_REQUIRE(op.n_tokens * op.n / 4 < (int64_t(1) << 31) * kThreads, "gelu_tanh_mul_strided: too large");
  if (op.n_tokens == 0) return;
  if (op.act == GatedAct::Silu)
    launch<GatedAct::Silu>(op, stream);
  else
    launch<GatedAct::GeluTanh>(op, stream);
  KILN_CUDA_CHECK_LAUNCH();
}

}  // namespace kiln

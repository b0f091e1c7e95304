#include "kernels/rmsnorm.cuh"

#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"

namespace kiln {

namespace {
using namespace normdev;

template <int C, bool VEC>
__global__ void __launch_bounds__(kRowThreads) rmsnorm_kernel(RmsnormOp op) {
  pdl_trigger();
  const int64_t n = op.n, nc = (n + 3) / 4;
  // The weights before the wait (load_chunks) for rows of <= 4096 floats; wider rows load them
  // after it (held across the wait they would add 8 C registers to the 8 C of x and y).
  float4 wv[C], wyv[C];
  auto load_weights = [&] {
    load_chunks<C, VEC>(op.w, n, wv);
    load_chunks<C, VEC>(op.norm_y ? op.w_y : nullptr, n, wyv);
  };
  constexpr bool kEarly = C <= 4;
  if (kEarly) load_weights();
  pdl_wait();  // every other input may come from the previous kernel
  if (!kEarly) load_weights();
  __shared__ float red[kRowThreads / 32];
  const int tid = threadIdx.x;
  const int64_t row = blockIdx.x;
  float* x = op.x + row * n;
  float4 v[C];
#pragma unroll
  for (int k = 0; k < C; ++k) {
    const int64_t c = tid + int64_t(kRowThreads) * k;
    v[k] = c < nc ? load4<VEC>(x, c, n) : f4(0.f);
  }
  if (op.y) {
    const float* y = op.y + row * n;
    float4 yv[C];
#pragma unroll
    for (int k = 0; k < C; ++k) {
      const int64_t c = tid + int64_t(kRowThreads) * k;
      yv[k] = c < nc ? load4<VEC>(y, c, n) : f4(0.f);
    }
    if (op.norm_y) {
      float acc = 0.f;
#pragma unroll
      for (int k = 0; k < C; ++k) acc = sumsq4(yv[k], acc);
      const float ry = krsqrt(block_sum<kRowThreads / 32>(acc, red) / float(n) + op.eps);
#pragma unroll
      for (int k = 0; k < C; ++k) {
        const int64_t c = tid + int64_t(kRowThreads) * k;
        yv[k] = mul4s(yv[k], ry);
        if (op.w_y && c < nc) yv[k] = mul4(yv[k], wyv[k]);
      }
    }
#pragma unroll
    for (int k = 0; k < C; ++k) v[k] = mul4s(add4(v[k], yv[k]), op.scale);
  } else {
#pragma unroll
    for (int k = 0; k < C; ++k) v[k] = mul4s(v[k], op.scale);
  }
  if (op.y || op.scale != 1.f) {
#pragma unroll
    for (int k = 0; k < C; ++k) {
      const int64_t c = tid + int64_t(kRowThreads) * k;
      if (c < nc) store4<VEC>(x, c, n, v[k]);
    }
  }
  const int64_t nb = n / QK8_1;
  finish_row<C, VEC>(v, n, op.eps, op.w != nullptr, wv, op.out ? op.out + row * n : nullptr,
                     op.out_q ? op.out_q + row * nb : nullptr, op.x_q ? op.x_q + row * nb : nullptr, op.q_layout,
                     red);
}

__global__ void empty_kernel_impl() {}

bool a16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <int C>
void launch_c(const RmsnormOp& op, bool vec, cudaStream_t s) {
  const dim3 grid(unsigned(op.rows));
  if (vec)
    launch_pdl(rmsnorm_kernel<C, true>, dim3(grid), dim3(kRowThreads), 0, s, op);
  else
    launch_pdl(rmsnorm_kernel<C, false>, dim3(grid), dim3(kRowThreads), 0, s, op);
}
}  // namespace

void rmsnorm(const RmsnormOp& op, cudaStream_t stream) {
  KILN_REQUIRE(op.rows >= 0 && op.rows <= 0x7fffffff, "rmsnorm: rows=", op.rows);
  KILN_REQUIRE(op.n >= 1 && op.n <= 16384, "rmsnorm: n=", op.n, " outside [1, 16384]");
  KILN_REQUIRE(op.x, "rmsnorm: x is required");
  KILN_REQUIRE((!op.out_q && !op.x_q) || op.n % QK8_1 == 0, "rmsnorm: Q8_1 output needs n % 32 == 0, n=", op.n);
  KILN_REQUIRE(!op.norm_y || op.y, "rmsnorm: norm_y without y");
  KILN_REQUIRE(q8_layout_valid(op.q_layout), "rmsnorm: unknown Q8_1 layout ", int(op.q_layout));
  if (op.rows == 0) return;
  const bool vec = op.n % 4 == 0 && a16(op.x) && a16(op.y) && a16(op.w_y) && a16(op.w) && a16(op.out);
  const int64_t chunks_per_thread = ((op.n + 3) / 4 + 255) / 256;
  if (chunks_per_thread <= 1)
    launch_c<1>(op, vec, stream);
  else if (chunks_per_thread <= 2)
    launch_c<2>(op, vec, stream);
  else if (chunks_per_thread <= 4)
    launch_c<4>(op, vec, stream);
  else if (chunks_per_thread <= 8)
    launch_c<8>(op, vec, stream);
  else
    launch_c<16>(op, vec, stream);
  KILN_CUDA_CHECK_LAUNCH();
}

void rmsnorm(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* out, cudaStream_t stream) {
  RmsnormOp op;
  op.rows = rows;
  op.n = n;
  op.eps = eps;
  op.x = const_cast<float*>(x);  // not written: no y, scale 1
  op.w = w;
  op.out = out;
  KILN_REQUIRE(out, "rmsnorm: out is required");
  rmsnorm(op, stream);
}

void empty_kernel(cudaStream_t stream) {
  empty_kernel_impl<<<1, 32, 0, stream>>>();
  KILN_CUDA_CHECK_LAUNCH();
}

}  // namespace kiln

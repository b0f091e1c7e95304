#include "kernels/ple_proj_norm.cuh"

#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/embed.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {

namespace {
using namespace normdev;
using embeddev::decode_elem;

constexpr int kWarps = 8;

template <int C, bool VEC>
__global__ void __launch_bounds__(kWarps * 32) ple_proj_norm_kernel(PleProjNormOp op) {
  pdl_trigger();
  pdl_wait();  // every input may come from the previous kernel
  const int lane = threadIdx.x & 31;
  const int64_t slice = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (slice >= op.n_tokens * op.n_layers) return;  // whole warp leaves together
  const int64_t t = slice / op.n_layers;
  const int l = int(slice % op.n_layers);
  const int P = op.P;
  const int64_t nc = (P + 3) / 4;
  const int64_t W = int64_t(op.n_layers) * P;
  const float* p = op.proj + t * W + int64_t(l) * P;
  float4 a[C];
  float acc = 0.f;
#pragma unroll
  for (int k = 0; k < C; ++k) {
    const int64_t c = lane + 32 * k;
    a[k] = c < nc ? mul4s(load4<VEC>(p, c, P), op.proj_scale) : f4(0.f);
    acc = sumsq4(a[k], acc);
  }
  const float ri = krsqrt(warp_sum(acc) / float(P) + op.eps);
  int64_t r = t;
  if (op.ids) r = op.ids[t];
  const bool ok = r >= 0 && r < op.n_rows;
  const uint8_t* row = static_cast<const uint8_t*>(op.rows) + size_t(ok ? r : 0) * op.row_stride;
  float* o = op.out + t * W + int64_t(l) * P;
  const int64_t e0 = int64_t(l) * P;
#pragma unroll
  for (int k = 0; k < C; ++k) {
    const int64_t c = lane + 32 * k;
    if (c >= nc) continue;
    const float4 nw = mul4(mul4s(a[k], ri), load4<VEC>(op.w, c, P));
    float e[4];
    if (P % 4 == 0 && ok) {
      embeddev::decode4(op.row_type, row, e0 + 4 * c, e0 + P, e);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        e[j] = (4 * c + j < P) ? (ok ? decode_elem(op.row_type, row, e0 + 4 * c + j) : __int_as_float(0x7fc00000)) : 0.f;
    }
    const float4 ev = make_float4(e[0] * op.row_scale, e[1] * op.row_scale, e[2] * op.row_scale, e[3] * op.row_scale);
    store4<VEC>(o, c, P, mul4s(add4(nw, ev), op.out_scale));
  }
}

template <int C>
void launch(const PleProjNormOp& op, bool vec, cudaStream_t s) {
  const int64_t slices = op.n_tokens * op.n_layers;
  const dim3 grid(unsigned((slices + kWarps - 1) / kWarps));
  if (vec)
    launch_pdl(ple_proj_norm_kernel<C, true>, dim3(grid), dim3(kWarps * 32), 0, s, op);
  else
    launch_pdl(ple_proj_norm_kernel<C, false>, dim3(grid), dim3(kWarps * 32), 0, s, op);
}
bool a16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
}  // namespace

void ple_proj_norm(const PleProjNormOp& op, cudaStream_t stream) {
  const DType ty = op.row_type;
  KILN_REQUIRE(ty == DType::Q8_0 || ty == DType::F16 || ty == DType::BF16 || ty == DType::F32,
               "ple_proj_norm: unsupported row type ", dtype_name(ty));
  KILN_REQUIRE(op.n_layers > 0 && op.P > 0 && op.P <= 1024 && op.n_tokens >= 0, "ple_proj_norm: bad shape L=",
               op.n_layers, " P=", op.P, " T=", op.n_tokens);
  KILN_REQUIRE((int64_t(op.n_layers) * op.P) % dtype_traits(ty).block_elems == 0, "ple_proj_norm: L*P=",
               int64_t(op.n_layers) * op.P, " not a multiple of the ", dtype_name(ty), " block");
  KILN_REQUIRE(op.proj && op.w && op.rows && op.out, "ple_proj_norm: proj, w, rows and out are required");
  KILN_REQUIRE(op.row_stride >= row_bytes(ty, int64_t(op.n_layers) * op.P), "ple_proj_norm: row_stride ",
               op.row_stride, " shorter than a row");
  KILN_REQUIRE(op.ids ? op.n_rows > 0 : op.n_rows >= op.n_tokens, "ple_proj_norm: n_rows=", op.n_rows,
               " (needs the table size with ids, >= n_tokens without)");
  if (op.n_tokens == 0) return;
  const bool vec = op.P % 4 == 0 && a16(op.proj) && a16(op.w) && a16(op.out);
  const int cpl = int(((op.P + 3) / 4 + 31) / 32);
  if (cpl <= 1)
    launch<1>(op, vec, stream);
  else if (cpl <= 2)
    launch<2>(op, vec, stream);
  else if (cpl <= 4)
    launch<4>(op, vec, stream);
  else
    launch<8>(op, vec, stream);
  KILN_CUDA_CHECK_LAUNCH();
}

}  // namespace kiln

#include "kernels/embed.cuh"

#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {

namespace {
using namespace normdev;
using embeddev::decode_elem;

constexpr int kGatherThreads = 256;

// Plain gather: grid (chunk blocks, tokens); thread = 4 consecutive elements.
__global__ void __launch_bounds__(kGatherThreads) embed_gather_kernel(EmbedOp op, size_t rb) {
  pdl_trigger();
  pdl_wait();  // every input may come from the previous kernel
  const int64_t t = blockIdx.y;
  const int64_t i0 = 4 * (int64_t(blockIdx.x) * kGatherThreads + threadIdx.x);
  if (i0 >= op.n) return;
  const int32_t id = op.ids[t];
  float* o = op.out + t * op.n;
  const bool ok = id >= 0 && int64_t(id) < op.n_vocab;
  const uint8_t* row = static_cast<const uint8_t*>(op.table) + size_t(ok ? id : 0) * rb;
  float v[4];
  embeddev::decode4(op.type, row, i0, op.n, v);
#pragma unroll
  for (int e = 0; e < 4; ++e) v[e] = ok ? v[e] * op.scale : __int_as_float(0x7fc00000);
  if (op.n % 4 == 0 && (reinterpret_cast<uintptr_t>(op.out) & 15u) == 0) {
    reinterpret_cast<float4*>(o)[i0 / 4] = make_float4(v[0], v[1], v[2], v[3]);
  } else {
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (i0 + e < op.n) o[i0 + e] = v[e];
  }
}

// Fused: one 256-thread block per token (canonical W = 8 norm order).
template <int C>
__global__ void __launch_bounds__(kRowThreads) embed_norm_kernel(EmbedOp op, size_t rb) {
  pdl_trigger();
  float4 wv[C];  // the norm weight, before the wait (load_chunks)
  load_chunks<C, false>(op.w, op.n, wv);
  pdl_wait();  // every other input may come from the previous kernel
  __shared__ float red[kRowThreads / 32];
  const int tid = threadIdx.x;
  const int64_t t = blockIdx.x, n = op.n, nc = (n + 3) / 4;
  const int32_t id = op.ids[t];
  const bool ok = id >= 0 && int64_t(id) < op.n_vocab;
  const uint8_t* row = static_cast<const uint8_t*>(op.table) + size_t(ok ? id : 0) * rb;
  float* o = op.out + t * n;
  // Decode in a rolled loop into `out`, then read this thread's own chunks back: unrolled, the
  // six-format decoder was copied C times (150 KB of SASS at C = 4, run once per token).
#pragma unroll 1
  for (int64_t c = tid; c < nc; c += kRowThreads) {
    float e[4];
    embeddev::decode4(op.type, row, 4 * c, n, e);
#pragma unroll
    for (int j = 0; j < 4; ++j) e[j] = ok ? e[j] * op.scale : __int_as_float(0x7fc00000);
    store4<false>(o, c, n, make_float4(e[0], e[1], e[2], e[3]));
  }
  float4 v[C];  // zeros past n
#pragma unroll
  for (int k = 0; k < C; ++k) {
    const int64_t c = tid + int64_t(kRowThreads) * k;
    v[k] = c < nc ? load4<false>(o, c, n) : f4(0.f);
  }
  const int64_t nb = n / QK8_1;
  finish_row<C, false>(v, n, op.eps, op.w != nullptr, wv, op.norm_out ? op.norm_out + t * n : nullptr,
                       op.norm_q ? op.norm_q + t * nb : nullptr, op.x_q ? op.x_q + t * nb : nullptr, op.q_layout,
                       red);
}
}  // namespace

void embed(const EmbedOp& op, cudaStream_t stream) {
  const DType ty = op.type;
  KILN_REQUIRE(ty == DType::F32 || ty == DType::F16 || ty == DType::BF16 || ty == DType::Q8_0 || ty == DType::Q4_K ||
                   ty == DType::Q6_K,
               "embed: unsupported table type ", dtype_name(ty));
  KILN_REQUIRE(op.n > 0 && op.n % dtype_traits(ty).block_elems == 0, "embed: width ", op.n,
               " is not a positive multiple of the ", dtype_name(ty), " block");
  KILN_REQUIRE(op.table && op.ids && op.out, "embed: table, ids and out are required");
  KILN_REQUIRE(op.n_tokens >= 0 && op.n_tokens <= 0x7fffffff && op.n_vocab > 0, "embed: bad n_tokens/n_vocab");
  const bool fused = op.norm_out || op.norm_q || op.x_q;
  KILN_REQUIRE(!fused || op.n <= 16384, "embed: fused norm outputs need n <= 16384, n=", op.n);
  KILN_REQUIRE((!op.norm_q && !op.x_q) || op.n % QK8_1 == 0, "embed: Q8_1 outputs need n % 32 == 0, n=", op.n);
  KILN_REQUIRE(q8_layout_valid(op.q_layout), "embed: unknown Q8_1 layout ", int(op.q_layout));
  if (op.n_tokens == 0) return;
  const size_t rb = row_bytes(ty, op.n);
  if (!fused) {
    KILN_REQUIRE(op.n_tokens <= 65535, "embed: n_tokens=", op.n_tokens, " > 65535 per launch");
    const dim3 grid(unsigned((op.n + 4 * kGatherThreads - 1) / (4 * kGatherThreads)), unsigned(op.n_tokens));
    launch_pdl(embed_gather_kernel, dim3(grid), dim3(kGatherThreads), 0, stream, op, rb);
  } else {
    const int64_t cpt = ((op.n + 3) / 4 + kRowThreads - 1) / kRowThreads;
    const dim3 grid(unsigned(op.n_tokens));
    if (cpt <= 1)
      launch_pdl(embed_norm_kernel<1>, dim3(grid), dim3(kRowThreads), 0, stream, op, rb);
    else if (cpt <= 2)
      launch_pdl(embed_norm_kernel<2>, dim3(grid), dim3(kRowThreads), 0, stream, op, rb);
    else if (cpt <= 4)
      launch_pdl(embed_norm_kernel<4>, dim3(grid), dim3(kRowThreads), 0, stream, op, rb);
    else if (cpt <= 8)
      launch_pdl(embed_norm_kernel<8>, dim3(grid), dim3(kRowThreads), 0, stream, op, rb);
    else
      launch_pdl(embed_norm_kernel<16>, dim3(grid), dim3(kRowThreads), 0, stream, op, rb);
  }
  KILN_CUDA_CHECK_LAUNCH();
}

}  // namespace kiln

#include "kernels/head_norm_dual.cuh"

#include <cuda_fp16.h>

#include "kernels/attention.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {

namespace {
using namespace normdev;

constexpr int kWarps = 4;
constexpr int kMaxHd = 512;

using kvdev::store_half4;  // the cache store kv_append uses

template <int C, bool VEC, bool ROPE>
__global__ void __launch_bounds__(kWarps * 32) head_norm_kernel(HeadNormOp op, int nq, int nk, int nv) {
  pdl_trigger();
  __shared__ float4 smem[ROPE ? kWarps : 1][ROPE ? kMaxHd / 4 : 1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int per_tok = nq + nk + nv;
  const int64_t g = int64_t(blockIdx.x) * kWarps + warp;
  if (g >= op.n_tokens * per_tok) {  // warp-uniform
    pdl_wait();  // every thread waits: this grid then completes only after the previous one
    return;
  }
  const int64_t t = g / per_tok;
  int h = int(g % per_tok);
  const int hd = op.head_dim;
  float* x;
  const float* w;
  uint16_t* cache = nullptr;  // this head's row in the K or V cache (null: no append)
  bool rope = ROPE, norm = true, write = true;
  if (h < nq) {
    x = op.q + t * op.q_stride + int64_t(h) * hd;
    w = op.wq;
  } else if ((h -= nq) < nk) {
    x = op.k + t * op.k_stride + int64_t(h) * hd;
    w = op.wk;
    cache = op.k_cache;
  } else {
    h -= nk;
    x = op.v + t * op.v_stride + int64_t(h) * hd;
    w = nullptr;
    rope = false;
    norm = write = op.norm_v;
    cache = op.v_cache;
  }
  const int64_t nc = (hd + 3) / 4;
  float4 wv[C];  // the norm weight, read before the wait: weights are not written by kernels
  load_chunks<C, VEC, 32>(w, hd, wv, lane);
  pdl_wait();  // every other input may come from the previous kernel
  if (cache) {
    const int32_t p = op.pos[t];
    cache = p < 0 ? nullptr : cache + (int64_t(p) % op.cache_cap * op.n_kv_heads + h) * hd;
  }
  float4 v[C];
  float acc = 0.f;
#pragma unroll
  for (int k = 0; k < C; ++k) {
    const int64_t c = lane + 32 * k;
    v[k] = c < nc ? load4<VEC>(x, c, hd) : f4(0.f);
    acc = sumsq4(v[k], acc);
  }
  if (norm) {  // warp-uniform
    const float ri = krsqrt(warp_sum(acc) / float(hd) + op.eps);
#pragma unroll
    for (int k = 0; k < C; ++k) {
      const int64_t c = lane + 32 * k;
      v[k] = mul4s(v[k], ri);
      if (w && c < nc) v[k] = mul4(v[k], wv[k]);
    }
  }
  if (!ROPE || !rope) {
#pragma unroll
    for (int k = 0; k < C; ++k) {
      const int64_t c = lane + 32 * k;
      if (c >= nc) continue;
      if (write) store4<VEC>(x, c, hd, v[k]);
      if (cache) store_half4(cache + 4 * c, v[k]);  // (a cache needs hd % 4 == 0)
    }
    return;
  }
  // RoPE: stage the normalized head in shared memory, then rotate pairs.
  float* s = reinterpret_cast<float*>(smem[warp]);
#pragma unroll
  for (int k = 0; k < C; ++k) {
    const int64_t c = lane + 32 * k;
    if (c < nc) {
      s[4 * c] = v[k].x;
      s[4 * c + 1] = v[k].y;
      s[4 * c + 2] = v[k].z;
      s[4 * c + 3] = v[k].w;
    }
  }
  __syncwarp();
  const int half = op.n_rot / 2;
  const int32_t p = op.pos[t];
  const bool ok = p >= 0 && p < op.n_pos;
  const float2* row = op.table + int64_t(ok ? p : 0) * half;
  for (int i = lane; i < hd; i += 32) {
    float y;
    if (i < op.n_rot) {
      const int j = i < half ? i : i - half;
      const float2 cs = ok ? row[j] : make_float2(__int_as_float(0x7fc00000), __int_as_float(0x7fc00000));
      const float x0 = s[j], x1 = s[j + half];
      y = i < half ? x0 * cs.x - x1 * cs.y : x0 * cs.y + x1 * cs.x;
    } else {
      y = s[i];
    }
    x[i] = y;
    if (cache) cache[i] = __half_as_ushort(__float2half_rn(y));
  }
}

bool a16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <int C, bool ROPE>
void launch(const HeadNormOp& op, bool vec, int nq, int nk, int nv, cudaStream_t s) {
  const int64_t warps = op.n_tokens * (nq + nk + nv);
  const dim3 grid(unsigned((warps + kWarps - 1) / kWarps));
  if (vec)
    launch_pdl(head_norm_kernel<C, true, ROPE>, dim3(grid), dim3(kWarps * 32), 0, s, op, nq, nk, nv);
  else
    launch_pdl(head_norm_kernel<C, false, ROPE>, dim3(grid), dim3(kWarps * 32), 0, s, op, nq, nk, nv);
}
template <int C>
void launch_r(const HeadNormOp& op, bool vec, int nq, int nk, int nv, cudaStream_t s) {
  if (op.table)
    launch<C, true>(op, vec, nq, nk, nv, s);
  else
    launch<C, false>(op, vec, nq, nk, nv, s);
}
}  // namespace

void head_norm_dual(const HeadNormOp& op, cudaStream_t stream) {
  const int hd = op.head_dim;
  KILN_REQUIRE(hd > 0 && hd <= kMaxHd, "head_norm_dual: head_dim=", hd, " outside [1, ", kMaxHd, "]");
  KILN_REQUIRE(op.n_tokens >= 0 && op.n_q_heads >= 0 && op.n_kv_heads >= 0, "head_norm_dual: bad shape");
  KILN_REQUIRE(!op.q || op.n_tokens <= 1 || op.q_stride >= int64_t(op.n_q_heads) * hd, "head_norm_dual: q_stride");
  KILN_REQUIRE(!op.k || op.n_tokens <= 1 || op.k_stride >= int64_t(op.n_kv_heads) * hd, "head_norm_dual: k_stride");
  KILN_REQUIRE(!op.v || op.n_tokens <= 1 || op.v_stride >= int64_t(op.n_kv_heads) * hd, "head_norm_dual: v_stride");
  if (op.table)
    KILN_REQUIRE(op.pos && op.n_pos > 0 && op.n_rot > 0 && op.n_rot % 2 == 0 && op.n_rot <= hd,
                 "head_norm_dual: RoPE needs pos, n_pos > 0 and an even n_rot in (0, head_dim], n_rot=", op.n_rot);
  KILN_REQUIRE(!op.v || op.norm_v || op.k_cache, "head_norm_dual: v with norm_v = false does nothing without a cache");
  if (op.k_cache || op.v_cache)
    KILN_REQUIRE(op.k_cache && op.v_cache && op.k && op.v && op.pos && op.cache_cap > 0 && hd % 4 == 0 &&
                     ((reinterpret_cast<uintptr_t>(op.k_cache) | reinterpret_cast<uintptr_t>(op.v_cache)) & 7) == 0,
                 "head_norm_dual: the cache append needs k, v, pos, both caches (8-byte aligned), cache_cap > 0 and "
                 "head_dim % 4 == 0 (cache_cap=", op.cache_cap, ", head_dim=", hd, ")");
  const int nq = op.q ? op.n_q_heads : 0, nk = op.k ? op.n_kv_heads : 0, nv = op.v ? op.n_kv_heads : 0;
  if (op.n_tokens == 0 || nq + nk + nv == 0) return;
  const bool vec = hd % 4 == 0 && a16(op.q) && a16(op.k) && a16(op.v) && a16(op.wq) && a16(op.wk) &&
                   op.q_stride % 4 == 0 && op.k_stride % 4 == 0 && op.v_stride % 4 == 0;
  const int cpl = ((hd + 3) / 4 + 31) / 32;
  if (cpl <= 1)
    launch_r<1>(op, vec, nq, nk, nv, stream);
  else if (cpl <= 2)
    launch_r<2>(op, vec, nq, nk, nv, stream);
  else
    launch_r<4>(op, vec, nq, nk, nv, stream);
  KILN_CUDA_CHECK_LAUNCH();
}

}  // namespace kiln

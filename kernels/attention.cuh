// Scaled causal attention with an optional sliding window, GQA, head_dim 64/128/256/512: the
// KV-cache append, decode (one query, split-K flash-decoding) and prefill (T queries, tensor
// cores).
//
// Semantics (ref::attention, llama.cpp's standard SWA): the query at absolute position q attends
// to cache positions p <= q with (window == 0 || q - p < window); weights softmax_p(scale * q.k_p)
// with an explicit `scale` (Gemma 4: 1.0, Qwen3: 1/sqrt(head_dim)) -- Q is never prescaled; query
// head h reads kv head h / (n_head / n_head_kv).
//
// KV cache (one layer): two FP16 buffers K and V, each [cap][n_head_kv][hd] (row = one position,
// kv heads then dims contiguous -- the layout ref::attention takes), position p stored at row
// p % cap. A global layer uses cap >= context (p % cap == p); a sliding layer may use a ring with
// cap >= window (decode) and cap >= window + T - 1 for a prefill chunk of T tokens (the chunk's
// earliest query still needs the window before it after the chunk is appended). KV-shared layers
// pass another layer's pointers. FP16, not BF16: K and V are RMS-normed (Gemma 4) or bounded
// projections (Qwen3) far inside FP16's range, and FP16's 11-bit significand stores them 8x more
// precisely than BF16 (the same 2 bytes read per element, which is what decode time is made of).
// Values beyond +-65504 would become inf: callers keep K/V normed.
//
// Queries/outputs are float: q [n_tok][n_head][hd] with token stride q_stride floats (0 means
// n_head*hd; lets Q live inside a fused QKV buffer), out [n_tok][n_head][hd] contiguous.
// Positions come from device memory (one captured graph serves every step).
//
// Contracts (tests/attention_test.cpp):
// - kv_append: bit-exact (round to nearest even of each float, kiln::f32_to_f16).
// - attention_decode, DecodePath::Registers / SharedRing: bit-exact vs ref::attention_decode_split
//   (float, same n_splits), which follows the kernel's split/tile/warp order and uses kiln::kexp
//   on both sides; out_q bit-exact vs ref::quantize_q8_1 of that output. The float split
//   reference itself is within 1e-5 (relative to the output row's max) of ref::attention<double>.
// - attention_decode, DecodePath::TensorCores: attention_prefill's bound (below) for a row
//   attending n positions (Q and P split into FP16 hi + lo as in prefill; O accumulates at most
//   n / 8 mma steps), vs ref::attention<double> on the same FP16 K/V; out_q bit-exact vs
//   ref::quantize_q8_1 of the kernel's own float output.
// - attention_prefill: tensor cores (mma.sync m16n8k16 or wgmma m64nNk16, FP16 operands, F32
//   accumulate, exp2 in the online softmax), with Q and P split into FP16 hi + lo pairs
//   (attention_prefill.cu; attention_prefill_wg.cu does the same per 64-row warpgroup), so
//   only the FP16 K/V storage is FP16 -- and the contract is stated against a reference holding
//   exactly those values: per output row attending n keys,
//     max_d |out - ref| <= (3e-5 + (n / 8) * 2^-23) * max_d |ref|
//   against ref::attention<double> fed the same FP16 K/V values and the float Q, for scores
//   (scale * q.k) of standard deviation up to ~4. Why that bound (u = 2^-24):
//   * context-independent, relative to each probability, together a few 1e-6 (the 3e-5 keeps
//     ~3x margin over a model of the kernel's arithmetic, which gives <= 1e-5): q and p after the
//     split, 2^-22 relative each (2^-25 absolute for |q| < 2^-3, lo being an FP16 subnormal;
//     scores are then off by <= 2^-22 sum_d |q_d k_d| + 2^-25 sum_d |k_d|); the score sum's
//     2 * hd / 16 accumulation steps; x = s * scale * log2(e) and x - max, ~u |x| each (the
//     wgmma kernel: one FFMA, one rounding); exp2f, 2 ulp (the wgmma kernel and the tensor-core
//     decode: ex2.approx.ftz, flushing results below 2^-126, probabilities 2^-141 under the row's
//     largest). K and V contribute nothing (exact operands, exact products).
//   * growing with the context: O accumulates n / 8 tensor-core steps (two mma per 16 keys).
//     Tensor-core F32 accumulation is not IEEE: measured on V100/A100 (Fasi et al. 2021) it
//     truncates (rounds toward zero) each step, a bias that adds up linearly, at most one ulp
//     (2^-23 relative) per step: (n / 8) * 2^-23, 4.9e-4 at n = 32768, 6e-5 at n = 4096. If the
//     hardware rounds to nearest the errors are unbiased (~sqrt(n) u) and the measured errors sit
//     far below this term. The denominator (FP32 adds on CUDA cores, round to nearest) and the
//     per-tile rescaling are unbiased too: sqrt(n) * u < 1.1e-5 at n = 32768, inside the 3e-5.
//   The old kernel rounded Q and P to FP16 operands (2^-11 relative each) and was held to 2e-3.
// - attention_prefill, PrefillPrecision::Half: Q and P rounded to FP16 once (one MMA per product,
//   half the tensor-core work; what FlashAttention and llama.cpp's FA kernels compute), held to
//     max_d |out - ref| <= (2e-3 + (n / 8) * 2^-23) * max_d |ref|
//   against the same double reference, for scores of standard deviation up to ~2 (the tests'
//   distributions). Why: rounding q (unit roundoff 2^-11) moves each score by up to
//   2^-11 scale sum_d |q_d k_d|, which is the relative error of its probability -- the dominant
//   term, growing with the scores' magnitude (session 18's CPU emulation of this arithmetic: up
//   to 7.7e-4 at sd 2); rounding p adds 2^-11 relative per probability, which averages out in O;
//   the n term is the accumulation, as above.
//   Key splits (two key groups per CTA for hd 256 / 512, clusters of CTAs for short prompts)
//   only shorten each part's accumulation; the merge adds a handful of FP32 roundings per
//   element (~1e-7), inside the 3e-5.
// attention_prefill takes a positive, finite scale (the wgmma kernel scales each row's raw max once).
// Every launch: never allocates, never synchronizes, validates shapes on the host (kiln::Error).
//
// Measured (H200, copy 4.25 TB/s, bench/attention_bench.cpp in graph replays, Q8_1 output on,
// kv_settled), decode with splits sized for the context, Registers -> TensorCores (session 17):
// context 32768 Qwen3 shape 52.9 -> 38.3 us (59.6 -> 82.6% of copy), head_dim 512 60.5 -> 43.0 us
// (52.1 -> 73.4%, below the 80% target); context 576: hd 128 10.5 -> 7.4 us, hd 512 14.5 -> 8.9,
// hd 256 window 512 11.8 -> 7.7 (latency, not bandwidth). The runner uses TensorCores.
// Prefill (H200, cuBLAS BF16 892 TFLOP/s in the same runs, session 20), causal, hd 128 / hd 256,
// wgmma kernel: Split T = 8192 2182 us, 252 TFLOP/s (28.3 %) / 1157 us, 238 (26.6 %); T = 2048
// 183 us (21.1 %) / 120 us (16.0 %); Half T = 8192 1455 us (42.4 %) / 739 us (40.9 %), T = 2048
// 135 us (28.6 %) / 82 us (23.5 %); mma.sync Split T = 8192 ~12 %. Short prompts: T = 512 hd 128
// 19.6 us (wgmma); hd 256 window 512 33.6 us (mma.sync with key splits) against 37.7 us (wgmma,
// no splits) -- until the wgmma kernel split keys too (session 29, H100: 23.9 us against 31.8 for
// mma.sync split), so Auto takes it for every shape it serves. Below the 50 % target: the split
// doubles the MMA count, so Split would need ~91 % of the tensor pipe for it; Half is the way
// there and is still short.
#pragma once

#include <cuda_runtime.h>
#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

#include <cstddef>
#include <cstdint>

#include "kernels/attention_spec.h"
#include "kernels/common/blocks.h"

namespace kiln {

// Writes K and V of T new tokens into a layer's cache: row pos[t] % cap gets k_new/v_new token t
// ([T][n_head_kv][hd] floats, token stride src_stride floats, 0 = n_head_kv*hd), rounded to FP16.
// pos: device int32[T]; tokens with pos < 0 are skipped. The T positions must be distinct modulo
// cap (T <= cap for consecutive positions): two tokens landing on one row race.
void kv_append(const float* k_new, const float* v_new, int64_t src_stride, int T,
               const int32_t* pos, uint16_t* k_cache, uint16_t* v_cache, int64_t cap,
               int n_head_kv, int hd, cudaStream_t s);

// Decode: one query token at position *pos (device int32; kv length *pos + 1, its own K/V
// already appended), output out[n_head][hd] and, when out_q is non-null, the same row as Q8_1
// blocks out_q[n_head * hd / 32] in out_q_layout (kernels/common/blocks.h; the bytes of
// kiln::quantize_q8_1 of out in that layout: the output projection's input without a quantize
// launch). Grid (n_splits, n_head_kv) fixed at launch: every
// position is served by the same launch, so one CUDA graph captures it. Then a merge kernel
// (programmatic dependent launch) combines the splits -- or, on TensorCores with few splits, the
// split kernel's CTAs combine them through a thread-block cluster (DecodeMerge). `workspace` (device, >=
// attention_decode_workspace_bytes) holds the split partials; no initialization needed.
size_t attention_decode_workspace_bytes(int n_head, int hd, int n_splits);
// The split kernel's path. Registers and SharedRing compute on CUDA cores, bit-exact with each
// other and with ref::attention_decode_split: Registers loads 8 rows (4 for hd 512) per lane
// batch straight into registers; SharedRing streams them through a per-warp cp.async ring in
// shared memory (more bytes in flight, fewer CTAs resident). TensorCores computes Q.K and P.V
// with FP16 mma.sync (kernels/attention_decode_tc.cu) and is held to the prefill contract stated at the top of this file
// (the same split geometry and merge; any GQA group in {1, 2, 4, 8}).
enum class DecodePath { Registers, SharedRing, TensorCores };
// How the splits are merged. Launch: a merge kernel after the split kernel (every path).
// Auto: on TensorCores with n_splits <= attn::kDecodeClusterMax, the n_splits CTAs of a kv head
// form one thread-block cluster and merge through distributed shared memory at the end of the
// split kernel -- one launch instead of two, the same operations in the same order as the merge
// kernel, so the same bits as Launch; otherwise Launch. KILN_DECODE_CLUSTER=0 makes Auto mean
// Launch (and attention_decode_splits not prefer cluster-sized counts), for bisecting.
enum class DecodeMerge { Auto, Launch };
bool decode_cluster_enabled();
// Suggested split count for a GPU with sm_count SMs: one full wave of resident CTAs at long
// contexts (occupancy of this shape's kernel), at most one split per attn::decode_min_chunk(hd)
// positions of max_ctx (short splits: fewer dependent loads per CTA at short contexts). On
// TensorCores, at most attn::kDecodeClusterMax (the merge then fuses into the split kernel:
// DecodeMerge) when max_ctx <= decode_cluster_ctx(hd) and the clusters' n_head_kv *
// kDecodeClusterMax CTAs number at most half the SMs. Measured on an H100 (docs/perf-notes.md,
// session 25), 512 + 128 tokens: gemma4-e4b (2 kv heads) gained 1.8 % end to end; qwen3-8b (8 kv
// heads: 8 clusters of 16) lost 0.8 % although its attention was faster in attention_bench, so
// it keeps the merge launch.
int attention_decode_splits(int n_head, int n_head_kv, int hd, int64_t max_ctx, int sm_count,
                            DecodePath path = DecodePath::Registers);
// Shape-agnostic variant (one split count shared by layers of different head_dim): 3 CTAs per SM.
int attention_decode_splits(int n_head_kv, int64_t max_ctx, int sm_count);
// Longest context at which the tensor-core path prefers kDecodeClusterMax splits: two rounds of
// its CTA's position groups per split (4 x 32 positions per round for hd <= 128, 2 x 32 for 256,
// 32 for 512).
int64_t decode_cluster_ctx(int hd);
// kv_settled: the caller promises that *pos and the cache rows of positions < *pos were written
// before the last full serialization of the stream ahead of this launch (a host synchronization,
// a memcpy, an event wait, or the previous CUDA-graph launch) -- not by a kernel that may still be
// running under programmatic dependent launch (pdl.cuh: a kernel may overlap not only its
// predecessor but the ones before it). Then the split kernel reads *pos and loads its first K/V
// rows before its PDL wait, overlapping the previous kernel; only q and the row of *pos itself
// (just appended) are read after it. The runner's decode step qualifies (position and earlier
// rows come from earlier graph replays); a test that appends rows with a kernel right before the
// call does not. Results are identical either way.
void attention_decode(const float* q, int64_t q_stride, const uint16_t* k_cache,
                      const uint16_t* v_cache, int64_t cap, int n_head, int n_head_kv, int hd,
                      float scale, int window, const int32_t* pos, int n_splits, void* workspace,
                      size_t workspace_bytes, float* out, BlockQ8_1* out_q, cudaStream_t s,
                      DecodePath path = DecodePath::Registers, bool kv_settled = false,
                      DecodeMerge merge = DecodeMerge::Auto, Q8Layout out_q_layout = Q8Layout::Blocks);

// Prefill: T queries at positions pos[0] + t (pos: device int32, contiguous positions; only
// pos[0] is read), each attending to the cache (already holding positions up to pos[0] + T - 1,
// earlier ones from previous chunks). out [T][n_head][hd].
// The kernel: MmaSync (mma.sync m16n8k16, every head_dim, key splits over a cluster for short
// prompts) or Warpgroup (Hopper's wgmma, kernels/attention_prefill_wg.cu: sm_90a builds on
// compute capability 9.0 devices, hd 128 and 256 -- attention_prefill_has_warpgroup). Both are
// held to the same contract (above). Auto picks Warpgroup where it exists, else MmaSync. Both
// split a row tile's keys over a cluster of CTAs (up to 4 for MmaSync, 2 for Warpgroup) where a
// list-scheduling model of the grid says that shortens the launch (attn::prefill_splits: short
// prompts and grids of about one wave, whose longest causal row tile would otherwise set the
// time).
// Precision (contracts above): Split (default; Q and P as FP16 hi + lo pairs, FP32-accurate)
// or Half (Q and P rounded to FP16 once: half the MMAs, ~1e-3 relative error). Both kernels
// serve both. Both hand out their CTAs longest row tile first across all heads (causal rows late
// in the prompt attend to the most keys), so a grid of several waves ends on short tiles.
// Warpgroup runs an unsplit head_dim 128 grid of more than one wave persistent: one CTA per
// resident slot, each walking row tiles, its producer loading the next tile's Q and keys while
// its consumers finish the last (attention_prefill_persistent).
// T <= 65535 * 64 = 4,194,240 per call (row tiles are a grid dimension); chunk longer prompts.
enum class PrefillPath { Auto, MmaSync, Warpgroup };
enum class PrefillPrecision { Split, Half };
void attention_prefill(const float* q, int64_t q_stride, int T, const int32_t* pos,
                       const uint16_t* k_cache, const uint16_t* v_cache, int64_t cap, int n_head,
                       int n_head_kv, int hd, float scale, int window, float* out, cudaStream_t s,
                       PrefillPath path = PrefillPath::Auto,
                       PrefillPrecision precision = PrefillPrecision::Split);
bool attention_prefill_has_warpgroup(int hd);
// CTAs that share each row tile's keys in attention_prefill for this shape on the current device
// with the kernel `path` resolves to (1 = no split): lets tests check that both are covered.
int attention_prefill_splits(int T, int n_head, int hd, int window,
                             PrefillPrecision precision = PrefillPrecision::Split,
                             PrefillPath path = PrefillPath::Auto);
// Whether attention_prefill runs this shape's grid persistent here (Warpgroup only).
bool attention_prefill_persistent(int T, int n_head, int hd, int window,
                                  PrefillPrecision precision = PrefillPrecision::Split,
                                  PrefillPath path = PrefillPath::Auto);

#if defined(__CUDACC__)
namespace kvdev {
// The cache's element store, shared by kv_append and head_norm_dual's fused append so both write
// the same bits: FP16 (round to nearest even) of 4 floats at dst (8-byte aligned: hd % 4 == 0).
__device__ __forceinline__ void store_half4(uint16_t* dst, float4 v) {
  const __half2 a = __floats2half2_rn(v.x, v.y), b = __floats2half2_rn(v.z, v.w);
  uint2 o;
  o.x = *reinterpret_cast<const uint32_t*>(&a);
  o.y = *reinterpret_cast<const uint32_t*>(&b);
  *reinterpret_cast<uint2*>(dst) = o;
}
}  // namespace kvdev
#endif  // __CUDACC__

}  // namespace kiln

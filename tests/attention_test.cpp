// Oracle tests for kernels/attention.cuh (contracts stated there).
// cpu suites: ref::attention<float> and the decode split reference vs ref::attention<double>,
// mask semantics and edges, host-side shape validation. Gpu suites: kv_append bit-exact, decode
// bit-exact vs ref::attention_decode_split (+ graph replay), prefill within tolerance of
// ref::attention<double> (contexts 1..32768, windows, head_dims, chunked prefill on a ring),
// decode after prefill vs prefill of the longer sequence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "kernels/attention.cuh"
#include "kernels/common/blocks.h"
#include "kernels/common/device.cuh"
#include "reference/attention.h"
#include "reference/quantize_q8_1.h"
#include "tests/testing.h"

namespace kiln {
namespace {

using testing::random_floats;
using testing::random_normal;

// FP16 storage round trip (what the cache holds).
std::vector<float> round_f16(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = f16_to_f32(f32_to_f16(x[i]));
  return r;
}
std::vector<double> to_double(const std::vector<float>& x) { return {x.begin(), x.end()}; }

// Worst over output rows (n_rows rows of hd) of max_d |a - ref| / max_d |ref|.
double row_rel_err(const float* a, const double* ref, size_t n_rows, int hd) {
  double worst = 0;
  for (size_t r = 0; r < n_rows; ++r) {
    double num = 0, den = 0;
    for (int d = 0; d < hd; ++d) {
      const double e = std::fabs(double(a[r * hd + d]) - ref[r * hd + d]);
      num = (e > num || e != e) ? e : num;
      den = std::max(den, std::fabs(ref[r * hd + d]));
    }
    const double rel = den > 0 ? num / den : num;
    if (!(rel <= worst)) worst = rel;  // NaN sticks
  }
  return worst;
}

// The prefill contract's bound (kernels/attention.cuh) for an output row attending n_keys keys:
// 3e-5 for the context-independent terms plus one FP32 ulp (2^-23) per tensor-core accumulation
// step into O, of which there are n_keys / 8 (two mma, P_hi and P_lo, per 16 keys). The tensor-core
// decode path is held to the same bound.
// PrefillPrecision::Half rounds Q and P to FP16 once: 2e-3 for the context-independent terms
// (kernels/attention.cuh), the same accumulation term.
double prefill_tol(int64_t n_keys, PrefillPrecision prec = PrefillPrecision::Split) {
  return (prec == PrefillPrecision::Split ? 3e-5 : 2e-3) + double(n_keys) / 8 * 0x1p-23;
}
// Keys attended by the query at position p (positions start at 0).
int64_t prefill_keys(int64_t p, int window) {
  return window > 0 ? std::min<int64_t>(p + 1, window) : p + 1;
}

// Random attention inputs: q [n_q][n_head][hd] ~ N(0, q_std), k ~ N(0, 1) and v ~ U(-1, 1),
// both FP16-representable (the cache's values), positions 0..n_kv-1.
struct Inputs {
  std::vector<float> q, k, v;
};
Inputs make_inputs(int64_t n_q, int64_t n_kv, int n_head, int n_head_kv, int hd, uint64_t seed,
                   float q_std = 1.f) {
  Inputs in;
  in.q = random_normal(size_t(n_q * n_head * hd), seed, q_std);
  in.k = round_f16(random_normal(size_t(n_kv * n_head_kv * hd), seed + 1));
  in.v = round_f16(random_floats(size_t(n_kv * n_head_kv * hd), seed + 2));
  return in;
}

// ------------------------------------------------------------------------- cpu: references

TEST(AttentionRef, FloatWithinDoubleBounds) {
  struct C {
    int64_t ctx;
    int hd, window;
  };
  for (const C c : {C{1, 128, 0}, C{2, 256, 0}, C{511, 512, 0}, C{512, 128, 512}, C{513, 256, 512},
                    C{4097, 128, 0}, C{4097, 256, 512}, C{1, 64, 0}, C{513, 64, 8},
                    C{4097, 64, 0}}) {
    const int n_head = 4, n_head_kv = 1;
    const int64_t n_q = std::min<int64_t>(c.ctx, 8);  // the last n_q positions
    Inputs in = make_inputs(n_q, c.ctx, n_head, n_head_kv, c.hd, 100 + c.ctx);
    std::vector<int32_t> pos(static_cast<size_t>(n_q));
    for (int64_t t = 0; t < n_q; ++t) pos[size_t(t)] = int32_t(c.ctx - n_q + t);
    const float scale = 1.f / std::sqrt(float(c.hd));
    std::vector<float> of(in.q.size());
    std::vector<double> od(in.q.size());
    const auto qd = to_double(in.q), kd = to_double(in.k), vd = to_double(in.v);
    ref::attention<float>(in.q.data(), in.k.data(), in.v.data(), n_q, pos.data(), c.ctx, n_head,
                          n_head_kv, c.hd, scale, c.window, of.data());
    ref::attention<double>(qd.data(), kd.data(), vd.data(), n_q, pos.data(), c.ctx, n_head,
                           n_head_kv, c.hd, scale, c.window, od.data());
    const double err = row_rel_err(of.data(), od.data(), size_t(n_q * n_head), c.hd);
    EXPECT_LT(err, 2e-5) << "ctx " << c.ctx << " hd " << c.hd << " window " << c.window;
  }
}

// The decode split reference (the kernel's exact float computation) stays within 1e-5 of the
// double oracle: contexts 1..16384, windows, all head_dims, split counts incl. empty splits.
TEST(AttentionRef, DecodeSplitWithinDoubleBounds) {
  struct C {
    int64_t ctx;
    int hd, window, splits, n_head_kv;
  };
  for (const C c : {C{1, 128, 0, 1, 2}, C{1, 256, 0, 7, 2}, C{2, 512, 0, 3, 2}, C{511, 128, 0, 16, 2},
                    C{512, 256, 512, 33, 2}, C{513, 512, 512, 8, 2}, C{513, 128, 0, 600, 1},
                    C{4097, 256, 0, 64, 2}, C{4097, 128, 512, 64, 2}, C{16384, 128, 0, 66, 1},
                    C{1, 64, 0, 3, 2}, C{2, 64, 0, 1, 1}, C{513, 64, 8, 5, 1}, C{4097, 64, 0, 64, 2},
                    C{4097, 64, 512, 33, 2}}) {
    const int n_head = 4 * c.n_head_kv;
    Inputs in = make_inputs(1, c.ctx, n_head, c.n_head_kv, c.hd, 200 + c.ctx + c.hd);
    const int32_t qp = int32_t(c.ctx - 1);
    const float scale = 1.f / std::sqrt(float(c.hd));
    std::vector<float> of(in.q.size());
    std::vector<double> od(in.q.size());
    ref::attention_decode_split(in.q.data(), in.k.data(), in.v.data(), qp, n_head, c.n_head_kv,
                                c.hd, scale, c.window, c.splits, of.data());
    const auto qd = to_double(in.q), kd = to_double(in.k), vd = to_double(in.v);
    ref::attention<double>(qd.data(), kd.data(), vd.data(), 1, &qp, c.ctx, n_head, c.n_head_kv,
                           c.hd, scale, c.window, od.data());
    EXPECT_LT(row_rel_err(of.data(), od.data(), size_t(n_head), c.hd), 1e-5)
        << "ctx " << c.ctx << " hd " << c.hd << " window " << c.window << " splits " << c.splits;
  }
}

// Mask semantics: exactly positions q - window + 1 .. q count. Perturbing K/V just outside the
// window or in the future changes nothing (bitwise); perturbing the window's first position does.
TEST(AttentionRef, MaskEdges) {
  const int n_head = 2, n_head_kv = 1;
  const int64_t n_kv = 64;
  const int32_t qp = 40;
  for (int hd : {64, 128}) {
    for (int window : {0, 1, 2, 17, 41, 64}) {
      Inputs in = make_inputs(1, n_kv, n_head, n_head_kv, hd, 300 + window + hd);
      auto run = [&](const Inputs& x, std::vector<double>* od, std::vector<float>* of) {
        const auto qd = to_double(x.q), kd = to_double(x.k), vd = to_double(x.v);
        od->assign(x.q.size(), 0);
        of->assign(x.q.size(), 0);
        ref::attention<double>(qd.data(), kd.data(), vd.data(), 1, &qp, n_kv, n_head, n_head_kv, hd,
                               0.1f, window, od->data());
        ref::attention_decode_split(x.q.data(), x.k.data(), x.v.data(), qp, n_head, n_head_kv, hd,
                                    0.1f, window, 3, of->data());
      };
      std::vector<double> base_d, d;
      std::vector<float> base_f, f;
      run(in, &base_d, &base_f);
      for (float x : base_f) ASSERT_TRUE(std::isfinite(x));
      const int64_t first = window ? std::max<int64_t>(0, qp - window + 1) : 0;
      std::vector<int64_t> outside = {qp + 1, n_kv - 1};
      if (first > 0) outside.push_back(first - 1);
      for (int64_t p : outside) {
        Inputs x = in;
        for (int i = 0; i < hd; ++i) x.k[size_t(p * hd + i)] += 3.f, x.v[size_t(p * hd + i)] -= 5.f;
        run(x, &d, &f);
        EXPECT_EQ(d, base_d) << "window " << window << ": position " << p << " must not count";
        EXPECT_EQ(0, std::memcmp(f.data(), base_f.data(), f.size() * 4)) << "split ref, p " << p;
      }
      for (int64_t p : {first, int64_t(qp)}) {
        Inputs x = in;
        for (int i = 0; i < hd; ++i) x.v[size_t(p * hd + i)] += 0.5f;
        run(x, &d, &f);
        EXPECT_NE(d, base_d) << "window " << window << ": position " << p << " must count";
      }
      if (window == 1) {  // attends to itself only: the output is v[qp] exactly
        for (int h = 0; h < n_head; ++h)
          for (int i = 0; i < hd; ++i) {
            EXPECT_EQ(base_d[size_t(h * hd + i)], double(in.v[size_t(qp * hd + i)]));
            EXPECT_EQ(base_f[size_t(h * hd + i)], in.v[size_t(qp * hd + i)]);
          }
      }
    }
  }
}

// Extreme scores (scale 1e4: one position dominates, the others underflow to 0) and a query with
// nothing to attend to (q_pos < 0) give finite outputs, never NaN.
TEST(AttentionRef, ExtremeScoresAndEmptyRowsAreFinite) {
  const int hd = 256, n_head = 4, n_head_kv = 2;
  const int64_t n_kv = 300;
  Inputs in = make_inputs(1, n_kv, n_head, n_head_kv, hd, 400);
  std::vector<float> of(in.q.size());
  std::vector<double> od(in.q.size());
  const auto qd = to_double(in.q), kd = to_double(in.k), vd = to_double(in.v);
  for (int32_t qp : {int32_t(n_kv - 1), int32_t(-1)}) {
    ref::attention_decode_split(in.q.data(), in.k.data(), in.v.data(), qp, n_head, n_head_kv, hd,
                                1e4f, 0, 5, of.data());
    ref::attention<double>(qd.data(), kd.data(), vd.data(), 1, &qp, n_kv, n_head, n_head_kv, hd,
                           1e4f, 0, od.data());
    for (size_t i = 0; i < of.size(); ++i) {
      ASSERT_TRUE(std::isfinite(of[i])) << i;
      if (qp < 0) {
        ASSERT_EQ(of[i], 0.f);
      }
    }
    EXPECT_LT(row_rel_err(of.data(), od.data(), size_t(n_head), hd), 1e-5) << "qp " << qp;
  }
}

// The split geometry the decode kernel, its merge and ref::attention_decode_split share: the used
// splits tile [0, n) exactly once, in order, with at least decode_min_chunk(hd) positions each
// except the last, never more splits than requested, and none for n = 0; the warp tile per split.
TEST(AttentionSpec, DecodeSplitsCoverEveryPositionOnce) {
  EXPECT_EQ(attn::decode_used_splits(0, 16, 128), 0);
  for (int hd : {64, 128, 256, 512})
    for (int S : {1, 2, 3, 7, 16, 66, 128, 1024})
      for (long long n : {1LL, 2LL, 7LL, 8LL, 9LL, 31LL, 32LL, 33LL, 511LL, 512LL, 577LL, 4097LL, 32768LL, 100003LL}) {
        const long long chunk = attn::decode_chunk(n, S, hd);
        const int used = attn::decode_used_splits(n, S, hd);
        ASSERT_GE(chunk, attn::decode_min_chunk(hd));
        ASSERT_GE(attn::decode_min_chunk(hd), attn::kDecodeMinChunkAny);
        ASSERT_GE(used, 1);
        ASSERT_LE(used, S) << "n " << n << " S " << S;
        long long covered = 0;
        for (int s = 0; s < used; ++s) {
          const long long b = s * chunk, e = std::min(b + chunk, n);
          ASSERT_EQ(b, covered) << "n " << n << " S " << S << " split " << s;
          ASSERT_GT(e, b) << "empty used split: n " << n << " S " << S << " split " << s;
          covered = e;
        }
        EXPECT_EQ(covered, n) << "n " << n << " S " << S;
        if (n >= (long long)attn::decode_min_chunk(hd) * S) {
          EXPECT_EQ(chunk, (n + S - 1) / S);  // long contexts: the plain split
        }
        // warp tiles: 8, 16 or 32 positions, the smallest that gives every warp at most one tile
        // when the split is short, 32 (one position per lane) once each warp has that much
        const int tw = attn::decode_warp_tile(chunk);
        const long long per_warp = (chunk + attn::kDecodeWarps - 1) / attn::kDecodeWarps;
        EXPECT_TRUE(tw == 8 || tw == 16 || tw == attn::kDecodeTile) << tw;
        EXPECT_GE(tw, std::min<long long>(per_warp, attn::kDecodeTile)) << "chunk " << chunk;
        if (tw > 8) {
          EXPECT_LT(tw / 2, per_warp) << "chunk " << chunk;
        }
      }
}

// Prefill key splits (attn::prefill_makespan, prefill_splits), worked by hand: T 256, 128-row
// tiles, 64-key tiles, one head. Row tile 1 holds keys 0..255 (4 key tiles), row tile 0 keys
// 0..127 (2). A CTA costs its key tiles + kPrefillCtaTiles (2), + kPrefillMergeTiles (1) when
// split.
TEST(AttentionSpec, PrefillSplitModel) {
  static_assert(attn::kPrefillCtaTiles == 2 && attn::kPrefillMergeTiles == 1, "the hand-worked costs below");
  EXPECT_EQ(attn::prefill_makespan(256, 1, 128, 64, 0, 1, 2), 6);  // 6 and 4 side by side
  EXPECT_EQ(attn::prefill_makespan(256, 1, 128, 64, 0, 2, 2), 9);  // 5, 5, then 4, 4 after them
  EXPECT_EQ(attn::prefill_makespan(256, 1, 128, 64, 0, 2, 4), 5);  // all four at once
  // split 4: row tile 0's 2 key tiles leave two empty shares, each still one (masked) tile: 8 x 4
  EXPECT_EQ(attn::prefill_makespan(256, 1, 128, 64, 0, 4, 4), 8);
  // window 64: row tile 1 attends keys 65..255 (3 key tiles), row tile 0 keys 0..127 (2); one slot
  EXPECT_EQ(attn::prefill_makespan(256, 1, 128, 64, 64, 1, 1), (3 + 2) + (2 + 2));
  const int four[3] = {4, 4, 4}, two[3] = {2, 2, 2}, no_clusters[3] = {4, 0, 0};
  EXPECT_EQ(attn::prefill_splits(256, 1, 128, 64, 0, four, 4), 2);  // 5 < 0.95 x 6; 4 splits give 8
  EXPECT_EQ(attn::prefill_splits(256, 1, 128, 64, 0, four, 1), 1);  // max_split 1
  EXPECT_EQ(attn::prefill_splits(256, 1, 128, 64, 0, two, 4), 1);   // 9 > 6
  EXPECT_EQ(attn::prefill_splits(256, 1, 128, 64, 0, no_clusters, 4), 1);
  // 132 SMs, the wgmma kernel's measured shapes (session 29, H100), at most 2 splits: Gemma 4's
  // sliding shape at T 512 (8 heads x 4 row tiles, window 512; Split's 32-key and Half's 48-key
  // tiles) and its causal hd 256 shape at T 2048 (one wave of 128 CTAs, longest tile twice the
  // mean) split; Qwen3's 32 heads at T 512 and 2048, and the windowed shape at 2048 (balanced
  // tiles), do not; nor does any grid of four waves.
  const int h100[3] = {132, 132, 132};
  EXPECT_EQ(attn::prefill_splits(512, 8, 128, 32, 512, h100, 2), 2);
  EXPECT_EQ(attn::prefill_splits(512, 8, 128, 48, 512, h100, 2), 2);
  EXPECT_EQ(attn::prefill_splits(2048, 8, 128, 48, 0, h100, 2), 2);
  EXPECT_EQ(attn::prefill_splits(2048, 32, 128, 128, 0, h100, 2), 1);
  EXPECT_EQ(attn::prefill_splits(512, 32, 128, 64, 0, h100, 2), 1);
  EXPECT_EQ(attn::prefill_splits(2048, 8, 128, 48, 512, h100, 2), 1);
  EXPECT_EQ(attn::prefill_splits(1 << 20, 1, 128, 64, 0, h100, 2), 1);
  // the mma.sync kernel's hd 512 at T 512 (64-row tiles, 16 CTAs per row tile, 32 keys a step):
  // 2 (measured 84.1 -> 67.8 us, session 29, H100)
  EXPECT_EQ(attn::prefill_splits(512, 16, 64, 32, 0, h100, 4), 2);
  for (int T : {1, 2, 127, 128, 129, 1000, 4097})
    for (int heads : {1, 8, 32})
      for (int mx : {1, 2, 4}) {
        const int s = attn::prefill_splits(T, heads, 128, 64, 0, h100, mx);
        EXPECT_TRUE(s == 1 || s == 2 || s == 4) << T << " " << heads;
        EXPECT_LE(s, mx) << T << " " << heads;
      }
}

TEST(AttentionShapes, HostValidationThrows) {
  alignas(16) static float buf[64];
  auto* cache = reinterpret_cast<uint16_t*>(buf);
  int32_t* pos = reinterpret_cast<int32_t*>(buf);
  // head_dim 96 / 32 unsupported; group not dividing; workspace too small; q_stride too small
  EXPECT_THROW(attention_prefill(buf, 0, 4, pos, cache, cache, 16, 4, 1, 96, 1.f, 0, buf, nullptr), Error);
  EXPECT_THROW(attention_prefill(buf, 0, 4, pos, cache, cache, 16, 4, 1, 32, 1.f, 0, buf, nullptr), Error);
  EXPECT_THROW(attention_decode(buf, 0, cache, cache, 16, 4, 1, 32, 1.f, 0, pos, 4, buf, 1 << 20, buf, nullptr, nullptr), Error);
  EXPECT_THROW(attention_prefill(buf, 100, 4, pos, cache, cache, 16, 4, 1, 64, 1.f, 0, buf, nullptr), Error);
  EXPECT_THROW(attention_prefill(buf, 0, 4, pos, cache, cache, 16, 6, 4, 128, 1.f, 0, buf, nullptr), Error);
  EXPECT_THROW(attention_prefill(buf, 100, 4, pos, cache, cache, 16, 4, 1, 128, 1.f, 0, buf, nullptr), Error);
  EXPECT_THROW(attention_prefill(buf, 0, 4, pos, cache, cache, 16, 4, 1, 128, 1.f, -1, buf, nullptr), Error);
  for (float bad : {0.f, -0.5f, INFINITY, NAN})  // a positive, finite scale (online_softmax)
    EXPECT_THROW(attention_prefill(buf, 0, 4, pos, cache, cache, 16, 4, 1, 128, bad, 0, buf, nullptr), Error);
  // more row tiles than a grid dimension holds (65535 tiles of 64 rows); the message tells which
  try {
    attention_prefill(buf, 0, 65535 * 64 + 1, pos, cache, cache, 16, 4, 1, 128, 1.f, 0, buf, nullptr);
    ADD_FAILURE() << "T = 65535 * 64 + 1 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rows in one call"), std::string::npos) << e.what();
  }
  EXPECT_THROW(attention_decode(buf, 0, cache, cache, 16, 4, 1, 96, 1.f, 0, pos, 4, buf, 1 << 20, buf, nullptr, nullptr), Error);
  EXPECT_THROW(attention_decode(buf, 0, cache, cache, 16, 4, 1, 128, 1.f, 0, pos, 4, buf, 16, buf, nullptr, nullptr), Error);
  EXPECT_THROW(attention_decode(buf, 0, cache, cache, 16, 4, 1, 128, 1.f, 0, pos, 0, buf, 1 << 20, buf, nullptr, nullptr), Error);
  EXPECT_THROW(attention_decode(buf, 0, cache, cache, 16, 16, 1, 512, 1.f, 0, pos, 4, buf, 1 << 20, buf, nullptr, nullptr), Error);
  // the warpgroup prefill kernel serves head_dim 128 and 256 only (and only on sm_90a builds / devices)
  EXPECT_THROW(attention_prefill(buf, 0, 4, pos, cache, cache, 16, 4, 1, 64, 1.f, 0, buf, nullptr,
                                 PrefillPath::Warpgroup),
               Error);
  EXPECT_FALSE(attention_prefill_has_warpgroup(512));
  // tensor-core path: GQA groups beyond the 8 MMA columns, or not a power of two
  for (int n_head : {16, 3})
    EXPECT_THROW(attention_decode(buf, 0, cache, cache, 16, n_head, 1, 128, 1.f, 0, pos, 4, buf, 1 << 20, buf,
                                  nullptr, nullptr, DecodePath::TensorCores),
                 Error);
  // out_q misaligned
  EXPECT_THROW(attention_decode(buf, 0, cache, cache, 16, 4, 1, 128, 1.f, 0, pos, 4, buf, 1 << 20, buf,
                                reinterpret_cast<BlockQ8_1*>(reinterpret_cast<char*>(buf) + 2), nullptr),
               Error);
  EXPECT_THROW(kv_append(buf, buf, 0, 2, pos, cache, cache, 0, 1, 128, nullptr), Error);
  EXPECT_THROW(kv_append(buf, buf, 3, 2, pos, cache, cache, 8, 1, 128, nullptr), Error);
}

// ------------------------------------------------------------------------- gpu helpers

template <class T>
DeviceBuffer<T> upload(const std::vector<T>& h) {
  DeviceBuffer<T> d(std::max<size_t>(h.size(), 1));
  if (!h.empty()) KILN_CUDA_CHECK(cudaMemcpy(d.data(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <class T>
std::vector<T> download(const DeviceBuffer<T>& d, size_t n) {
  std::vector<T> h(n);
  KILN_CUDA_CHECK(cudaMemcpy(h.data(), d.data(), n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
template <class T>
void poison(DeviceBuffer<T>& d) {
  KILN_CUDA_CHECK(cudaMemset(d.data(), 0xff, d.bytes()));  // float NaN / FP16 NaN
}

// A layer cache on the device holding linear K/V (positions 0..n-1, [n][n_head_kv][hd]) at row
// p % cap, other rows NaN (they must never be read into a result).
struct GpuCache {
  DeviceBuffer<uint16_t> k, v;
  int64_t cap;
  GpuCache(const std::vector<float>& kl, const std::vector<float>& vl, int64_t n, int64_t cap_,
           int row, int64_t first = 0)
      : k(size_t(cap_ * row)), v(size_t(cap_ * row)), cap(cap_) {
    std::vector<uint16_t> hk(size_t(cap * row), 0x7e00), hv(size_t(cap * row), 0x7e00);
    for (int64_t p = std::max<int64_t>(first, n - cap); p < n; ++p)
      for (int i = 0; i < row; ++i) {
        hk[size_t((p % cap) * row + i)] = f32_to_f16(kl[size_t(p * row + i)]);
        hv[size_t((p % cap) * row + i)] = f32_to_f16(vl[size_t(p * row + i)]);
      }
    KILN_CUDA_CHECK(cudaMemcpy(k.data(), hk.data(), hk.size() * 2, cudaMemcpyHostToDevice));
    KILN_CUDA_CHECK(cudaMemcpy(v.data(), hv.data(), hv.size() * 2, cudaMemcpyHostToDevice));
  }
};

// ------------------------------------------------------------------------- gpu: kv_append

TEST(GpuKvAppend, BitExactRingAndSkip) {
  KILN_REQUIRE_GPU();
  for (int hd : {64, 256}) {
    const int n_head_kv = 2, row = n_head_kv * hd, T = 7;
    const int64_t cap = 7, stride = row + 64;  // tokens strided inside a wider buffer
    auto k = random_normal(size_t(T * stride), 1), v = random_normal(size_t(T * stride), 2, 100.f);
    k[3] = 70000.f;  // overflows FP16: inf, as f32_to_f16
    // rows 4, 5, 6, 0, 1, 2 of a ring of 7 (wraps, distinct), one token skipped, row 3 untouched
    const std::vector<int32_t> pos = {11, 12, -1, 13, 14, 15, 16};
    auto dk = upload(k), dv = upload(v);
    auto dpos = upload(pos);
    DeviceBuffer<uint16_t> kc(size_t(cap * row)), vc(size_t(cap * row));
    poison(kc);
    poison(vc);
    kv_append(dk.data(), dv.data(), stride, T, dpos.data(), kc.data(), vc.data(), cap, n_head_kv, hd, nullptr);
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
    const auto hk = download(kc, size_t(cap * row)), hv = download(vc, size_t(cap * row));
    std::vector<uint16_t> ek(size_t(cap * row), 0xffff), ev(size_t(cap * row), 0xffff);
    ref::kv_append(k.data(), v.data(), stride, T, pos.data(), ek.data(), ev.data(), cap, row);
    EXPECT_EQ(hk, ek) << "hd " << hd;
    EXPECT_EQ(hv, ev) << "hd " << hd;
  }
}

// ------------------------------------------------------------------------- gpu: decode

struct DecodeCase {
  int64_t ctx;  // query at position ctx - 1
  int hd, window, n_head_kv, splits;
  int64_t cap;  // 0: linear (cap = ctx)
  float scale;  // 0: 1/sqrt(hd)
  int group = 4;  // query heads per kv head
  bool no_position = false;  // query at position -1 (nothing to attend to): zeros
};

// How the call's inputs come about (the kv_settled contract, attention.cuh):
//  Uploaded: every cache row and the position copied from the host before the call;
//  Settled: the same, called with kv_settled (K/V rows loaded before the PDL wait);
//  AppendedSettled: the row of the query's own position left as NaN in the upload and written
//  by kv_append in the launch right before, as the runner's head_norm_dual does -- the split
//  kernel must read that row after its wait (a row read early would be the NaN).
enum class DecodeFeed { Uploaded, Settled, AppendedSettled };

void check_decode(const DecodeCase& c, uint64_t seed, DecodePath loads = DecodePath::Registers,
                  DecodeFeed feed = DecodeFeed::Uploaded) {
  const int n_head = c.group * c.n_head_kv, row = c.n_head_kv * c.hd;
  // out_q in both Q8_1 column layouts, by seed parity (odd: Interleaved, the runner's decode one)
  const Q8Layout ql = seed % 2 ? Q8Layout::Interleaved : Q8Layout::Blocks;
  const float scale = c.scale != 0 ? c.scale : 1.f / std::sqrt(float(c.hd));
  const float q_std = c.scale != 0 ? 2.f / std::sqrt(float(c.hd)) : 1.f;  // scores ~ N(0, 2^2)
  Inputs in = make_inputs(1, c.ctx, n_head, c.n_head_kv, c.hd, seed, q_std);
  const int32_t qp = c.no_position ? -1 : int32_t(c.ctx - 1);
  const int64_t cap = c.cap ? c.cap : c.ctx;
  const bool append = feed == DecodeFeed::AppendedSettled && qp >= 0;
  GpuCache cache(in.k, in.v, append ? c.ctx - 1 : c.ctx, cap, row);
  auto dq = upload(in.q);
  auto dpos = upload(std::vector<int32_t>{qp});
  Stream st;
  DeviceBuffer<float> dk, dv;  // the appended row (float; kv_append rounds it as GpuCache does)
  if (append) {
    dk = upload(std::vector<float>(in.k.begin() + int64_t(qp) * row, in.k.begin() + int64_t(qp + 1) * row));
    dv = upload(std::vector<float>(in.v.begin() + int64_t(qp) * row, in.v.begin() + int64_t(qp + 1) * row));
  }
  const size_t ws_bytes = attention_decode_workspace_bytes(n_head, c.hd, c.splits);
  DeviceBuffer<uint8_t> ws(ws_bytes);
  DeviceBuffer<float> out(in.q.size());
  const size_t nq8 = in.q.size() / QK8_1;
  DeviceBuffer<BlockQ8_1> out_q(nq8);  // the fused Q8_1 output (the runner's o-proj input)
  poison(out);
  poison(out_q);
  poison(ws);
  KILN_CUDA_CHECK(cudaDeviceSynchronize());  // (st does not order after the legacy stream)
  if (append)  // the launch right before, nothing synchronizing in between
    kv_append(dk.data(), dv.data(), 0, 1, dpos.data(), cache.k.data(), cache.v.data(), cap, c.n_head_kv,
              c.hd, st);
  attention_decode(dq.data(), 0, cache.k.data(), cache.v.data(), cap, n_head, c.n_head_kv, c.hd,
                   scale, c.window, dpos.data(), c.splits, ws.data(), ws_bytes, out.data(), out_q.data(),
                   st, loads, feed != DecodeFeed::Uploaded, DecodeMerge::Auto, ql);
  st.sync();
  const auto got = download(out, in.q.size());
  const auto got_q = download(out_q, nq8);
  const char* path = loads == DecodePath::SharedRing ? "ring" : loads == DecodePath::Registers ? "registers" : "tensor cores";
  if (loads == DecodePath::TensorCores) {  // tolerance vs the double oracle; out_q from its own output
    std::vector<double> od(in.q.size(), 0.0);
    const int64_t n_keys = qp < 0 ? 0 : prefill_keys(qp, c.window);
    if (qp >= 0) {
      const auto qd = to_double(in.q), kd = to_double(in.k), vd = to_double(in.v);
      ref::attention<double>(qd.data(), kd.data(), vd.data(), 1, &qp, c.ctx, n_head, c.n_head_kv, c.hd, scale,
                             c.window, od.data());
    }
    const double err = row_rel_err(got.data(), od.data(), size_t(n_head), c.hd);
    EXPECT_LE(err, prefill_tol(n_keys)) << path << " feed " << int(feed) << " ctx " << c.ctx << " hd " << c.hd
                                        << " window " << c.window << " splits " << c.splits << " group " << c.group
                                        << " cap " << cap;
    std::vector<BlockQ8_1> own_b(nq8), own_q(nq8);
    ref::quantize_q8_1(got.data(), 1, int64_t(got.size()), own_b.data());
    ref::q8_1_to_layout(own_b.data(), 1, int64_t(nq8), ql, own_q.data());
    EXPECT_EQ(0, std::memcmp(got_q.data(), own_q.data(), nq8 * sizeof(BlockQ8_1))) << "out_q, layout " << int(ql);
    if (c.no_position) {
      for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(f32_bits(got[i]), f32_bits(0.f)) << i;
    }
    return;
  }
  std::vector<float> want(in.q.size());
  ref::attention_decode_split(in.q.data(), in.k.data(), in.v.data(), qp, n_head, c.n_head_kv, c.hd,
                              scale, c.window, c.splits, want.data());
  std::vector<BlockQ8_1> want_b(nq8), want_q(nq8);
  ref::quantize_q8_1(want.data(), 1, int64_t(want.size()), want_b.data());
  ref::q8_1_to_layout(want_b.data(), 1, int64_t(nq8), ql, want_q.data());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += f32_bits(got[i]) != f32_bits(want[i]);
  EXPECT_EQ(0, std::memcmp(got_q.data(), want_q.data(), nq8 * sizeof(BlockQ8_1))) << "out_q, layout " << int(ql);
  if (c.no_position)
    for (size_t i = 0; i < got.size(); ++i) bad += f32_bits(want[i]) != f32_bits(0.f);
  EXPECT_EQ(bad, 0u) << path << " feed " << int(feed) << " ctx " << c.ctx << " hd " << c.hd << " window " << c.window << " splits "
                     << c.splits << " cap " << cap << ": first " << got[0] << " vs " << want[0];
}

TEST(GpuAttentionDecode, BitExactVsSplitReference) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 1000;
  for (DecodePath loads : {DecodePath::Registers, DecodePath::SharedRing})
    for (int64_t ctx : {1, 2, 511, 512, 513, 4097})
      for (int hd : {64, 128, 256, 512})
        for (int window : {0, 512}) check_decode({ctx, hd, window, 2, 16, 0, 0.f}, seed++, loads);
  // GQA groups 1, 2 and 8 (the transposed reduction's other value counts)
  for (DecodePath loads : {DecodePath::Registers, DecodePath::SharedRing}) {
    check_decode({1000, 128, 0, 8, 9, 0, 0.f}, seed++, loads);  // 8 kv heads, group 4
    for (int hd : {64, 128, 256, 512})
      for (int group : {1, 2, 8})
        if (group * hd <= attn::kDecodeMaxGroupDims)
          check_decode({777, hd, 300, 2, 5, 0, 0.f, group}, seed++, loads);
    // the tiny models' shapes (head_dim 64, GQA 2): qwen3-tiny (4/2 heads) and gemma4-tiny's
    // sliding layers (2/1 heads, window 8 on a ring of 8 rows, scale 1)
    for (int64_t ctx : {1, 2, 32, 513, 4097}) {
      check_decode({ctx, 64, 0, 2, 4, 0, 0.f, 2}, seed++, loads);
      check_decode({ctx, 64, 8, 1, 3, 8, 1.f, 2}, seed++, loads);
    }
  }
}

TEST(GpuAttentionDecode, LongContextSplitsRingAndScale) {
  KILN_REQUIRE_GPU();
  for (DecodePath loads : {DecodePath::Registers, DecodePath::SharedRing}) {
    check_decode({16384, 128, 0, 8, 66, 0, 0.f}, 2100, loads);
    check_decode({16384, 512, 0, 2, 132, 0, 1.f}, 2101, loads);
    check_decode({700, 256, 512, 2, 300, 512, 1.f}, 2103, loads);
  }
  check_decode({16384, 128, 0, 8, 66, 0, 0.f}, 2000);     // Qwen3 shape, 8 kv heads
  check_decode({16384, 512, 0, 2, 264, 0, 1.f}, 2001);    // Gemma 4 global, scale 1 (261 used splits)
  check_decode({4097, 256, 512, 2, 1, 0, 1.f}, 2002);     // one split
  check_decode({700, 256, 512, 2, 300, 512, 1.f}, 2003);  // ring of 512, more splits than tiles
  check_decode({4096 + 37, 128, 100, 8, 7, 100, 0.f}, 2004);  // ring == window, wraps many times
  check_decode({33, 128, 1, 2, 4, 0, 0.f}, 2005);         // window 1: itself only
  // the runner's case: splits sized for a 4096 context, a short one now (most splits empty)
  check_decode({577, 128, 0, 8, 128, 0, 0.f}, 2006);
  check_decode({577, 256, 512, 2, 264, 512, 1.f}, 2007);
  for (DecodePath loads : {DecodePath::Registers, DecodePath::SharedRing}) {  // head_dim 64
    check_decode({16384, 64, 0, 8, 66, 0, 0.f}, 2200, loads);      // many tiles per warp
    check_decode({700, 64, 512, 2, 300, 512, 1.f}, 2201, loads);   // ring of 512, splits > tiles
    check_decode({4096 + 37, 64, 100, 8, 7, 100, 0.f}, 2202, loads);  // ring == window, wraps
    check_decode({33, 64, 1, 2, 4, 0, 0.f, 2}, 2203, loads);       // window 1: itself only
  }
}

// The merge stages the used splits' partials in chunks of 80 (attention_decode.cu): one chunk, two,
// and many, on the bit-exact path and on tensor cores. Small enough to run under racecheck.
TEST(GpuAttentionDecode, MergeStagesSeveralChunks) {
  KILN_REQUIRE_GPU();
  for (DecodePath loads : {DecodePath::Registers, DecodePath::TensorCores}) {
    check_decode({640, 512, 0, 2, 200, 0, 1.f}, 2300, loads);   // 80 used splits: one full chunk
    check_decode({1000, 256, 0, 2, 200, 0, 1.f}, 2301, loads);  // 125: two
    check_decode({4097, 512, 0, 2, 600, 0, 1.f}, 2302, loads);  // 513: seven
  }
}

// kv_settled: the first K/V rows are loaded before the PDL wait, the query's own row after it.
TEST(GpuAttentionDecode, SettledCacheSameBits) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 2400;
  for (DecodeFeed feed : {DecodeFeed::Settled, DecodeFeed::AppendedSettled})
    for (DecodePath loads : {DecodePath::Registers, DecodePath::SharedRing}) {
      for (int64_t ctx : {1, 2, 9, 511, 513, 4097})
        for (int hd : {64, 128, 256, 512})
          for (int window : {0, 512}) check_decode({ctx, hd, window, 2, 16, 0, 0.f}, seed++, loads, feed);
      check_decode({577, 128, 0, 8, 128, 0, 0.f}, seed++, loads, feed);             // the runner's shape
      check_decode({577, 256, 512, 2, 264, 512, 1.f}, seed++, loads, feed);         // sliding, ring
      check_decode({4096 + 37, 128, 100, 8, 7, 100, 0.f}, seed++, loads, feed);     // ring == window
      check_decode({33, 64, 1, 2, 4, 0, 0.f, 2}, seed++, loads, feed);              // window 1
      check_decode({64, 128, 0, 2, 16, 0, 1.f, 4, true}, seed++, loads, feed);      // no position
    }
}

// No position to attend to (*pos < 0): every split is empty and the output is zeros, like the
// reference (the poisoned output must be overwritten).
TEST(GpuAttentionDecode, NegativePositionGivesZeros) {
  KILN_REQUIRE_GPU();
  for (DecodePath loads : {DecodePath::Registers, DecodePath::SharedRing})
    check_decode({64, 128, 0, 2, 16, 0, 1.f, 4, true}, 2300, loads);
}

// DecodePath::TensorCores: within the prefill bound of the double oracle (kernels/attention.cuh)
// at issue 5's contexts, every head_dim (hd > 128 splits the dims over warps), GQA groups 1-8,
// windows and rings, split counts from one to more than the tiles, both cache feeds, and no
// position at all.
TEST(GpuAttentionDecode, TensorCoresWithinToleranceOfDouble) {
  KILN_REQUIRE_GPU();
  const DecodePath tc = DecodePath::TensorCores;
  uint64_t seed = 2500;
  for (int64_t ctx : {1, 2, 511, 512, 513, 4097})
    for (int hd : {64, 128, 256, 512})
      for (int window : {0, 512}) check_decode({ctx, hd, window, 2, 16, 0, 0.f}, seed++, tc);
  for (int hd : {64, 128, 256, 512})
    for (int group : {1, 2, 8}) check_decode({777, hd, 300, 2, 5, 0, 0.f, group}, seed++, tc);
  check_decode({16384, 128, 0, 8, 66, 0, 0.f}, seed++, tc);    // Qwen3 shape
  check_decode({16384, 512, 0, 2, 132, 0, 1.f}, seed++, tc);   // Gemma 4 global, scale 1
  check_decode({16384, 256, 512, 2, 33, 0, 1.f}, seed++, tc);  // Gemma 4 sliding
  check_decode({4097, 256, 512, 2, 1, 0, 1.f}, seed++, tc);    // one split
  check_decode({700, 256, 512, 2, 300, 512, 1.f}, seed++, tc);  // ring of 512, more splits than tiles
  check_decode({4096 + 37, 128, 100, 8, 7, 100, 0.f}, seed++, tc);  // ring == window, wraps
  // One split walking a ring: loop tiles inside the ring, tiles that wrap it, a short last tile.
  check_decode({4096 + 37, 512, 200, 2, 1, 200, 1.f}, seed++, tc);  // ring rows 133 + 32 k
  check_decode({4096 + 37, 256, 512, 2, 1, 512, 1.f}, seed++, tc);  // two position groups
  check_decode({33, 64, 1, 2, 4, 0, 0.f, 2}, seed++, tc);      // window 1: itself only
  check_decode({577, 128, 0, 8, 128, 0, 0.f}, seed++, tc);     // the runner's: most splits empty
  for (DecodeFeed feed : {DecodeFeed::Settled, DecodeFeed::AppendedSettled}) {
    check_decode({577, 256, 512, 2, 264, 512, 1.f}, seed++, tc, feed);
    check_decode({4097, 512, 0, 2, 16, 0, 1.f}, seed++, tc, feed);
    check_decode({64, 128, 0, 2, 16, 0, 1.f, 4, true}, seed++, tc, feed);  // no position: zeros
  }
}

// DecodeMerge::Auto on TensorCores with <= kDecodeClusterMax splits merges inside a thread-block
// cluster per kv head, running the merge kernel's operations in its order: out and out_q must
// equal DecodeMerge::Launch bit for bit -- every head_dim, GQA groups, windows, rings, one split
// to the cluster limit, empty splits, no position, both cache feeds -- and a captured graph of
// the cluster launch must follow the device position like the two-launch one.
TEST(GpuAttentionDecode, ClusterMergeEqualsMergeLaunch) {
  KILN_REQUIRE_GPU();
  if (!decode_cluster_enabled()) GTEST_SKIP() << "KILN_DECODE_CLUSTER=0";
  // The split count the runner captures: cluster-sized up to decode_cluster_ctx(hd), one wave above.
  for (int hd : {64, 128, 256, 512}) {
    const int64_t edge = decode_cluster_ctx(hd);
    EXPECT_EQ(attention_decode_splits(8, 2, hd, edge, 132, DecodePath::TensorCores), attn::kDecodeClusterMax) << hd;
    EXPECT_GT(attention_decode_splits(8, 2, hd, 2 * edge, 132, DecodePath::TensorCores), attn::kDecodeClusterMax)
        << hd;
    EXPECT_GT(attention_decode_splits(8, 2, hd, edge, 132, DecodePath::Registers), attn::kDecodeClusterMax) << hd;
    // 8 kv heads: 8 clusters of 16 CTAs would take more than half of 132 SMs
    EXPECT_GT(attention_decode_splits(32, 8, hd, edge, 132, DecodePath::TensorCores), attn::kDecodeClusterMax) << hd;
  }
  struct Case {
    int64_t ctx;
    int hd, window, n_head_kv, group, splits;
    int64_t cap;  // 0: ctx
  };
  const std::vector<Case> cases = {
      {1, 128, 0, 8, 4, 16, 0},      {2, 64, 0, 2, 2, 3, 0},         {577, 128, 0, 8, 4, 16, 0},
      {577, 256, 512, 2, 4, 16, 512}, {577, 512, 0, 2, 4, 16, 0},    {640, 512, 0, 2, 8, 13, 0},
      {4097, 256, 512, 2, 8, 16, 0}, {4097, 128, 100, 8, 1, 7, 100}, {100, 512, 0, 2, 4, 1, 0},
      {33, 64, 1, 2, 2, 4, 0},       {1000, 128, 0, 2, 4, 16, 0},    {300, 256, 0, 2, 1, 9, 0}};
  uint64_t seed = 4000;
  for (const Case& c : cases)
    for (int qp_kind = 0; qp_kind < 2; ++qp_kind)  // the query at ctx - 1, or no position (-1)
      for (bool settled : {false, true}) {
        const int n_head = c.group * c.n_head_kv, row = c.n_head_kv * c.hd;
        const int64_t cap = c.cap ? c.cap : c.ctx;
        const Q8Layout ql = seed % 2 ? Q8Layout::Interleaved : Q8Layout::Blocks;  // out_q's, both merges
        Inputs in = make_inputs(1, c.ctx, n_head, c.n_head_kv, c.hd, seed++);
        GpuCache cache(in.k, in.v, c.ctx, cap, row);
        auto dq = upload(in.q);
        auto dpos = upload(std::vector<int32_t>{qp_kind == 0 ? int32_t(c.ctx - 1) : -1});
        const size_t ws_bytes = attention_decode_workspace_bytes(n_head, c.hd, c.splits);
        DeviceBuffer<uint8_t> ws(ws_bytes);
        const size_t nq8 = in.q.size() / QK8_1;
        std::vector<float> outs[2];
        std::vector<BlockQ8_1> qs[2];
        for (int m = 0; m < 2; ++m) {
          DeviceBuffer<float> out(in.q.size());
          DeviceBuffer<BlockQ8_1> out_q(nq8);
          poison(out);
          poison(out_q);
          poison(ws);
          KILN_CUDA_CHECK(cudaDeviceSynchronize());
          Stream st;
          attention_decode(dq.data(), 0, cache.k.data(), cache.v.data(), cap, n_head, c.n_head_kv, c.hd, 1.f,
                           c.window, dpos.data(), c.splits, ws.data(), ws_bytes, out.data(), out_q.data(), st,
                           DecodePath::TensorCores, settled, m == 0 ? DecodeMerge::Auto : DecodeMerge::Launch, ql);
          st.sync();
          outs[m] = download(out, in.q.size());
          qs[m] = download(out_q, nq8);
        }
        const std::string what = "ctx " + std::to_string(c.ctx) + " hd " + std::to_string(c.hd) + " window " +
                                 std::to_string(c.window) + " group " + std::to_string(c.group) + " splits " +
                                 std::to_string(c.splits) + (qp_kind ? " no position" : "") +
                                 (settled ? " settled" : "") + " layout " + std::to_string(int(ql));
        EXPECT_EQ(0, std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4)) << what;
        EXPECT_EQ(0, std::memcmp(qs[0].data(), qs[1].data(), nq8 * sizeof(BlockQ8_1))) << what << " out_q";
        if (qp_kind == 1) {
          EXPECT_EQ(f32_bits(outs[0][0]), f32_bits(0.f)) << what;
        }
      }

  // A captured cluster launch replayed at positions from the device, against direct Launch calls.
  const int hd = 256, n_head_kv = 2, n_head = 8, row = n_head_kv * hd, splits = attn::kDecodeClusterMax;
  const int64_t ctx = 3000;
  Inputs in = make_inputs(1, ctx, n_head, n_head_kv, hd, seed++);
  GpuCache cache(in.k, in.v, ctx, ctx, row);
  auto dq = upload(in.q);
  auto dpos = upload(std::vector<int32_t>{0});
  const size_t ws_bytes = attention_decode_workspace_bytes(n_head, hd, splits);
  DeviceBuffer<uint8_t> ws(ws_bytes);
  DeviceBuffer<float> out(in.q.size()), want(in.q.size());
  Stream st;
  cudaGraph_t graph;
  KILN_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  attention_decode(dq.data(), 0, cache.k.data(), cache.v.data(), ctx, n_head, n_head_kv, hd, 1.f, 512, dpos.data(),
                   splits, ws.data(), ws_bytes, out.data(), nullptr, st, DecodePath::TensorCores, true);
  KILN_CUDA_CHECK(cudaStreamEndCapture(st, &graph));
  cudaGraphExec_t exec;
  KILN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int32_t qp : {-1, 0, 1, 511, 512, 2999}) {
    KILN_CUDA_CHECK(cudaMemcpy(dpos.data(), &qp, 4, cudaMemcpyHostToDevice));
    poison(out);
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
    KILN_CUDA_CHECK(cudaGraphLaunch(exec, st));
    st.sync();
    attention_decode(dq.data(), 0, cache.k.data(), cache.v.data(), ctx, n_head, n_head_kv, hd, 1.f, 512,
                     dpos.data(), splits, ws.data(), ws_bytes, want.data(), nullptr, st, DecodePath::TensorCores,
                     true, DecodeMerge::Launch);
    st.sync();
    const auto got = download(out, in.q.size()), exp = download(want, in.q.size());
    EXPECT_EQ(0, std::memcmp(got.data(), exp.data(), got.size() * 4)) << "position " << qp;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

// One captured graph serves every position: the position lives in device memory.
TEST(GpuAttentionDecode, GraphReplayFollowsDevicePosition) {
  KILN_REQUIRE_GPU();
  const int hd = 256, n_head_kv = 2, n_head = 8, row = n_head_kv * hd, splits = 40;
  const int64_t ctx = 3000;
  Inputs in = make_inputs(1, ctx, n_head, n_head_kv, hd, 3000);
  GpuCache cache(in.k, in.v, ctx, ctx, row);
  auto dq = upload(in.q);
  auto dpos = upload(std::vector<int32_t>{0});
  const size_t ws_bytes = attention_decode_workspace_bytes(n_head, hd, splits);
  DeviceBuffer<uint8_t> ws(ws_bytes);
  DeviceBuffer<float> out(in.q.size());
  Stream st;
  cudaGraph_t graph;
  KILN_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  attention_decode(dq.data(), 0, cache.k.data(), cache.v.data(), ctx, n_head, n_head_kv, hd, 1.f,
                   512, dpos.data(), splits, ws.data(), ws_bytes, out.data(), nullptr, st);
  KILN_CUDA_CHECK(cudaStreamEndCapture(st, &graph));
  cudaGraphExec_t exec;
  KILN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int32_t qp : {0, 1, 511, 512, 2999}) {
    KILN_CUDA_CHECK(cudaMemcpy(dpos.data(), &qp, 4, cudaMemcpyHostToDevice));
    poison(out);
    KILN_CUDA_CHECK(cudaGraphLaunch(exec, st));
    st.sync();
    const auto got = download(out, in.q.size());
    std::vector<float> want(in.q.size());
    ref::attention_decode_split(in.q.data(), in.k.data(), in.v.data(), qp, n_head, n_head_kv, hd,
                                1.f, 512, splits, want.data());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4)) << "position " << qp;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

// ------------------------------------------------------------------------- gpu: prefill

// Rows checked against the double oracle: all for small T, else edges + window edges + random.
std::vector<int64_t> sample_rows(int64_t T, int window, uint64_t seed) {
  std::vector<int64_t> r;
  if (T <= 600) {
    r.resize(size_t(T));
    std::iota(r.begin(), r.end(), 0);
    return r;
  }
  for (int64_t t = 0; t < 24; ++t) r.push_back(t), r.push_back(T - 1 - t);
  for (int64_t w : {int64_t(window), int64_t(window) + 1, int64_t(63), int64_t(64), int64_t(65)})
    if (w > 0 && w < T) r.push_back(w), r.push_back(w - 1);
  std::mt19937_64 g(seed);
  for (int i = 0; i < 40; ++i) r.push_back(int64_t(g() % uint64_t(T)));
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

// Oracle output for the sampled rows of queries (query t at position p0 + t).
std::vector<double> oracle_rows(const Inputs& in, const std::vector<int64_t>& rows, int64_t p0,
                                int64_t n_kv, int n_head, int n_head_kv, int hd, float scale,
                                int window) {
  const size_t qrow = size_t(n_head) * hd;
  std::vector<double> qs(rows.size() * qrow);
  std::vector<int32_t> pos(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    pos[i] = int32_t(p0 + rows[i]);
    for (size_t j = 0; j < qrow; ++j) qs[i * qrow + j] = in.q[size_t(rows[i]) * qrow + j];
  }
  const auto kd = to_double(in.k), vd = to_double(in.v);
  std::vector<double> o(qs.size());
  ref::attention<double>(qs.data(), kd.data(), vd.data(), int64_t(rows.size()), pos.data(), n_kv,
                         n_head, n_head_kv, hd, scale, window, o.data());
  return o;
}


// Sampled rows (query t at position t) against the oracle: the worst row_rel_err, and the worst
// ratio of a row's error to its prefill_tol (the contract holds when that is <= 1).
struct PrefillErr {
  double err = 0, tol_ratio = 0;
};
PrefillErr prefill_err(const std::vector<float>& got, const std::vector<double>& want,
                       const std::vector<int64_t>& rows, int n_head, int hd, int window, PrefillPrecision prec) {
  const size_t qrow = size_t(n_head) * hd;
  PrefillErr e;
  for (size_t i = 0; i < rows.size(); ++i) {
    const double err = row_rel_err(got.data() + size_t(rows[i]) * qrow, want.data() + i * qrow,
                                   size_t(n_head), hd);
    const double ratio = err / prefill_tol(prefill_keys(rows[i], window), prec);
    if (!(err <= e.err)) e.err = err;  // NaN sticks
    if (!(ratio <= e.tol_ratio)) e.tol_ratio = ratio;
  }
  return e;
}

struct PrefillCase {
  int64_t T;
  int hd, window, n_head, n_head_kv;
  float scale;  // 0: 1/sqrt(hd) with q ~ N(0,1); else q scaled so scores ~ N(0, 2^2)
  int q_pad = 0;  // NaN floats after each token's Q row (q_stride = n_head hd + q_pad): never read
};

const PrefillPrecision kPrecisions[] = {PrefillPrecision::Split, PrefillPrecision::Half};
const char* prec_name(PrefillPrecision p) { return p == PrefillPrecision::Split ? "split" : "half"; }

// The prefill kernels that serve head_dim hd here: mma.sync always, wgmma where it exists.
std::vector<PrefillPath> prefill_paths(int hd) {
  std::vector<PrefillPath> p{PrefillPath::MmaSync};
  if (attention_prefill_has_warpgroup(hd)) p.push_back(PrefillPath::Warpgroup);
  return p;
}
const char* path_name(PrefillPath p) { return p == PrefillPath::Warpgroup ? "wgmma" : "mma.sync"; }

// Every case records the key split each kernel ran with, per head_dim and precision:
// WithinToleranceOfDouble checks that each ran both unsplit and split (cluster) launches.
std::map<std::tuple<int, PrefillPrecision, PrefillPath>, std::set<int>> g_prefill_splits;
// ... and whether the launch was persistent (the wgmma kernel; PersistentGrid checks that it was).
std::map<std::tuple<int, PrefillPrecision, PrefillPath>, std::set<bool>> g_prefill_persistent;

// Every path of prefill_paths(c.hd), in both precisions, against one oracle.
void check_prefill(const PrefillCase& c, uint64_t seed) {
  for (PrefillPrecision prec : kPrecisions)
    for (PrefillPath path : prefill_paths(c.hd)) {
      g_prefill_splits[{c.hd, prec, path}].insert(
          attention_prefill_splits(int(c.T), c.n_head, c.hd, c.window, prec, path));
      g_prefill_persistent[{c.hd, prec, path}].insert(
          attention_prefill_persistent(int(c.T), c.n_head, c.hd, c.window, prec, path));
    }
  const int row = c.n_head_kv * c.hd;
  const float scale = c.scale != 0 ? c.scale : 1.f / std::sqrt(float(c.hd));
  const float q_std = c.scale != 0 ? 2.f / (c.scale * std::sqrt(float(c.hd))) : 1.f;
  Inputs in = make_inputs(c.T, c.T, c.n_head, c.n_head_kv, c.hd, seed, q_std);
  GpuCache cache(in.k, in.v, c.T, c.T, row);
  const int64_t q_row = int64_t(c.n_head) * c.hd, q_stride = q_row + c.q_pad;
  std::vector<float> q_strided(size_t(c.T * q_stride), std::numeric_limits<float>::quiet_NaN());
  for (int64_t t = 0; t < c.T; ++t)
    std::copy_n(in.q.begin() + t * q_row, q_row, q_strided.begin() + t * q_stride);
  auto dq = upload(q_strided);
  auto dpos = upload(std::vector<int32_t>{0});
  const auto rows = sample_rows(c.T, c.window, seed);
  const auto want = oracle_rows(in, rows, 0, c.T, c.n_head, c.n_head_kv, c.hd, scale, c.window);
  for (PrefillPrecision prec : kPrecisions)
    for (PrefillPath path : prefill_paths(c.hd)) {
      DeviceBuffer<float> out(in.q.size());
      poison(out);
      attention_prefill(dq.data(), q_stride, int(c.T), dpos.data(), cache.k.data(), cache.v.data(), c.T, c.n_head,
                        c.n_head_kv, c.hd, scale, c.window, out.data(), nullptr, path, prec);
      KILN_CUDA_CHECK(cudaDeviceSynchronize());
      const auto got = download(out, in.q.size());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_TRUE(std::isfinite(got[i])) << path_name(path) << " " << prec_name(prec) << " T " << c.T << " hd "
                                           << c.hd << " element " << i;
      const PrefillErr e = prefill_err(got, want, rows, c.n_head, c.hd, c.window, prec);
      EXPECT_LE(e.tol_ratio, 1.0) << path_name(path) << " " << prec_name(prec) << " T " << c.T << " hd " << c.hd
                                  << " window " << c.window << " max row rel err " << e.err;
      // Half must really round Q and P once: past a few keys its error sits far above Split's bound
      // (measured 1e-4 - 8e-4 against 3e-5), so a dispatch that ran Split would show here.
      if (prec == PrefillPrecision::Half && c.T >= 512) {
        EXPECT_GT(e.err, 3e-5) << path_name(path) << " T " << c.T << " hd " << c.hd << ": Half as exact as Split";
      }
      printf("[prefill %s %s] T %lld hd %d window %d heads %d/%d scale %g: max row rel err %.3g, %.3g of the "
             "bound (%zu rows)\n",
             path_name(path), prec_name(prec), (long long)c.T, c.hd, c.window, c.n_head, c.n_head_kv, double(scale),
             e.err, e.tol_ratio, rows.size());
    }
}

TEST(GpuAttentionPrefill, WithinToleranceOfDouble) {
  KILN_REQUIRE_GPU();
  g_prefill_splits.clear();
  g_prefill_persistent.clear();
  uint64_t seed = 5000;
  for (int64_t T : {1, 2, 511, 512, 513, 4097})
    for (int hd : {64, 128, 256, 512})
      for (int window : {0, 512}) check_prefill({T, hd, window, 4, 1, 0.f}, seed++);
  check_prefill({1000, 256, 512, 8, 2, 1.f}, seed++);  // Gemma 4 sliding: scale 1, GQA 4
  check_prefill({1000, 512, 0, 8, 2, 1.f}, seed++);    // Gemma 4 global
  check_prefill({700, 128, 0, 32, 8, 0.f, 4}, seed++);  // Qwen3 heads, Q rows strided
  check_prefill({300, 128, 1, 4, 1, 0.f}, seed++);     // window 1
  check_prefill({300, 256, 63, 4, 1, 0.f}, seed++);    // window not a tile multiple
  check_prefill({32, 64, 0, 4, 2, 0.f}, seed++);       // qwen3-tiny: head_dim 64, 4/2 heads
  check_prefill({48, 64, 8, 2, 1, 1.f}, seed++);       // gemma4-tiny sliding: window 8, scale 1
  check_prefill({1000, 64, 8, 2, 1, 1.f}, seed++);
  check_prefill({700, 64, 63, 32, 8, 0.f}, seed++);    // hd 64, many heads, odd window
  check_prefill({300, 64, 1, 4, 1, 0.f}, seed++);      // window 1
  for (int hd : {64, 128, 256, 512})
    for (PrefillPrecision prec : kPrecisions)
      for (PrefillPath path : prefill_paths(hd)) {
        const std::set<int>& sp = g_prefill_splits[{hd, prec, path}];
        EXPECT_TRUE(sp.count(1)) << path_name(path) << " hd " << hd << " " << prec_name(prec) << ": no case ran unsplit";
        EXPECT_TRUE(sp.size() >= 2) << path_name(path) << " hd " << hd << " " << prec_name(prec)
                                    << ": no case ran with a key split";
        if (path == PrefillPath::Warpgroup) {
          EXPECT_TRUE((g_prefill_persistent[{hd, prec, path}].count(false)))
              << "wgmma hd " << hd << " " << prec_name(prec) << ": no case ran one CTA per row tile";
        }
      }
}

// More row tiles x heads than resident CTAs (132 on an H100 or H200): the wgmma kernel runs
// head_dim 128 persistent, each CTA walking several row tiles with their Q through its ring (a
// window cutting tiles; a last round of 33 items; GQA 8 and 3; strided Q rows), head_dim 256 one
// CTA per tile. Small enough to run under racecheck.
TEST(GpuAttentionPrefill, PersistentGrid) {
  KILN_REQUIRE_GPU();
  g_prefill_persistent.clear();
  uint64_t seed = 5500;
  check_prefill({1100, 128, 100, 32, 4, 0.f, 12}, seed++);  // 9 row tiles x 32 heads
  check_prefill({1300, 128, 0, 15, 5, 0.f}, seed++);        // 11 x 15 = 165 items
  check_prefill({800, 256, 300, 24, 4, 1.f, 8}, seed++);
  for (PrefillPrecision prec : kPrecisions)
    if (attention_prefill_has_warpgroup(128)) {
      EXPECT_TRUE((g_prefill_persistent[{128, prec, PrefillPath::Warpgroup}].count(true)))
          << "wgmma hd 128 " << prec_name(prec) << ": no case ran persistent";
      EXPECT_FALSE((g_prefill_persistent[{256, prec, PrefillPath::Warpgroup}].count(true)))
          << "wgmma hd 256 " << prec_name(prec) << ": ran persistent";
    }
}

// Key splits (clusters merging partial softmax states through distributed shared memory) on every
// kernel, head_dim and precision, at shapes small enough for racecheck: short prompts over few
// heads are one partial wave, where attn::prefill_splits splits (hd 128 Half's 128-key tiles need
// 1024 keys: at 300 the longest row tile has 3 key tiles, which 2 CTAs do not finish sooner).
TEST(GpuAttentionPrefill, KeySplitMerge) {
  KILN_REQUIRE_GPU();
  g_prefill_splits.clear();
  uint64_t seed = 5600;
  for (int hd : {64, 128, 256, 512}) check_prefill({hd == 128 ? 1024 : 300, hd, 0, 4, 1, 0.f}, seed++);
  check_prefill({300, 256, 100, 8, 2, 1.f, 8}, seed++);  // window, GQA 4, strided Q rows
  for (int hd : {64, 128, 256, 512})
    for (PrefillPrecision prec : kPrecisions)
      for (PrefillPath path : prefill_paths(hd)) {
        const std::set<int>& sp = g_prefill_splits[{hd, prec, path}];
        EXPECT_TRUE(!sp.empty() && *sp.rbegin() > 1)
            << path_name(path) << " hd " << hd << " " << prec_name(prec) << ": no case ran with a key split";
      }
}

// An sm_90a build on a compute capability 9.0 device must take (and so test) the wgmma kernel:
// the other GpuAttentionPrefill tests cover it only where attention_prefill_has_warpgroup says so.
TEST(GpuAttentionPrefill, WarpgroupKernelOnHopper) {
  KILN_REQUIRE_GPU();
  int dev = 0, major = 0, minor = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&dev));
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
#if defined(KILN_TEST_SM90A)
  const bool expected = major == 9 && minor == 0;
#else
  const bool expected = false;
#endif
  for (int hd : {128, 256}) EXPECT_EQ(attention_prefill_has_warpgroup(hd), expected) << "hd " << hd;
  for (int hd : {64, 512}) EXPECT_FALSE(attention_prefill_has_warpgroup(hd)) << "hd " << hd;
}

TEST(GpuAttentionPrefill, LongSequences) {
  KILN_REQUIRE_GPU();
  check_prefill({16384, 128, 0, 1, 1, 0.f}, 6000);
  check_prefill({16384, 256, 512, 1, 1, 1.f}, 6001);
  check_prefill({32768, 128, 0, 1, 1, 0.f}, 6002);
  check_prefill({8192, 512, 0, 1, 1, 1.f}, 6003);
  check_prefill({16384, 64, 0, 2, 1, 0.f}, 6004);
}

// Chunked prefill on a ring cache: chunks appended with kv_append then attended (new queries see
// the previous chunks through position offsets); every chunk within tolerance of the oracle on
// the whole sequence. Sliding layer: ring of window + chunk - 1 rows; global layer: linear.
TEST(GpuAttentionPrefill, ChunkedWithOffsetsAndRing) {
  KILN_REQUIRE_GPU();
  struct C {
    int hd, window;
    int64_t total, chunk, cap;
  };
  for (const C c : {C{256, 512, 2000, 300, 512 + 300 - 1}, C{128, 64, 777, 100, 163},
                    C{512, 0, 1500, 512, 1500}, C{128, 0, 4097, 1000, 4097},
                    C{64, 512, 2000, 300, 512 + 300 - 1}, C{64, 64, 777, 100, 163},
                    C{64, 8, 48, 5, 8 + 5 - 1}, C{64, 8, 48, 1, 8}, C{64, 0, 1500, 512, 1500},
                    // chunks of 36 row tiles x 4 heads: the wgmma kernel runs them persistent
                    C{128, 0, 9000, 4500, 9000}}) {
    const int n_head = 4, n_head_kv = 1, row = n_head_kv * c.hd;
    const float scale = 1.f / std::sqrt(float(c.hd));
    Inputs in = make_inputs(c.total, c.total, n_head, n_head_kv, c.hd, 7000 + c.total);
    DeviceBuffer<uint16_t> kc(size_t(c.cap * row)), vc(size_t(c.cap * row));
    poison(kc);
    poison(vc);
    auto dk = upload(in.k), dv = upload(in.v), dq = upload(in.q);
    std::vector<int32_t> allpos(size_t(c.total));
    std::iota(allpos.begin(), allpos.end(), 0);
    auto dpos = upload(allpos);
    const auto rows = sample_rows(c.total, c.window, 8000);
    const auto want = oracle_rows(in, rows, 0, c.total, n_head, n_head_kv, c.hd, scale, c.window);
    for (PrefillPrecision prec : kPrecisions)
      for (PrefillPath path : prefill_paths(c.hd)) {
        DeviceBuffer<float> out(in.q.size());
        poison(out);
        for (int64_t p0 = 0; p0 < c.total; p0 += c.chunk) {
          const int T = int(std::min(c.chunk, c.total - p0));
          kv_append(dk.data() + p0 * row, dv.data() + p0 * row, 0, T, dpos.data() + p0, kc.data(),
                    vc.data(), c.cap, n_head_kv, c.hd, nullptr);
          attention_prefill(dq.data() + p0 * n_head * c.hd, 0, T, dpos.data() + p0, kc.data(),
                            vc.data(), c.cap, n_head, n_head_kv, c.hd, scale, c.window,
                            out.data() + p0 * n_head * c.hd, nullptr, path, prec);
        }
        KILN_CUDA_CHECK(cudaDeviceSynchronize());
        const auto got = download(out, in.q.size());
        const PrefillErr e = prefill_err(got, want, rows, n_head, c.hd, c.window, prec);
        EXPECT_LE(e.tol_ratio, 1.0) << path_name(path) << " " << prec_name(prec) << " hd " << c.hd << " window "
                                    << c.window << " chunk " << c.chunk << " max row rel err " << e.err;
        printf("[chunked %s %s] hd %d window %d total %lld chunk %lld cap %lld: max row rel err %.3g, %.3g of "
               "the bound\n",
               path_name(path), prec_name(prec), c.hd, c.window, (long long)c.total, (long long)c.chunk,
               (long long)c.cap, e.err, e.tol_ratio);
      }
  }
}

// A cache smaller than the positions it is asked for (a breach of the cache contract the host
// cannot see: positions live on the device) must not be read past its end. The 16-row cache sits
// at the start of a buffer whose later rows are NaN, so a read past it shows up as a NaN output
// even without a sanitizer (before the guard, the wgmma producer's single wrap read rows 16..63
// of a 64-key tile for this call). What the rows hold is unspecified; only finiteness is checked.
TEST(GpuAttentionPrefill, CacheBreachStaysInsideCache) {
  KILN_REQUIRE_GPU();
  for (int hd : {128, 256}) {
    const int n_head = 4, n_head_kv = 1, row = n_head_kv * hd, cap = 16, T = 1;
    Inputs in = make_inputs(T, cap, n_head, n_head_kv, hd, 9500 + hd);
    std::vector<uint16_t> kh(size_t(128) * row, 0x7e00), vh(size_t(128) * row, 0x7e00);  // FP16 NaN
    for (size_t i = 0; i < in.k.size(); ++i) kh[i] = f32_to_f16(in.k[i]), vh[i] = f32_to_f16(in.v[i]);
    auto dk = upload(kh), dv = upload(vh);
    auto dq = upload(in.q);
    auto dpos = upload(std::vector<int32_t>{100});  // attends positions 0..100 of a 16-row cache
    for (PrefillPrecision prec : kPrecisions)
      for (PrefillPath path : prefill_paths(hd)) {
        DeviceBuffer<float> out(in.q.size());
        poison(out);
        attention_prefill(dq.data(), 0, T, dpos.data(), dk.data(), dv.data(), cap, n_head, n_head_kv, hd,
                          1.f / std::sqrt(float(hd)), 0, out.data(), nullptr, path, prec);
        KILN_CUDA_CHECK(cudaDeviceSynchronize());
        const auto got = download(out, in.q.size());
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_TRUE(std::isfinite(got[i])) << path_name(path) << " " << prec_name(prec) << " hd " << hd
                                             << " element " << i;
      }
  }
}

// Decode after a prefill of T tokens (the new token appended at position T) equals the last row
// of a prefill over T + 1 tokens within the two contracts' combined tolerance.
TEST(GpuAttentionPrefill, DecodeAfterPrefillMatchesLongerPrefill) {
  KILN_REQUIRE_GPU();
  for (int hd : {64, 128, 256, 512})
    for (int window : {0, 512}) {
      const int n_head = 8, n_head_kv = 2, row = n_head_kv * hd, splits = 32;
      const int64_t T = 1500;
      const float scale = 1.f / std::sqrt(float(hd));
      Inputs in = make_inputs(T + 1, T + 1, n_head, n_head_kv, hd, 9000 + hd + window);
      const int64_t cap = window ? window : T + 1;
      DeviceBuffer<uint16_t> kc(size_t(cap * row)), vc(size_t(cap * row));
      auto dk = upload(in.k), dv = upload(in.v), dq = upload(in.q);
      std::vector<int32_t> allpos(size_t(T + 1));
      std::iota(allpos.begin(), allpos.end(), 0);
      auto dpos = upload(allpos);
      DeviceBuffer<float> dec(size_t(n_head) * hd);
      poison(dec);
      const size_t ws_bytes = attention_decode_workspace_bytes(n_head, hd, splits);
      DeviceBuffer<uint8_t> ws(ws_bytes);
      // decode path: append the last `cap` tokens (all, for a linear cache), decode at T
      const int64_t first = T + 1 - cap;
      kv_append(dk.data() + first * row, dv.data() + first * row, 0, int(cap), dpos.data() + first,
                kc.data(), vc.data(), cap, n_head_kv, hd, nullptr);
      attention_decode(dq.data() + T * n_head * hd, 0, kc.data(), vc.data(), cap, n_head,
                       n_head_kv, hd, scale, window, dpos.data() + T, splits, ws.data(), ws_bytes,
                       dec.data(), nullptr, nullptr);
      // prefill path on a linear cache of T + 1 positions
      GpuCache lin(in.k, in.v, T + 1, T + 1, row);
      KILN_CUDA_CHECK(cudaDeviceSynchronize());
      const auto d = download(dec, size_t(n_head) * hd);
      for (PrefillPrecision prec : kPrecisions)
        for (PrefillPath path : prefill_paths(hd)) {
          DeviceBuffer<float> pre(in.q.size());
          poison(pre);
          attention_prefill(dq.data(), 0, int(T + 1), dpos.data(), lin.k.data(), lin.v.data(), T + 1, n_head,
                            n_head_kv, hd, scale, window, pre.data(), nullptr, path, prec);
          KILN_CUDA_CHECK(cudaDeviceSynchronize());
          const auto p = download(pre, in.q.size());
          const std::vector<double> pl(p.end() - n_head * hd, p.end());
          EXPECT_LE(row_rel_err(d.data(), pl.data(), size_t(n_head), hd),
                    prefill_tol(prefill_keys(T, window), prec) + 1e-5)
              << path_name(path) << " " << prec_name(prec) << " hd " << hd << " window " << window;
        }
      const auto want = oracle_rows(in, {T}, 0, T + 1, n_head, n_head_kv, hd, scale, window);
      EXPECT_LE(row_rel_err(d.data(), want.data(), size_t(n_head), hd), 1e-5) << "decode vs double";
    }
}

}  // namespace
}  // namespace kiln

#include "reference/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/common/blocks.h"
#include "kernels/common/error.h"
#include "kernels/common/math.h"

namespace kiln::ref {

void kv_append(const float* k_new, const float* v_new, int64_t src_stride, int64_t T, const int32_t* pos,
               uint16_t* k_cache, uint16_t* v_cache, int64_t cap, int64_t row_elems) {
  KILN_REQUIRE(cap > 0 && row_elems > 0 && src_stride >= row_elems, "ref::kv_append: bad shape");
  for (int64_t t = 0; t < T; ++t) {
    if (pos[t] < 0) continue;
    const int64_t r = pos[t] % cap;
    for (int64_t i = 0; i < row_elems; ++i) {
      k_cache[r * row_elems + i] = f32_to_f16(k_new[t * src_stride + i]);
      v_cache[r * row_elems + i] = f32_to_f16(v_new[t * src_stride + i]);
    }
  }
}

template <class T>
void attention(const T* q, const T* k, const T* v, int64_t n_q, const int32_t* q_pos, int64_t n_kv,
               int n_head, int n_head_kv, int hd, float scale, int window, T* out) {
  KILN_REQUIRE(n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0, "ref::attention: n_head ",
               n_head, " is not a multiple of n_head_kv ", n_head_kv);
  KILN_REQUIRE(hd > 0 && window >= 0 && n_q >= 0 && n_kv >= 0, "ref::attention: bad shape");
  const int group = n_head / n_head_kv;
  const int64_t kv_row = int64_t(n_head_kv) * hd;
  std::vector<T> s;
  for (int64_t t = 0; t < n_q; ++t) {
    const int64_t qp = q_pos[t];
    const int64_t hi = std::min<int64_t>(qp, n_kv - 1);
    const int64_t lo = window > 0 ? std::max<int64_t>(0, qp - window + 1) : 0;
    for (int h = 0; h < n_head; ++h) {
      const int kh = h / group;
      const T* qh = q + (t * n_head + h) * int64_t(hd);
      T* o = out + (t * n_head + h) * int64_t(hd);
      std::fill(o, o + hd, T(0));
      if (hi < lo) continue;  // nothing to attend to: zeros
      s.assign(size_t(hi - lo + 1), T(0));
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t p = lo; p <= hi; ++p) {
        const T* kp = k + p * kv_row + int64_t(kh) * hd;
        T acc = 0;
        for (int d = 0; d < hd; ++d) acc += qh[d] * kp[d];
        s[size_t(p - lo)] = acc * T(scale);
        m = std::max(m, s[size_t(p - lo)]);
      }
      T sum = 0;
      for (auto& x : s) {
        x = std::exp(x - m);
        sum += x;
      }
      for (int64_t p = lo; p <= hi; ++p) {
        const T* vp = v + p * kv_row + int64_t(kh) * hd;
        const T w = s[size_t(p - lo)];
        for (int d = 0; d < hd; ++d) o[d] += w * vp[d];
      }
      for (int d = 0; d < hd; ++d) o[d] /= sum;
    }
  }
}

template void attention<float>(const float*, const float*, const float*, int64_t, const int32_t*,
                               int64_t, int, int, int, float, int, float*);
template void attention<double>(const double*, const double*, const double*, int64_t,
                                const int32_t*, int64_t, int, int, int, float, int, double*);

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The kernel's warp butterfly: for o = 16..1, a[i] = a[i] + a[i + o] for i < o; returns a[0].
float butterfly_sum(float a[32]) {
  for (int o = 16; o >= 1; o /= 2)
    for (int i = 0; i < o; ++i) a[i] = a[i] + a[i + o];
  return a[0];
}

// Online-softmax state of one head: running max, running sum, unnormalized accumulator.
struct State {
  float m = kNegInf, l = 0.f;
  std::vector<float> acc;
};

// Merges states in order into (M, L, O) as the kernel does (warps, then splits).
State merge(const std::vector<State>& parts, int hd) {
  State r;
  r.acc.assign(size_t(hd), 0.f);
  for (const State& s : parts) r.m = std::max(r.m, s.m);
  for (const State& s : parts) {
    const float f = s.m == kNegInf ? 0.f : kexp(s.m - r.m);
    r.l = r.l + s.l * f;
    for (int d = 0; d < hd; ++d) r.acc[size_t(d)] = r.acc[size_t(d)] + s.acc[size_t(d)] * f;
  }
  return r;
}

}  // namespace

void attention_decode_split(const float* q, const float* k, const float* v, int32_t q_pos,
                            int n_head, int n_head_kv, int hd, float scale, int window,
                            int n_splits, float* out) {
  KILN_REQUIRE(n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0,
               "ref::attention_decode_split: n_head ", n_head, " vs n_head_kv ", n_head_kv);
  KILN_REQUIRE(hd % 32 == 0 && n_splits > 0 && window >= 0,
               "ref::attention_decode_split: hd ", hd, " must be a multiple of 32, n_splits ",
               n_splits, " > 0");
  constexpr int W = attn::kDecodeWarps, TILE = attn::kDecodeTile;
  static_assert(TILE == 32, "one position per lane");
  const int E = hd / 32;
  const int group = n_head / n_head_kv;
  const int64_t kv_row = int64_t(n_head_kv) * hd;
  if (q_pos < 0) {
    std::fill(out, out + int64_t(n_head) * hd, 0.f);
    return;
  }
  const int64_t lo = window > 0 ? std::max<int64_t>(0, int64_t(q_pos) - window + 1) : 0;
  const int64_t n = int64_t(q_pos) - lo + 1;
  const int64_t chunk = attn::decode_chunk(n, n_splits, hd);
  const int used = attn::decode_used_splits(n, n_splits, hd);
  const int tw = attn::decode_warp_tile(chunk);  // positions per tile (<= TILE lanes)
  for (int h = 0; h < n_head; ++h) {
    const int kh = h / group;
    const float* qh = q + int64_t(h) * hd;
    std::vector<State> splits;
    for (int s = 0; s < used; ++s) {
      const int64_t b = std::min<int64_t>(lo + int64_t(s) * chunk, q_pos + 1);
      const int64_t e = std::min<int64_t>(b + chunk, q_pos + 1);
      std::vector<State> warps(W);
      for (State& w : warps) w.acc.assign(size_t(hd), 0.f);
      for (int64_t i = 0; b + i * tw < e; ++i) {
        State& st = warps[size_t(i % W)];
        const int64_t t0 = b + i * tw;
        const int nvalid = int(std::min<int64_t>(tw, e - t0));
        float sc[TILE], p[TILE];
        float mt = kNegInf;
        for (int j = 0; j < nvalid; ++j) {
          const float* kp = k + (t0 + j) * kv_row + int64_t(kh) * hd;
          float part[32];
          for (int l = 0; l < 32; ++l) {
            float a = 0.f;
            for (int x = 0; x < E; ++x) a = fmaf(qh[l * E + x], kp[l * E + x], a);
            part[l] = a;
          }
          sc[j] = butterfly_sum(part) * scale;
          mt = std::max(mt, sc[j]);
        }
        const float mn = std::max(st.m, mt);
        const float c = kexp(st.m - mn);
        for (int j = 0; j < TILE; ++j) p[j] = j < nvalid ? kexp(sc[j] - mn) : 0.f;
        float ps[32];
        std::copy(p, p + 32, ps);
        st.l = st.l * c + butterfly_sum(ps);
        for (int d = 0; d < hd; ++d) st.acc[size_t(d)] = st.acc[size_t(d)] * c;
        for (int j = 0; j < nvalid; ++j) {
          const float* vp = v + (t0 + j) * kv_row + int64_t(kh) * hd;
          for (int d = 0; d < hd; ++d) st.acc[size_t(d)] = fmaf(p[j], vp[d], st.acc[size_t(d)]);
        }
        st.m = mn;
      }
      splits.push_back(merge(warps, hd));
    }
    const State r = merge(splits, hd);
    for (int d = 0; d < hd; ++d) out[int64_t(h) * hd + d] = r.acc[size_t(d)] / r.l;
  }
}

}  // namespace kiln::ref

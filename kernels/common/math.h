// Math shared bit for bit by kernels and their CPU references (DESIGN.md §4). Built only from
// operations IEEE 754 rounds exactly on both sides (+ - * /, sqrt, fma, rint, bit casts), never
// from libm/CUDA intrinsics whose results differ between glibc and the device. Accuracy: kexp
// within 2 ulp over its range; ktanh within 1e-7 absolute.
#pragma once

#include <cmath>
#include <cstdint>

#include "blocks.h"  // f32_bits / bits_f32
#include "hd.h"

namespace kiln {

// e^x for float. Range reduction x = n*ln2 + r (Cody-Waite, two constants, exact fmaf), a
// degree-6 polynomial for e^r on |r| <= ln2/2, then 2^n by exponent arithmetic.
KILN_HD float kexp(float x) {
  if (x != x) return x;
  if (x > 88.72283f) return bits_f32(0x7f800000u);  // overflow -> inf
  if (x < -103.97208f) return 0.f;                  // underflow -> 0
  const float n = rintf(x * 1.44269504088896341f);
  float r = fmaf(-n, 0.693145751953125f, x);  // ln2 high part (exact product)
  r = fmaf(-n, 1.428606765330187e-06f, r);    // ln2 low part
  // Horner with fmaf: 1 + r + r^2/2 + ... + r^6/720 (Taylor; error < 2e-8 relative on the range)
  float p = 1.3888889e-3f;
  p = fmaf(p, r, 8.3333333e-3f);
  p = fmaf(p, r, 4.1666667e-2f);
  p = fmaf(p, r, 1.6666667e-1f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  // scale by 2^n in two steps so that subnormal results and n = 128 stay exact
  const int ni = int(n);
  const int n1 = ni / 2, n2 = ni - n1;
  return p * bits_f32(uint32_t(n1 + 127) << 23) * bits_f32(uint32_t(n2 + 127) << 23);
}

// tanh from kexp: sign(x) * (1 - 2 / (e^{2|x|} + 1)); saturates to +-1 for |x| > 9.
KILN_HD float ktanh(float x) {
  const float a = fabsf(x);
  if (a > 9.f) return x > 0 ? 1.f : -1.f;
  const float t = 1.f - 2.f / (kexp(2.f * a) + 1.f);
  return x < 0 ? -t : t;
}

// GELU, tanh approximation (what Gemma's FFN and PLE gate use):
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
KILN_HD float gelu_tanh(float x) {
  const float inner = 0.7978845608028654f * (x + 0.044715f * (x * x * x));
  return 0.5f * x * (1.f + ktanh(inner));
}

// SiLU: x / (1 + e^-x).
KILN_HD float silu(float x) { return x / (1.f + kexp(-x)); }

// 1 / sqrt(x), correctly rounded sqrt then correctly rounded division (identical on both sides).
KILN_HD float krsqrt(float x) { return 1.f / sqrtf(x); }

// Softcap: c * tanh(x / c).
KILN_HD float softcap(float x, float c) { return c * ktanh(x / c); }

}  // namespace kiln

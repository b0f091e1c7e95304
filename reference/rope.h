// Reference for kernels/rope.cu (NEOX RoPE) and the cos/sin table both sides use.
//
// The table is built once on the host by rope_table() (shared by the kernel's caller and by
// ref::rope_neox<float>), so the kernel and the float reference see the same cos/sin bits:
//   entry [p][i] (i < n_rot/2) = { float(cos(a)), float(sin(a)) },
//   a = p * theta^(-2i/n_rot) / (ff ? ff[i] : 1), evaluated in double with the host libm.
// Rotation of pair (x0, x1) = (x[i], x[i + n_rot/2]):  x0' = x0*c - x1*s;  x1' = x0*s + x1*c
// (each product and difference rounded to float, no FMA). Dims >= n_rot are untouched.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::ref {

// cos/sin for one (pos, i) pair: float (as stored in the table) or double (unrounded angle).
void rope_cos_sin(int64_t pos, int i, int n_rot, float theta, const float* ff, float& c, float& s);
void rope_cos_sin(int64_t pos, int i, int n_rot, float theta, const float* ff, double& c, double& s);

// Table for positions [0, n_pos): n_pos * (n_rot/2) interleaved (cos, sin) float pairs, row p at
// element 2 * p * (n_rot/2). Upload as float2 for kiln::rope / kiln::head_norm_dual.
std::vector<float> rope_table(int64_t n_pos, int n_rot, float theta, const float* ff);

// In place on x[t][h][head_dim]; NEOX pairs (i, i + n_rot/2), i < n_rot/2;
// angle = pos[t] * theta^(-2i/n_rot) / (ff ? ff[i] : 1); dims >= n_rot untouched.
template <class T>
void rope_neox(T* x, int64_t n_tokens, int n_heads, int head_dim, int n_rot, const int32_t* pos, float theta,
               const float* ff);

}  // namespace kiln::ref

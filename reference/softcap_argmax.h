// Reference for kernels/softcap_argmax.cu: greedy decode over the vocabulary.
// Per row r of n logits: z_i = cap > 0 ? softcap(x_i, cap) (= cap * ktanh(x_i / cap), math.h) : x_i;
// idx[r] = the lowest i with z_i == max_j z_j (NaNs are ignored; -1 when every z_i is NaN);
// capped (optional) receives z. T=double: cap * std::tanh(x / cap).
#pragma once

#include <cstdint>

namespace kiln::ref {

template <class T>
void softcap_argmax(const T* logits, int64_t rows, int64_t n, float cap, T* capped, int32_t* idx);

}  // namespace kiln::ref

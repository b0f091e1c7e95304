// Tensor element types, numbered as GGML numbers them (the `type` field of a GGUF tensor info).
// kiln computes with the six below; any other GGML id read from a file is rejected by name.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hd.h"

namespace kiln {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q8_0 = 8,
  Q8_1 = 9,
  Q4_K = 12,
  Q6_K = 14,
  BF16 = 30,
};

struct DTypeTraits {
  const char* name;
  int block_elems;  // elements per block (1 for plain float types)
  int block_bytes;  // bytes per block
};


constexpr DTypeTraits dtype_traits(DType t) {
  switch (t) {
    case DType::F32: return {"F32", 1, 4};
    case DType::F16: return {"F16", 1, 2};
    case DType::BF16: return {"BF16", 1, 2};
    case DType::Q8_0: return {"Q8_0", 32, 34};
    case DType::Q8_1: return {"Q8_1", 32, 36};
    case DType::Q4_K: return {"Q4_K", 256, 144};
    case DType::Q6_K: return {"Q6_K", 256, 210};
  }
  return {"?", 1, 1};
}

constexpr const char* dtype_name(DType t) { return dtype_traits(t).name; }

// Bytes of a row of `n` elements; n must be a multiple of the block size (checked by callers).
constexpr size_t row_bytes(DType t, int64_t n) {
  return size_t(n / dtype_traits(t).block_elems) * size_t(dtype_traits(t).block_bytes);
}

}  // namespace kiln

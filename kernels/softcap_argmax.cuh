// Greedy decode over the vocabulary (262,144 for Gemma 4) in ONE launch, `rows` rows at a time:
//   z_i = cap > 0 ? cap * ktanh(x_i / cap) : x_i   (kiln::softcap, math.h)
//   idx[r] = lowest i with z_i == max z (NaNs ignored; -1 if every z is NaN); capped (optional) = z.
// Blocks scan contiguous segments and publish (max, index) partials; the last block of a row to
// finish (atomic ticket) reduces them -- the selection is a total order, so the result does not
// depend on block scheduling. Workspace: softcap_argmax_workspace_bytes(rows) bytes of device
// memory, zeroed ONCE by the caller at allocation; every launch leaves its counters zero again
// (graph-replay safe). Launches on one workspace must not overlap.
// Greedy decode's step end (optional, rows == 1): with `feed` the winner is also written to
// *feed (the next step's input token), with `pos` *pos is incremented once per launch -- by the
// block that reduces the row, after every earlier kernel has finished (its PDL wait) -- so a
// decode step needs no launch of its own to advance. Such a launch does not let the next launch
// start early (no PDL trigger): the next step's kernels may read *pos before their PDL wait.
// Contract: bit-exact vs ref::softcap_argmax<float> (indices and capped values).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace kiln {

struct SoftcapArgmaxOp {
  const float* logits = nullptr;  // [rows][n]
  int64_t rows = 0, n = 0;
  float cap = 0.f;            // <= 0: no softcap
  float* capped = nullptr;    // optional [rows][n]
  int32_t* idx = nullptr;     // [rows]
  int32_t* feed = nullptr;    // optional, rows == 1: *feed = idx[0]
  int32_t* pos = nullptr;     // optional, rows == 1: *pos += 1
  void* workspace = nullptr;  // softcap_argmax_workspace_bytes(rows), zeroed once
};

size_t softcap_argmax_workspace_bytes(int64_t rows);
void softcap_argmax(const SoftcapArgmaxOp& op, cudaStream_t stream);

}  // namespace kiln

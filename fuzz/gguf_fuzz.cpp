// libFuzzer target: everything kiln does with an untrusted GGUF image before any weight reaches a
// kernel. GgufFile::parse (header, metadata, tensor table), parse_config (architecture, shapes,
// per-layer hyperparameters), decode_weight_bytes / decode_read_tensors, the printing paths of
// `kiln inspect` (summary, metadata to_string), and decode_row over the first block of tensors.
//
// An input is parsed in one of two ways, chosen by the parity of its size (one parse per
// execution keeps the fuzzer fast; a mutation that adds or drops a byte switches the mode):
//   odd size:  as is, in libFuzzer's exactly-sized buffer, so any read past the end is an ASan
//              report (truncated headers, offsets at the end of the file);
//   even size: as a header followed by an 8 MiB zero data section, the image ending exactly at the
//              end of its heap allocation (ASan still sees any over-read). This lets small inputs
//              (the header of a real model, a few KB) reach parse_config with every tensor's bytes
//              present, so the fuzzer spends its time on the header, not on megabytes of weights.
// Errors are kiln::Error (expected); anything else — a crash, a sanitizer report, another
// exception type, a tensor whose bytes lie outside the image — is a finding.
//
// Build and run: fuzz/build.sh, fuzz/run.sh (see fuzz/README.md).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/common/error.h"
#include "models/config.h"
#include "models/gguf.h"
#include "models/quant.h"

namespace {

constexpr size_t kMaxHeader = 1 << 20;  // inputs longer than this skip mode 2
constexpr size_t kTail = 8 << 20;       // zero data section appended in mode 2 (>= tiny models' data)

[[noreturn]] void finding(const char* what) {
  fprintf(stderr, "gguf_fuzz finding: %s\n", what);
  abort();
}

void exercise_tensors(const kiln::GgufFile& f, const uint8_t* base, size_t size, bool decode) {
  std::vector<float> row;
  int decoded = 0;
  for (const kiln::GgufTensor& t : f.tensors()) {
    // The reader's promise: every tensor's bytes lie inside the image, nbytes matches the shape.
    if (t.data < base || t.nbytes > size || size_t(t.data - base) > size - t.nbytes)
      finding("tensor data outside the image");
    if (t.nelements <= 0 || t.ne.empty() || t.cols() <= 0) finding("tensor with no elements");
    if (kiln::row_bytes(t.type, t.nelements) != t.nbytes) finding("tensor nbytes does not match its shape");
    volatile uint8_t sink = t.data[0];
    sink = t.data[t.nbytes - 1];
    (void)sink;
    (void)t.shape_string();
    (void)t.rows();
    // Raw mode (real bytes): decode the start of the first row of a few tensors (one block, or 64
    // values of a float type): the block decoders over arbitrary bits (f16 subnormals, NaN scales,
    // 6-bit scale packing) must stay defined. Few and short, so an execution stays cheap.
    if (!decode || decoded >= 8) continue;
    ++decoded;
    const int64_t be = kiln::dtype_traits(t.type).block_elems;
    const int64_t want = be > 64 ? be : 64;
    int64_t n = t.cols() < want ? t.cols() : want;
    n -= n % be;
    if (n > 0) {
      row.resize(size_t(n));
      kiln::decode_row(t.type, t.data, row.data(), n);
    }
  }
}

void exercise(const uint8_t* data, size_t size, bool decode) {
  try {
    const kiln::GgufFile f = kiln::GgufFile::parse(data, size, "fuzz.gguf");
    for (const auto& kv : f.metadata()) {
      (void)kv.second.to_string();
      if (f.find(kv.first) != &kv.second) finding("metadata index does not find its own key");
    }
    exercise_tensors(f, data, size, decode);
    // The config path `kiln inspect` and the runners take.
    const kiln::ModelConfig c = kiln::parse_config(f);
    if (int(c.layers.size()) != c.n_layer || c.n_layer <= 0) finding("layer count mismatch");
    (void)c.summary();
    (void)kiln::decode_read_tensors(f, c);
    (void)kiln::decode_weight_bytes(f, c);
  } catch (const kiln::Error&) {
    // a clean rejection
  }
  // Any other exception type escapes and libFuzzer reports it as a crash (deadly signal).
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size % 2 == 1 || size > kMaxHeader) {
    exercise(data, size, /*decode=*/true);
  } else {
    static uint8_t* const image = static_cast<uint8_t*>(calloc(kMaxHeader + kTail, 1));
    // The input sits right before the zero tail, so the image ends where the allocation ends.
    uint8_t* begin = image + kMaxHeader - size;
    if (size) memcpy(begin, data, size);
    exercise(begin, size + kTail, /*decode=*/false);  // the data is all zeros
  }
  return 0;
}

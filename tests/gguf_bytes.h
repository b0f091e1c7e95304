// Byte-level GGUF builder for tests: writes any file, including the invalid ones a writer would
// never produce (hostile-input tests of the reader, the CLI and the fuzz regressions).
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace kiln::testing {

struct GgufBytes {
  std::vector<uint8_t> b;
  template <class T>
  GgufBytes& pod(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof v);
    return *this;
  }
  GgufBytes& str(const std::string& s) {
    pod<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3, uint32_t magic = 0x46554747u) {
    return pod<uint32_t>(magic).pod<uint32_t>(version).pod<uint64_t>(n_tensors).pod<uint64_t>(n_kv);
  }
  GgufBytes& kv_u32(const std::string& k, uint32_t v) { return str(k).pod<uint32_t>(4).pod<uint32_t>(v); }
  GgufBytes& kv_str(const std::string& k, const std::string& v) { return str(k).pod<uint32_t>(8).str(v); }
  // A tensor info; `type_at` (optional) receives the byte offset of its type field.
  GgufBytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset,
                    size_t* type_at = nullptr) {
    str(name).pod<uint32_t>(uint32_t(ne.size()));
    for (uint64_t n : ne) pod<uint64_t>(n);
    if (type_at) *type_at = b.size();
    return pod<uint32_t>(type).pod<uint64_t>(offset);
  }
  GgufBytes& pad(size_t align = 32) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
  GgufBytes& data(size_t n) {  // non-constant bytes: the first is 1
    for (size_t i = 0; i < n; ++i) b.push_back(uint8_t(i * 7 + 1));
    return *this;
  }
  // Writes the bytes to `path` and returns it.
  std::string write(const std::string& path) const {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
    return path;
  }
};

}  // namespace kiln::testing

// GGUF v2/v3 reader (memory-mapped, zero-copy tensor bytes) and streaming writer.
//
// The reader treats every file as hostile: each count, length, dimension and offset is checked
// against the file before it is used, and any violation throws kiln::Error naming the file, what
// is wrong and the byte offset where it was found. It never reads outside the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/common/dtype.h"

namespace kiln {

// GGUF metadata value types, numbered as in the GGUF specification.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// Traits (name, block size, block bytes) of every GGML tensor type id, whether kiln computes
// with it, so errors can name an unsupported type. False for ids GGML does not define.
bool ggml_type_info(uint32_t id, DTypeTraits& out, bool& supported);
// "F32, F16, BF16, Q8_0, Q4_K, Q6_K": what kiln accepts in model files.
const char* supported_weight_types();

// One metadata value; arrays may nest.
struct GgufValue {
  GgufType type = GgufType::U32;
  uint64_t u = 0;     // U8..U64, BOOL
  int64_t i = 0;      // I8..I64
  double f = 0;       // F32, F64
  std::string str;    // STRING
  GgufType elem = GgufType::U32;  // ARRAY element type
  std::vector<GgufValue> arr;     // ARRAY elements

  bool is_int() const;
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
  // Checked accessors: throw kiln::Error when the type does not fit (integers must be in range).
  uint64_t as_u64() const;
  int64_t as_i64() const;
  double as_f64() const;  // any numeric type
  bool as_bool() const;
  const std::string& as_string() const;
  std::string to_string(size_t max_elems = 8) const;  // for printing

  static GgufValue u32(uint32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue i32(int32_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue array(GgufType elem, std::vector<GgufValue> items);
};

struct GgufTensor {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> ne;  // ne[0] is the contiguous (row) dimension, as in GGML
  uint64_t offset = 0;      // from the start of the data section
  uint64_t nbytes = 0;
  int64_t nelements = 0;
  const uint8_t* data = nullptr;  // points into the mapping (reader) or is null (writer)

  int64_t cols() const { return ne.empty() ? 0 : ne[0]; }
  int64_t rows() const { return cols() ? nelements / cols() : 0; }
  std::string shape_string() const;
};

class GgufFile {
 public:
  // Maps and validates `path`; throws kiln::Error on any problem.
  static GgufFile open(const std::string& path);
  // Parses an in-memory image (no copy; `bytes` must outlive the object). Used by the fuzzer.
  static GgufFile parse(const uint8_t* bytes, size_t size, const std::string& name);

  GgufFile(GgufFile&& o) noexcept;
  GgufFile& operator=(GgufFile&& o) noexcept;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  size_t file_size() const { return size_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  const GgufValue& get(const std::string& key) const;  // throws "missing metadata key"
  uint64_t get_u64(const std::string& key) const { return get(key).as_u64(); }
  uint32_t get_u32(const std::string& key) const;
  uint32_t get_u32(const std::string& key, uint32_t fallback) const;
  float get_f32(const std::string& key) const { return float(get(key).as_f64()); }
  float get_f32(const std::string& key, float fallback) const;
  std::string get_str(const std::string& key) const { return get(key).as_string(); }

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(const std::string& name) const;
  const GgufTensor& tensor(const std::string& name) const;  // throws "missing tensor"

 private:
  GgufFile() = default;
  void parse_all();
  void release();

  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Streaming GGUF v3 writer: metadata and tensor infos first, then each tensor's bytes produced
// chunk by chunk by its fill function, so a 10 GB file needs only a bounded buffer.
class GgufWriter {
 public:
  // Writes blocks [block_begin, block_begin + block_count) of the tensor into dst.
  using Fill = std::function<void(uint64_t block_begin, uint64_t block_count, uint8_t* dst)>;

  void set(const std::string& key, GgufValue v);  // replaces an existing key in place
  void add_tensor(const std::string& name, DType type, std::vector<int64_t> ne, Fill fill);
  // Convenience: bytes already in memory (not copied; must outlive write()).
  void add_tensor(const std::string& name, DType type, std::vector<int64_t> ne, const void* data);
  // Writes the file (to path + ".tmp", renamed on success). `progress`, if set, is called with
  // bytes written so far and the total. With `with_data` false the tensor data section is left as
  // a sparse hole of zeros (valid blocks of every type): a full-size model's metadata and tensor
  // table in a file that costs no disk, for configs and byte counts without the weights.
  void write(const std::string& path, uint64_t alignment = 32,
             const std::function<void(uint64_t, uint64_t)>& progress = {}, bool with_data = true) const;

 private:
  struct Pending {
    GgufTensor info;
    Fill fill;
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace kiln

#include "models/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "kernels/common/error.h"

namespace kiln {

namespace {

constexpr uint32_t kMagic = 0x46554747u;  // "GGUF" little endian
constexpr int kMaxDims = 4;               // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;         // nested arrays deeper than this are rejected
constexpr size_t kMaxNameLen = 1024;
// Each parsed metadata value costs ~100 bytes of host memory however few bytes it took in the file
// (a u8 array element takes one), so counts are capped in absolute terms, not only by the file
// size: without the caps a 64 MB file of u8 array elements made the reader allocate 6 GB.
// Real models stay far below both (a 262k-token vocabulary is ~0.8M values, a model < 10k tensors).
constexpr uint64_t kMaxMetadataValues = uint64_t(1) << 23;
constexpr uint64_t kMaxTensors = uint64_t(1) << 20;

struct Row {
  uint32_t id;
  DTypeTraits t;
  bool supported;
};
// GGML's type table (ggml_type): name, elements per block and bytes per block of every id.
constexpr Row kTypes[] = {
    {0, {"F32", 1, 4}, true},          {1, {"F16", 1, 2}, true},
    {2, {"Q4_0", 32, 18}, false},      {3, {"Q4_1", 32, 20}, false},
    {6, {"Q5_0", 32, 22}, false},      {7, {"Q5_1", 32, 24}, false},
    {8, {"Q8_0", 32, 34}, true},       {9, {"Q8_1", 32, 36}, false},
    {10, {"Q2_K", 256, 84}, false},    {11, {"Q3_K", 256, 110}, false},
    {12, {"Q4_K", 256, 144}, true},    {13, {"Q5_K", 256, 176}, false},
    {14, {"Q6_K", 256, 210}, true},    {15, {"Q8_K", 256, 292}, false},
    {16, {"IQ2_XXS", 256, 66}, false}, {17, {"IQ2_XS", 256, 74}, false},
    {18, {"IQ3_XXS", 256, 98}, false}, {19, {"IQ1_S", 256, 50}, false},
    {20, {"IQ4_NL", 32, 18}, false},   {21, {"IQ3_S", 256, 110}, false},
    {22, {"IQ2_S", 256, 82}, false},   {23, {"IQ4_XS", 256, 136}, false},
    {24, {"I8", 1, 1}, false},         {25, {"I16", 1, 2}, false},
    {26, {"I32", 1, 4}, false},        {27, {"I64", 1, 8}, false},
    {28, {"F64", 1, 8}, false},        {29, {"IQ1_M", 256, 56}, false},
    {30, {"BF16", 1, 2}, true},        {34, {"TQ1_0", 256, 54}, false},
    {35, {"TQ2_0", 256, 66}, false},   {39, {"MXFP4", 32, 17}, false},
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::F64); }

// Bounds-checked little-endian cursor over the file image.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size, const std::string& file) : base_(base), size_(size), file_(file) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  uint64_t values = 0;  // metadata values (keys' values and array elements) read so far

  [[noreturn]] void bad(const std::string& what, size_t at) const {
    fail(file_, ": ", what, " (at byte ", at, " of ", size_, ")");
  }
  void need(size_t n, const char* what) const {
    if (n > remaining())
      bad(detail::concat("truncated file: ", what, " needs ", n, " bytes, ", remaining(), " left"), pos_);
  }
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    const size_t at = pos_;
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      bad(detail::concat(what, ": string length ", len, " exceeds the ", remaining(), " bytes left"), at);
    std::string s(reinterpret_cast<const char*>(base_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& file_;
};

GgufValue read_value(Cursor& c, GgufType type, int depth, const std::string& key) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::U8: v.u = c.read<uint8_t>("u8 value"); break;
    case GgufType::I8: v.i = c.read<int8_t>("i8 value"); break;
    case GgufType::U16: v.u = c.read<uint16_t>("u16 value"); break;
    case GgufType::I16: v.i = c.read<int16_t>("i16 value"); break;
    case GgufType::U32: v.u = c.read<uint32_t>("u32 value"); break;
    case GgufType::I32: v.i = c.read<int32_t>("i32 value"); break;
    case GgufType::U64: v.u = c.read<uint64_t>("u64 value"); break;
    case GgufType::I64: v.i = c.read<int64_t>("i64 value"); break;
    case GgufType::F32: v.f = c.read<float>("f32 value"); break;
    case GgufType::F64: v.f = c.read<double>("f64 value"); break;
    case GgufType::BOOL: {
      const size_t at = c.pos();
      const uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) c.bad(detail::concat("metadata '", key, "': bool value ", int(b), " is not 0 or 1"), at);
      v.u = b;
      break;
    }
    case GgufType::STRING: v.str = c.read_string("string value"); break;
    case GgufType::ARRAY: {
      const size_t at = c.pos();
      if (depth >= kMaxArrayDepth)
        c.bad(detail::concat("metadata '", key, "': arrays nested deeper than ", kMaxArrayDepth), at);
      const uint32_t et = c.read<uint32_t>("array element type");
      if (!valid_type(et)) c.bad(detail::concat("metadata '", key, "': unknown array element type ", et), at);
      v.elem = GgufType(et);
      const uint64_t n = c.read<uint64_t>("array length");
      // Every element takes at least one byte (strings and arrays at least 8): a count the rest
      // of the file cannot hold is rejected before anything is allocated.
      const size_t min_elem = scalar_size(v.elem) ? scalar_size(v.elem) : (v.elem == GgufType::ARRAY ? 12 : 8);
      if (n > c.remaining() / min_elem)
        c.bad(detail::concat("metadata '", key, "': array length ", n, " exceeds what the ", c.remaining(),
                             " bytes left can hold"),
              at);
      if (n > kMaxMetadataValues - c.values)
        c.bad(detail::concat("metadata '", key, "': array length ", n, " takes the file past kiln's limit of ",
                             kMaxMetadataValues, " metadata values"),
              at);
      c.values += n;
      v.arr.reserve(size_t(n));
      for (uint64_t k = 0; k < n; ++k) v.arr.push_back(read_value(c, v.elem, depth + 1, key));
      break;
    }
  }
  return v;
}

}  // namespace

bool ggml_type_info(uint32_t id, DTypeTraits& out, bool& supported) {
  for (const Row& r : kTypes) {
    if (r.id == id) {
      out = r.t;
      supported = r.supported;
      return true;
    }
  }
  return false;
}

const char* supported_weight_types() { return "F32, F16, BF16, Q8_0, Q4_K, Q6_K"; }

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  return valid_type(uint32_t(t)) ? names[uint32_t(t)] : "?";
}

// ---- GgufValue ---------------------------------------------------------------------------

bool GgufValue::is_int() const {
  switch (type) {
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64:
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64: return true;
    default: return false;
  }
}
static bool is_signed(GgufType t) {
  return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}
uint64_t GgufValue::as_u64() const {
  if (!is_int()) fail("expected an integer value, found ", gguf_type_name(type));
  if (is_signed(type)) {
    if (i < 0) fail("expected a non-negative integer, found ", i);
    return uint64_t(i);
  }
  return u;
}
int64_t GgufValue::as_i64() const {
  if (!is_int()) fail("expected an integer value, found ", gguf_type_name(type));
  if (is_signed(type)) return i;
  if (u > uint64_t(std::numeric_limits<int64_t>::max())) fail("integer ", u, " out of range");
  return int64_t(u);
}
double GgufValue::as_f64() const {
  if (is_float()) return f;
  if (is_int()) return is_signed(type) ? double(i) : double(u);
  fail("expected a number, found ", gguf_type_name(type));
}
bool GgufValue::as_bool() const {
  if (type != GgufType::BOOL) fail("expected a bool, found ", gguf_type_name(type));
  return u != 0;
}
const std::string& GgufValue::as_string() const {
  if (type != GgufType::STRING) fail("expected a string, found ", gguf_type_name(type));
  return str;
}
std::string GgufValue::to_string(size_t max_elems) const {
  switch (type) {
    case GgufType::STRING: return "'" + str + "'";
    case GgufType::BOOL: return u ? "true" : "false";
    case GgufType::F32: case GgufType::F64: {
      char b[64];
      snprintf(b, sizeof b, "%g", f);
      return b;
    }
    case GgufType::ARRAY: {
      std::string s = "[";
      for (size_t k = 0; k < arr.size() && k < max_elems; ++k) s += (k ? ", " : "") + arr[k].to_string(max_elems);
      if (arr.size() > max_elems) s += detail::concat(", ... (", arr.size(), " items)");
      return s + "]";
    }
    default: return is_signed(type) ? std::to_string(i) : std::to_string(u);
  }
}
GgufValue GgufValue::u32(uint32_t v) { GgufValue x; x.type = GgufType::U32; x.u = v; return x; }
GgufValue GgufValue::u64(uint64_t v) { GgufValue x; x.type = GgufType::U64; x.u = v; return x; }
GgufValue GgufValue::i32(int32_t v) { GgufValue x; x.type = GgufType::I32; x.i = v; return x; }
GgufValue GgufValue::f32(float v) { GgufValue x; x.type = GgufType::F32; x.f = v; return x; }
GgufValue GgufValue::boolean(bool v) { GgufValue x; x.type = GgufType::BOOL; x.u = v; return x; }
GgufValue GgufValue::string(std::string v) { GgufValue x; x.type = GgufType::STRING; x.str = std::move(v); return x; }
GgufValue GgufValue::array(GgufType elem, std::vector<GgufValue> items) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = elem;
  for (const GgufValue& it : items)
    if (it.type != elem) fail("GGUF array of ", gguf_type_name(elem), " given a ", gguf_type_name(it.type), " item");
  x.arr = std::move(items);
  return x;
}

std::string GgufTensor::shape_string() const {
  std::string s = "[";
  for (size_t k = 0; k < ne.size(); ++k) s += (k ? ", " : "") + std::to_string(ne[k]);
  return s + "]";
}

// ---- GgufFile ----------------------------------------------------------------------------

GgufFile GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open (", strerror(errno), ")");
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail(path, ": cannot stat (", strerror(e), ")");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  GgufFile f;
  f.path_ = path;
  f.size_ = size_t(st.st_size);
  if (f.size_ > 0) {
    void* p = mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      fail(path, ": cannot mmap (", strerror(e), ")");
    }
    f.base_ = static_cast<const uint8_t*>(p);
    f.mapped_ = true;
  }
  ::close(fd);
  f.parse_all();
  return f;
}

GgufFile GgufFile::parse(const uint8_t* bytes, size_t size, const std::string& name) {
  GgufFile f;
  f.path_ = name;
  f.base_ = bytes;
  f.size_ = size;
  f.parse_all();
  return f;
}

GgufFile::GgufFile(GgufFile&& o) noexcept { *this = std::move(o); }
GgufFile& GgufFile::operator=(GgufFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, false);
    version_ = o.version_;
    alignment_ = o.alignment_;
    data_offset_ = o.data_offset_;
    kv_ = std::move(o.kv_);
    kv_index_ = std::move(o.kv_index_);
    tensors_ = std::move(o.tensors_);
    tensor_index_ = std::move(o.tensor_index_);
  }
  return *this;
}
GgufFile::~GgufFile() { release(); }
void GgufFile::release() {
  if (mapped_ && base_) munmap(const_cast<uint8_t*>(base_), size_);
  base_ = nullptr;
  mapped_ = false;
}

void GgufFile::parse_all() {
  Cursor c(base_, size_, path_);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) c.bad(detail::concat("bad magic 0x", std::hex, magic, std::dec, ": not a GGUF file"), 0);
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3)
    c.bad(detail::concat("unsupported GGUF version ", version_, " (kiln reads versions 2 and 3)"), 4);
  const size_t at_counts = c.pos();
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // A key-value pair takes at least 12 bytes, a tensor info at least 24.
  if (n_kv > c.remaining() / 12)
    c.bad(detail::concat("metadata count ", n_kv, " exceeds what the file can hold"), at_counts + 8);
  if (n_tensors > c.remaining() / 24)
    c.bad(detail::concat("tensor count ", n_tensors, " exceeds what the file can hold"), at_counts);
  if (n_tensors > kMaxTensors)
    c.bad(detail::concat("tensor count ", n_tensors, " exceeds kiln's limit of ", kMaxTensors), at_counts);
  if (n_kv > kMaxMetadataValues)
    c.bad(detail::concat("metadata count ", n_kv, " exceeds kiln's limit of ", kMaxMetadataValues), at_counts + 8);
  c.values = n_kv;

  kv_.reserve(size_t(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    const size_t at = c.pos();
    std::string key = c.read_string("metadata key");
    if (key.empty()) c.bad(detail::concat("metadata entry ", k, " has an empty key"), at);
    const size_t at_type = c.pos();
    const uint32_t t = c.read<uint32_t>("metadata value type");
    if (!valid_type(t)) c.bad(detail::concat("metadata '", key, "': unknown value type ", t), at_type);
    GgufValue v = read_value(c, GgufType(t), 0, key);
    if (kv_index_.count(key)) c.bad(detail::concat("duplicate metadata key '", key, "'"), at);
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::U32) fail(path_, ": general.alignment must be u32, found ", gguf_type_name(a->type));
    alignment_ = a->u;
    if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ > (1u << 20))
      fail(path_, ": general.alignment ", alignment_, " is not a power of two in [1, 2^20]");
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const size_t at = c.pos();
    GgufTensor t;
    t.name = c.read_string("tensor name");
    if (t.name.empty() || t.name.size() > kMaxNameLen)
      c.bad(detail::concat("tensor ", k, " has an empty or over-long name (", t.name.size(), " bytes)"), at);
    const uint32_t nd = c.read<uint32_t>("tensor dimension count");
    if (nd < 1 || nd > kMaxDims)
      c.bad(detail::concat("tensor '", t.name, "': ", nd, " dimensions (1 to ", kMaxDims, " allowed)"), at);
    int64_t nel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t n = c.read<uint64_t>("tensor dimension");
      if (n == 0 || n > (uint64_t(1) << 40))
        c.bad(detail::concat("tensor '", t.name, "': dimension ", d, " is ", n, " (must be 1 to 2^40)"), at);
      if (nel > std::numeric_limits<int64_t>::max() / int64_t(n))
        c.bad(detail::concat("tensor '", t.name, "': element count overflows 64 bits"), at);
      nel *= int64_t(n);
      t.ne.push_back(int64_t(n));
    }
    t.nelements = nel;
    const size_t at_type = c.pos();
    const uint32_t type_id = c.read<uint32_t>("tensor type");
    DTypeTraits tr{};
    bool supported = false;
    if (!ggml_type_info(type_id, tr, supported))
      c.bad(detail::concat("tensor '", t.name, "': unknown tensor type id ", type_id), at_type);
    if (!supported)
      c.bad(detail::concat("tensor '", t.name, "': unsupported tensor type ", tr.name, " (kiln supports ",
                           supported_weight_types(), ")"),
            at_type);
    t.type = DType(type_id);
    if (t.ne[0] % tr.block_elems != 0)
      c.bad(detail::concat("tensor '", t.name, "': row length ", t.ne[0], " is not a multiple of the ", tr.name,
                           " block size ", tr.block_elems),
            at);
    const uint64_t blocks = uint64_t(nel) / uint64_t(tr.block_elems);
    if (blocks > std::numeric_limits<uint64_t>::max() / uint64_t(tr.block_bytes))
      c.bad(detail::concat("tensor '", t.name, "': byte size overflows 64 bits"), at);
    t.nbytes = blocks * uint64_t(tr.block_bytes);
    t.offset = c.read<uint64_t>("tensor data offset");
    if (t.offset % alignment_ != 0)
      c.bad(detail::concat("tensor '", t.name, "': data offset ", t.offset, " is not a multiple of the alignment ",
                           alignment_),
            at);
    if (tensor_index_.count(t.name)) c.bad(detail::concat("duplicate tensor name '", t.name, "'"), at);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  data_offset_ = (uint64_t(c.pos()) + alignment_ - 1) / alignment_ * alignment_;
  if (!tensors_.empty() && data_offset_ > size_)
    fail(path_, ": truncated file: the data section would start at byte ", data_offset_, " of ", size_);
  const uint64_t data_size = size_ >= data_offset_ ? size_ - data_offset_ : 0;
  for (GgufTensor& t : tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail(path_, ": tensor '", t.name, "': data [", t.offset, ", ", t.offset + t.nbytes,
           ") lies outside the data section of ", data_size, " bytes (truncated file?)");
    t.data = base_ + data_offset_ + t.offset;
  }
  // Tensors must not overlap: aliasing data would let one tensor's bytes masquerade as another's.
  std::vector<const GgufTensor*> order;
  for (const GgufTensor& t : tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k)
    if (order[k - 1]->offset + order[k - 1]->nbytes > order[k]->offset)
      fail(path_, ": tensors '", order[k - 1]->name, "' and '", order[k]->name, "' overlap in the data section");
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}
const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(path_, ": missing metadata key '", key, "'");
  return *v;
}
uint32_t GgufFile::get_u32(const std::string& key) const {
  const GgufValue& v = get(key);
  uint64_t x = 0;
  try {
    x = v.as_u64();
  } catch (const Error& e) {
    fail(path_, ": metadata '", key, "': ", e.what());
  }
  if (x > 0xffffffffu) fail(path_, ": metadata '", key, "' = ", x, " does not fit in 32 bits");
  return uint32_t(x);
}
uint32_t GgufFile::get_u32(const std::string& key, uint32_t fallback) const {
  return find(key) ? get_u32(key) : fallback;
}
float GgufFile::get_f32(const std::string& key, float fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  try {
    return float(v->as_f64());
  } catch (const Error& e) {
    fail(path_, ": metadata '", key, "': ", e.what());
  }
}
const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}
const GgufTensor& GgufFile::tensor(const std::string& name) const {
  const GgufTensor* t = find_tensor(name);
  if (!t) fail(path_, ": missing tensor '", name, "'");
  return *t;
}

// ---- GgufWriter --------------------------------------------------------------------------

namespace {
class Out {
 public:
  explicit Out(const std::string& path) : path_(path), f_(fopen(path.c_str(), "wb")) {
    if (!f_) fail(path, ": cannot create (", strerror(errno), ")");
  }
  ~Out() {
    if (f_) fclose(f_);
  }
  void bytes(const void* p, size_t n) {
    if (n && fwrite(p, 1, n, f_) != n) fail(path_, ": write failed (", strerror(errno), ")");
    pos_ += n;
  }
  template <class T>
  void pod(T v) { bytes(&v, sizeof v); }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad(uint64_t align) {
    static const uint8_t zeros[64] = {};
    while (pos_ % align) bytes(zeros, std::min<uint64_t>(64, align - pos_ % align));
  }
  // Extends the file by n bytes of zeros without writing them (a sparse hole).
  void sparse_extend(uint64_t n) {
    if (fflush(f_) != 0 || ftruncate(fileno(f_), off_t(pos_ + n)) != 0)
      fail(path_, ": cannot extend to ", pos_ + n, " bytes (", strerror(errno), ")");
    pos_ += n;
  }
  void close() {
    if (fclose(f_) != 0) {
      f_ = nullptr;
      fail(path_, ": close failed (", strerror(errno), ")");
    }
    f_ = nullptr;
  }
  uint64_t pos() const { return pos_; }

 private:
  std::string path_;
  FILE* f_;
  uint64_t pos_ = 0;
};

void write_value(Out& o, const GgufValue& v) {
  switch (v.type) {
    case GgufType::U8: o.pod<uint8_t>(uint8_t(v.u)); break;
    case GgufType::I8: o.pod<int8_t>(int8_t(v.i)); break;
    case GgufType::U16: o.pod<uint16_t>(uint16_t(v.u)); break;
    case GgufType::I16: o.pod<int16_t>(int16_t(v.i)); break;
    case GgufType::U32: o.pod<uint32_t>(uint32_t(v.u)); break;
    case GgufType::I32: o.pod<int32_t>(int32_t(v.i)); break;
    case GgufType::U64: o.pod<uint64_t>(v.u); break;
    case GgufType::I64: o.pod<int64_t>(v.i); break;
    case GgufType::F32: o.pod<float>(float(v.f)); break;
    case GgufType::F64: o.pod<double>(v.f); break;
    case GgufType::BOOL: o.pod<uint8_t>(v.u ? 1 : 0); break;
    case GgufType::STRING: o.str(v.str); break;
    case GgufType::ARRAY:
      o.pod<uint32_t>(uint32_t(v.elem));
      o.pod<uint64_t>(v.arr.size());
      for (const GgufValue& e : v.arr) write_value(o, e);
      break;
  }
}
}  // namespace

void GgufWriter::set(const std::string& key, GgufValue v) {
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}

void GgufWriter::add_tensor(const std::string& name, DType type, std::vector<int64_t> ne, Fill fill) {
  for (const Pending& p : tensors_)
    KILN_REQUIRE(p.info.name != name, "GgufWriter: duplicate tensor '", name, "'");
  KILN_REQUIRE(!ne.empty() && ne.size() <= size_t(kMaxDims), "GgufWriter: tensor '", name, "' has ", ne.size(),
               " dimensions");
  const DTypeTraits tr = dtype_traits(type);
  KILN_REQUIRE(ne[0] % tr.block_elems == 0, "GgufWriter: tensor '", name, "' row length ", ne[0],
               " is not a multiple of the ", tr.name, " block size");
  Pending p;
  p.info.name = name;
  p.info.type = type;
  p.info.nelements = 1;
  for (int64_t n : ne) {
    KILN_REQUIRE(n > 0, "GgufWriter: tensor '", name, "' has a non-positive dimension");
    p.info.nelements *= n;
  }
  p.info.ne = std::move(ne);
  p.info.nbytes = uint64_t(p.info.nelements / tr.block_elems) * uint64_t(tr.block_bytes);
  p.fill = std::move(fill);
  tensors_.push_back(std::move(p));
}

void GgufWriter::add_tensor(const std::string& name, DType type, std::vector<int64_t> ne, const void* data) {
  const int bb = dtype_traits(type).block_bytes;
  const auto* src = static_cast<const uint8_t*>(data);
  add_tensor(name, type, std::move(ne), [src, bb](uint64_t b0, uint64_t nb, uint8_t* dst) {
    memcpy(dst, src + b0 * uint64_t(bb), size_t(nb * uint64_t(bb)));
  });
}

void GgufWriter::write(const std::string& path, uint64_t alignment,
                       const std::function<void(uint64_t, uint64_t)>& progress, bool with_data) const {
  KILN_REQUIRE(alignment && (alignment & (alignment - 1)) == 0, "GgufWriter: alignment ", alignment,
               " is not a power of two");
  const std::string tmp = path + ".tmp";
  {
    Out o(tmp);
    o.pod<uint32_t>(kMagic);
    o.pod<uint32_t>(3);
    o.pod<uint64_t>(tensors_.size());
    const bool has_align = std::any_of(kv_.begin(), kv_.end(), [](auto& kv) { return kv.first == "general.alignment"; });
    o.pod<uint64_t>(kv_.size() + (alignment != 32 && !has_align ? 1 : 0));
    for (const auto& kv : kv_) {
      o.str(kv.first);
      o.pod<uint32_t>(uint32_t(kv.second.type));
      write_value(o, kv.second);
    }
    if (alignment != 32 && !has_align) {
      o.str("general.alignment");
      o.pod<uint32_t>(uint32_t(GgufType::U32));
      o.pod<uint32_t>(uint32_t(alignment));
    }
    uint64_t offset = 0, total = 0;
    for (const Pending& p : tensors_) {
      o.str(p.info.name);
      o.pod<uint32_t>(uint32_t(p.info.ne.size()));
      for (int64_t n : p.info.ne) o.pod<uint64_t>(uint64_t(n));
      o.pod<uint32_t>(uint32_t(p.info.type));
      o.pod<uint64_t>(offset);
      offset += (p.info.nbytes + alignment - 1) / alignment * alignment;
      total += p.info.nbytes;
    }
    o.pad(alignment);
    if (!with_data) {
      o.sparse_extend(offset);
      o.close();
      if (rename(tmp.c_str(), path.c_str()) != 0) fail(path, ": cannot rename from ", tmp, " (", strerror(errno), ")");
      return;
    }
    // Stream each tensor through a bounded buffer (whole blocks, at most ~64 MiB).
    constexpr uint64_t kChunk = 64ull << 20;
    std::vector<uint8_t> buf;
    uint64_t done = 0;
    for (const Pending& p : tensors_) {
      const uint64_t bb = uint64_t(dtype_traits(p.info.type).block_bytes);
      const uint64_t nblocks = p.info.nbytes / bb;
      const uint64_t per = std::max<uint64_t>(1, kChunk / bb);
      for (uint64_t b0 = 0; b0 < nblocks; b0 += per) {
        const uint64_t nb = std::min(per, nblocks - b0);
        buf.resize(size_t(nb * bb));
        p.fill(b0, nb, buf.data());
        o.bytes(buf.data(), buf.size());
        done += buf.size();
        if (progress) progress(done, total);
      }
      o.pad(alignment);
    }
    o.close();
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) fail(path, ": cannot rename from ", tmp, " (", strerror(errno), ")");
}

}  // namespace kiln

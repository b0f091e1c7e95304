// Writes the seed corpus of gguf_fuzz into OUTDIR:
//   - the header (everything before the data section) of kiln's synthetic tiny models
//     (gemma4-tiny, qwen3-tiny) and of a llama variant derived from qwen3-tiny: gguf_fuzz appends a
//     zero data section, so the fuzzer mutates only the bytes the parsers read;
//   - small complete files with every metadata value type, nested arrays, a non-default alignment
//     and one tensor of each supported type (also with an odd size, which gguf_fuzz parses as is,
//     data included);
//   - the header of every GGUF file named after OUTDIR (e.g. ../shared/parity/*.gguf).
//
//   make_seeds OUTDIR [FILE.gguf ...]
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "kernels/common/error.h"
#include "models/gguf.h"
#include "models/synth.h"

namespace {

using namespace kiln;

std::string g_dir;

std::vector<uint8_t> read_all(const std::string& path) {
  std::vector<uint8_t> b;
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) fail(path, ": cannot open");
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) b.insert(b.end(), buf, buf + n);
  fclose(f);
  return b;
}

void write_all(const std::string& name, const uint8_t* p, size_t n) {
  const std::string path = g_dir + "/" + name;
  FILE* f = fopen(path.c_str(), "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) fail(path, ": cannot write");
  printf("seed %-28s %8zu bytes\n", name.c_str(), n);
}

// The part of a GGUF file the parsers read: up to the start of the data section.
void write_header(const std::string& gguf, const std::string& name) {
  const GgufFile f = GgufFile::open(gguf);  // also proves the seed is valid
  const std::vector<uint8_t> b = read_all(gguf);
  write_all(name, b.data(), size_t(f.data_offset()));
}

// A whole small file, twice: as is (even size: gguf_fuzz appends its zero data section) and with
// one trailing byte (odd size: parsed exactly as given, data included).
void write_whole(const std::string& gguf, const std::string& name) {
  (void)GgufFile::open(gguf);
  std::vector<uint8_t> b = read_all(gguf);
  write_all(name, b.data(), b.size());
  b.push_back(0);
  write_all(name + ".odd", b.data(), b.size());
}

// qwen3-tiny renamed to llama: same keys under "llama.", no per-head Q/K norms.
SynthModel llama_tiny() {
  SynthModel m = synth_model("qwen3-tiny", 3);
  for (auto& kv : m.metadata) {
    if (kv.first.rfind("qwen3.", 0) == 0) kv.first = "llama." + kv.first.substr(6);
    if (kv.first == "general.architecture") kv.second = GgufValue::string("llama");
  }
  std::vector<SynthTensor> keep;
  for (SynthTensor& t : m.tensors)
    if (t.name.find("attn_q_norm") == std::string::npos && t.name.find("attn_k_norm") == std::string::npos)
      keep.push_back(std::move(t));
  m.tensors = std::move(keep);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: make_seeds OUTDIR [FILE.gguf ...]\n");
    return 2;
  }
  g_dir = argv[1];
  mkdir(g_dir.c_str(), 0755);
  const std::string tmp = g_dir + "/.tmp.gguf";
  try {
    for (const char* preset : {"gemma4-tiny", "qwen3-tiny"}) {
      synth_write(synth_model(preset, 1), tmp, {}, /*with_data=*/false);
      write_header(tmp, std::string(preset) + ".hdr");
    }
    synth_write(llama_tiny(), tmp, {}, false);
    write_header(tmp, "llama-tiny.hdr");

    // Every metadata value type, nested arrays, alignment 64.
    GgufWriter w;
    w.set("general.architecture", GgufValue::string("qwen3"));
    GgufValue v;
    v.type = GgufType::U8; v.u = 7; w.set("u8", v);
    v.type = GgufType::U16; v.u = 65535; w.set("u16", v);
    v.type = GgufType::U64; v.u = ~0ull; w.set("u64", v);
    v = GgufValue(); v.type = GgufType::I8; v.i = -5; w.set("i8", v);
    v.type = GgufType::I16; v.i = -300; w.set("i16", v);
    v.type = GgufType::I64; v.i = -(1ll << 40); w.set("i64", v);
    v = GgufValue(); v.type = GgufType::F64; v.f = 1e-300; w.set("f64", v);
    w.set("i32", GgufValue::i32(-1));
    w.set("f32", GgufValue::f32(0.5f));
    w.set("bool", GgufValue::boolean(true));
    w.set("str", GgufValue::string("hello"));
    w.set("strs", GgufValue::array(GgufType::STRING, {GgufValue::string("a"), GgufValue::string("")}));
    w.set("nested", GgufValue::array(GgufType::ARRAY, {GgufValue::array(GgufType::U32, {GgufValue::u32(1)}),
                                                        GgufValue::array(GgufType::U32, {})}));
    std::vector<uint8_t> bytes(4096);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 37 + 11);
    w.add_tensor("f32", DType::F32, {8, 2}, bytes.data());
    w.add_tensor("f16", DType::F16, {8}, bytes.data());
    w.add_tensor("bf16", DType::BF16, {4, 2}, bytes.data());
    w.add_tensor("q8_0", DType::Q8_0, {32, 2}, bytes.data());
    w.add_tensor("q4_k", DType::Q4_K, {256}, bytes.data());
    w.add_tensor("q6_k", DType::Q6_K, {256}, bytes.data());
    w.write(tmp, 64);
    write_whole(tmp, "types.gguf");

    // The smallest valid files: empty, and one tensor.
    GgufWriter e;
    e.write(tmp);
    write_whole(tmp, "empty.gguf");
    GgufWriter one;
    one.add_tensor("token_embd.weight", DType::F32, {4, 2}, bytes.data());
    one.write(tmp);
    write_whole(tmp, "one.gguf");

    for (int i = 2; i < argc; ++i) {
      std::string base = argv[i];
      base = base.substr(base.find_last_of('/') + 1);
      write_header(argv[i], base + ".hdr");
    }
  } catch (const std::exception& ex) {
    fprintf(stderr, "make_seeds: %s\n", ex.what());
    std::remove(tmp.c_str());
    return 1;
  }
  std::remove(tmp.c_str());
  return 0;
}

// kiln inspect FILE.gguf: validate as loading would, then print config, tensors, decode bytes.
#include <cstdio>

#include "models/config.h"
#include "models/gguf.h"
#include "runner/cli.h"

namespace kiln {

int cli_inspect(int argc, char** argv) {
  Args args(argc, argv, 1);
  const bool all_kv = args.flag("--metadata");
  const std::vector<std::string> pos = args.positional();
  args.finish();
  if (pos.size() != 1) throw UsageError{"expected exactly one FILE.gguf"};

  const GgufFile f = GgufFile::open(pos[0]);
  const ModelConfig c = parse_config(f);  // throws on anything a forward pass could not use

  printf("file %s: GGUF v%u, %zu metadata keys, %zu tensors, alignment %llu, %zu bytes\n", f.path().c_str(),
         f.version(), f.metadata().size(), f.tensors().size(), (unsigned long long)f.alignment(), f.file_size());
  printf("%s", c.summary().c_str());
  if (all_kv) {
    printf("\nmetadata:\n");
    for (const auto& kv : f.metadata())
      printf("  %-50s %-6s %s\n", kv.first.c_str(), gguf_type_name(kv.second.type), kv.second.to_string().c_str());
  }
  printf("\n%-36s %-5s %-16s %14s\n", "tensor", "type", "shape", "bytes");
  uint64_t total = 0;
  for (const GgufTensor& t : f.tensors()) {
    printf("%-36s %-5s %-16s %14llu\n", t.name.c_str(), dtype_name(t.type), t.shape_string().c_str(),
           (unsigned long long)t.nbytes);
    total += t.nbytes;
  }
  const uint64_t per_token = decode_weight_bytes(f, c);
  printf("\ntensor bytes: %llu (%.3f GB)\n", (unsigned long long)total, double(total) / 1e9);
  printf("weight bytes read per decode token: %llu (%.3f GB)\n", (unsigned long long)per_token,
         double(per_token) / 1e9);
  return kExitOk;
}

}  // namespace kiln

#include "runner/skip_ops.h"

#include "kernels/common/error.h"

namespace kiln {

const std::set<std::string>& runner_op_names() {
  static const std::set<std::string> names = {
      "attention_decode", "attention_prefill", "embed",          "gelu_tanh_mul",  "gelu_tanh_mul_strided",
      "gemm_n_f",         "gemm_n_q8_1",       "gemm_n_q8_1_multi", "gemm_n_tc",     "head_norm_dual",
      "ple_proj_norm",    "quantize_q8_1",     "rmsnorm",         "silu_mul",       "softcap_argmax"};
  return names;
}

std::set<std::string> parse_skip_ops(const char* spec) {
  std::set<std::string> out;
  if (!spec) return out;
  const std::string s(spec);
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    const std::string name = s.substr(b, e - b);
    if (!name.empty()) {
      if (!runner_op_names().count(name)) {
        std::string all;
        for (const auto& n : runner_op_names()) all += (all.empty() ? "" : ", ") + n;
        fail("KILN_SKIP_OPS: unknown op '", name, "' (ops: ", all, ")");
      }
      out.insert(name);
    }
    b = e + 1;
  }
  return out;
}

}  // namespace kiln

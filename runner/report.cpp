#include "runner/report.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <vector>

namespace kiln {

static void print_split(const char* title, const std::vector<KernelTime>& kernels) {
  if (kernels.empty()) return;
  double total = 0;
  for (const KernelTime& k : kernels) total += k.us;
  printf("\n  %s:\n", title);
  printf("  %-28s %9s %11s %7s\n", "kernel", "launches", "us", "%");
  std::vector<KernelTime> sorted = kernels;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.us > b.us; });
  for (const KernelTime& k : sorted)
    printf("  %-28s %9d %11.1f %7.1f\n", k.name.c_str(), k.launches, k.us, total > 0 ? 100 * k.us / total : 0);
  printf("  %-28s %9s %11.1f\n", "total", "", total);
}

static std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (c == '\n') { o += "\\n"; continue; }
    o += c;
  }
  return o;
}

static void json_split(std::ostringstream& o, const char* key, const std::vector<KernelTime>& kernels) {
  o << ",\n  \"" << key << "\": [";
  for (size_t i = 0; i < kernels.size(); ++i)
    o << (i ? "," : "") << "\n    {\"name\": \"" << esc(kernels[i].name) << "\", \"launches\": " << kernels[i].launches
      << ", \"us\": " << kernels[i].us << "}";
  o << (kernels.empty() ? "" : "\n  ") << "]";
}

void RunReport::print() const {
  printf("\nkiln run: %s on %s (%s)\n", model.c_str(), device.c_str(), backend.c_str());
  printf("  %-36s %14s\n", "metric", "value");
  auto row = [](const char* k, const char* fmt, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    printf("  %-36s %14s\n", k, buf);
  };
  row("prompt tokens", "%.0f", prompt_tokens);
  row("prefill tok/s", "%.1f", prefill_tps());
  row("generated tokens", "%.0f", gen_tokens);
  row("decode tok/s", "%.2f", decode_tps());
  row("weight bytes / decode token", "%.0f", weight_bytes_per_token);
  row("KV bytes / decode token (mean)", "%.0f", kv_bytes_per_token);
  row("achieved GB/s (decode)", "%.2f", achieved_gbs());
  row("measured copy GB/s", "%.1f", copy_gbs);
  row("% of copy bandwidth", "%.1f", pct_of_copy());
  row("graph launches / token", "%.2f", graph_launches_per_token);
  row("kernel launches / token", "%.1f", kernel_launches_per_token);
  row("host us / token", "%.1f", host_us_per_token);
  print_split("one decode step, per kernel (direct launches, CUDA events)", kernels);
  print_split("prefill of the prompt, per kernel (CUDA events)", prefill_kernels);
  if (!generated.empty()) {
    printf("\n  generated:");
    for (size_t i = 0; i < generated.size() && i < 16; ++i) printf(" %d", generated[i]);
    if (generated.size() > 16) printf(" ...");
    printf("\n");
  }
  for (const auto& n : notes) printf("  note: %s: %s\n", n.first.c_str(), n.second.c_str());
}

std::string RunReport::json() const {
  std::ostringstream o;
  o.precision(10);
  o << "{\n  \"backend\": \"" << esc(backend) << "\",\n  \"device\": \"" << esc(device) << "\",\n  \"model\": \""
    << esc(model) << "\",\n  \"arch\": \"" << esc(arch) << "\",\n  \"prompt_tokens\": " << prompt_tokens
    << ",\n  \"gen_tokens\": " << gen_tokens << ",\n  \"prefill_tok_per_s\": " << prefill_tps()
    << ",\n  \"decode_tok_per_s\": " << decode_tps() << ",\n  \"weight_bytes_per_token\": " << weight_bytes_per_token
    << ",\n  \"kv_bytes_per_token\": " << kv_bytes_per_token << ",\n  \"achieved_gb_per_s\": " << achieved_gbs()
    << ",\n  \"copy_gb_per_s\": " << copy_gbs << ",\n  \"pct_of_copy\": " << pct_of_copy()
    << ",\n  \"cuda_graph\": " << (cuda_graph ? "true" : "false")
    << ",\n  \"graph_launches_per_token\": " << graph_launches_per_token
    << ",\n  \"kernel_launches_per_token\": " << kernel_launches_per_token
    << ",\n  \"host_us_per_token\": " << host_us_per_token;
  json_split(o, "kernels", kernels);
  json_split(o, "prefill_kernels", prefill_kernels);
  o << ",\n  \"generated\": [";
  for (size_t i = 0; i < generated.size(); ++i) o << (i ? ", " : "") << generated[i];
  o << "]\n}\n";
  return o.str();
}

double measure_host_copy_gbs() {
  const size_t n = size_t(256) << 20;
  std::vector<char> a(n, 1), b(n, 2);
  double best = 0;
  for (int i = 0; i < 4; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    memcpy(b.data(), a.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * double(n) / s / 1e9);
    a[size_t(i)] = b[size_t(n - 1 - size_t(i))];  // keep the copies observable
  }
  return best;
}

}  // namespace kiln

// kiln probe: the device ceilings every benchmark and `kiln run` report against.
#include <cstdio>

#include "kernels/common/device.cuh"
#include "kernels/probe.cuh"
#include "runner/cli.h"

namespace kiln {

int cli_probe(int argc, char** argv) {
  Args args(argc, argv, 1);
  const size_t mib = size_t(Args::to_int("--mib", args.value("--mib", "1024"), 64, 1 << 16));
  const bool gemm = !args.flag("--no-gemm");
  args.finish();
  const int n = cuda_device_count();
  if (n == 0) fail("no CUDA device found (kiln probe measures a GPU)");
  const DeviceProps p = device_props(0);
  Stream s;
  const Ceilings c = measure_ceilings(mib << 20, s, gemm);
  printf("device        %s (sm_%d%d)\n", p.name.c_str(), p.cc_major, p.cc_minor);
  printf("SMs           %d\n", p.sm_count);
  printf("L2            %.1f MB\n", double(p.l2_bytes) / 1e6);
  printf("memory        %.1f GB, bus %d bits, memory clock %.0f MHz\n", double(p.global_mem_bytes) / 1e9,
         p.bus_width_bits, p.mem_clock_khz / 1e3);
  printf("copy          %.1f GB/s (device-to-device, bytes read + written, %zu MiB buffers)\n", c.copy_gbs, mib);
  printf("read          %.1f GB/s (read-only sum)\n", c.read_gbs);
  if (gemm) printf("bf16 gemm     %.1f TFLOP/s (cuBLAS, 8192^3, FP32 accumulate)\n", c.bf16_tflops);
  return kExitOk;
}

}  // namespace kiln

// kiln device layer: CUDA error checks, RAII device memory, non-owning views, streams/events,
// a scratch arena and the device-properties probe. Nothing here synchronizes implicitly: every
// copy helper takes a stream and is asynchronous; callers decide where to wait.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "error.h"

// Throws kiln::Error("file:line: CUDA error <name> (<string>) in <expr>") when a runtime call fails.
// The runtime's last-error slot is cleared first, so a reported (non-sticky) error is not reported
// again by the next unrelated check.
#define KILN_CUDA_CHECK(expr)                                                                \
  do {                                                                                       \
    cudaError_t kiln_err_ = (expr);                                                          \
    if (kiln_err_ != cudaSuccess) {                                                          \
      cudaGetLastError();                                                                    \
      ::kiln::fail(__FILE__, ":", __LINE__, ": CUDA error ", cudaGetErrorName(kiln_err_),   \
                   " (", cudaGetErrorString(kiln_err_), ") in ", #expr);                     \
    }                                                                                        \
  } while (0)

// Checks the launch just issued (configuration errors); does not wait for the kernel.
#define KILN_CUDA_CHECK_LAUNCH() KILN_CUDA_CHECK(cudaGetLastError())

namespace kiln {

// Non-owning view of `count` elements at `ptr` (device memory). Slicing never copies.
template <class T>
struct View {
  T* ptr = nullptr;
  size_t count = 0;

  View() = default;
  View(T* p, size_t n) : ptr(p), count(n) {}
  template <class U, class = std::enable_if_t<std::is_convertible<U*, T*>::value>>
  View(const View<U>& o) : ptr(o.ptr), count(o.count) {}

  // Elements [offset, offset + n); bounds-checked on the host.
  View slice(size_t offset, size_t n) const {
    KILN_REQUIRE(offset <= count && n <= count - offset, "View::slice(", offset, ", ", n,
                 ") out of range of ", count, " elements");
    return View(ptr + offset, n);
  }
  size_t bytes() const { return count * sizeof(T); }
  T* data() const { return ptr; }
};

// Owning device allocation (cudaMalloc). Move-only. Allocation happens only at construction,
// never during capture: the runner sizes everything at load.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count) KILN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), count * sizeof(T)));
  }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void reset() {
    if (ptr_) cudaFree(ptr_);  // error ignored: destructors must not throw
    ptr_ = nullptr;
    count_ = 0;
  }
  T* data() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }
  View<T> view() const { return View<T>(ptr_, count_); }
  operator View<T>() const { return view(); }
  operator View<const T>() const { return View<const T>(ptr_, count_); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Asynchronous host<->device copies on a stream (host memory must stay alive until the stream
// reaches the copy; pinned memory makes them truly asynchronous).
template <class T>
void copy_to_device(View<T> dst, const T* src, size_t n, cudaStream_t s) {
  KILN_REQUIRE(n <= dst.count, "copy_to_device: ", n, " elements into a view of ", dst.count);
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst.ptr, src, n * sizeof(T), cudaMemcpyHostToDevice, s));
}
template <class T>
void copy_to_host(T* dst, View<const T> src, size_t n, cudaStream_t s) {
  KILN_REQUIRE(n <= src.count, "copy_to_host: ", n, " elements from a view of ", src.count);
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src.ptr, n * sizeof(T), cudaMemcpyDeviceToHost, s));
}

// RAII stream (non-blocking with respect to the legacy default stream).
class Stream {
 public:
  Stream() { KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (s_) cudaStreamDestroy(s_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  operator cudaStream_t() const { return s_; }
  void sync() const { KILN_CUDA_CHECK(cudaStreamSynchronize(s_)); }  // explicit, never implied

 private:
  cudaStream_t s_ = nullptr;
};

// RAII event for timing.
class Event {
 public:
  Event() { KILN_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() {
    if (e_) cudaEventDestroy(e_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s) { KILN_CUDA_CHECK(cudaEventRecord(e_, s)); }
  void sync() const { KILN_CUDA_CHECK(cudaEventSynchronize(e_)); }
  cudaEvent_t get() const { return e_; }
  // Milliseconds from `start` to this event (both must have completed).
  float ms_since(const Event& start) const {
    float ms = 0;
    KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
    return ms;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

// Bump allocator over one device allocation made up front. take<T>(n) hands out aligned views;
// it never calls cudaMalloc, so it is safe while a stream is being captured. Overflow throws
// with the sizes, which means the arena was sized wrong at load.
class Arena {
 public:
  static constexpr size_t kAlign = 256;
  Arena() = default;
  explicit Arena(size_t bytes) : buf_(bytes) {}
  template <class T>
  View<T> take(size_t n) {
    const size_t off = (used_ + kAlign - 1) / kAlign * kAlign;
    const size_t need = n * sizeof(T);
    KILN_REQUIRE(off <= buf_.size() && need <= buf_.size() - off, "Arena: request of ", need,
                 " bytes at offset ", off, " exceeds capacity ", buf_.size());
    used_ = off + need;
    return View<T>(reinterpret_cast<T*>(buf_.data() + off), n);
  }
  void reset() { used_ = 0; }
  size_t used() const { return used_; }
  size_t capacity() const { return buf_.size(); }
  // Bytes an arena needs for requests of the given sizes (for sizing at load).
  static size_t round(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

 private:
  DeviceBuffer<uint8_t> buf_;
  size_t used_ = 0;
};

struct DeviceProps {
  int device = -1;
  std::string name;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  size_t l2_bytes = 0;
  size_t global_mem_bytes = 0;
  int clock_khz = 0, mem_clock_khz = 0, bus_width_bits = 0;
};

// Number of CUDA devices; 0 when there is no device or no driver (never throws).
int cuda_device_count();
// Properties of `device` (throws kiln::Error when it does not exist).
DeviceProps device_props(int device = 0);
// SM count of the current device, cached per device: cheap enough for a launch's grid plan
// (device_props calls cudaGetDeviceProperties, ~1 ms -- a prefill's 42 attention launches paid
// 40 ms for it once).
int sm_count();
// Resident CTAs of `kernel` (blocks of `threads`, `smem` dynamic shared memory, opted in by the
// caller) on the current device when launched in clusters of 1, 2 and 4 CTAs along x: blocks
// per SM x SMs, then cudaOccupancyMaxActiveClusters x cluster size (a cluster's CTAs share a
// GPC, so some SMs may stay idle); 0 where a cluster that size cannot run.
std::array<int, 3> resident_ctas_by_cluster(const void* kernel, int threads, size_t smem);

}  // namespace kiln

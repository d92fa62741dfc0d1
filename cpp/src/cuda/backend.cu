// The CUDA backend: the time loops of cuda/recurrent.h over a CUDA device. Element-wise kernels
// (cuda/steps.h) run one thread per element; GEMMs go to cuBLAS; memory comes from the
// stream-ordered allocator (cudaMallocAsync), so a call allocates without synchronising.
//
// Streams: each call runs on one of two internal streams per device (taken in turn, each with
// its own cuBLAS handle), ordered after the caller's stream by an event and with the caller's
// stream ordered after it by another: results are ready in the caller's stream order, and the
// host does not wait for the GPU. Calls from one caller stream therefore run one after
// another; calls from two caller streams (e.g. the two directions of a bidirectional layer,
// each issued under its own CuPy stream) run on different internal streams and overlap.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/recurrent.h"
#include "cuda/runtime_info.h"
#include "rnnkit/backend.h"

namespace rnnkit::cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " +
                             cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": " +
                             cublasGetStatusString(status));
}

constexpr int kStreamsPerDevice = 2;

struct Slot {
  std::mutex busy;  // one call enqueues on a slot at a time (cuBLAS handles are not shared)
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cudaEvent_t entered = nullptr, done = nullptr;
};

struct DeviceSlots {
  Slot slots[kStreamsPerDevice];
  std::atomic<unsigned> next{0};  // calls from several host threads take slots in turn
  bool ready = false;
};

// The slots of every device, created on a device's first call; they live as long as the
// process (destroying streams at exit races with the runtime's own teardown).
DeviceSlots& slots_of(int device) {
  static std::mutex guard;
  static std::vector<std::unique_ptr<DeviceSlots>> all;
  std::lock_guard<std::mutex> lock(guard);
  if (device < 0) throw std::invalid_argument("CUDA device ordinal must be >= 0");
  if (size_t(device) >= all.size()) all.resize(size_t(device) + 1);
  if (!all[device]) all[device] = std::make_unique<DeviceSlots>();
  DeviceSlots& d = *all[device];
  if (!d.ready) {
    for (Slot& s : d.slots) {
      check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
      check(cublasCreate(&s.blas), "cublasCreate");
      check(cublasSetStream(s.blas, s.stream), "cublasSetStream");
      // float32 stays float32: no TF32 tensor-core rounding (the parity tests hold float32 to
      // 1e-5 of the float64 reference)
      check(cublasSetMathMode(s.blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
      check(cudaEventCreateWithFlags(&s.entered, cudaEventDisableTiming), "cudaEventCreate");
      check(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate");
    }
    d.ready = true;
  }
  return d;
}

// Restores the caller's current device (CuPy keeps its own notion of it).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

template <class F>
__global__ void each_element(F f, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) f(i);
}

class CudaDevice {
 public:
  static constexpr const char* kName = "cuda";

  // Device memory released, stream-ordered, on the stream of its last use.
  class Memory {
   public:
    Memory() = default;
    Memory(void* p, cudaStream_t s, int device) : p_(p), stream_(s), device_(device) {}
    Memory(Memory&& o) noexcept { *this = std::move(o); }
    Memory& operator=(Memory&& o) noexcept {
      if (this != &o) {
        release();
        p_ = o.p_;
        stream_ = o.stream_;
        device_ = o.device_;
        o.p_ = nullptr;
      }
      return *this;
    }
    ~Memory() { release(); }
    void* data() const { return p_; }
    void set_stream(cudaStream_t s) { stream_ = s; }

   private:
    void release() {
      if (!p_) return;
      int current = 0;
      cudaGetDevice(&current);
      if (current != device_) cudaSetDevice(device_);
      cudaFreeAsync(p_, stream_);  // no throwing from a destructor; a failure leaks
      if (current != device_) cudaSetDevice(current);
      p_ = nullptr;
    }
    void* p_ = nullptr;
    cudaStream_t stream_ = nullptr;
    int device_ = 0;
  };

  explicit CudaDevice(const CallDesc& call)
      : guard_(call.device),
        device_(call.device),
        caller_(static_cast<cudaStream_t>(call.stream)),
        slots_(slots_of(call.device)) {
    slot_ = &slots_.slots[slots_.next++ % kStreamsPerDevice];
    lock_ = std::unique_lock<std::mutex>(slot_->busy);
    check(cudaEventRecord(slot_->entered, caller_), "cudaEventRecord");
    check(cudaStreamWaitEvent(slot_->stream, slot_->entered, 0), "cudaStreamWaitEvent");
  }
  // the caller's stream waits for everything this call enqueued
  ~CudaDevice() {
    if (cudaEventRecord(slot_->done, slot_->stream) == cudaSuccess)
      cudaStreamWaitEvent(caller_, slot_->done, 0);
  }
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  Memory alloc(size_t bytes) {
    void* p = nullptr;
    if (bytes) check(cudaMallocAsync(&p, bytes, slot_->stream), "cudaMallocAsync");
    return Memory(p, slot_->stream, device_);
  }
  void adopt(Memory& m) { m.set_stream(slot_->stream); }
  void zero(void* p, size_t bytes) {
    if (bytes) check(cudaMemsetAsync(p, 0, bytes, slot_->stream), "cudaMemsetAsync");
  }
  void copy(void* dst, const void* src, size_t bytes) {
    if (bytes)
      check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, slot_->stream),
            "cudaMemcpyAsync");
  }
  // From pageable host memory: the runtime stages the bytes before returning, so the host
  // array may go away right after.
  void upload(void* dst, const void* src, size_t bytes) {
    if (bytes)
      check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, slot_->stream),
            "cudaMemcpyAsync");
  }
  template <class F>
  void for_each(int64_t n, const F& f) {
    if (n <= 0) return;
    constexpr int threads = 256;
    const int64_t blocks = (n + threads - 1) / threads;
    if (blocks > int64_t(0x7fffffff)) throw std::length_error("kernel grid too large");
    each_element<F><<<unsigned(blocks), threads, 0, slot_->stream>>>(f, n);
    check(cudaGetLastError(), "kernel launch");
  }
  void gemm_cm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    check(cublasSgemm_64(slot_->blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                         m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc),
          "cublasSgemm");
  }
  void gemm_cm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* A,
               int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
    check(cublasDgemm_64(slot_->blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                         m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc),
          "cublasDgemm");
  }

 private:
  DeviceGuard guard_;
  int device_;
  cudaStream_t caller_;
  DeviceSlots& slots_;
  Slot* slot_ = nullptr;
  std::unique_lock<std::mutex> lock_;
};

}  // namespace

int device_count(std::string* error) {
  int n = 0;
  const cudaError_t status = cudaGetDeviceCount(&n);
  if (status != cudaSuccess) {
    if (error) *error = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  return n;
}

std::vector<DeviceInfo> devices() {
  std::vector<DeviceInfo> out;
  const int n = device_count(nullptr);
  for (int d = 0; d < n; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) continue;
    out.push_back({d, prop.name, prop.major, prop.minor, size_t(prop.totalGlobalMem)});
  }
  return out;
}

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

int driver_version() {
  int v = 0;
  cudaDriverGetVersion(&v);
  return v;
}

std::string check_device_pointer(const void* p, int device) {
  cudaPointerAttributes attr{};
  const cudaError_t status = cudaPointerGetAttributes(&attr, p);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string("cannot inspect the pointer (") + cudaGetErrorString(status) + ")";
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    return "is not in CUDA device memory (host arrays go to the CPU backend)";
  if (attr.type == cudaMemoryTypeDevice && attr.device != device)
    return "is on device " + std::to_string(attr.device) + ", the call runs on device " +
           std::to_string(device) + " (the device of x)";
  return "";
}

}  // namespace rnnkit::cuda

namespace rnnkit {

const Backend& cuda_backend() {
  static const cuda::DeviceBackend<cuda::CudaDevice> backend;
  return backend;
}

}  // namespace rnnkit

// ISA selection. Compiled for the baseline ISA and without LTO: nothing here may run a vector
// instruction before the CPU check. The chosen table is picked once (at import, from cpuid,
// or by RNNKIT_ISA=scalar|avx2|avx512 in any case) and read by every public call afterwards.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <vector>
#include <cstdlib>
#include <string>

#include "cpu/simd/kernels.h"

namespace rnnkit {
namespace {

struct Tables {
  PointwiseKernels<float> f[3];
  PointwiseKernels<double> d[3];
  bool supported[3] = {true, false, false};

  Tables() {
    fill_scalar_kernels(f[0], d[0]);
#ifdef RNNKIT_HAVE_AVX2
    __builtin_cpu_init();
    // the fill functions only store addresses; the vector code runs only once chosen
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      fill_avx2_kernels(f[1], d[1]);
      supported[1] = true;
    }
#endif
#ifdef RNNKIT_HAVE_AVX512
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
      fill_avx512_kernels(f[2], d[2]);
      supported[2] = true;
    }
#endif
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

Isa best_supported() {
  for (int i = 2; i > 0; --i)
    if (tables().supported[i]) return Isa(i);
  return Isa::Scalar;
}

std::string& environment_note() {
  static std::string note;
  return note;
}

// The environment override asks for an ISA, in any case; an unsupported request falls back down
// the chain avx512 -> avx2 -> scalar rather than failing the import, and an unknown value keeps
// the best supported ISA. Either leaves a note that Python turns into a warning.
Isa initial_isa() {
  const char* env = std::getenv("RNNKIT_ISA");
  if (!env || !*env) return best_supported();
  std::string value(env);
  for (char& ch : value) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  int wanted = -1;
  for (int i = 0; i < 3; ++i)
    if (value == isa_name(Isa(i))) wanted = i;
  if (wanted < 0) {
    environment_note() = "RNNKIT_ISA='" + std::string(env) +
                         "' is not one of scalar, avx2, avx512 (any case); using " +
                         isa_name(best_supported()) + ", the best this CPU supports";
    return best_supported();
  }
  int chosen = wanted;
  while (chosen > 0 && !tables().supported[chosen]) --chosen;
  if (chosen != wanted)
    environment_note() = "RNNKIT_ISA=" + std::string(env) + " is not supported by this CPU or build; using " +
                         isa_name(Isa(chosen)) + " instead";
  return Isa(chosen);
}

std::atomic<int>& active() {
  static std::atomic<int> a{int(initial_isa())};
  return a;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    default: return "scalar";
  }
}

bool isa_supported(Isa isa) { return tables().supported[int(isa)]; }
Isa active_isa() { return Isa(active().load()); }

std::string isa_environment_note() {
  active_isa();  // the note is written when the initial ISA is chosen
  return environment_note();
}

bool set_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  active() = int(isa);
  return true;
}

template <>
const PointwiseKernels<float>& kernels<float>() { return tables().f[active().load()]; }
template <>
const PointwiseKernels<double>& kernels<double>() { return tables().d[active().load()]; }

template <>
const PointwiseKernels<float>& kernels_for<float>(Isa isa) {
  return tables().f[isa_supported(isa) ? int(isa) : 0];
}
template <>
const PointwiseKernels<double>& kernels_for<double>(Isa isa) {
  return tables().d[isa_supported(isa) ? int(isa) : 0];
}

template <typename T>
void elementwise(Elementwise fn, Isa isa, const T* x, T* y, int64_t n) {
  const PointwiseKernels<T>& k = kernels_for<T>(isa);
  auto f = fn == Elementwise::Exp ? k.exp : fn == Elementwise::Sigmoid ? k.sigmoid : k.tanh;
  f(x, y, n);
}
template void elementwise<float>(Elementwise, Isa, const float*, float*, int64_t);
template void elementwise<double>(Elementwise, Isa, const double*, double*, int64_t);

template <typename T>
double fma_peak_gflops(Isa isa, int runs) {
  const PointwiseKernels<T>& k = kernels_for<T>(isa);
  const int threads = get_num_threads();
  // about 2e8 vector FMAs per thread and run: ~50 ms at a few GHz, long enough to time
  const int64_t rounds = int64_t(2e8) / kFmaProbeChains;
  std::vector<T> sink(size_t(threads), T(0));
  double best = 0;
  for (int run = 0; run < runs; ++run) {
    const auto start = std::chrono::steady_clock::now();
    parallel_for(threads, [&](int64_t i) { sink[size_t(i)] += k.fma_loop(rounds); });
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double flops = 2.0 * threads * double(rounds) * kFmaProbeChains * k.pack_width;
    best = std::max(best, flops / seconds * 1e-9);
  }
  volatile T keep = 0;  // the loops' results are used, so they run
  for (T v : sink) keep = keep + v;
  return best;
}
template double fma_peak_gflops<float>(Isa, int);
template double fma_peak_gflops<double>(Isa, int);

}  // namespace rnnkit

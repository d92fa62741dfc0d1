// C++ microbenchmarks per ISA, without Python: whole layers (run_layer) and one step's packed
// recurrent product alone (run_packed_gemm, GFLOP/s):
//   cmake -S . -B build/bench -G Ninja -DRNNKIT_BENCH=ON -Dpybind11_DIR=$(python -m pybind11 --cmakedir)
//   cmake --build build/bench --target bench_step
//   RNNKIT_OPENBLAS=$(python -c "import scipy_openblas32 as s, os; print(os.path.join(s.get_lib_dir(), s.get_library(True)))") \
//     build/bench/bench_step --benchmark_filter=cell:2/   # cell: 0 rnn tanh, 2 lstm, 3 gru; isa: 0 scalar, 1 avx2, 2 avx512
//   build/bench/bench_step --benchmark_filter='run_packed_gemm/.*isa:1'
// Without RNNKIT_OPENBLAS the big GEMMs (input projection, weight gradients) run on the slow
// fallback; the per-step recurrent kernels do not use the BLAS. RNNKIT_THREADS sets threads.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "cpu/simd/kernels.h"
#include "cpu/recurrent.h"
#include "rnnkit/runtime.h"

namespace {

using rnnkit::CellKind;

struct Problem {
  rnnkit::CellSpec spec;
  rnnkit::Dims dims;
  std::vector<float> x, Wx, Wh, b, y, hT, cT, dy;
  rnnkit::LayerInputs<float> in;
  rnnkit::LayerOutputs<float> out;

  Problem(CellKind kind, int64_t T, int64_t B, int64_t I, int64_t H) {
    spec.kind = kind;
    dims = {T, B, I, H};
    const int64_t GH = spec.gates() * H;
    std::mt19937 rng(0);
    std::normal_distribution<float> normal(0.f, 0.05f);
    auto fill = [&](std::vector<float>& v, size_t n) {
      v.resize(n);
      for (auto& e : v) e = normal(rng);
    };
    fill(x, T * B * I);
    fill(Wx, I * GH);
    fill(Wh, H * GH);
    b.assign(GH, 0.f);
    y.resize(T * B * H);
    hT.resize(B * H);
    cT.resize(B * H);
    dy.assign(T * B * H, 1.f);
    in.x = x.data();
    in.Wx = Wx.data();
    in.Wh = Wh.data();
    in.b = b.data();
    out = {y.data(), hT.data(), cT.data()};
  }
};

// args: cell kind, T, B, I, H, ISA, training (forward+backward) or inference
void run_layer(benchmark::State& state) {
  const auto kind = CellKind(state.range(0));
  const auto isa = rnnkit::Isa(state.range(5));
  const bool training = state.range(6);
  if (!rnnkit::set_isa(isa)) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  Problem p(kind, state.range(1), state.range(2), state.range(3), state.range(4));
  const int64_t GH = p.spec.gates() * p.dims.H;
  std::vector<float> dx(p.x.size()), dh0(p.hT.size()), dc0(p.hT.size()), dWx(p.Wx.size()),
      dWh(p.Wh.size()), db(GH);
  for (auto _ : state) {
    if (!training) {
      rnnkit::forward<float>(p.spec, p.dims, p.in, p.out, nullptr);
    } else {
      rnnkit::CpuReserve<float> reserve;
      rnnkit::forward<float>(p.spec, p.dims, p.in, p.out, &reserve);
      rnnkit::LayerGrads<float> g;
      g.dy = p.dy.data();
      g.dx = dx.data();
      g.dh0 = dh0.data();
      g.dc0 = dc0.data();
      g.dWx = dWx.data();
      g.dWh = dWh.data();
      g.db = db.data();
      rnnkit::backward<float>(p.spec, p.dims, p.in, reserve, g);
    }
    benchmark::DoNotOptimize(p.y.data());
  }
  state.SetLabel(std::string(rnnkit::isa_name(isa)) + (training ? " train" : " inference") +
                 " threads=" + std::to_string(rnnkit::get_num_threads()));
}

void shapes(benchmark::internal::Benchmark* b) {
  const std::vector<std::vector<int64_t>> grid = {
      {50, 1, 128, 128}, {50, 32, 128, 256}, {100, 64, 256, 512}, {35, 20, 650, 650}};
  for (int kind : {int(CellKind::Lstm), int(CellKind::Gru), int(CellKind::RnnTanh)})
    for (const auto& s : grid)
      for (int isa : {0, 1, 2})
        for (int training : {0, 1}) b->Args({kind, s[0], s[1], s[2], s[3], isa, training});
  b->ArgNames({"cell", "T", "B", "I", "H", "isa", "train"});
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(run_layer)->Apply(shapes);

// One step's recurrent product alone, as the forward loop runs it: for every tile of
// pack_vectors * pack_width hidden units and every gate block, packed_gemm over K = H for all
// M rows (one thread). args: M rows, H, G gate blocks, ISA. Reports GFLOP/s.
void run_packed_gemm(benchmark::State& state) {
  const int64_t M = state.range(0), H = state.range(1), G = state.range(2);
  const auto isa = rnnkit::Isa(state.range(3));
  if (!rnnkit::set_isa(isa)) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  const rnnkit::PointwiseKernels<float>& k = rnnkit::kernels_for<float>(isa);
  const int64_t span = k.tile_span(), tiles = (H + span - 1) / span;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.f, 0.05f);
  std::vector<float> A(M * H), P(G * tiles * H * span), C(M * G * H);
  for (auto& v : A) v = normal(rng);
  for (auto& v : P) v = normal(rng);
  for (auto _ : state) {
    for (int64_t t = 0; t < tiles; ++t)
      for (int64_t g = 0; g < G; ++g)
        k.packed_gemm(A.data(), H, M, H, P.data() + (g * tiles + t) * H * span,
                      std::min(span, H - t * span), C.data() + g * H + t * span, G * H, false);
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * H * G * H * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(rnnkit::isa_name(isa));
}

void gemm_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t M : {1, 10, 16, 32, 64})
    for (int64_t H : {128, 256, 512, 650})
      for (int isa : {0, 1, 2}) b->Args({M, H, 4, isa});
  b->ArgNames({"M", "H", "G", "isa"});
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(run_packed_gemm)->Apply(gemm_shapes);

}  // namespace

int main(int argc, char** argv) {
  if (const char* path = std::getenv("RNNKIT_OPENBLAS")) {
    std::string error;
    if (!rnnkit::load_blas(path, &error)) std::fprintf(stderr, "OpenBLAS: %s\n", error.c_str());
  }
  if (const char* threads = std::getenv("RNNKIT_THREADS")) rnnkit::set_num_threads(std::atoi(threads));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

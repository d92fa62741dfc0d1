// C++ microbenchmarks of the kernels per ISA, without Python or a benchmark library.
//   cmake -S . -B build/bench -G Ninja -DRNNKIT_BENCH=ON -DCMAKE_BUILD_TYPE=Release \
//         -Dpybind11_DIR=$(python -m pybind11 --cmakedir)
//   cmake --build build/bench --target bench_step
//   build/bench/bench_step packed   # one step's packed recurrent product h @ Wh, every ISA
//   build/bench/bench_step tiles    # the same product with other tile shapes, per SIMD ISA
//   RNNKIT_OPENBLAS=$(python -c "import scipy_openblas32 as s, os; print(os.path.join(s.get_lib_dir(), s.get_library(True)))") \
//     build/bench/bench_step layers # whole layers, ms per call (inference, training), every ISA
// Options after the mode: --threads N (default: the pool's), --repeats N (default 7). Each
// figure is the median of the repeats. Without RNNKIT_OPENBLAS the big GEMMs of `layers` (input
// projection, weight gradients) run on the slow fallback; the per-step products do not use it.
// `packed` and `tiles` run the product on 1 thread and on --threads threads at once (each
// thread its own rows, one shared Wh: how the loop runs when rows split across cores), and
// give GFLOP/s per thread and its share of the per-thread FMA peak (rnnkit::fma_peak_gflops
// on every thread at once / threads).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/recurrent.h"
#include "cpu/simd/kernels.h"
#include "rnnkit/runtime.h"
#include "tile_sweep.h"

// Timing: medians of wall-clock timings, each long enough (>= 20 ms) that the clock's
// resolution does not matter.
namespace bench {

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds per call of body(), over `repeats` timings.
template <class Body>
double median_seconds(Body&& body, int repeats) {
  body();  // warm-up: scratch arenas, the pool, caches
  int64_t iters = 1;
  for (double t0 = now(); now() - t0 < 0.02; iters *= 2)
    for (int64_t i = 0; i < iters; ++i) body();
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now();
    for (int64_t i = 0; i < iters; ++i) body();
    times.push_back((now() - t0) / double(iters));
  }
  std::nth_element(times.begin(), times.begin() + repeats / 2, times.end());
  return times[size_t(repeats / 2)];
}

// Median seconds per call when `threads` threads each call body(thread) at once, in lockstep
// rounds (each round starts when every thread is ready and ends when the slowest is done):
// how a kernel runs when the other cores run the same kernel beside it (shared L3, memory).
template <class Body>
double median_seconds_concurrent(Body&& body, int threads, int repeats) {
  if (threads <= 1) return median_seconds([&] { body(0); }, repeats);
  std::atomic<int> arrived{0};
  std::atomic<int64_t> round{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> others;
  int64_t iters = 1;
  auto run_round = [&](int id, int64_t n) {
    for (int64_t i = 0; i < n; ++i) body(id);
  };
  std::atomic<int64_t> round_iters{0};
  for (int id = 1; id < threads; ++id)
    others.emplace_back([&, id] {
      for (int64_t seen = 0;;) {
        while (round.load() == seen && !stop.load()) std::this_thread::yield();
        if (stop.load()) return;
        seen = round.load();
        run_round(id, round_iters.load());
        arrived.fetch_add(1);
      }
    });
  auto timed_round = [&](int64_t n) {
    arrived.store(0);
    round_iters.store(n);
    const double t0 = now();
    round.fetch_add(1);
    run_round(0, n);
    while (arrived.load() < threads - 1) std::this_thread::yield();
    return (now() - t0) / double(n);
  };
  timed_round(1);  // warm-up
  while (timed_round(iters) * double(iters) < 0.02) iters *= 2;
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) times.push_back(timed_round(iters));
  stop.store(true);
  for (auto& t : others) t.join();
  std::nth_element(times.begin(), times.begin() + repeats / 2, times.end());
  return times[size_t(repeats / 2)];
}

// The operands of one step's product for `threads` threads at once: one shared packed weight
// block P, and per thread its own rows A and outputs C (random normal values).
struct StepOperands {
  std::vector<float> P;
  std::vector<std::vector<float>> A, C;

  StepOperands(size_t p_size, size_t a_size, size_t c_size, int threads)
      : P(p_size), A(static_cast<size_t>(threads)), C(static_cast<size_t>(threads)) {
    std::mt19937 rng(0);
    std::normal_distribution<float> normal(0.f, 0.05f);
    for (auto& v : P) v = normal(rng);
    for (size_t t = 0; t < A.size(); ++t) {
      A[t].resize(a_size);
      for (auto& v : A[t]) v = normal(rng);
      C[t].resize(c_size);
    }
  }
};

}  // namespace bench

namespace {

using rnnkit::CellKind;
using rnnkit::Isa;

const Isa kIsas[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512};

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

// ms per call of one layer, inference (forward) or training (forward + backward)
double layer_ms(CellKind kind, const std::vector<int64_t>& s, bool training, int repeats) {
  Problem p(kind, s[0], s[1], s[2], s[3]);
  const int64_t GH = p.spec.gates() * p.dims.H;
  std::vector<float> dx(p.x.size()), dh0(p.hT.size()), dc0(p.hT.size()), dWx(p.Wx.size()),
      dWh(p.Wh.size()), db(GH);
  return 1e3 * bench::median_seconds(
                   [&] {
                     if (!training) {
                       rnnkit::forward<float>(p.spec, p.dims, p.in, p.out, nullptr);
                       return;
                     }
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
                   },
                   repeats);
}

void layers(int repeats) {
  const std::vector<std::vector<int64_t>> grid = {
      {50, 1, 128, 128}, {50, 32, 128, 256}, {100, 64, 256, 512}, {35, 20, 650, 650}};
  const std::pair<CellKind, const char*> cells[] = {
      {CellKind::Lstm, "lstm"}, {CellKind::Gru, "gru"}, {CellKind::RnnTanh, "rnn"}};
  std::printf("| cell | T x B x I x H | mode | scalar ms | avx2 ms | avx512 ms |\n");
  std::printf("|---|---|---|---:|---:|---:|\n");
  for (const auto& [kind, name] : cells)
    for (const auto& s : grid)
      for (bool training : {false, true}) {
        std::printf("| %s | %ldx%ldx%ldx%ld | %s |", name, long(s[0]), long(s[1]), long(s[2]),
                    long(s[3]), training ? "train" : "inference");
        for (Isa isa : kIsas) {
          if (rnnkit::set_isa(isa)) std::printf(" %.3f |", layer_ms(kind, s, training, repeats));
          else std::printf(" - |");
          std::fflush(stdout);
        }
        std::printf("\n");
      }
}

// GFLOP/s per thread of one LSTM step's packed product as the forward loop runs it: for every
// tile and gate block, packed_gemm over K = H for all M rows.
double packed_gflops(Isa isa, int64_t M, int64_t H, int threads, int repeats) {
  const rnnkit::PointwiseKernels<float>& k = rnnkit::kernels_for<float>(isa);
  const int64_t G = 4, span = k.tile_span(), tiles = (H + span - 1) / span;
  bench::StepOperands op(size_t(G * tiles * H * span), size_t(M * H), size_t(M * G * H), threads);
  auto step = [&](int t) {
    for (int64_t tile = 0; tile < tiles; ++tile)
      for (int64_t g = 0; g < G; ++g)
        k.packed_gemm(op.A[size_t(t)].data(), H, M, H, op.P.data() + (g * tiles + tile) * H * span,
                      std::min(span, H - tile * span), op.C[size_t(t)].data() + g * H + tile * span,
                      G * H, false);
  };
  const double seconds = bench::median_seconds_concurrent(step, threads, repeats);
  return 2.0 * double(M * H * G * H) / seconds * 1e-9;
}

double fma_peak_per_thread(Isa isa, int threads) {
  return rnnkit::fma_peak_gflops<float>(isa, 5) / threads;
}

void packed(int threads, int repeats) {
  std::printf("| ISA | FMA peak per thread | rows M | H | 1 thread GFLOP/s | %d threads, "
              "GFLOP/s per thread | %% of FMA peak |\n|---|---:|---:|---:|---:|---:|---:|\n",
              threads);
  for (Isa isa : kIsas) {
    if (!rnnkit::isa_supported(isa)) continue;
    const double peak = fma_peak_per_thread(isa, threads);
    for (int64_t M : {1, 10, 16, 32})
      for (int64_t H : {128, 256, 512, 650}) {
        const double one = packed_gflops(isa, M, H, 1, repeats);
        const double all = packed_gflops(isa, M, H, threads, repeats);
        std::printf("| %s | %.1f | %ld | %ld | %.1f | %.1f | %.0f%% |\n", rnnkit::isa_name(isa),
                    peak, long(M), long(H), one, all, 100 * all / peak);
        std::fflush(stdout);
      }
  }
}

// GFLOP/s per thread of one LSTM step's product with one tile shape, `threads` threads at once
double tile_gflops(const bench::TileShape& shape, int64_t M, int64_t H, int threads, int repeats) {
  const int64_t span = int64_t(shape.U) * shape.width, G = 4, tiles = (H + span - 1) / span;
  bench::StepOperands op(size_t(G * tiles * H * span), size_t(M * H), size_t(M * G * tiles * span),
                         threads);
  auto step = [&](int t) { shape.run(op.A[size_t(t)].data(), op.P.data(), op.C[size_t(t)].data(), M, H); };
  const double seconds = bench::median_seconds_concurrent(step, threads, repeats);
  return 2.0 * double(M * H * G * H) / seconds * 1e-9;
}

void tiles(int threads, int repeats) {
  std::printf("| ISA | FMA peak per thread | rows M | H | tile R x U | %d threads, GFLOP/s per "
              "thread | %% of FMA peak |\n|---|---:|---:|---:|---|---:|---:|\n", threads);
  const std::pair<Isa, const bench::TileShape*> sweeps[] = {{Isa::Avx2, bench::kAvx2TileShapes},
                                                            {Isa::Avx512, bench::kAvx512TileShapes}};
  for (const auto& [isa, shapes] : sweeps) {
    if (!rnnkit::isa_supported(isa)) continue;
    const double peak = fma_peak_per_thread(isa, threads);
    for (int64_t M : {10, 16})  // a thread's rows at B = 20 and 32 on 2 threads
      for (int64_t H : {256, 650})
        for (const bench::TileShape* s = shapes; s->R > 0; ++s) {
          const double gflops = tile_gflops(*s, M, H, threads, repeats);
          std::printf("| %s | %.1f | %ld | %ld | %d x %d%s | %.1f | %.0f%% |\n",
                      rnnkit::isa_name(isa), peak, long(M), long(H), s->R, s->U,
                      s->used ? " (used)" : "", gflops, 100 * gflops / peak);
          std::fflush(stdout);
        }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  int threads = rnnkit::get_num_threads(), repeats = 7;
  bool known_options = argc % 2 == 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeats")) repeats = std::atoi(argv[i + 1]);
    else known_options = false;
  }
  if (!known_options || threads < 1 || repeats < 1 ||
      (mode != "packed" && mode != "tiles" && mode != "layers")) {
    std::fprintf(stderr, "usage: bench_step packed|tiles|layers [--threads N] [--repeats N]\n");
    return 2;
  }
  if (const char* path = std::getenv("RNNKIT_OPENBLAS")) {
    std::string error;
    if (!rnnkit::load_blas(path, &error)) std::fprintf(stderr, "OpenBLAS: %s\n", error.c_str());
  }
  rnnkit::set_num_threads(threads);
  if (mode == "packed") packed(threads, repeats);
  else if (mode == "tiles") tiles(threads, repeats);
  else layers(repeats);
  return 0;
}

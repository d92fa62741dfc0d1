// Timing for the C++ microbenchmarks (bench_step.cpp, tile_sweep.cpp): medians of wall-clock
// timings, each long enough (>= 20 ms) that the clock's resolution does not matter.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

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

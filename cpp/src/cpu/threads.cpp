#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "rnnkit/runtime.h"

namespace rnnkit {

void set_blas_threads(int n);  // blas.cpp

namespace {
std::atomic<int> g_num_threads{0};
}

int default_num_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

void set_num_threads(int n) {
  n = std::max(1, n);
  g_num_threads = n;
  set_blas_threads(n);
}

int get_num_threads() {
  int n = g_num_threads.load();
  return n > 0 ? n : default_num_threads();
}

}  // namespace rnnkit

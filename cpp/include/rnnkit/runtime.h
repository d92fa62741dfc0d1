// Process-wide runtime of the core: the BLAS it calls, its thread count, the SIMD ISA in use.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>

namespace rnnkit {

// ---- BLAS -------------------------------------------------------------------------------
// Loads OpenBLAS (the scipy-openblas32 wheel's libscipy_openblas.so) from `path` with dlopen.
// Returns false and leaves the built-in fallback GEMM in place when the library or one of its
// symbols cannot be found; `error` then says why.
bool load_blas(const std::string& path, std::string* error);
std::string blas_name();      // "OpenBLAS 0.3.x ..." or "builtin (slow fallback)"
std::string blas_corename();  // OpenBLAS kernel family in use (e.g. "Haswell"), or ""

// Row-major C = alpha * op(A) @ op(B) + beta * C, op(A): [M, K], op(B): [K, N], C: [M, N].
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// ---- threads ----------------------------------------------------------------------------
// One setting governs every pool the package uses: rnnkit's own pool runs with n threads and
// OpenBLAS is kept at one thread, called in parallel from that pool (gemm() splits big
// products), so the two pools never oversubscribe the cores.
// The pool starts at the first parallel region. When the process's limits let it start only
// k < n threads, it runs with those k, get_num_threads() returns k from then on, and
// take_thread_warning() returns (once) a message saying so; "" when there is none.
void set_num_threads(int n);
int get_num_threads();
std::string take_thread_warning();
int blas_num_threads();  // what the BLAS reports (1 by design, see above)
int default_num_threads();  // usable cores (sched affinity)
// Work (multiply-adds) below which a parallel region costs more than it saves.
constexpr int64_t kMinParallelWork = int64_t(1) << 22;
// Runs fn(0), ..., fn(tasks - 1) on the pool (the caller takes part); returns when all are
// done. Nested or concurrent calls run serially on the calling thread.
void parallel_for(int64_t tasks, const std::function<void(int64_t)>& fn);

// A parallel region comes soon (after some serial work): wakes the pool's sleeping workers
// now, so they are spinning when it starts instead of paying a wake-up then.
void wake_pool();

class TeamBarrier;

// A team: fn(member, members, barrier) on `members` threads running at the same time (the
// caller is member 0), for loops whose members meet at the barrier every step. Runs
// fn(0, 1, ...) alone when the pool is busy (another caller, or nested in a region) or has
// one thread; with fewer threads than asked, the team is smaller: fn splits its work by the
// `members` it is given. An exception in a member aborts the barrier (the others leave it
// with TeamAborted) and reaches the caller.
void parallel_team(int members, const std::function<void(int, int, TeamBarrier&)>& fn);

// The barrier of one team: wait() returns once all members have called it. Spins briefly (a
// step of a small recurrence takes microseconds), then yields the core, so a member whose
// partner was descheduled does not burn its time slice.
class TeamBarrier {
 public:
  explicit TeamBarrier(int members) : members_(members) {}
  void wait();
  void abort();  // a member failed: every wait(), now or later, throws TeamAborted

 private:
  // each on a cache line of its own: the waiting members spin reading generation_ while
  // arrivals write arrived_
  const int members_;
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<bool> aborted_{false};
};
struct TeamAborted : std::exception {
  const char* what() const noexcept override { return "another member of the team failed"; }
};

// ---- memory ------------------------------------------------------------------------------
// Each thread that runs a call keeps a scratch arena (its largest buffers, reused by the next
// call; about the biggest call's T*B*G*H elements plus a few [B, G*H] buffers).
// scratch_bytes() is what all arenas hold now. release_memory() stops the pool's workers
// (their arenas go with them; the pool restarts at the next parallel region), frees the
// calling thread's arenas and makes every other thread free its own at its next call.
// Returns false when another thread held the pool, whose workers were then kept.
int64_t scratch_bytes();
bool release_memory();
void release_scratch_memory();  // the arenas part of release_memory()
// Test hook (rnnkit's tests only): the nth scratch allocation from now on throws
// std::bad_alloc; 0 disarms it. Counts allocations on every thread, or with workers_only on
// the pool's worker threads only. Shows that a failure inside a pool task reaches the caller
// as an exception.
void inject_allocation_failure(int64_t nth, bool workers_only);
int64_t pending_allocation_failures();  // what is left of that countdown (0: fired or off)
bool on_pool_worker();  // true on the pool's worker threads

// ---- SIMD dispatch ----------------------------------------------------------------------
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };
const char* isa_name(Isa isa);
bool isa_supported(Isa isa);   // compiled in and usable on this CPU/OS
Isa active_isa();
// Selects the ISA used from now on. Returns false (and changes nothing) when unsupported.
bool set_isa(Isa isa);
// Why RNNKIT_ISA was not followed as given (an unknown value, or an ISA this CPU lacks), or "".
std::string isa_environment_note();

// The vectorised exp/sigmoid/tanh of one ISA's kernels, y[i] = fn(x[i]) for i < n (x: [n],
// y: [n], assigned). For tests comparing every ISA with the scalar path; an unsupported ISA
// runs the scalar kernels.
enum class Elementwise { Exp, Sigmoid, Tanh };
template <typename T>
void elementwise(Elementwise fn, Isa isa, const T* x, T* y, int64_t n);

// The FMA peak of one ISA in GFLOP/s (an FMA counts 2 flops): a register-only FMA loop on each
// of the pool's threads at once, best of `runs` timings. What the recurrent kernels' GFLOP/s are
// measured against (rnnkit bench); an unsupported ISA measures the scalar loop.
template <typename T>
double fma_peak_gflops(Isa isa, int runs);

}  // namespace rnnkit

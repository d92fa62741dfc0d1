// rnnkit's one thread pool. Workers spin for at most 100 us after a job (the next one of a loop
// over short calls starts without a wake-up), then sleep on a condition variable, so idle
// workers do not compete with the caller's thread or other processes for long. OpenBLAS is
// kept single-threaded (blas.cpp) and parallelised from here, so the two never oversubscribe
// the cores.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "rnnkit/runtime.h"

namespace rnnkit {

namespace {

std::atomic<int> g_num_threads{0};
thread_local bool t_inside_pool_job = false;
thread_local bool t_pool_worker = false;  // a worker of the pool (not a caller taking part)

class ThreadPool {
 public:
  // Starts as many of `workers` threads as the process's limits allow (thread count, address
  // space for stacks) and never throws: unwinding a half-built pool would destroy the
  // condition variable its started workers wait on (a hang) and joinable threads
  // (std::terminate). Why it stopped short is left in start_error().
  explicit ThreadPool(int workers) {
    try {
      threads_.reserve(size_t(workers));  // so emplace_back cannot reallocate (and throw) below
      while (int(threads_.size()) < workers) threads_.emplace_back([this] { work(); });
    } catch (const std::exception& e) {  // std::system_error (EAGAIN), std::bad_alloc
      start_error_ = e.what();
    }
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return int(threads_.size()); }

  // Wakes the sleeping workers without a job: they spin, ready for the next run.
  void nudge() {
    nudges_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mutex_);  // a worker between its check and its wait
    wake_.notify_all();
  }
  const std::string& start_error() const { return start_error_; }

  // Runs fn(0..tasks-1) on the workers and the calling thread; returns when all are done.
  // An exception thrown by a task (e.g. std::bad_alloc) is rethrown here, in the caller, so it
  // reaches Python as an exception instead of terminating the process from a worker.
  void run(int64_t tasks, const std::function<void(int64_t)>& fn) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      tasks_ = tasks;
      next_ = 0;
      unfinished_ = tasks;
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    drain();
    // the other tasks end about when this thread's do (a team's members leave their last
    // barrier together): spin before sleeping on done_
    if (!spin_until([this] { return unfinished_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return unfinished_ == 0; });
    }
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  void drain() {
    t_inside_pool_job = true;
    for (int64_t i; (i = next_.fetch_add(1)) < tasks_;) {
      std::exception_ptr error;
      try {
        (*job_)(i);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (error && !error_) error_ = error;
      if (--unfinished_ == 0) done_.notify_all();
    }
    t_inside_pool_job = false;
  }

  // Spins (pausing) until ready() or kSpinMicros have passed; returns ready().
  template <class Ready>
  static bool spin_until(Ready&& ready) {
    constexpr auto kSpin = std::chrono::microseconds(kSpinMicros);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 1;; ++i) {
      if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if (i % 256 == 0 && std::chrono::steady_clock::now() - start > kSpin) return ready();
    }
  }

  void work() {
    t_pool_worker = true;
    uint64_t seen = 0, seen_nudges = 0;
    auto woken = [&] {
      return stop_.load() || generation_.load(std::memory_order_acquire) != seen ||
             nudges_.load() != seen_nudges;
    };
    for (;;) {
      // The next region often comes within microseconds (the steps of a loop over short
      // calls): spin a little before sleeping, so it does not wait for a wake-up (tens of
      // microseconds on a VM, more than a batch-1 forward of 50 steps gains from a team).
      if (!spin_until(woken)) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, woken);
      }
      if (stop_.load()) return;
      seen_nudges = nudges_.load();
      const uint64_t generation = generation_.load(std::memory_order_acquire);
      if (generation == seen) continue;  // nudged: spin for the run that follows
      seen = generation;
      drain();  // claims nothing when the region has already ended
    }
  }

  static constexpr int kSpinMicros = 100;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t tasks_ = 0;
  std::atomic<int64_t> next_{0}, unfinished_{0};
  std::atomic<uint64_t> generation_{0}, nudges_{0};
  std::exception_ptr error_;
  std::atomic<bool> stop_{false};
  std::string start_error_;
};

std::mutex g_pool_mutex;  // one parallel region at a time; others run inline

// Never destroyed, so never stopped at exit: exit() can come while a region runs, even from a
// pool thread (OpenBLAS exits when it cannot map a buffer), and stopping the workers then
// would wait for a job that never ends, or make a thread join itself (std::terminate). The OS
// ends them. A forked child inherits the pointer but none of the threads.
ThreadPool* g_pool = nullptr;
pid_t g_pool_pid = 0;  // the process that started g_pool

std::mutex g_warning_mutex;
std::string g_warning;  // why the pool has fewer threads than asked for, until taken

// The pool could not start every thread: it runs with those it has, get_num_threads() says so
// from now on (unless the setting changed meanwhile) and the warning waits for the bindings.
void note_short_pool(int setting, int asked, const ThreadPool& pool) {
  const int started = pool.workers() + 1;  // the calling thread is one of them
  g_num_threads.compare_exchange_strong(setting, started);
  const std::string n = std::to_string(started);
  std::lock_guard<std::mutex> lock(g_warning_mutex);
  g_warning = "rnnkit could start only " + n + " of the " + std::to_string(asked) +
              " threads it was asked to use (" + pool.start_error() +
              "; a limit on threads or address space, e.g. ulimit -u / -v or a container's "
              "pids limit); it runs with " + n + " threads (get_num_threads() reports " + n + ")";
}

// fork() copies a mutex as it is at that moment; one held by another thread would stay locked
// in the child forever (every region there serial, a warning never taken). Holding both
// across fork gives the child unlocked copies. Neither is held while waiting on Python.
void lock_before_fork() {
  g_pool_mutex.lock();
  g_warning_mutex.lock();
}
void unlock_after_fork() {
  g_warning_mutex.unlock();
  g_pool_mutex.unlock();
}
const int g_fork_handlers = pthread_atfork(lock_before_fork, unlock_after_fork, unlock_after_fork);

}  // namespace

bool on_pool_worker() { return t_pool_worker; }

bool release_memory() {
  release_scratch_memory();
  std::unique_lock<std::mutex> lock(g_pool_mutex, std::try_to_lock);
  if (!lock.owns_lock()) return false;  // a region is running on the pool: keep its workers
  if (g_pool_pid == getpid()) delete g_pool;  // joins the workers; their arenas die with them
  g_pool = nullptr;
  return true;
}

int default_num_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

void set_num_threads(int n) { g_num_threads = std::max(1, n); }

int get_num_threads() {
  int n = g_num_threads.load();
  return n > 0 ? n : default_num_threads();
}

std::string take_thread_warning() {
  std::lock_guard<std::mutex> lock(g_warning_mutex);
  return std::exchange(g_warning, std::string());
}

namespace {

// The pool for `threads` threads (setting: the thread setting it was derived from), started
// or restarted as needed. Called with g_pool_mutex held.
ThreadPool& pool_of(int setting, int threads) {
  // A forked child leaks its copy: joining threads that do not exist there, or destroying
  // the condition variables they waited on, hangs. It starts a pool of its own.
  if (g_pool_pid != getpid()) g_pool = nullptr;
  if (!g_pool || g_pool->workers() != threads - 1) {
    delete g_pool;  // first: its threads count against the same limits as the new ones
    g_pool = nullptr;
    g_pool = new ThreadPool(threads - 1);
    g_pool_pid = getpid();
    if (g_pool->workers() != threads - 1) note_short_pool(setting, threads, *g_pool);
  }
  return *g_pool;
}

}  // namespace

void parallel_for(int64_t tasks, const std::function<void(int64_t)>& fn) {
  const int setting = g_num_threads.load();
  const int threads = setting > 0 ? setting : default_num_threads();
  std::unique_lock<std::mutex> lock(g_pool_mutex, std::defer_lock);
  // Serial when there is nothing to share, when called from inside a job (nested regions),
  // or while another caller (a second Python thread, the GIL being released) holds the pool.
  if (tasks <= 1 || threads <= 1 || t_inside_pool_job || !lock.try_lock()) {
    for (int64_t i = 0; i < tasks; ++i) fn(i);
    return;
  }
  pool_of(setting, threads).run(tasks, fn);
}

void wake_pool() {
  std::unique_lock<std::mutex> lock(g_pool_mutex, std::try_to_lock);
  if (lock.owns_lock() && g_pool && g_pool_pid == getpid()) g_pool->nudge();
}

void parallel_team(int members, const std::function<void(int, int, TeamBarrier&)>& fn) {
  const int setting = g_num_threads.load();
  const int threads = setting > 0 ? setting : default_num_threads();
  std::unique_lock<std::mutex> lock(g_pool_mutex, std::defer_lock);
  if (members <= 1 || threads <= 1 || t_inside_pool_job || !lock.try_lock()) {
    TeamBarrier alone(1);
    return fn(0, 1, alone);
  }
  ThreadPool& pool = pool_of(setting, threads);
  // Every member runs at once: a thread takes a second task only after finishing its first,
  // which needs every member at the barrier, so each task has a thread of its own.
  const int team = std::min({members, threads, pool.workers() + 1});
  TeamBarrier barrier(team);
  pool.run(team, [&](int64_t member) {
    try {
      fn(int(member), team, barrier);
    } catch (const TeamAborted&) {
      // left the barrier because another member failed: that member reports the error
    } catch (...) {
      barrier.abort();  // the others must not wait for this member
      throw;
    }
  });
}

void TeamBarrier::wait() {
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == members_ - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    return;
  }
  for (int spins = 0; generation_.load(std::memory_order_acquire) == generation; ++spins) {
    if (aborted_.load(std::memory_order_relaxed)) throw TeamAborted();
    if (spins < 20000) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      sched_yield();
    }
  }
  if (aborted_.load(std::memory_order_relaxed)) throw TeamAborted();
}

void TeamBarrier::abort() { aborted_.store(true, std::memory_order_relaxed); }

}  // namespace rnnkit

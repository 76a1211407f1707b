#include "core/parallel.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <Eigen/Core>
#include <cstdlib>

#include "core/error.h"

namespace glimpse {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// One parallel_for call. Shared (shared_ptr) with the helpers, so a helper that wakes up after
// the call returned still holds a valid job, in which it finds no item left.
struct Job {
  detail::ItemFn fn;
  void* ctx;
  int64_t count;
  std::atomic<int64_t> next{0};  // next unclaimed item
  std::atomic<int64_t> done{0};  // items finished
  std::atomic<int> slots{0};     // helpers admitted so far (at most max_helpers)
  int max_helpers;

  // Claims and runs items until none is left.
  void work() {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < count;) {
      fn(ctx, i);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

thread_local bool in_parallel_for = false;

// Helper threads sleep on a condition variable between jobs, after spinning briefly (a job often
// follows the previous one within microseconds: the next layer).
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // never destroyed: helpers may outlive static destructors
    return *pool;
  }

  void run(int64_t count, int threads, detail::ItemFn fn, void* ctx) {
    ensure_helpers(threads - 1);
    auto job = std::make_shared<Job>();
    job->fn = fn;
    job->ctx = ctx;
    job->count = count;
    job->max_helpers = threads - 1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    in_parallel_for = true;
    job->work();
    in_parallel_for = false;
    // Wait only for items a helper has claimed and not finished.
    for (int spin = 0; job->done.load(std::memory_order_acquire) < count; ++spin) {
      if (spin < 4096)
        cpu_relax();
      else
        std::this_thread::yield();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (job_ == job) job_.reset();
  }

 private:
  void ensure_helpers(int n) {
    std::lock_guard<std::mutex> lock(start_mu_);
    while (static_cast<int>(helpers_.size()) < n) {
      helpers_.emplace_back([this] { helper_loop(); });
      helpers_.back().detach();
    }
  }

  void helper_loop() {
    in_parallel_for = true;  // a kernel called from a helper never fans out again
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      // Spin ~50 us for the next job, then sleep.
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
      for (int spin = 1; generation_.load(std::memory_order_acquire) == seen; ++spin) {
        cpu_relax();
        if (spin % 64 == 0 && std::chrono::steady_clock::now() > until) break;
      }
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        seen = generation_.load(std::memory_order_relaxed);
        job = job_;
      }
      if (job && job->slots.fetch_add(1, std::memory_order_relaxed) < job->max_helpers) job->work();
    }
  }

  std::mutex mu_, start_mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::shared_ptr<Job> job_;
  std::vector<std::thread> helpers_;
};

// Eigen's own GEMM threading off from the start; set_num_threads() keeps it off.
[[maybe_unused]] const bool eigen_serial = (Eigen::setNbThreads(1), true);

std::atomic<int> g_threads{0};  // 0: not set yet

}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  g_threads = n;
  Eigen::setNbThreads(1);
}

namespace {
// Until set_num_threads: GLIMPSE_NUM_THREADS, else OMP_NUM_THREADS (the usual knob), else the
// processor count.
int default_threads() {
  for (const char* var : {"GLIMPSE_NUM_THREADS", "OMP_NUM_THREADS"})
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}
}  // namespace

int num_threads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  static const int fallback = default_threads();
  return fallback;
}

namespace detail {

void parallel_for_impl(int64_t count, int max_threads, ItemFn fn, void* ctx) {
  if (count <= 0) return;
  int threads = max_threads > 0 ? max_threads : num_threads();
  if (threads > count) threads = static_cast<int>(count);
  if (threads <= 1 || in_parallel_for) {
    for (int64_t i = 0; i < count; ++i) fn(ctx, i);
    return;
  }
  Pool::get().run(count, threads, fn, ctx);
}

}  // namespace detail
}  // namespace glimpse

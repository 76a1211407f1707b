// The stop flag and its signal handler; see interrupt.h.
#include "interrupt.h"

#include <atomic>
#include <csignal>

#include "core/error.h"

namespace mel {
namespace {

// Lock-free, so that the store in the handler is async-signal-safe.
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) { g_signal.store(sig, std::memory_order_relaxed); }

}  // namespace

struct InterruptGuard::Saved {
  struct sigaction old_int, old_term;
};

InterruptGuard::InterruptGuard() : saved_(new Saved) {
  clear_interrupt();
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESETHAND: the second Ctrl-C gets the default action and kills at once. SA_RESTART: reads
  // and writes under way (a checkpoint being written) continue instead of failing with EINTR.
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  GLIMPSE_CHECK(sigaction(SIGINT, &sa, &saved_->old_int) == 0, "cannot install the SIGINT handler");
  GLIMPSE_CHECK(sigaction(SIGTERM, &sa, &saved_->old_term) == 0, "cannot install the SIGTERM handler");
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, &saved_->old_int, nullptr);
  sigaction(SIGTERM, &saved_->old_term, nullptr);
  delete saved_;
  // The stop has been reported (Interrupted carries the signal); a later job in the same process
  // (a test, the demo's next step) must not see a stale flag.
  clear_interrupt();
}

int interrupt_signal() { return g_signal.load(std::memory_order_relaxed); }
void request_interrupt(int signal) { g_signal.store(signal, std::memory_order_relaxed); }
void clear_interrupt() { g_signal.store(0, std::memory_order_relaxed); }

}  // namespace mel

// Ctrl-C (SIGINT) and SIGTERM during a long job: the handler only sets a flag (the one thing a
// signal handler may safely do); the job checks it between steps, stops, and says how to continue.
// A second Ctrl-C kills at once (SA_RESETHAND: the first signal restores the default action).
#pragma once
#include <stdexcept>
#include <string>

namespace mel {

// While alive, SIGINT and SIGTERM set the flag instead of killing the process; the destructor
// restores the handlers that were there before (train_model is also called by demo, two-stage and
// roar, and by tests). Constructing one clears the flag, and so does its end. Nested guards are allowed.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct Saved;
  Saved* saved_;
};

// The signal that asked to stop (SIGINT, SIGTERM), or 0.
int interrupt_signal();
inline bool interrupt_requested() { return interrupt_signal() != 0; }
// Sets the flag as the handler would (for tests, and for code that wants a clean stop).
void request_interrupt(int signal);
void clear_interrupt();

// Thrown by a job that stopped on the flag, after leaving its files consistent. main() exits with
// 128 + signal (130 for SIGINT, 143 for SIGTERM), the shell's convention for "killed by".
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int signal, const std::string& message) : std::runtime_error(message), signal_(signal) {}
  int signal() const { return signal_; }
  int exit_code() const { return 128 + signal_; }

 private:
  int signal_;
};

}  // namespace mel

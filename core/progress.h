// ProgressBar: the progress line of every long job (training epochs, evaluation, attribution over
// a data set), on stderr so that stdout keeps only results.
//
//   epoch 2/5 [=========>           ] 412/938  1843 img/s  ETA 0:17  loss 0.3121 acc 88.7%
//
// On a terminal the line is redrawn in place with '\r' (at most every `redraw_s` seconds); when
// stderr is not a terminal (CI logs, files) nothing is printed until finish(), which prints the
// final line once -- one line per epoch in a log, not thousands. Rate and ETA count from the
// first step(), so the time a job spends before its first step (setup) does not skew them.
#pragma once
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace glimpse {

class ProgressBar {
 public:
  enum class Mode { Auto, Tty, Plain, Silent };  // Auto: Tty if stderr is a terminal, else Plain

  // `total` steps (> 0); `unit` names the items counted by step(items) for the rate ("img").
  ProgressBar(std::string label, int64_t total, std::string unit = "it", Mode mode = Mode::Auto,
              std::ostream* out = nullptr /* std::cerr */);
  ~ProgressBar();  // finishes the line if finish() was not called
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // One step done, which processed `items` items (0: count steps as the items).
  void step(int64_t items = 0);
  // Free text after the ETA, e.g. "loss 0.3121 acc 88.7%"; shown at the next redraw.
  void set_postfix(std::string text) { postfix_ = std::move(text); }
  // Prints the final line ("... 938/938  1843 img/s  12.3s  <postfix> <extra>") and a newline.
  void finish(const std::string& extra = "");

  int64_t done() const { return done_; }
  double elapsed_s() const;  // since construction
  double rate() const;       // items per second since the first step
  bool tty() const { return mode_ == Mode::Tty; }

  // 75 -> "1:15", 3725 -> "1:02:05".
  static std::string format_duration(double seconds);
  static bool stderr_is_tty();

 private:
  void draw(bool final_line, const std::string& extra);
  using Clock = std::chrono::steady_clock;

  std::string label_, unit_, postfix_;
  int64_t total_, done_ = 0, items_ = 0;
  Mode mode_;
  std::ostream* out_;
  Clock::time_point start_, first_step_, last_draw_;
  bool started_ = false, finished_ = false;
  size_t last_len_ = 0;

 public:
  double redraw_s = 0.1;
  int bar_width = 24;
};

}  // namespace glimpse

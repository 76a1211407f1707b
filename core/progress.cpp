#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "core/error.h"

namespace glimpse {

bool ProgressBar::stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, Mode mode, std::ostream* out)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), mode_(mode), out_(out ? out : &std::cerr) {
  GLIMPSE_CHECK(total > 0, "ProgressBar '", label_, "': total must be > 0, got ", total);
  if (mode_ == Mode::Auto) mode_ = stderr_is_tty() && out_ == &std::cerr ? Mode::Tty : Mode::Plain;
  start_ = first_step_ = last_draw_ = Clock::now();
}

ProgressBar::~ProgressBar() {
  if (!finished_ && done_ > 0) {
    try {
      finish();
    } catch (...) {
    }
  }
}

double ProgressBar::elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

double ProgressBar::rate() const {
  if (!started_) return 0.0;
  // The first step's own work happened before first_step_ was taken; count it from the start so
  // that a one-step job still has a rate.
  const double s = std::chrono::duration<double>(Clock::now() - start_).count();
  return s > 0 ? static_cast<double>(items_) / s : 0.0;
}

std::string ProgressBar::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

void ProgressBar::step(int64_t items) {
  if (!started_) {
    started_ = true;
    first_step_ = Clock::now();
  }
  ++done_;
  items_ += items > 0 ? items : 1;
  if (mode_ != Mode::Tty) return;
  const auto now = Clock::now();
  if (done_ < total_ && std::chrono::duration<double>(now - last_draw_).count() < redraw_s) return;
  last_draw_ = now;
  draw(false, "");
}

void ProgressBar::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (mode_ == Mode::Silent) return;
  draw(true, extra);
}

void ProgressBar::draw(bool final_line, const std::string& extra) {
  std::ostringstream os;
  os << label_ << " [";
  const int64_t shown = std::min(done_, total_);
  const int filled = static_cast<int>(bar_width * shown / total_);
  for (int i = 0; i < bar_width; ++i) os << (i < filled ? '=' : (i == filled && shown < total_ ? '>' : ' '));
  os << "] " << done_ << "/" << total_;
  const double r = rate();
  char rate_buf[48];
  std::snprintf(rate_buf, sizeof rate_buf, r >= 100 ? "  %.0f %s/s" : "  %.1f %s/s", r, unit_.c_str());
  os << rate_buf;
  if (final_line) {
    os << "  " << format_duration(elapsed_s());
  } else {
    // ETA from the step rate since the first step (steps may hold different item counts).
    const double since_first = std::chrono::duration<double>(Clock::now() - first_step_).count();
    const double per_step = done_ > 1 ? since_first / static_cast<double>(done_ - 1) : NAN;
    os << "  ETA " << (std::isfinite(per_step) ? format_duration(per_step * static_cast<double>(total_ - done_)) : "?");
  }
  if (!postfix_.empty()) os << "  " << postfix_;
  if (!extra.empty()) os << "  " << extra;
  std::string line = os.str();
  if (mode_ == Mode::Tty) {
    // Pad over the previous, possibly longer, line.
    const size_t len = line.size();
    if (len < last_len_) line.append(last_len_ - len, ' ');
    last_len_ = len;
    *out_ << '\r' << line;
    if (final_line) *out_ << '\n';
  } else {
    *out_ << line << '\n';
  }
  out_->flush();
}

}  // namespace glimpse

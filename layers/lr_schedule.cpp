#include "layers/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace glimpse {

float LrSchedule::apply(Optimizer& opt, int64_t step) const {
  const float lr = lr_at(opt.base_lr(), step);
  opt.set_lr(lr);
  return lr;
}

StepLR::StepLR(int64_t step_size_, float gamma_) : step_size(step_size_), gamma(gamma_) {
  GLIMPSE_CHECK(step_size > 0, "StepLR: step_size must be positive, got ", step_size);
  GLIMPSE_CHECK(gamma > 0.f, "StepLR: gamma must be positive, got ", gamma);
}

float StepLR::lr_at(float base_lr, int64_t step) const {
  GLIMPSE_CHECK(step >= 0, "StepLR: step must be >= 0, got ", step);
  return static_cast<float>(base_lr * std::pow(static_cast<double>(gamma), static_cast<double>(step / step_size)));
}

CosineLR::CosineLR(int64_t total, float min, int64_t warmup) : total_steps(total), min_lr(min), warmup_steps(warmup) {
  GLIMPSE_CHECK(total_steps > 0, "CosineLR: total_steps must be positive, got ", total_steps);
  GLIMPSE_CHECK(warmup_steps >= 0 && warmup_steps < total_steps,
                "CosineLR: warmup_steps must be in [0, total_steps = ", total_steps, "), got ", warmup_steps);
  GLIMPSE_CHECK(min_lr >= 0.f, "CosineLR: min_lr must be >= 0, got ", min_lr);
}

float CosineLR::lr_at(float base_lr, int64_t step) const {
  GLIMPSE_CHECK(step >= 0, "CosineLR: step must be >= 0, got ", step);
  if (step < warmup_steps) return base_lr * static_cast<float>(step + 1) / static_cast<float>(warmup_steps);
  const double t =
      std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps), 0.0, 1.0);
  return static_cast<float>(min_lr + (base_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * t)) / 2.0);
}

}  // namespace glimpse

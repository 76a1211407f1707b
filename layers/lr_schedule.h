// Learning-rate schedules: pure functions of the step (or epoch) index, scaled from the
// optimizer's base_lr(); apply() sets the optimizer's lr for that index.
#pragma once
#include <cstdint>

#include "layers/optim.h"

namespace glimpse {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  // The learning rate at `step` (0-based) for a schedule starting from base_lr.
  virtual float lr_at(float base_lr, int64_t step) const = 0;
  // Sets opt.lr() to lr_at(opt.base_lr(), step) and returns it.
  float apply(Optimizer& opt, int64_t step) const;
};

// torch.optim.lr_scheduler.StepLR: base_lr * gamma^floor(step / step_size).
class StepLR : public LrSchedule {
 public:
  StepLR(int64_t step_size, float gamma = 0.1f);
  float lr_at(float base_lr, int64_t step) const override;
  int64_t step_size;
  float gamma;
};

// Linear warm-up, then cosine annealing (CosineAnnealingLR) to min_lr:
//   step <  warmup : base_lr * (step + 1) / warmup
//   otherwise      : min_lr + (base_lr - min_lr) * (1 + cos(pi * t)) / 2,
//                    t = (step - warmup) / (total_steps - warmup), clamped to [0, 1]
// so the warm-up ends at base_lr and step total_steps (and after) is min_lr.
class CosineLR : public LrSchedule {
 public:
  CosineLR(int64_t total_steps, float min_lr = 0.f, int64_t warmup_steps = 0);
  float lr_at(float base_lr, int64_t step) const override;
  int64_t total_steps;
  float min_lr;
  int64_t warmup_steps;
};

}  // namespace glimpse

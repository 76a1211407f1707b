// The one numerical gradient checker every op and layer test uses (after Caffe's
// test_gradient_check_util): central differences against the analytic backward.
//
// The output is reduced to L = sum(out * R) with a fixed random R, so every output element takes
// part. For each checked input element x_i the numeric derivative is (L(x+h) - L(x-h)) / 2h; it is
// compared to the analytic dL/dx_i with |a - n| <= atol + rtol * max(|a|, |n|). A point where the
// left and right one-sided slopes disagree sits on a kink (ReLU at 0, the max of a pool window
// changing hands) and is skipped, with the count reported.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace glimpse {

struct GradcheckOptions {
  float step = 1e-2f;  // h; float32 inputs need a coarse step
  double rtol = 1e-2;
  double atol = 1e-3;
  int64_t max_points = 256;  // per input; larger inputs are sampled
  uint64_t seed = 1234;
  double kink_tolerance = 0.1;         // relative left/right slope disagreement that marks a kink
  int64_t max_kink_fraction_pct = 34;  // fail if more points than this are skipped: the check would be vacuous
};

struct GradcheckResult {
  bool ok = true;
  int64_t checked = 0;
  int64_t skipped_kinks = 0;
  std::string report;  // the first mismatches, human-readable
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks d f(inputs) / d inputs[i] for every input that has requires_grad set.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt = {});

}  // namespace glimpse

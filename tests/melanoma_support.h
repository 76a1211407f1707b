// What the melanoma app's tests share: the small synthetic data set and the one-epoch training of
// it that several suites start from (tests/support.h has the numerical checkers).
#pragma once
#include <string>

#include "commands.h"

namespace glimpse::testing {

// Writes 24 synthetic 32 px lesions (seed 3, a quarter marked val) to <dir>/data and returns the
// options of a quiet one-epoch small-gap training on them, checkpoint <dir>/model.safetensors. The
// caller may change them before mel::train_model.
inline mel::TrainOptions tiny_training(const std::string& dir) {
  mel::SynthOptions s;
  s.out = dir + "/data";
  s.count = 24;
  s.size = 32;
  s.seed = 3;
  s.val_fraction = 0.25;
  mel::run_synth(s);
  mel::TrainOptions t;
  t.data = s.out;
  t.size = 32;
  t.epochs = 1;
  t.batch = 8;
  t.out = dir + "/model.safetensors";
  t.quiet = true;
  return t;
}

}  // namespace glimpse::testing

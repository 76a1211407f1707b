// Seeded random numbers. Every random thing in glimpse (initialisation, dropout, shuffling,
// augmentation, SmoothGrad noise) draws from an Rng passed in or from the global one, so a seed
// reproduces a run exactly.
#pragma once
#include <cstdint>
#include <random>

namespace glimpse {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0x5eed) : engine_(seed) {}
  void seed(uint64_t s) { engine_.seed(s); }
  float uniform(float lo = 0.f, float hi = 1.f) { return std::uniform_real_distribution<float>(lo, hi)(engine_); }
  float normal(float mean = 0.f, float stddev = 1.f) { return std::normal_distribution<float>(mean, stddev)(engine_); }
  // Integer in [0, n).
  uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(engine_); }
  bool bernoulli(float p) { return uniform() < p; }
  std::mt19937_64& engine() { return engine_; }

 private:
  std::mt19937_64 engine_;
};

// The process-wide generator used where none is passed (seed it with manual_seed).
Rng& global_rng();
void manual_seed(uint64_t seed);

}  // namespace glimpse

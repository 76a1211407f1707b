#include "layers/init.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/grad_mode.h"

namespace glimpse::init {
namespace {

void check_weight(const Tensor& w, const char* fn) {
  GLIMPSE_CHECK(w.defined(), fn, ": undefined tensor");
  GLIMPSE_CHECK(w.dim() >= 2, fn, ": fan in/out need a weight of at least 2 dimensions, got shape ",
                shape_str(w.shape()));
}

int64_t receptive_field(const Tensor& w) {
  int64_t r = 1;
  for (int64_t d = 2; d < w.dim(); ++d) r *= w.size(d);
  return r;
}

// Fills on the CPU and copies to the tensor's device, so initialisers work for any device.
template <typename Gen>
void fill_with(Tensor& t, const char* fn, Gen gen) {
  GLIMPSE_CHECK(t.defined(), fn, ": undefined tensor");
  NoGradGuard ng;
  Tensor host = Tensor::empty(t.shape());
  float* p = host.data();
  for (int64_t i = 0; i < host.numel(); ++i) p[i] = gen();
  if (t.device().is_cpu() && t.is_contiguous()) {
    std::copy(p, p + host.numel(), t.data());
  } else {
    t.copy_from(host.to(t.device()));
  }
}

float fan(const Tensor& t, FanMode mode) { return static_cast<float>(mode == FanMode::FanIn ? fan_in(t) : fan_out(t)); }

}  // namespace

int64_t fan_in(const Tensor& w) {
  check_weight(w, "fan_in");
  return w.size(1) * receptive_field(w);
}

int64_t fan_out(const Tensor& w) {
  check_weight(w, "fan_out");
  return w.size(0) * receptive_field(w);
}

float calculate_gain(Nonlinearity nl, float a) {
  switch (nl) {
    case Nonlinearity::Linear:
    case Nonlinearity::Sigmoid:
      return 1.f;
    case Nonlinearity::Tanh:
      return 5.f / 3.f;
    case Nonlinearity::ReLU:
      return std::sqrt(2.f);
    case Nonlinearity::LeakyReLU:
      return std::sqrt(2.f / (1.f + a * a));
  }
  return 1.f;
}

void constant_(Tensor& t, float value) {
  fill_with(t, "constant_", [value] { return value; });
}
void zeros_(Tensor& t) { constant_(t, 0.f); }
void ones_(Tensor& t) { constant_(t, 1.f); }

void uniform_(Tensor& t, Rng& rng, float lo, float hi) {
  GLIMPSE_CHECK(lo <= hi, "uniform_: lo ", lo, " > hi ", hi);
  fill_with(t, "uniform_", [&] { return rng.uniform(lo, hi); });
}

void normal_(Tensor& t, Rng& rng, float mean, float stddev) {
  GLIMPSE_CHECK(stddev >= 0.f, "normal_: negative stddev ", stddev);
  if (stddev == 0.f) return constant_(t, mean);
  fill_with(t, "normal_", [&] { return rng.normal(mean, stddev); });
}

void kaiming_uniform_(Tensor& t, Rng& rng, float a, FanMode mode, Nonlinearity nl) {
  const float stddev = calculate_gain(nl, a) / std::sqrt(fan(t, mode));
  const float bound = std::sqrt(3.f) * stddev;
  uniform_(t, rng, -bound, bound);
}

void kaiming_normal_(Tensor& t, Rng& rng, float a, FanMode mode, Nonlinearity nl) {
  normal_(t, rng, 0.f, calculate_gain(nl, a) / std::sqrt(fan(t, mode)));
}

void xavier_uniform_(Tensor& t, Rng& rng, float gain) {
  const float bound = gain * std::sqrt(6.f / static_cast<float>(fan_in(t) + fan_out(t)));
  uniform_(t, rng, -bound, bound);
}

void xavier_normal_(Tensor& t, Rng& rng, float gain) {
  normal_(t, rng, 0.f, gain * std::sqrt(2.f / static_cast<float>(fan_in(t) + fan_out(t))));
}

void default_conv_linear_(Tensor& weight, Tensor& bias, Rng& rng) {
  kaiming_uniform_(weight, rng, std::sqrt(5.f));
  if (bias.defined()) {
    const float bound = 1.f / std::sqrt(static_cast<float>(fan_in(weight)));
    uniform_(bias, rng, -bound, bound);
  }
}

}  // namespace glimpse::init

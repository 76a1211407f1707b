// Weight initialisers, after torch.nn.init. Each fills a tensor in place from a seeded Rng, outside
// the tape (initialisation is not part of any graph).
//
// fan_in / fan_out of a weight [out, in, kh, kw] (or [out, in]) are in*kh*kw and out*kh*kw, as in
// PyTorch (for a grouped conv the weight already holds in/groups, so this matches too).
#pragma once
#include <cstdint>

#include "core/rng.h"
#include "core/tensor.h"

namespace glimpse::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, Sigmoid, Tanh, ReLU, LeakyReLU };

int64_t fan_in(const Tensor& w);
int64_t fan_out(const Tensor& w);
// torch.nn.init.calculate_gain: 1 (linear, sigmoid), 5/3 (tanh), sqrt(2) (relu),
// sqrt(2 / (1 + a^2)) (leaky_relu with negative slope a).
float calculate_gain(Nonlinearity nl, float a = 0.f);

void constant_(Tensor& t, float value);
void zeros_(Tensor& t);
void ones_(Tensor& t);
void uniform_(Tensor& t, Rng& rng, float lo, float hi);
void normal_(Tensor& t, Rng& rng, float mean, float stddev);

// He et al. 2015. std = gain / sqrt(fan); uniform bound = sqrt(3) * std. With the defaults of
// kaiming_uniform_ (a = sqrt(5), leaky_relu, fan_in) the bound is 1/sqrt(fan_in): PyTorch's
// default for Conv2d and Linear weights.
void kaiming_uniform_(Tensor& t, Rng& rng, float a = 0.f, FanMode mode = FanMode::FanIn,
                      Nonlinearity nl = Nonlinearity::LeakyReLU);
void kaiming_normal_(Tensor& t, Rng& rng, float a = 0.f, FanMode mode = FanMode::FanIn,
                     Nonlinearity nl = Nonlinearity::LeakyReLU);
// Glorot & Bengio 2010: bound = gain * sqrt(6 / (fan_in + fan_out)); std = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, Rng& rng, float gain = 1.f);
void xavier_normal_(Tensor& t, Rng& rng, float gain = 1.f);

// PyTorch's default initialisation of a Conv2d / Linear: weight kaiming_uniform_(a = sqrt(5)),
// bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (bias may be undefined).
void default_conv_linear_(Tensor& weight, Tensor& bias, Rng& rng);

}  // namespace glimpse::init

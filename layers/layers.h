// The standard layers: each a Module that owns its parameters under PyTorch's state_dict names
// (weight, bias, running_mean, running_var), so a checkpoint maps one-to-one to/from PyTorch.
//
// Every layer validates its constructor arguments (errors name the layer and the value at fault)
// and initialises from an Rng passed in (global_rng() by default), so a seed reproduces a model.
// Forward passes go through the differentiable ops of autograd/functions.h; none works in place.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/rng.h"
#include "layers/module.h"
#include "layers/sync_batch_norm.h"

namespace glimpse {

// y = conv2d(x, weight, bias): x [N, in, H, W] -> [N, out, P, Q]; weight [out, in/groups, k, k].
// Init: PyTorch's default (kaiming_uniform_ a = sqrt(5); bias U(+-1/sqrt(fan_in))).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, Conv2dOptions options = {}, bool bias = true,
         Rng& rng = global_rng());
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  int64_t in_channels, out_channels, kernel;
  Conv2dOptions options;
  Tensor weight;  // [out, in/groups, k, k]
  Tensor bias;    // [out], undefined without bias
};

// y = x W^T + b: x [N, in] -> [N, out]. Init as Conv2d.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Rng& rng = global_rng());
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  int64_t in_features, out_features;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined
};

// y = (x - mean) / sqrt(var + eps) * weight + bias per channel; batch statistics in training (and
// running = (1 - momentum) * running + momentum * batch, unbiased var), running ones in eval.
// weight = 1, bias = 0, running_mean = 0, running_var = 1 at construction, as in PyTorch.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, float eps = 1e-5f, float momentum = 0.1f);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  int64_t num_features;
  float eps, momentum;
  Tensor weight, bias;               // parameters [C]
  Tensor running_mean, running_var;  // buffers [C]
  // Set: training-mode statistics over every member of the group (sync_batch_norm.h), e.g. the
  // ranks of a data-parallel job; null: this batch alone.
  std::shared_ptr<BatchNormGroup> group;
};

// Its own module (never in place) so attribution can hook its output by name.
class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(float negative_slope = 0.01f);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  float negative_slope;
};

// Pooling over k x k windows; stride defaults to the kernel (stride <= 0 means "= kernel"), padding
// at most half the kernel (PyTorch's rule).
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  Pool2dOptions options;
};

// Padded cells count in the divisor (count_include_pad = True).
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  Pool2dOptions options;
};

// [N, C, H, W] -> [N, C]: the mean over H and W (the "GAP" of CAM networks).
class GlobalAvgPool : public Module {
 public:
  GlobalAvgPool() : Module("GlobalAvgPool") {}
  Tensor forward(const Tensor& x) override;
};

// Inverted dropout with its own seeded generator (reproducible, independent of other draws).
// Identity in eval mode.
class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f, uint64_t seed = 0x5eed);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  float p;
  Rng rng;
};

// [N, ...] -> [N, prod(...)].
class Flatten : public Module {
 public:
  Flatten() : Module("Flatten") {}
  Tensor forward(const Tensor& x) override;
};

// Children run in order, each through operator() so their forward hooks fire. push_back/add
// name children "0", "1", ... by position; add(name, m) gives an explicit name.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  template <typename M>
  std::shared_ptr<M> add(std::shared_ptr<M> m) {
    return register_module(std::to_string(children().size()), std::move(m));
  }
  template <typename M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    return register_module(name, std::move(m));
  }
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return add(std::move(m));
  }
  // Constructs an M in place and appends it: seq.emplace<Conv2d>(3, 32, 3).
  template <typename M, typename... Args>
  std::shared_ptr<M> emplace(Args&&... args) {
    return add(std::make_shared<M>(std::forward<Args>(args)...));
  }

  size_t size() const { return children().size(); }
  bool empty() const { return children().empty(); }
  Module& operator[](size_t i) const;
  std::shared_ptr<Module> at(size_t i) const;
};

// ResNet's basic residual block (He et al. 2016), torchvision layout:
//   out = relu2( bn2(conv2( relu1(bn1(conv1(x))) )) + shortcut(x) )
// conv1: 3x3 stride s, conv2: 3x3 stride 1, both without bias; shortcut = x, or downsample
// = Sequential(1x1 conv stride s without bias, BatchNorm2d) when s != 1 or the channels change.
// Children: conv1, bn1, relu1, conv2, bn2, [downsample], relu2 -- relu1/relu2 are modules of
// their own (torchvision shares one ReLU) so each activation can be hooked; neither has
// parameters, so state_dict keys equal torchvision's.
class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride = 1, Rng& rng = global_rng());
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  int64_t in_channels, out_channels, stride;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<ReLU> relu1, relu2;
  std::shared_ptr<Sequential> downsample;  // null for the identity shortcut
};

}  // namespace glimpse

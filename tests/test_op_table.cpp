// One table, every op, every backend (after ggml's test-backend-ops): each entry of op_table() is an
// op with its input shapes and attributes, written once at the level users call (autograd/
// functions.h, layers/optim.h), and every mode below runs every entry:
//
//   Contract   (every build, CPU): the kernel contract of core/dispatch.h. Each op runs twice, with
//              Tensor::empty buffers clean and poisoned with NaN (set_poison_empty): outputs and
//              gradients must be the same bits. A kernel that leaves an element unwritten, or reads
//              an output before writing it (the old accumulate-into-zeros contract), gives NaN.
//   Gradients  (every build, CPU): the numerical gradient check of autograd/gradcheck.h on each
//              entry that is differentiable at random inputs.
//   Devices    on the host stand-in (every build; tests/host_stand_in.h: cuda:0 in host memory, its
//              table running the CPU kernels on copies, so tolerance 0 -- what it checks is the
//              dispatch path, empty and odd shapes included) and on a real GPU (CUDA builds with a
//              device; relative error <= 1e-4, FP32 without TF32), forward and every gradient.
//   Perf       (GLIMPSE_OP_PERF=1): forward + backward time of every entry on every real device,
//              printed; no assertion (speed targets live in bench/).
//
// To add an op: one line in op_table(). NaN-aware comparisons (tests/support.h): a NaN the CPU
// propagates must appear at the same place on the device, and nowhere else.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/optim.h"
#include "tests/host_stand_in.h"
#include "tests/support.h"

#ifdef GLIMPSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

using namespace glimpse;
using glimpse::testing::expect_close;
using glimpse::testing::value_error;

namespace {

// An op with its inputs: f maps the inputs (all on one device) to an output. `frozen` inputs take no
// gradient (so a backward without that gradient runs); with `nan_every` > 0 every nan_every-th value
// of input 0 is NaN; `rule` is the ReLU backward rule in force; `smooth` = false keeps the entry out
// of the numerical gradient check (kinks or NaN at random inputs, or no gradient at all).
struct OpCase {
  std::string name;
  std::vector<Shape> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> f;
  std::vector<size_t> frozen = {};
  int64_t nan_every = 0;
  ReluRule rule = ReluRule::Standard;
  bool smooth = true;
};

// ---- the table -------------------------------------------------------------------------------------

Tensor positive(const Tensor& t, float floor = 0.5f) { return add_scalar(abs(t), floor); }

// A batch-norm call with its running statistics made on the input's device.
Tensor bn(const std::vector<Tensor>& v, bool training, bool affine = true) {
  const int64_t C = v[0].size(1);
  Tensor rm = mul_scalar(Tensor::ones({C}, v[0].device()), 0.2f), rv = Tensor::full({C}, 1.5f, v[0].device());
  return batch_norm(v[0], affine ? v[1] : Tensor(), affine ? v[2] : Tensor(), rm, rv, training);
}

// The running statistics after one training step (what batch_norm updates in place).
Tensor bn_running_stats(const std::vector<Tensor>& v) {
  const int64_t C = v[0].size(1);
  Tensor rm = Tensor::full({C}, 0.2f, v[0].device()), rv = Tensor::full({C}, 1.5f, v[0].device());
  NoGradGuard ng;
  batch_norm(v[0], Tensor(), Tensor(), rm, rv, true);
  return concat({rm, rv}, 0);
}

// An optimizer's parameter after `steps` steps with the gradients v[1..steps] (no tape).
template <typename Opt, typename Options>
Tensor optimizer_steps(const std::vector<Tensor>& v, const Options& o) {
  Tensor p = v[0].detach().clone().set_requires_grad();
  Opt opt({p}, o);
  for (size_t s = 1; s < v.size(); ++s) {
    p.impl()->grad = v[s].detach().clone().impl_ptr();
    opt.step();
  }
  return p.detach();
}

struct ConvCase {
  Shape x, w;
  Conv2dOptions opt;
};

std::vector<OpCase> op_table() {
  std::vector<OpCase> t;
  auto add_case = [&t](OpCase c) { t.push_back(std::move(c)); };

  // element-wise, NumPy broadcasting; the gradient of the smaller operand is reduce_sum_to
  for (auto [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{3, 5, 7, 9}, {3, 5, 7, 9}},
                                                            {{3, 5, 7, 9}, {1, 5, 1, 1}},
                                                            {{2, 1, 7, 1}, {1, 5, 1, 9}},
                                                            {{5, 7, 9}, {9}},
                                                            {{1}, {4, 3}},
                                                            {{3, 5, 1, 9}, {5, 7, 1}}}) {
    const std::string s = " " + shape_str(sa) + " " + shape_str(sb);
    add_case({"add" + s, {sa, sb}, [](auto& v) { return add(v[0], v[1]); }});
    add_case({"sub" + s, {sa, sb}, [](auto& v) { return sub(v[0], v[1]); }});
    add_case({"mul" + s, {sa, sb}, [](auto& v) { return mul(v[0], v[1]); }});
    add_case({"div" + s, {sa, sb}, [](auto& v) { return div(v[0], positive(v[1])); }});
  }
  for (Shape s : {Shape{1, 5, 7, 9}, Shape{7, 9}, Shape{9}, Shape{3, 1, 7, 1}})
    add_case({"add (sum_to " + shape_str(s) + ")", {{3, 5, 7, 9}, s}, [](auto& v) { return add(v[0], v[1]); }});
  const Shape u{3, 7, 11, 13};
  add_case({"neg", {u}, [](auto& v) { return neg(v[0]); }});
  add_case({"exp", {u}, [](auto& v) { return exp(v[0]); }});
  add_case({"log", {u}, [](auto& v) { return log(positive(v[0], 0.1f)); }});
  add_case({"square", {u}, [](auto& v) { return square(v[0]); }});
  add_case({"abs", {u}, [](auto& v) { return abs(v[0]); }, {}, 0, ReluRule::Standard, false});
  add_case({"sigmoid", {u}, [](auto& v) { return sigmoid(v[0]); }});
  add_case({"tanh", {u}, [](auto& v) { return tanh(v[0]); }});
  add_case(
      {"affine (mul_scalar, add_scalar)", {u}, [](auto& v) { return add_scalar(mul_scalar(v[0], -1.5f), 0.25f); }});

  // activations, under every ReLU backward rule
  for (ReluRule r : {ReluRule::Standard, ReluRule::Deconvnet, ReluRule::Guided}) {
    const std::string rn = r == ReluRule::Standard ? "standard" : r == ReluRule::Deconvnet ? "deconvnet" : "guided";
    add_case({"relu, " + rn, {{2, 3, 17, 19}}, [](auto& v) { return relu(v[0]); }, {}, 0, r, false});
    add_case({"relu_max_pool2x2 (odd), " + rn,
              {{2, 3, 9, 7}},
              [](auto& v) { return relu_max_pool2x2(v[0]); },
              {},
              0,
              r,
              false});
  }
  add_case({"leaky_relu",
            {{2, 3, 17, 19}},
            [](auto& v) { return leaky_relu(v[0], 0.07f); },
            {},
            0,
            ReluRule::Standard,
            false});
  for (int64_t dim : {0, 1, 3}) {
    const std::string d = " (dim " + std::to_string(dim) + ")";
    add_case({"softmax" + d, {{3, 7, 5, 11}}, [dim](auto& v) { return softmax(mul_scalar(v[0], 3.f), dim); }});
    add_case({"log_softmax" + d, {{3, 7, 5, 11}}, [dim](auto& v) { return log_softmax(mul_scalar(v[0], 3.f), dim); }});
  }

  // reductions
  for (int64_t n : {1, 255, 256, 257, 100003}) {
    add_case({"sum (all) n=" + std::to_string(n),
              {{n}},
              [](auto& v) { return sum(v[0]); },
              {},
              0,
              ReluRule::Standard,
              n < 1000});
    add_case({"mean (all) n=" + std::to_string(n),
              {{n}},
              [](auto& v) { return mean(v[0]); },
              {},
              0,
              ReluRule::Standard,
              n < 1000});
  }
  for (int64_t dim : {0, 1, 2, 3}) {
    const std::string d = " (dim " + std::to_string(dim) + ")";
    add_case({"sum" + d, {{3, 5, 7, 9}}, [dim](auto& v) { return sum(v[0], dim); }});
    add_case({"mean" + d, {{3, 5, 7, 9}}, [dim](auto& v) { return mean(v[0], dim); }});
  }
  add_case({"max (dim 1)", {{3, 7, 5}}, [](auto& v) { return max(v[0], 1); }, {}, 0, ReluRule::Standard, false});
  add_case(
      {"max (dim 0, keepdim)", {{4, 6}}, [](auto& v) { return max(v[0], 0, true); }, {}, 0, ReluRule::Standard, false});
  add_case({"max (all)", {{5, 3}}, [](auto& v) { return max(v[0]); }, {}, 0, ReluRule::Standard, false});

  // linear algebra
  add_case({"matmul", {{5, 7}, {7, 3}}, [](auto& v) { return matmul(v[0], v[1]); }});
  add_case({"linear", {{6, 128}, {3, 128}, {3}}, [](auto& v) { return linear(v[0], v[1], v[2]); }});
  add_case({"linear (no bias)", {{6, 9}, {4, 9}}, [](auto& v) { return linear(v[0], v[1], Tensor()); }});

  // convolution: the geometries cuDNN and the CPU's im2col handle differently
  const std::vector<ConvCase> convs = {
      {{2, 3, 11, 13}, {8, 3, 3, 3}, Conv2dOptions().padding(1)},
      {{3, 5, 9, 7}, {4, 5, 3, 3}, Conv2dOptions().stride(2)},
      {{2, 4, 13, 11}, {6, 4, 3, 3}, Conv2dOptions().padding(2).dilation(2)},
      {{2, 6, 10, 9}, {9, 2, 3, 3}, Conv2dOptions().padding(1).group(3)},
      {{1, 8, 7, 7}, {8, 1, 3, 3}, Conv2dOptions().padding(1).group(8)},  // depthwise
      {{2, 3, 8, 9}, {5, 3, 1, 1}, Conv2dOptions()},
      {{1, 2, 15, 17}, {3, 2, 5, 3}, Conv2dOptions{.stride_h = 2, .stride_w = 1, .pad_h = 2, .pad_w = 1}},
  };
  for (const ConvCase& c : convs) {
    const Conv2dOptions o = c.opt;
    add_case({"conv2d x" + shape_str(c.x) + " w" + shape_str(c.w) + " s" + std::to_string(o.stride_h) + " p" +
                  std::to_string(o.pad_h) + " d" + std::to_string(o.dilation_h) + " g" + std::to_string(o.groups),
              {c.x, c.w, {c.w[0]}},
              [o](auto& v) { return conv2d(v[0], mul_scalar(v[1], 0.3f), v[2], o); }});
  }
  const auto pad1 = Conv2dOptions().padding(1);
  add_case({"conv2d_relu (inference)",
            {{2, 3, 8, 8}, {4, 3, 3, 3}, {4}},
            [pad1](auto& v) {
              NoGradGuard ng;
              return conv2d_relu(v[0], v[1], v[2], pad1);
            },
            {},
            0,
            ReluRule::Standard,
            false});

  // pooling and resizing
  const std::vector<Pool2dOptions> pools = {Pool2dOptions::square(2, 2), Pool2dOptions::square(3, 2, 1),
                                            Pool2dOptions::square(3, 1, 1), Pool2dOptions::square(2, 1),
                                            Pool2dOptions{3, 2, 2, 1, 1, 0}};
  for (const Shape& s : {Shape{2, 3, 11, 13}, Shape{1, 2, 7, 5}, Shape{3, 1, 8, 8}})
    for (const Pool2dOptions& o : pools) {
      const std::string tag = " " + shape_str(s) + " k" + std::to_string(o.kernel_h) + "x" +
                              std::to_string(o.kernel_w) + " s" + std::to_string(o.stride_h) + "x" +
                              std::to_string(o.stride_w) + " p" + std::to_string(o.pad_h) + "x" +
                              std::to_string(o.pad_w);
      add_case(
          {"max_pool2d" + tag, {s}, [o](auto& v) { return max_pool2d(v[0], o); }, {}, 0, ReluRule::Standard, false});
      add_case({"avg_pool2d" + tag, {s}, [o](auto& v) { return avg_pool2d(v[0], o); }});
    }
  add_case({"global_avg_pool", {{3, 5, 7, 9}}, [](auto& v) { return global_avg_pool(v[0]); }});
  struct Resize {
    int64_t H, W, OH, OW;
  };
  for (Resize r :
       {Resize{5, 7, 11, 13}, {7, 7, 64, 64}, {13, 11, 5, 4}, {1, 1, 3, 3}, {4, 4, 1, 1}, {6, 9, 6, 9}, {3, 5, 17, 2}})
    for (bool align : {false, true})
      add_case({"upsample_bilinear " + std::to_string(r.H) + "x" + std::to_string(r.W) + "->" + std::to_string(r.OH) +
                    "x" + std::to_string(r.OW) + (align ? " align" : ""),
                {{2, 3, r.H, r.W}},
                [r, align](auto& v) { return upsample_bilinear(v[0], r.OH, r.OW, align); }});

  // normalization
  for (bool affine : {true, false}) {
    const std::string a = affine ? "" : " (no affine)";
    const std::vector<size_t> frozen = affine ? std::vector<size_t>{} : std::vector<size_t>{1, 2};  // unused
    add_case(
        {"batch_norm train" + a, {{3, 5, 7, 9}, {5}, {5}}, [affine](auto& v) { return bn(v, true, affine); }, frozen});
    add_case(
        {"batch_norm eval" + a, {{3, 5, 7, 9}, {5}, {5}}, [affine](auto& v) { return bn(v, false, affine); }, frozen});
    add_case(
        {"batch_norm train [N, C]" + a, {{8, 4}, {4}, {4}}, [affine](auto& v) { return bn(v, true, affine); }, frozen});
  }
  add_case({"batch_norm running statistics", {{3, 5, 7, 9}}, bn_running_stats, {0}, 0, ReluRule::Standard, false});

  // shape
  add_case({"concat (dim 1, three inputs)", {{2, 3, 4}, {2, 1, 4}, {2, 5, 4}}, [](auto& v) {
              return concat({v[0], v[1], v[2]}, 1);
            }});
  add_case({"concat (last dim)", {{3, 2}, {3, 4}}, [](auto& v) { return concat({v[0], v[1]}, -1); }});
  add_case({"pad2d", {{2, 3, 5, 4}}, [](auto& v) { return pad2d(v[0], 1, 2, 3, 0, -0.5f); }});

  // losses
  std::vector<int64_t> targets(13);
  for (int64_t n = 0; n < 13; ++n) targets[n] = (n * 5 + 2) % 7;
  add_case({"cross_entropy", {{13, 7}}, [targets](auto& v) { return cross_entropy(mul_scalar(v[0], 2.f), targets); }});
  add_case({"cross_entropy (class weights)",
            {{13, 7}, {7}},
            [targets](auto& v) { return cross_entropy(mul_scalar(v[0], 2.f), targets, positive(v[1], 0.2f)); },
            {1}});
  add_case({"bce_with_logits",
            {{6, 3}, {6, 3}},
            [](auto& v) { return bce_with_logits(v[0], mul_scalar(add_scalar(v[1], 1.f), 0.5f)); },
            {1}});
  add_case({"bce_with_logits (pos_weight)",
            {{6, 3}, {6, 3}, {3}},
            [](auto& v) {
              return bce_with_logits(mul_scalar(v[0], 4.f), mul_scalar(add_scalar(v[1], 1.f), 0.5f), positive(v[2]));
            },
            {1, 2}});

  // optimizers: three or four steps of each variant (no tape: every input frozen)
  const std::vector<SGDOptions> sgds = {{.lr = 0.1f},
                                        {.lr = 0.05f, .weight_decay = 0.01f},
                                        {.lr = 0.1f, .momentum = 0.9f},
                                        {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.3f, .weight_decay = 1e-3f},
                                        {.lr = 0.1f, .momentum = 0.8f, .nesterov = true, .weight_decay = 1e-2f}};
  for (size_t i = 0; i < sgds.size(); ++i)
    add_case({"sgd variant " + std::to_string(i),
              {{1001}, {1001}, {1001}, {1001}},
              [o = sgds[i]](auto& v) { return optimizer_steps<SGD>(v, o); },
              {0, 1, 2, 3},
              0,
              ReluRule::Standard,
              false});
  for (bool decoupled : {false, true})
    for (bool amsgrad : {false, true}) {
      AdamOptions o;
      o.lr = 0.01f;
      o.weight_decay = decoupled ? 0.05f : 0.01f;
      o.amsgrad = amsgrad;
      const std::string name = std::string(decoupled ? "adamw" : "adam") + (amsgrad ? " amsgrad" : "");
      auto f =
          decoupled
              ? std::function<Tensor(const std::vector<Tensor>&)>([o](auto& v) { return optimizer_steps<AdamW>(v, o); })
              : std::function<Tensor(const std::vector<Tensor>&)>([o](auto& v) { return optimizer_steps<Adam>(v, o); });
      add_case({name, {{777}, {777}, {777}, {777}, {777}}, f, {0, 1, 2, 3, 4}, 0, ReluRule::Standard, false});
    }

  // Edge cases, where a device most often parts from the CPU: empty batches, channels and inner
  // dimensions (which cuDNN and cuBLAS refuse), NaN inputs, gradients not wanted.
  add_case({"conv2d, empty batch", {{0, 3, 8, 8}, {4, 3, 3, 3}, {4}}, [pad1](auto& v) {
              return conv2d(v[0], v[1], v[2], pad1);
            }});
  add_case({"conv2d, no input channels", {{2, 0, 5, 5}, {4, 0, 3, 3}, {4}}, [pad1](auto& v) {
              return conv2d(v[0], v[1], v[2], pad1);
            }});
  add_case({"conv2d, empty plane with padding", {{2, 3, 0, 4}, {4, 3, 1, 1}, {4}}, [pad1](auto& v) {
              return conv2d(v[0], v[1], v[2], pad1);
            }});
  add_case({"conv2d, bias gradient only",
            {{2, 3, 6, 6}, {4, 3, 3, 3}, {4}},
            [pad1](auto& v) { return conv2d(v[0], v[1], v[2], pad1); },
            {0, 1}});
  add_case({"conv2d, NaN input",
            {{1, 2, 6, 6}, {3, 2, 3, 3}, {3}},
            [pad1](auto& v) { return conv2d(v[0], v[1], v[2], pad1); },
            {},
            17,
            ReluRule::Standard,
            false});
  add_case({"batch_norm train, 3-D input", {{4, 3, 5}, {3}, {3}}, [](auto& v) { return bn(v, true); }});
  add_case({"batch_norm train, no input gradient", {{4, 3, 3, 3}, {3}, {3}}, [](auto& v) { return bn(v, true); }, {0}});
  add_case({"batch_norm eval, empty batch", {{0, 3, 4, 4}, {3}, {3}}, [](auto& v) { return bn(v, false); }});
  add_case({"matmul, K = 0", {{5, 0}, {0, 3}}, [](auto& v) { return matmul(v[0], v[1]); }});
  add_case({"matmul, N = 0", {{5, 7}, {7, 0}}, [](auto& v) { return matmul(v[0], v[1]); }});
  add_case({"matmul, M = 0", {{0, 7}, {7, 3}}, [](auto& v) { return matmul(v[0], v[1]); }});
  add_case({"linear, empty batch", {{0, 8}, {3, 8}, {3}}, [](auto& v) { return linear(v[0], v[1], v[2]); }});
  add_case({"linear, no input features", {{4, 0}, {3, 0}, {3}}, [](auto& v) { return linear(v[0], v[1], v[2]); }});
  add_case({"relu_max_pool2x2, NaN input",
            {{2, 3, 9, 7}},
            [](auto& v) { return relu_max_pool2x2(v[0]); },
            {},
            5,
            ReluRule::Standard,
            false});
  add_case({"max_pool2d, NaN input",
            {{2, 3, 8, 8}},
            [](auto& v) { return max_pool2d(v[0], Pool2dOptions::square(2, 2)); },
            {},
            7,
            ReluRule::Standard,
            false});
  add_case({"max_pool2d, ties (the zeros of relu)",
            {{2, 3, 8, 8}},
            [](auto& v) { return max_pool2d(relu(v[0]), Pool2dOptions::square(3, 2, 1)); },
            {},
            0,
            ReluRule::Standard,
            false});
  add_case({"relu, NaN input", {{3, 11}}, [](auto& v) { return relu(v[0]); }, {}, 4, ReluRule::Standard, false});
  add_case({"global_avg_pool, NaN input",
            {{2, 3, 4, 4}},
            [](auto& v) { return global_avg_pool(v[0]); },
            {},
            21,
            ReluRule::Standard,
            false});
  add_case({"sum (all), NaN input", {{4, 9}}, [](auto& v) { return sum(v[0]); }, {}, 13, ReluRule::Standard, false});
  add_case({"sum (dim 1), empty dim", {{3, 0, 4}}, [](auto& v) { return sum(v[0], 1); }});
  return t;
}

// GPU only: past one launch's reach -- more rows than the 65,535 blocks of a row launch, more
// elements than 65,535 x 256 threads (2^24 + a few) -- so every grid-stride loop takes a second turn.
std::vector<OpCase> large_cases() {
  const int64_t rows = 70000, elements = (int64_t(1) << 24) + 4099;
  return {
      {"relu, 2^24 + 4099 values", {{elements}}, [](auto& v) { return relu(v[0]); }},
      {"add (broadcast), 70000 rows", {{rows, 3}, {3}}, [](auto& v) { return add(v[0], v[1]); }},
      {"global_avg_pool, 70000 planes", {{rows, 1, 2, 2}}, [](auto& v) { return global_avg_pool(v[0]); }},
      {"softmax, 70000 rows", {{rows, 3}}, [](auto& v) { return softmax(v[0], 1); }},
      {"sum (dim 0), 70000 rows", {{rows, 3}}, [](auto& v) { return sum(v[0], 0); }},
      {"sum (all), 2^24 + 4099 values", {{elements}}, [](auto& v) { return sum(v[0]); }},
      {"linear bias gradient, 70000 rows", {{rows, 4}, {2, 4}, {2}}, [](auto& v) { return linear(v[0], v[1], v[2]); }},
  };
}

// ---- running one entry -------------------------------------------------------------------------------

struct OpRun {
  Tensor out;
  std::vector<Tensor> grads;  // undefined where no gradient was asked for
};

// The entry's inputs for `seed` (with its NaNs), on `device`, requiring a gradient unless frozen.
std::vector<Tensor> make_inputs(const OpCase& c, uint64_t seed, Device device) {
  Rng rng(seed);
  std::vector<Tensor> in;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    Tensor t = Tensor::uniform(c.inputs[i], rng, -1.f, 1.f);
    if (i == 0 && c.nan_every > 0)
      for (int64_t j = 0; j < t.numel(); j += c.nan_every) t.data()[j] = std::numeric_limits<float>::quiet_NaN();
    const bool grad = std::find(c.frozen.begin(), c.frozen.end(), i) == c.frozen.end();
    in.push_back((device.is_cpu() ? t : t.to(device)).set_requires_grad(grad));
  }
  return in;
}

// Forward, then backward with a fixed random output gradient; results copied to the CPU.
OpRun run_case(const OpCase& c, uint64_t seed, Device device) {
  std::vector<Tensor> in = make_inputs(c, seed, device);
  ReluRuleGuard rule(c.rule);
  OpRun r;
  Tensor y = c.f(in);
  EXPECT_EQ(y.device(), device) << c.name;
  r.out = y.to(Device::cpu());
  if (!y.requires_grad()) return r;
  Rng rng(seed + 1000);
  Tensor gy = Tensor::uniform(y.shape(), rng, -1.f, 1.f);
  y.backward(device.is_cpu() ? gy : gy.to(device));
  for (const Tensor& t : in) r.grads.push_back(t.grad().defined() ? t.grad().to(Device::cpu()) : Tensor());
  return r;
}

// got against ref: the output and every gradient ref has, within `tol` (relative; 0 = the same bits).
void expect_same_run(const std::string& name, const OpRun& got, const OpRun& ref, double tol) {
  expect_close(name + " forward", got.out, ref.out, tol);
  ASSERT_EQ(got.grads.size(), ref.grads.size()) << name << ": a gradient is missing on one side";
  for (size_t i = 0; i < ref.grads.size(); ++i) {
    if (!ref.grads[i].defined()) continue;  // an input without a gradient (frozen, targets)
    expect_close(name + " grad " + std::to_string(i), got.grads[i], ref.grads[i], tol);
  }
}

uint64_t seed_of(size_t index) { return 1000 + 7 * index; }

// ---- Contract --------------------------------------------------------------------------------------

class PoisonGuard {
 public:
  PoisonGuard() { set_poison_empty(true); }
  ~PoisonGuard() { set_poison_empty(false); }
};

TEST(OpTable, EveryKernelWritesEveryOutputElement) {
  const std::vector<OpCase> table = op_table();
  for (size_t i = 0; i < table.size(); ++i) {
    SCOPED_TRACE(table[i].name);
    const OpRun clean = run_case(table[i], seed_of(i), Device::cpu());
    OpRun poisoned;
    {
      PoisonGuard poison;
      poisoned = run_case(table[i], seed_of(i), Device::cpu());
    }
    expect_same_run(table[i].name + " (poisoned buffers)", poisoned, clean, 0.0);
  }
}

// The poison itself: an op that reads its uninitialised output would be caught.
TEST(OpTable, PoisonFillsEmptyTensorsWithNaN) {
  PoisonGuard poison;
  Tensor t = Tensor::empty({5});
  for (float v : t.to_vector()) EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(Tensor::zeros({2}).to_vector(), (std::vector<float>{0, 0}));
}

// ---- Gradients -------------------------------------------------------------------------------------

TEST(OpTable, NumericalGradientsMatchBackward) {
  const std::vector<OpCase> table = op_table();
  GradcheckOptions opt;
  opt.max_points = 64;
  int checked = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    const OpCase& c = table[i];
    if (!c.smooth || c.nan_every > 0) continue;
    SCOPED_TRACE(c.name);
    const std::vector<Tensor> in = make_inputs(c, seed_of(i), Device::cpu());
    const GradcheckResult r = gradcheck(c.f, in, opt);
    EXPECT_TRUE(r.ok) << c.name << ":\n" << r.report;
    ++checked;
  }
  std::printf("  numerical gradients of %d table entries\n", checked);
  EXPECT_GT(checked, 60);
}

// ---- Devices ---------------------------------------------------------------------------------------

void expect_device_matches_cpu(const std::vector<OpCase>& cases, double tol) {
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    const OpRun ref = run_case(cases[i], seed_of(i), Device::cpu());
    const OpRun got = run_case(cases[i], seed_of(i), Device::cuda(0));
    expect_same_run(cases[i].name, got, ref, tol);
  }
}

using OpTableStandIn = glimpse::testing::StandInTest;

TEST_F(OpTableStandIn, EveryOpMatchesTheCpuThroughDispatch) { expect_device_matches_cpu(op_table(), 0.0); }

#ifdef GLIMPSE_WITH_CUDA
constexpr double kOpTol = 1e-4;  // one op, FP32 throughout (cuDNN FMA math, no TF32)

class OpTableGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::init()) GTEST_SKIP() << "no usable CUDA device: " << cuda::unavailable_reason();
  }
};

TEST_F(OpTableGpu, EveryOpMatchesTheCpu) { expect_device_matches_cpu(op_table(), kOpTol); }
TEST_F(OpTableGpu, LargeTensorsTakeASecondGridStride) { expect_device_matches_cpu(large_cases(), kOpTol); }
#endif

// ---- Perf ------------------------------------------------------------------------------------------

TEST(OpTable, PerfOfEveryOpOnEveryDevice) {
  const char* on = std::getenv("GLIMPSE_OP_PERF");
  if (!on || std::string(on) != "1") GTEST_SKIP() << "set GLIMPSE_OP_PERF=1 to time every entry on every device";
  std::vector<Device> devices = {Device::cpu()};
#ifdef GLIMPSE_WITH_CUDA
  if (cuda::init()) devices.push_back(Device::cuda(0));
#endif
  const std::vector<OpCase> table = op_table();
  std::printf("  %-60s", "op (forward + backward, ms)");
  for (Device d : devices) std::printf(" %10s", d.str().c_str());
  std::printf("\n");
  for (size_t i = 0; i < table.size(); ++i) {
    std::printf("  %-60s", table[i].name.c_str());
    for (Device d : devices) {
      run_case(table[i], seed_of(i), d);  // warm-up: allocator caches, cuDNN algorithm choice
      const int reps = 10;
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) run_case(table[i], seed_of(i), d);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
      std::printf(" %10.3f", ms);
    }
    std::printf("\n");
  }
}

}  // namespace

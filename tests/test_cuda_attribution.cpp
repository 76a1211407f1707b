// Models with batch norm and every attribution method, on a device against the CPU.
//
// The same checks run on two devices:
//   - StandIn (every build, machines without a GPU): tests/host_stand_in.h's host-memory "cuda:0"
//     whose kernel table runs the CPU kernels on copies. The values must equal the CPU's (1e-6, for
//     the rounding of nothing at all); what this checks is the plumbing: that training a BatchNorm
//     model and every method of attr::explain run with the model and the images on a non-CPU device,
//     without one Tensor::data() on a device tensor and without mixing devices.
//   - Gpu (CUDA builds with a usable GPU; skips naming cuda::unavailable_reason() otherwise): the
//     real CUDA/cuDNN kernels. Tolerances: 1e-4 for batch norm alone (one op, FP32), 1e-3 for
//     training steps and attribution maps (many ops in a row, reductions in another order).
// Targets are fixed from the CPU run, so a near tie between two logits cannot pick another class.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "attribution/metrics.h"
#include "autograd/functions.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/models.h"
#include "layers/optim.h"
#include "tests/host_stand_in.h"
#include "tests/support.h"

#ifdef GLIMPSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

using namespace glimpse;
using glimpse::testing::error_of;
using glimpse::testing::expect_close;

namespace {

const Device kDev = Device::cuda(0);

// ---- the checks, for any device -------------------------------------------------------------------

// batch_norm forward (train with the running-statistics update, and eval) and backward against the
// CPU, with and without the affine parameters, on NCHW and [N, C] inputs.
void check_batch_norm(double tol) {
  for (const Shape& shape : {Shape{3, 5, 7, 6}, Shape{8, 4}})
    for (bool affine : {true, false})
      for (bool training : {true, false}) {
        SCOPED_TRACE(shape_str(shape) + (affine ? " affine" : " plain") + (training ? " train" : " eval"));
        Rng rng(31);
        const int64_t C = shape[1];
        Tensor x = Tensor::randn(shape, rng, 0.5f, 2.f), gy = Tensor::randn(shape, rng);
        Tensor gamma = affine ? Tensor::uniform({C}, rng, 0.5f, 1.5f) : Tensor();
        Tensor beta = affine ? Tensor::randn({C}, rng) : Tensor();
        Tensor rm = Tensor::randn({C}, rng), rv = Tensor::uniform({C}, rng, 0.5f, 2.f);
        struct Run {
          Tensor x, gamma, beta, rm, rv, y;
        };
        auto run = [&](Device d) {
          Run r{x.to(d).set_requires_grad(),
                affine ? gamma.to(d).set_requires_grad() : Tensor(),
                affine ? beta.to(d).set_requires_grad() : Tensor(),
                rm.clone().to(d),
                rv.clone().to(d),
                Tensor()};
          r.y = batch_norm(r.x, r.gamma, r.beta, r.rm, r.rv, training, 0.1f, 1e-5f);
          r.y.backward(gy.to(d));
          return r;
        };
        const Run c = run(Device::cpu()), g = run(kDev);
        ASSERT_EQ(g.y.device(), kDev);
        expect_close("bn y", g.y, c.y, tol);
        expect_close("bn running_mean", g.rm, c.rm, tol);
        expect_close("bn running_var", g.rv, c.rv, tol);
        expect_close("bn gx", g.x.grad(), c.x.grad(), tol);
        if (affine) {
          expect_close("bn ggamma", g.gamma.grad(), c.gamma.grad(), tol);
          expect_close("bn gbeta", g.beta.grad(), c.beta.grad(), tol);
        }
      }
}

using MakeModel = std::function<std::shared_ptr<Model>(Rng&)>;
using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>;

// `steps` training steps of the same model on the CPU and on the device (same initial weights, same
// batches): the losses and, at the end, every parameter and buffer (running statistics) agree.
void check_training(const MakeModel& make, const MakeOptimizer& make_opt, int64_t side, int steps, double tol) {
  Rng init_cpu(41), init_dev(41), data(42);
  auto net_cpu = make(init_cpu), net_dev = make(init_dev);
  net_dev->to(kDev);
  auto opt_cpu = make_opt(net_cpu->parameters()), opt_dev = make_opt(net_dev->parameters());
  for (int step = 0; step < steps; ++step) {
    Tensor x = Tensor::uniform({4, 3, side, side}, data, -1.f, 1.f);
    const std::vector<int64_t> y = {0, 2, 1, 2};
    float losses[2];
    int i = 0;
    for (auto [net, opt, dev] :
         {std::tuple{net_cpu.get(), opt_cpu.get(), Device::cpu()}, std::tuple{net_dev.get(), opt_dev.get(), kDev}}) {
      opt->zero_grad();
      Tensor loss = cross_entropy((*net)(x.to(dev)), y);
      loss.backward();
      opt->step();
      losses[i++] = loss.item();
    }
    EXPECT_NEAR(losses[1], losses[0], tol * std::max(1.f, std::fabs(losses[0]))) << "step " << step;
  }
  auto cpu_state = net_cpu->state(), dev_state = net_dev->state();
  ASSERT_EQ(cpu_state.size(), dev_state.size());
  for (size_t k = 0; k < cpu_state.size(); ++k) {
    ASSERT_EQ(dev_state[k].second.device(), kDev) << dev_state[k].first;
    expect_close(cpu_state[k].first, dev_state[k].second, cpu_state[k].second, tol);
  }
}

void check_bn_gap_training(double tol) {
  const MakeModel bn_gap = [](Rng& r) { return bn_gap_net(3, 32, r); };
  check_training(
      bn_gap,
      [](std::vector<Tensor> p) {
        return std::make_unique<SGD>(std::move(p), SGDOptions{.lr = 0.05f, .momentum = 0.9f});
      },
      32, 5, tol);
  check_training(
      bn_gap, [](std::vector<Tensor> p) { return std::make_unique<Adam>(std::move(p), AdamOptions{}); }, 32, 5, tol);
}

// Small settings, so that the perturbation methods stay quick on the CPU.
attr::Options small_options() {
  attr::Options o;
  o.smoothgrad_samples = 3;
  o.ig_steps = 6;
  o.occlusion_window = 8;
  o.occlusion_stride = 8;
  // The device forwards whole copies; the CPU's receptive-field path (tests/test_local_forward.cpp)
  // rounds differently, so the CPU reference takes whole copies too.
  o.occlusion_local = false;
  o.sliding_window = 16;
  o.sliding_stride = 8;
  o.scorecam_batch = 16;
  o.seed = 5;
  return o;
}

// Every method of attr::explain on `model` (moved to the device for its run) against the CPU: the
// same targets and scores, raw and map within tol. The maps come back on the CPU (documented in
// attribution/attribution.h). A method that refuses the model on the CPU must refuse it the same way.
void check_every_method(const MakeModel& make, int64_t side, double tol) {
  Rng init_cpu(51), init_dev(51), data(52);
  auto net_cpu = make(init_cpu), net_dev = make(init_dev);
  // A few training-mode forwards give the batch norms running statistics other than 0 / 1.
  for (int i = 0; i < 2; ++i) {
    Tensor warm = Tensor::uniform({4, 3, side, side}, data, -1.f, 1.f);
    NoGradGuard ng;
    (*net_cpu)(warm);
    (*net_dev)(warm);
  }
  net_dev->to(kDev);
  Tensor x = Tensor::uniform({2, 3, side, side}, data, -1.f, 1.f);
  Tensor xd = x.to(kDev);
  for (const std::string& method : attr::method_names()) {
    SCOPED_TRACE(method);
    attr::Options opt = small_options();
    attr::AttributionMap a;
    const std::string cpu_error = error_of([&] { a = attr::explain(method, *net_cpu, x, opt); });
    if (cpu_error != "(no error)") {
      EXPECT_EQ(error_of([&] { attr::explain(method, *net_dev, xd, opt); }), cpu_error);
      continue;
    }
    opt.targets = a.targets;
    attr::AttributionMap b;
    ASSERT_EQ(error_of([&] { b = attr::explain(method, *net_dev, xd, opt); }), "(no error)");
    EXPECT_EQ(b.targets, a.targets);
    ASSERT_EQ(b.scores.size(), a.scores.size());
    for (size_t i = 0; i < a.scores.size(); ++i)
      EXPECT_NEAR(b.scores[i], a.scores[i], tol * std::max(1.f, std::fabs(a.scores[i])));
    expect_close(method + " raw", b.raw, a.raw, tol);
    expect_close(method + " map", b.map, a.map, tol);
    EXPECT_TRUE(b.raw.device().is_cpu() && b.map.device().is_cpu()) << "results come back on the CPU";
    // The localization curves of the app (melanoma localize) on the same map, image 0.
    if (method != "gradcam") continue;
    const Tensor m0 = a.map.slice(0, 1);
    for (auto curve : {&attr::deletion_curve, &attr::insertion_curve}) {
      const attr::Curve cc = curve(*net_cpu, x.slice(0, 1), m0, a.targets[0], {.steps = 8});
      const attr::Curve cd = curve(*net_dev, xd.slice(0, 1), m0, a.targets[0], {.steps = 8});
      EXPECT_NEAR(cd.auc, cc.auc, tol);
    }
  }
  // The models are left where they were: the device one still on the device, in its own mode.
  for (auto& [name, t] : net_dev->state()) EXPECT_EQ(t.device(), kDev) << name;
}

// Dropout in training mode draws its mask from the Rng on the host, so the same seed gives the same
// mask (and the same gradient) on every device.
void check_dropout(double tol) {
  Rng data(61);
  Tensor x = Tensor::randn({4, 6, 5}, data);
  Tensor gy = Tensor::randn(x.shape(), data);
  Tensor xc = x.clone().set_requires_grad(), xg = x.to(kDev).set_requires_grad();
  Rng rc(62), rg(62);
  Tensor yc = dropout(xc, 0.3f, true, rc), yg = dropout(xg, 0.3f, true, rg);
  ASSERT_EQ(yg.device(), kDev);
  expect_close("dropout y", yg, yc, tol);
  yc.backward(gy);
  yg.backward(gy.to(kDev));
  expect_close("dropout gx", xg.grad(), xc.grad(), tol);
}

// ---- the stand-in device (no GPU needed) ----------------------------------------------------------

constexpr double kSameTol = 1e-6;  // the stand-in runs the CPU kernels: equal up to nothing

using StandIn = glimpse::testing::StandInTest;

TEST_F(StandIn, BatchNormMatchesTheCpu) { check_batch_norm(kSameTol); }
TEST_F(StandIn, BnGapTrainingMatchesTheCpu) { check_bn_gap_training(kSameTol); }
TEST_F(StandIn, DropoutMatchesTheCpu) { check_dropout(kSameTol); }
TEST_F(StandIn, EveryMethodOnBnGapMatchesTheCpu) {
  check_every_method([](Rng& r) { return bn_gap_net(3, 32, r); }, 32, kSameTol);
}
TEST_F(StandIn, EveryMethodOnSmallGapMatchesTheCpu) {
  check_every_method([](Rng& r) { return small_gap_net(3, 32, r); }, 32, kSameTol);
}

// ---- a real GPU -----------------------------------------------------------------------------------
#ifdef GLIMPSE_WITH_CUDA
constexpr double kOpTol = 1e-4;
constexpr double kChainTol = 1e-3;

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::init()) GTEST_SKIP() << "no usable CUDA device: " << cuda::unavailable_reason();
  }
};

TEST_F(Gpu, BatchNormMatchesTheCpu) { check_batch_norm(kOpTol); }
TEST_F(Gpu, BnGapTrainingMatchesTheCpu) { check_bn_gap_training(kChainTol); }
TEST_F(Gpu, DropoutMatchesTheCpu) { check_dropout(kOpTol); }
TEST_F(Gpu, EveryMethodOnBnGapMatchesTheCpu) {
  check_every_method([](Rng& r) { return bn_gap_net(3, 32, r); }, 32, kChainTol);
}
TEST_F(Gpu, EveryMethodOnSmallGapMatchesTheCpu) {
  check_every_method([](Rng& r) { return small_gap_net(3, 32, r); }, 32, kChainTol);
}
TEST_F(Gpu, EveryMethodOnResnet18MatchesTheCpu) {
  check_every_method([](Rng& r) { return resnet18_gap(3, 32, r); }, 32, kChainTol);
}
#endif

}  // namespace

// Optimizers against hand-computed updates (PyTorch's formulas, worked in double precision), and
// the values of the learning-rate schedules.
//
// Every case starts from p = [1, -2] and sees the gradients g1 = [0.5, 0.25], g2 = [-0.3, 1],
// g3 = [0.2, -0.1]. E.g. SGD lr 0.1, momentum 0.9: buf1 = g1, p1 = [0.95, -2.025];
// buf2 = 0.9 buf1 + g2 = [0.15, 1.225], p2 = [0.935, -2.1475]. Adam lr 0.1: m^ = g1, v^ = g1^2
// after step 1, so p1 = p0 - 0.1 * sign(g1) (up to eps) = [0.9, -2.1].
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include "core/error.h"
#include "layers/lr_schedule.h"
#include "layers/optim.h"
#include "tests/support.h"

using namespace glimpse;

namespace {

const std::vector<std::vector<float>> kGrads = {{0.5f, 0.25f}, {-0.3f, 1.f}, {0.2f, -0.1f}};

void set_grad(Tensor& p, const std::vector<float>& g) { p.impl()->grad = Tensor::from_vector(p.shape(), g).impl_ptr(); }

Tensor make_param() { return Tensor::from_vector({2}, {1.f, -2.f}).set_requires_grad(); }

// Runs three steps and compares p after each with `expected`.
void run_and_check(Optimizer& opt, Tensor& p, const std::vector<std::vector<double>>& expected, double tol = 2e-6) {
  for (size_t t = 0; t < kGrads.size(); ++t) {
    opt.zero_grad();
    set_grad(p, kGrads[t]);
    opt.step();
    auto v = p.to_vector();
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(v[i], expected[t][i], tol) << "step " << t + 1 << " element " << i;
  }
  EXPECT_EQ(opt.steps(), 3);
}

}  // namespace

TEST(Optim, SGDPlain) {
  Tensor p = make_param();
  SGD opt({p}, {.lr = 0.1f});
  run_and_check(opt, p, {{0.95, -2.025}, {0.98, -2.125}, {0.96, -2.115}});
}

TEST(Optim, SGDMomentum) {
  Tensor p = make_param();
  SGD opt({p}, {.lr = 0.1f, .momentum = 0.9f});
  run_and_check(opt, p, {{0.95, -2.025}, {0.935, -2.1475}, {0.9015, -2.24775}});
}

TEST(Optim, SGDNesterovWeightDecay) {
  // Step 1: d = g + 0.01 p = [0.51, 0.23]; buf = d; d + 0.9 buf = [0.969, 0.437]; p -= 0.1 * that.
  Tensor p = make_param();
  SGD opt({p}, {.lr = 0.1f, .momentum = 0.9f, .nesterov = true, .weight_decay = 0.01f});
  run_and_check(opt, p, {{0.9031, -2.0437}, {0.91707411, -2.24844697}, {0.863721158191, -2.321286523757}});
}

TEST(Optim, SGDDampening) {
  Tensor p = make_param();
  SGD opt({p}, {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.5f, .weight_decay = 0.01f});
  run_and_check(opt, p, {{0.949, -2.023}, {0.9176255, -2.0926885}, {0.87892963725, -2.14936180575}});
}

TEST(Optim, Adam) {
  Tensor p = make_param();
  Adam opt({p}, {.lr = 0.1f});
  run_and_check(opt, p,
                {{0.900000002, -2.099999996},
                 {0.8808501989417752, -2.1884376438445123},
                 {0.846107430790882, -2.250308732873817}});
}

TEST(Optim, AdamL2WeightDecay) {
  Tensor p = make_param();
  Adam opt({p}, {.lr = 0.1f, .weight_decay = 0.1f});
  run_and_check(opt, p,
                {{0.9000000016666666, -2.099999980000004},
                 {0.8613529972101512, -2.178495511577223},
                 {0.8078745546785667, -2.2109853062709677}});
}

TEST(Optim, AdamWDecoupled) {
  // Step 1: p *= 1 - 0.1 * 0.1 -> [0.99, -1.98], then the Adam step of -0.1 * sign(g1).
  Tensor p = make_param();
  AdamW opt({p}, {.lr = 0.1f, .weight_decay = 0.1f});
  run_and_check(opt, p,
                {{0.890000002, -2.079999996},
                 {0.8619501989217752, -2.1476376438845124},
                 {0.8185879287816642, -2.188032356474972}});
  EXPECT_FLOAT_EQ(AdamW::defaults().weight_decay, 0.01f);
}

TEST(Optim, AdamAmsgrad) {
  Tensor p = make_param();
  Adam opt({p}, {.lr = 0.1f, .beta2 = 0.99f, .amsgrad = true});
  run_and_check(opt, p,
                {{0.900000002, -2.099999996},
                 {0.8808297731607283, -2.1882617028702533},
                 {0.8459998372851023, -2.2501293957467277}});
}

TEST(Optim, SkipsParamsWithoutGrad) {
  Tensor a = make_param(), b = make_param();
  Adam opt({a, b}, {.lr = 0.1f});
  set_grad(a, kGrads[0]);
  opt.step();
  EXPECT_EQ(b.to_vector(), (std::vector<float>{1.f, -2.f}));  // never reached by backward
  // b's first gradient arrives at the optimizer's second step: its own step count is 1, so its
  // update is the bias-corrected first step, -lr * sign(g).
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  set_grad(b, kGrads[1]);
  opt.step();
  auto v = b.to_vector();
  EXPECT_NEAR(v[0], 1.1, 1e-6);
  EXPECT_NEAR(v[1], -2.1, 1e-6);
  SGD sgd({a}, {.lr = 0.1f, .momentum = 0.9f});
  sgd.step();  // no grad at all: nothing happens
  EXPECT_NEAR(a.to_vector()[0], 0.9, 1e-6);
}

// An optimizer rebuilt from another's state_dict() continues exactly where that one was: the same
// updates, bit for bit, as if it had never stopped.
TEST(Optim, StateDictContinuesTheRun) {
  using Make = std::function<std::unique_ptr<Optimizer>(Tensor&, Tensor&)>;
  const std::vector<std::pair<const char*, Make>> kinds = {
      {"sgd-nesterov",
       [](Tensor& a, Tensor& b) -> std::unique_ptr<Optimizer> {
         return std::make_unique<SGD>(std::vector<Tensor>{a, b},
                                      SGDOptions{.lr = 0.1f, .momentum = 0.9f, .nesterov = true});
       }},
      {"adam",
       [](Tensor& a, Tensor& b) -> std::unique_ptr<Optimizer> {
         return std::make_unique<Adam>(std::vector<Tensor>{a, b}, AdamOptions{.lr = 0.1f});
       }},
      {"adamw-amsgrad",
       [](Tensor& a, Tensor& b) -> std::unique_ptr<Optimizer> {
         return std::make_unique<AdamW>(std::vector<Tensor>{a, b},
                                        AdamOptions{.lr = 0.1f, .weight_decay = 0.1f, .amsgrad = true});
       }},
  };
  for (const auto& [name, make] : kinds) {
    Tensor a = make_param(), b = make_param();
    auto first = make(a, b);
    // Two steps, b only reached on the second: its state is one step behind a's.
    set_grad(a, kGrads[0]);
    first->step();
    set_grad(a, kGrads[1]);
    set_grad(b, kGrads[1]);
    first->step();
    const auto saved = first->state_dict();
    EXPECT_EQ(saved.count("steps"), 1u) << name;
    Tensor a2 = a.clone().set_requires_grad(), b2 = b.clone().set_requires_grad();
    auto second = make(a2, b2);
    second->load_state_dict(saved);
    EXPECT_EQ(second->steps(), 2) << name;
    for (Optimizer* o : {first.get(), second.get()}) {
      Tensor& pa = o == first.get() ? a : a2;
      Tensor& pb = o == first.get() ? b : b2;
      set_grad(pa, kGrads[2]);
      set_grad(pb, kGrads[0]);
      o->step();
    }
    EXPECT_EQ(a2.to_vector(), a.to_vector()) << name;
    EXPECT_EQ(b2.to_vector(), b.to_vector()) << name;
    // A fresh optimizer (no state) diverges: the test can tell.
    Tensor a3 = make_param(), b3 = make_param();
    auto fresh = make(a3, b3);
    a3.copy_from(a2);
    set_grad(a3, kGrads[2]);
    fresh->step();
    set_grad(a2, kGrads[2]);
    second->step();
    EXPECT_NE(a3.to_vector(), a2.to_vector()) << name;
  }
}

TEST(Optim, StateDictRefusedWithoutChange) {
  Tensor a = make_param();
  Adam opt({a}, {.lr = 0.1f, .amsgrad = true});
  set_grad(a, kGrads[0]);
  opt.step();
  const auto good = opt.state_dict();
  auto expect_refused = [&](std::map<std::string, Tensor> bad, const std::string& says) {
    const std::string e = glimpse::testing::error_of([&] { opt.load_state_dict(bad); });
    EXPECT_NE(e.find(says), std::string::npos) << e;
    EXPECT_EQ(opt.state_dict().at("0.m").to_vector(), good.at("0.m").to_vector());
    EXPECT_EQ(opt.steps(), 1);
  };
  auto bad = good;
  bad["0.m"] = Tensor::zeros({3});
  expect_refused(bad, "'0.m' has shape [3]");
  bad = good;
  bad.erase("0.vmax");
  expect_refused(bad, "'0.vmax' is missing");
  bad = good;
  bad["1.m"] = Tensor::zeros({2});
  expect_refused(bad, "unexpected entry '1.m'");
  bad = good;
  bad["steps"] = Tensor::full({1}, 2.5f);
  expect_refused(bad, "whole count");
  bad = good;
  bad.erase("steps");
  expect_refused(bad, "'steps' is missing");
}

TEST(Optim, Validation) {
  Tensor p = make_param();
  EXPECT_THROW(SGD({}, {}), Error);
  EXPECT_THROW(SGD({p}, {.lr = -1.f}), Error);
  EXPECT_THROW(SGD({p}, {.lr = 0.1f, .nesterov = true}), Error);  // nesterov without momentum
  EXPECT_THROW(SGD({p, p}, {}), Error);                           // duplicate
  EXPECT_THROW(Adam({p}, {.beta1 = 1.f}), Error);
  SGD opt({p}, {.lr = 0.5f});
  opt.set_lr(0.25f);
  EXPECT_FLOAT_EQ(opt.lr(), 0.25f);
  EXPECT_FLOAT_EQ(opt.base_lr(), 0.5f);
  EXPECT_THROW(opt.set_lr(NAN), Error);
}

TEST(LrSchedule, StepLR) {
  StepLR s(2, 0.5f);
  const float expected[] = {0.1f, 0.1f, 0.05f, 0.05f, 0.025f, 0.025f, 0.0125f};
  for (int t = 0; t < 7; ++t) EXPECT_FLOAT_EQ(s.lr_at(0.1f, t), expected[t]) << t;
  Tensor p = make_param();
  SGD opt({p}, {.lr = 0.1f});
  EXPECT_FLOAT_EQ(s.apply(opt, 4), 0.025f);
  EXPECT_FLOAT_EQ(opt.lr(), 0.025f);
  EXPECT_FLOAT_EQ(s.apply(opt, 0), 0.1f);  // from base_lr, not compounding
  EXPECT_THROW(StepLR(0), Error);
}

TEST(LrSchedule, Cosine) {
  CosineLR c(10);
  EXPECT_FLOAT_EQ(c.lr_at(0.1f, 0), 0.1f);
  EXPECT_NEAR(c.lr_at(0.1f, 5), 0.05f, 1e-7);
  EXPECT_NEAR(c.lr_at(0.1f, 2), 0.05 * (1 + std::cos(M_PI * 0.2)), 1e-7);
  EXPECT_NEAR(c.lr_at(0.1f, 10), 0.f, 1e-9);
  EXPECT_NEAR(c.lr_at(0.1f, 50), 0.f, 1e-9);

  CosineLR w(10, 0.01f, 2);
  EXPECT_FLOAT_EQ(w.lr_at(0.1f, 0), 0.05f);  // linear warm-up
  EXPECT_FLOAT_EQ(w.lr_at(0.1f, 1), 0.1f);
  EXPECT_FLOAT_EQ(w.lr_at(0.1f, 2), 0.1f);  // cosine starts at base_lr
  EXPECT_NEAR(w.lr_at(0.1f, 6), 0.055f, 1e-7);
  EXPECT_NEAR(w.lr_at(0.1f, 10), 0.01f, 1e-7);
  for (int t = 3; t <= 10; ++t) EXPECT_LT(w.lr_at(0.1f, t), w.lr_at(0.1f, t - 1));
  EXPECT_THROW(CosineLR(10, 0.f, 10), Error);
  EXPECT_THROW(CosineLR(0), Error);
}

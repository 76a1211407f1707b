// The engine: accumulation, no-grad, tape freeing, grad() with targets, gradient hooks, and the
// three ReLU backward rules on hand-computed examples.
#include <gtest/gtest.h>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/tape.h"

using namespace glimpse;

namespace {
Tensor leaf(const Shape& s, std::vector<float> v) {
  Tensor t = Tensor::from_vector(s, v);
  t.set_requires_grad(true);
  return t;
}
}  // namespace

TEST(Engine, ScalarBackwardAndAccumulation) {
  Tensor x = leaf({3}, {1, 2, 3});
  Tensor y = sum(mul(x, x));  // dy/dx = 2x
  y.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2, 4, 6}));
  // A second backward accumulates.
  sum(mul_scalar(x, 3.f)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{5, 7, 9}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Engine, GradOutputForNonScalar) {
  Tensor x = leaf({2}, {1, 2});
  Tensor y = mul_scalar(x, 2.f);
  EXPECT_THROW(y.backward(), Error);  // not a scalar, no grad_output
  Tensor y2 = mul_scalar(x, 2.f);
  y2.backward(Tensor::from_vector({2}, {1, 10}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2, 20}));
}

TEST(Engine, DiamondGraphSumsBothPaths) {
  Tensor x = leaf({1}, {3});
  Tensor a = mul_scalar(x, 2.f), b = square(x);
  sum(add(a, b)).backward();  // d/dx (2x + x^2) = 2 + 2x
  EXPECT_FLOAT_EQ(x.grad().item(), 8.f);
}

TEST(Engine, NoGradGuardRecordsNothing) {
  Tensor x = leaf({2}, {1, 2});
  {
    NoGradGuard g;
    Tensor y = mul(x, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
  }
  EXPECT_TRUE(mul(x, x).requires_grad());
}

TEST(Engine, TapeFreedUnlessRetained) {
  Tensor x = leaf({2}, {1, 2});
  Tensor y = sum(mul(x, x));
  y.backward({}, /*retain_graph=*/true);
  y.backward();  // allowed: the tape was kept
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{4, 8}));
  try {
    y.backward();
    FAIL() << "a freed tape must refuse a second backward";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
  }
}

TEST(Engine, GradWithTargetsStopsThereAndTouchesNoLeaf) {
  Tensor w = leaf({2}, {3, 4});
  Tensor x = leaf({2}, {1, 2});
  Tensor a = mul(x, w);       // intermediate "activation"
  Tensor y = sum(square(a));  // dy/da = 2a
  auto g = grad({y}, {}, {a});
  EXPECT_EQ(g[0].to_vector(), (std::vector<float>{6, 16}));
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(x.grad().defined());
}

TEST(Engine, GradOfUnrelatedInputIsZero) {
  Tensor x = leaf({2}, {1, 2}), z = leaf({3}, {1, 1, 1});
  Tensor y = sum(x);
  auto g = grad({y}, {}, {x, z});
  EXPECT_EQ(g[0].to_vector(), (std::vector<float>{1, 1}));
  EXPECT_EQ(g[1].to_vector(), (std::vector<float>{0, 0, 0}));
}

TEST(Engine, RetainGradOnIntermediate) {
  Tensor x = leaf({2}, {1, 2});
  Tensor a = mul_scalar(x, 3.f);
  a.retain_grad();
  sum(square(a)).backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<float>{6, 12}));
}

TEST(Engine, BackwardWithoutGradIsAnError) {
  Tensor x = Tensor::ones({2});
  EXPECT_THROW(sum(x).backward(), Error);
}

TEST(Hooks, GradientHookSeesAndReplaces) {
  Tensor x = leaf({2}, {1, 2});
  Tensor a = mul_scalar(x, 2.f);
  std::vector<float> seen;
  {
    HookHandle h = a.register_hook([&](const Tensor& g) {
      seen = g.to_vector();
      return mul_scalar(g, 10.f).detach();  // replace
    });
    sum(square(a)).backward();  // dL/da = 2a = [4, 8]
    EXPECT_EQ(seen, (std::vector<float>{4, 8}));
    EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{80, 160}));  // 10 * 2 * [4, 8]
  }
  // The handle is gone: the hook no longer fires.
  x.zero_grad();
  seen.clear();
  Tensor a2 = mul_scalar(x, 2.f);
  auto h2 = a2.register_hook([&](const Tensor& g) {
    seen = g.to_vector();
    return Tensor();
  });
  h2.remove();
  sum(square(a2)).backward();
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{8, 16}));
}

TEST(Hooks, HookOnLeafAndWrongShapeReplacement) {
  Tensor x = leaf({2}, {1, 2});
  int calls = 0;
  auto h = x.register_hook([&](const Tensor&) {
    ++calls;
    return Tensor();
  });
  sum(x).backward();
  EXPECT_EQ(calls, 1);
  auto bad = x.register_hook([](const Tensor&) { return Tensor::zeros({3}); });
  EXPECT_THROW(sum(x).backward(), Error);
  EXPECT_THROW((void)Tensor::ones({2}).register_hook([](const Tensor&) { return Tensor(); }), Error);
}

// x = [[1, -1], [2, -2]], incoming gradient g = [[-3, 4], [5, -6]].
TEST(ReluRules, HandComputed2x2) {
  const std::vector<float> g{-3, 4, 5, -6};
  auto run = [&](ReluRule rule) {
    Tensor x = leaf({2, 2}, {1, -1, 2, -2});
    Tensor y = relu(x);
    ReluRuleGuard guard(rule);
    return grad({y}, {Tensor::from_vector({2, 2}, g)}, {x})[0].to_vector();
  };
  // standard: g where x > 0
  EXPECT_EQ(run(ReluRule::Standard), (std::vector<float>{-3, 0, 5, 0}));
  // deconvnet: g where g > 0, whatever x
  EXPECT_EQ(run(ReluRule::Deconvnet), (std::vector<float>{0, 4, 5, 0}));
  // guided: both
  EXPECT_EQ(run(ReluRule::Guided), (std::vector<float>{0, 0, 5, 0}));
  EXPECT_EQ(relu_rule(), ReluRule::Standard);  // the guard restored it
}

TEST(ReluRules, GuidedIsZeroWhereInputOrGradientIsNegative) {
  Rng rng(1);
  Tensor x = Tensor::uniform({64}, rng, -1, 1);
  x.set_requires_grad(true);
  Tensor g = Tensor::uniform({64}, rng, -1, 1);
  Tensor y = relu(x);
  ReluRuleGuard guard(ReluRule::Guided);
  auto gx = grad({y}, {g}, {x})[0].to_vector();
  auto xv = x.to_vector(), gv = g.to_vector();
  for (size_t i = 0; i < gx.size(); ++i) {
    if (xv[i] <= 0 || gv[i] <= 0)
      EXPECT_EQ(gx[i], 0.f);
    else
      EXPECT_EQ(gx[i], gv[i]);
  }
}

TEST(Tensor, ViewsShareStorageAndCheck) {
  Tensor t = Tensor::from_vector({2, 3}, {0, 1, 2, 3, 4, 5});
  Tensor v = t.view({3, 2});
  v.at({0, 1}) = 42;
  EXPECT_EQ(t.at({0, 1}), 42);
  Tensor s = t.slice(1, 2);
  EXPECT_EQ(s.shape(), (Shape{1, 3}));
  EXPECT_EQ(s.to_vector(), (std::vector<float>{3, 4, 5}));
  EXPECT_EQ(t.view({-1}).shape(), (Shape{6}));
  EXPECT_THROW(t.view({4, 2}), Error);
  EXPECT_THROW(t.slice(1, 3), Error);
  EXPECT_THROW(t.at({2, 0}), Error);
  Tensor c = t.clone();
  c.at({0, 0}) = -1;
  EXPECT_EQ(t.at({0, 0}), 0);
}

TEST(Tensor, CudaDeviceWithoutBackendSaysWhy) {
#ifndef GLIMPSE_WITH_CUDA
  try {
    Tensor::zeros({2}, Device::cuda());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
#else
  GTEST_SKIP() << "built with CUDA: covered by test_cuda_device";
#endif
}

// The checker itself must be able to fail: an op whose backward is off by a factor is caught, and
// one whose backward is right passes.
TEST(Gradcheck, CatchesAWrongBackward) {
  auto twice = [](const Tensor& x, float claimed) {
    Tensor out = x.clone();
    out.scale_(2.f);
    return record("twice", out, {x}, [claimed](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
      Tensor r = g.clone();
      r.scale_(claimed);
      return {r};
    });
  };
  Tensor x = leaf({4}, {0.1f, -0.5f, 2.f, 3.f});
  EXPECT_TRUE(gradcheck([&](auto& v) { return twice(v[0], 2.f); }, {x}).ok);
  GradcheckResult bad = gradcheck([&](auto& v) { return twice(v[0], 2.1f); }, {x});
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.report.find("analytic"), std::string::npos);
}

// Numerical gradient checks and forward values for the element-wise, activation, reduction,
// shape, linear-algebra and loss ops.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/error.h"

using namespace glimpse;

namespace {

Tensor param(const Shape& s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Rng rng(seed);
  Tensor t = Tensor::uniform(s, rng, lo, hi);
  t.set_requires_grad(true);
  return t;
}

void expect_grad_ok(const GradcheckFn& f, const std::vector<Tensor>& in, GradcheckOptions opt = {}) {
  GradcheckResult r = gradcheck(f, in, opt);
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_GT(r.checked, 0);
}

}  // namespace

TEST(Broadcast, ShapesAndErrors) {
  EXPECT_EQ(add(Tensor::zeros({2, 3, 4, 5}), Tensor::zeros({1, 3, 1, 1})).shape(), (Shape{2, 3, 4, 5}));
  EXPECT_EQ(mul(Tensor::zeros({4, 1}), Tensor::zeros({3})).shape(), (Shape{4, 3}));
  try {
    add(Tensor::zeros({2, 3}), Tensor::zeros({4}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("add"), std::string::npos) << e.what();
  }
}

TEST(Broadcast, ForwardValues) {
  Tensor a = Tensor::from_vector({2, 2, 1, 1}, {1, 2, 3, 4});
  Tensor b = Tensor::from_vector({1, 2, 1, 1}, {10, 20});
  EXPECT_EQ(add(a, b).to_vector(), (std::vector<float>{11, 22, 13, 24}));
  EXPECT_EQ(sub(a, b).to_vector(), (std::vector<float>{-9, -18, -7, -16}));
  EXPECT_EQ(mul(a, b).to_vector(), (std::vector<float>{10, 40, 30, 80}));
  EXPECT_EQ(div(b, a).to_vector(), (std::vector<float>{10, 10, 10.f / 3, 5}));
}

TEST(GradCheck, BinaryOpsWithBroadcasting) {
  Tensor a = param({2, 3, 4, 4}, 1), b = param({1, 3, 1, 1}, 2), c = param({4}, 3, 0.5f, 2.f);
  expect_grad_ok([](auto& v) { return add(v[0], v[1]); }, {a, b});
  expect_grad_ok([](auto& v) { return sub(v[0], v[1]); }, {a, b});
  expect_grad_ok([](auto& v) { return mul(v[0], v[1]); }, {a, b});
  expect_grad_ok([](auto& v) { return div(v[0], v[1]); }, {a, c});
  expect_grad_ok([](auto& v) { return mul(v[1], v[0]); }, {a, c});
}

TEST(GradCheck, UnaryOps) {
  Tensor x = param({3, 5}, 4);
  Tensor pos = param({3, 5}, 5, 0.5f, 2.f);
  expect_grad_ok([](auto& v) { return exp(v[0]); }, {x});
  expect_grad_ok([](auto& v) { return log(v[0]); }, {pos});
  expect_grad_ok([](auto& v) { return square(v[0]); }, {x});
  expect_grad_ok([](auto& v) { return abs(v[0]); }, {x});
  expect_grad_ok([](auto& v) { return sigmoid(v[0]); }, {x});
  expect_grad_ok([](auto& v) { return tanh(v[0]); }, {x});
  expect_grad_ok([](auto& v) { return mul_scalar(add_scalar(v[0], 2.f), -3.f); }, {x});
  expect_grad_ok([](auto& v) { return relu(v[0]); }, {x});
  expect_grad_ok([](auto& v) { return leaky_relu(v[0], 0.1f); }, {x});
}

TEST(GradCheck, SoftmaxFamily) {
  Tensor x = param({2, 4, 3}, 6);
  expect_grad_ok([](auto& v) { return softmax(v[0], 1); }, {x});
  expect_grad_ok([](auto& v) { return log_softmax(v[0], -1); }, {x});
  // rows sum to one
  auto s = softmax(x, 1).to_vector();
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c) {
      float t = 0;
      for (int k = 0; k < 4; ++k) t += s[(n * 4 + k) * 3 + c];
      EXPECT_NEAR(t, 1.f, 1e-6);
    }
}

TEST(GradCheck, Reductions) {
  Tensor x = param({2, 3, 4}, 7);
  expect_grad_ok([](auto& v) { return sum(v[0]); }, {x});
  expect_grad_ok([](auto& v) { return mean(v[0]); }, {x});
  expect_grad_ok([](auto& v) { return sum(v[0], 1, true); }, {x});
  expect_grad_ok([](auto& v) { return mean(v[0], -1, false); }, {x});
  expect_grad_ok([](auto& v) { return max(v[0], 2, false); }, {x});
  expect_grad_ok([](auto& v) { return max(v[0]); }, {x});
  EXPECT_EQ(sum(x, 1, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(mean(x, 0).shape(), (Shape{3, 4}));
  Tensor m = Tensor::from_vector({2, 3}, {1, 5, 2, 7, -1, 3});
  EXPECT_EQ(max(m, 1).to_vector(), (std::vector<float>{5, 7}));
  EXPECT_EQ(argmax_rows(m), (std::vector<int64_t>{1, 0}));
  EXPECT_FLOAT_EQ(mean(m).item(), 17.f / 6);
}

TEST(GradCheck, ShapeOps) {
  Tensor x = param({2, 3, 2, 2}, 8), y = param({2, 1, 2, 2}, 9);
  expect_grad_ok([](auto& v) { return reshape(v[0], {4, -1}); }, {x});
  expect_grad_ok([](auto& v) { return flatten(v[0]); }, {x});
  expect_grad_ok([](auto& v) { return concat({v[0], v[1]}, 1); }, {x, y});
  expect_grad_ok([](auto& v) { return pad2d(v[0], 1, 0, 2, 1, 0.5f); }, {x});
  expect_grad_ok([](auto& v) { return narrow0(v[0], 1, 2); }, {x});
  Tensor p = pad2d(Tensor::ones({1, 1, 1, 1}), 1, 1, 1, 1, 0.f);
  EXPECT_EQ(p.to_vector(), (std::vector<float>{0, 0, 0, 0, 1, 0, 0, 0, 0}));
  EXPECT_THROW(concat({x, Tensor::zeros({2, 1, 3, 2})}, 1), Error);
}

TEST(GradCheck, MatmulAndLinear) {
  Tensor a = param({3, 4}, 10), b = param({4, 5}, 11);
  expect_grad_ok([](auto& v) { return matmul(v[0], v[1]); }, {a, b});
  Tensor x = param({3, 4}, 12), w = param({2, 4}, 13), bias = param({2}, 14);
  expect_grad_ok([](auto& v) { return linear(v[0], v[1], v[2]); }, {x, w, bias});
  expect_grad_ok([](auto& v) { return linear(v[0], v[1], Tensor()); }, {x, w});
  // y = x W^T + b against a hand computation
  Tensor xx = Tensor::from_vector({1, 2}, {1, 2});
  Tensor ww = Tensor::from_vector({2, 2}, {1, 0, 3, 4});
  Tensor bb = Tensor::from_vector({2}, {0.5f, -1});
  EXPECT_EQ(linear(xx, ww, bb).to_vector(), (std::vector<float>{1.5f, 10}));
  EXPECT_THROW(matmul(a, a), Error);
  try {
    linear(x, Tensor::zeros({2, 5}), Tensor());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[3, 4]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 5]"), std::string::npos) << e.what();
  }
}

TEST(GradCheck, Losses) {
  Tensor z = param({4, 3}, 15, -2.f, 2.f);
  std::vector<int64_t> y{0, 2, 1, 2};
  expect_grad_ok([&](auto& v) { return cross_entropy(v[0], y); }, {z});
  Tensor w = Tensor::from_vector({3}, {1.f, 2.f, 0.5f});
  expect_grad_ok([&](auto& v) { return cross_entropy(v[0], y, w); }, {z});
  Tensor t = Tensor::from_vector({4, 3}, {1, 0, 0, 0, 1, 1, 0.5f, 0, 1, 1, 1, 0});
  expect_grad_ok([&](auto& v) { return bce_with_logits(v[0], t); }, {z});
  Tensor q = Tensor::from_vector({3}, {2.f, 1.f, 3.f});
  expect_grad_ok([&](auto& v) { return bce_with_logits(v[0], t, q); }, {z});
}

TEST(Losses, KnownValues) {
  // Uniform logits: cross-entropy = log K.
  Tensor z = Tensor::zeros({2, 4});
  EXPECT_NEAR(cross_entropy(z, {1, 3}).item(), std::log(4.f), 1e-6);
  // Weighted mean: sample losses log(1+e^-?)... use two samples with different weights.
  Tensor z2 = Tensor::from_vector({2, 2}, {2, 0, 0, 0});
  Tensor w = Tensor::from_vector({2}, {1.f, 3.f});
  const double l0 = std::log(1 + std::exp(-2.0)), l1 = std::log(2.0);  // targets 0 and 1
  EXPECT_NEAR(cross_entropy(z2, {0, 1}, w).item(), (1 * l0 + 3 * l1) / 4, 1e-6);
  // BCE at logit 0 is log 2 whatever the target.
  EXPECT_NEAR(bce_with_logits(Tensor::zeros({3}), Tensor::from_vector({3}, {0, 1, 0.5f})).item(), std::log(2.f), 1e-6);
  EXPECT_THROW(cross_entropy(z, {1, 4}), Error);
  EXPECT_THROW(cross_entropy(z, {1}), Error);
}

TEST(Dropout, ScalesAndIsIdentityInEval) {
  Rng rng(3);
  Tensor x = Tensor::ones({1000});
  Tensor y = dropout(x, 0.25f, true, rng);
  auto v = y.to_vector();
  int zeros = 0;
  for (float f : v) {
    EXPECT_TRUE(f == 0.f || std::abs(f - 1.f / 0.75f) < 1e-6);
    zeros += f == 0.f;
  }
  EXPECT_GT(zeros, 180);
  EXPECT_LT(zeros, 320);
  EXPECT_TRUE(dropout(x, 0.5f, false, rng).same(x));
  Tensor p = param({3, 4}, 16);
  expect_grad_ok(
      [](auto& v) {
        Rng r(5);  // the same mask for every evaluation
        return dropout(v[0], 0.3f, true, r);
      },
      {p});
}

// The shared test checker (tests/support.h) itself: a comparison that a NaN or an infinity can
// pass would make every test built on it blind, CPU and CUDA tests alike.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/support.h"

namespace glimpse::testing {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

Tensor t(const std::vector<float>& v) { return Tensor::from_vector({static_cast<int64_t>(v.size())}, v); }

TEST(Checker, ValueErrorTreatsOneSidedNaNAndInfinityAsInfinite) {
  EXPECT_EQ(value_error(1.0, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(value_error(1.5, 1.0), 0.5);
  EXPECT_EQ(value_error(kNaN, 2.0), HUGE_VAL);
  EXPECT_EQ(value_error(2.0, kNaN), HUGE_VAL);
  EXPECT_EQ(value_error(kNaN, kNaN), 0.0);  // a NaN the reference also has (NaN propagation) agrees
  EXPECT_EQ(value_error(kInf, kInf), 0.0);
  EXPECT_EQ(value_error(-kInf, -kInf), 0.0);
  EXPECT_EQ(value_error(kInf, -kInf), HUGE_VAL);
  EXPECT_EQ(value_error(kInf, 3.0), HUGE_VAL);
  EXPECT_EQ(value_error(3.0, -kInf), HUGE_VAL);
}

TEST(Checker, MaxKeepNaNKeepsANaNFromEitherSide) {
  EXPECT_TRUE(std::isnan(max_keep_nan(1.0, kNaN)));
  EXPECT_TRUE(std::isnan(max_keep_nan(kNaN, 1.0)));
  EXPECT_EQ(max_keep_nan(1.0, 2.0), 2.0);
  EXPECT_EQ(max_keep_nan(2.0, 1.0), 2.0);
}

// The case the CUDA review found: {1, NaN, 3} against {1, 2, 3} reported error 0.
TEST(Checker, RelativeErrorOfANaNIsInfinite) {
  EXPECT_EQ(relative_error(t({1, kNaN, 3}), t({1, 2, 3})), HUGE_VAL);
  EXPECT_EQ(relative_error(t({1, 2, 3}), t({1, kNaN, 3})), HUGE_VAL);
  EXPECT_EQ(relative_error(t({kNaN, 2, 3}), t({1, 2, 3})), HUGE_VAL);  // first and last positions too
  EXPECT_EQ(relative_error(t({1, 2, kNaN}), t({1, 2, 3})), HUGE_VAL);
  EXPECT_EQ(relative_error(t({1, kInf, 3}), t({1, 2, 3})), HUGE_VAL);
  EXPECT_EQ(relative_error(t({1, kNaN, 3}), t({1, kNaN, 3})), 0.0);
  EXPECT_DOUBLE_EQ(relative_error(t({1, 2.5f, 3}), t({1, 2, 4})), 1.0 / 4);  // max |d| / max |ref|
  EXPECT_EQ(max_abs_error(t({1, kNaN}), t({1, 1})), HUGE_VAL);
}

TEST(Checker, WorstMismatchNamesTheElement) {
  const Mismatch m = worst_mismatch({1, 2, kNaN, 4}, {1, 2, 3, 4});
  EXPECT_EQ(m.at, 2u);
  EXPECT_TRUE(std::isnan(m.got));
  EXPECT_EQ(m.want, 3.0);
  EXPECT_EQ(m.scale, 4.0);
}

TEST(Checker, ExpectCloseFailsOnANaN) {
  EXPECT_NONFATAL_FAILURE(expect_close("nan", t({1, kNaN, 3}), t({1, 2, 3}), 1e-3), "flat index 1");
  EXPECT_NONFATAL_FAILURE(expect_close("inf", t({1, 2, kInf}), t({1, 2, 3}), 1e-3), "flat index 2");
  EXPECT_NONFATAL_FAILURE(expect_close("far", t({1, 2, 3.1f}), t({1, 2, 3}), 1e-3), "flat index 2");
  expect_close("equal", t({1, 2, 3}), t({1, 2, 3}), 0.0);
  expect_close("within", t({1, 2, 3.001f}), t({1, 2, 3}), 1e-3);
}

TEST(Checker, ExpectAbsCloseFailsOnANaN) {
  EXPECT_NONFATAL_FAILURE(expect_abs_close(t({kNaN, 2}), t({1, 2}), 1.0), "flat index 0");
  EXPECT_NONFATAL_FAILURE(expect_abs_close(t({1, 2}), t({1, 2.5f}), 0.25), "flat index 1");
  expect_abs_close(t({1, 2}), t({1, 2.2f}), 0.25);
}

}  // namespace
}  // namespace glimpse::testing

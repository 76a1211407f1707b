// Helpers shared by the test files (header only; not a test executable itself).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace glimpse::testing {

// The message of the glimpse::Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// max|a - b| / max(max|b|, floor) over the whole tensor; b is the reference.
inline double relative_error(const Tensor& a, const Tensor& b, double floor = 1e-12) {
  std::vector<float> va = a.contiguous().to_vector(), vb = b.contiguous().to_vector();
  EXPECT_EQ(va.size(), vb.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < std::min(va.size(), vb.size()); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(va[i]) - vb[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(vb[i])));
  }
  return diff / std::max(scale, floor);
}

// Compares got with a reference tensor at relative error <= tolerance, printing the error.
inline void expect_close(const std::string& what, const Tensor& got, const Tensor& ref, double tolerance) {
  ASSERT_TRUE(got.defined()) << what << ": no value (a gradient that never arrived?)";
  ASSERT_EQ(got.numel(), ref.numel()) << what << ": " << shape_str(got.shape()) << " vs reference "
                                      << shape_str(ref.shape());
  const double err = relative_error(got, ref);
  std::printf("  %-34s %-16s rel err %.3e\n", what.c_str(), shape_str(ref.shape()).c_str(), err);
  EXPECT_LE(err, tolerance) << what;
  EXPECT_FALSE(std::isnan(err)) << what;
}

}  // namespace glimpse::testing

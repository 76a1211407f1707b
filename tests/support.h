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

// True in an AddressSanitizer build (GCC defines __SANITIZE_ADDRESS__, clang has the feature test),
// where the slowest cases run smaller and memory growth is not judged (freed memory is quarantined).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// The message of the exception f throws (a glimpse::Error, or a library's or the app's
// std::exception), or "(no error)". Compare with "(no error)", never with "": a test that only asks
// for a non-empty result cannot fail.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// Expects f to throw a glimpse::Error whose message holds every one of `parts`: a failure if it
// throws nothing, something else, or a message without one of them.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  std::string msg;
  try {
    f();
    ADD_FAILURE() << "no error thrown";
    return;
  } catch (const Error& e) {
    msg = e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a glimpse::Error: " << e.what();
    return;
  }
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

// ---- comparing numbers ----
// Every comparison here is NaN-aware. A comparison with NaN is false, so std::max(worst, NaN) keeps
// `worst` and a NaN in a result would pass any tolerance; these helpers make it an infinite error.

// The disagreement of one value with its reference: NaN on both sides, or the same infinity on both
// sides, agree (0); NaN on one side only is an infinite error; otherwise |got - want| (infinite when
// exactly one side is infinite).
inline double value_error(double got, double want) {
  const bool gn = std::isnan(got), wn = std::isnan(want);
  if (gn || wn) return gn && wn ? 0.0 : HUGE_VAL;
  if (got == want) return 0.0;
  return std::fabs(got - want);
}

// max(a, b) that keeps a NaN from either side.
inline double max_keep_nan(double a, double b) { return std::isnan(a) ? a : (std::isnan(b) || b > a) ? b : a; }

// The worst element of got against want: its index, both values and value_error.
struct Mismatch {
  double error = 0;  // value_error at `at`; infinite for a one-sided NaN
  double scale = 0;  // max |want| over the finite reference values
  size_t at = 0;
  double got = 0, want = 0;
};

inline Mismatch worst_mismatch(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size()) << "compared vectors differ in length";
  Mismatch m;
  if (!got.empty() && !want.empty()) m.got = got[0], m.want = want[0];
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double e = value_error(got[i], want[i]);
    if (e > m.error) m.error = e, m.at = i, m.got = got[i], m.want = want[i];
    if (std::isfinite(want[i])) m.scale = std::max(m.scale, std::fabs(static_cast<double>(want[i])));
  }
  return m;
}

// max|got - want| / max(max|want|, floor); want is the reference. Infinite where a NaN or an
// infinity appears on one side only.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want, double floor = 1e-12) {
  const Mismatch m = worst_mismatch(got, want);
  return m.error / std::max(m.scale, floor);
}

inline double relative_error(const Tensor& got, const Tensor& want, double floor = 1e-12) {
  return relative_error(got.contiguous().to_vector(), want.contiguous().to_vector(), floor);
}

// max|got - want| (NaN-aware as above).
inline double max_abs_error(const Tensor& got, const Tensor& want) {
  return worst_mismatch(got.contiguous().to_vector(), want.contiguous().to_vector()).error;
}

// Compares got with a reference tensor at relative error <= tolerance, printing the error; on failure
// it names the worst element.
inline void expect_close(const std::string& what, const Tensor& got, const Tensor& ref, double tolerance) {
  ASSERT_TRUE(got.defined()) << what << ": no value (a gradient that never arrived?)";
  ASSERT_EQ(got.numel(), ref.numel()) << what << ": " << shape_str(got.shape()) << " vs reference "
                                      << shape_str(ref.shape());
  const Mismatch m = worst_mismatch(got.contiguous().to_vector(), ref.contiguous().to_vector());
  const double err = m.error / std::max(m.scale, 1e-12);
  std::printf("  %-34s %-16s rel err %.3e\n", what.c_str(), shape_str(ref.shape()).c_str(), err);
  EXPECT_LE(err, tolerance) << what << ": worst at flat index " << m.at << ": got " << m.got << ", reference "
                            << m.want;
}

// The same shape, and max|got - want| <= tolerance (an absolute tolerance: for values of known scale).
inline void expect_abs_close(const Tensor& got, const Tensor& want, double tolerance) {
  ASSERT_EQ(shape_str(got.shape()), shape_str(want.shape()));
  const Mismatch m = worst_mismatch(got.contiguous().to_vector(), want.contiguous().to_vector());
  EXPECT_LE(m.error, tolerance) << "max abs difference over " << got.numel() << " elements, at flat index " << m.at
                                << ": got " << m.got << ", want " << m.want;
}

}  // namespace glimpse::testing

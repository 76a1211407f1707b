// Softmax and log-softmax: CPU kernels, then the differentiable ops (math: core/ops/softmax.h).
#include "core/ops/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/parallel.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {
// Outer rows per parallel chunk: about 32K elements of work each.
int64_t rows_grain(const DimSplit& s) {
  return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(s.len * s.inner, 1));
}
}  // namespace

namespace {
template <typename F>
void for_rows(const DimSplit& s, F f) {
  parallel_for_range(s.outer, rows_grain(s), [&](int64_t a0, int64_t a1) {
    for (int64_t a = a0; a < a1; ++a)
      for (int64_t c = 0; c < s.inner; ++c) f(a * s.len * s.inner + c);
  });
}
}  // namespace

void softmax_forward(Tensor& y, const Tensor& x, const DimSplit& s) {
  check_cpu(x, "softmax");
  const float* p = x.data();
  float* o = y.data();
  for_rows(s, [&](int64_t base) {
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t l = 0; l < s.len; ++l) m = std::max(m, p[base + l * s.inner]);
    double z = 0;
    for (int64_t l = 0; l < s.len; ++l) z += o[base + l * s.inner] = std::exp(p[base + l * s.inner] - m);
    const float inv = static_cast<float>(1.0 / z);
    for (int64_t l = 0; l < s.len; ++l) o[base + l * s.inner] *= inv;
  });
}

void softmax_backward(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s) {
  const float* g = gy.data();
  const float* py = y.data();
  float* o = gx.data();
  for_rows(s, [&](int64_t base) {
    double dot = 0;
    for (int64_t l = 0; l < s.len; ++l) dot += g[base + l * s.inner] * py[base + l * s.inner];
    for (int64_t l = 0; l < s.len; ++l) {
      const int64_t i = base + l * s.inner;
      o[i] = py[i] * (g[i] - static_cast<float>(dot));
    }
  });
}

void log_softmax_forward(Tensor& y, const Tensor& x, const DimSplit& s) {
  check_cpu(x, "log_softmax");
  const float* p = x.data();
  float* o = y.data();
  for_rows(s, [&](int64_t base) {
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t l = 0; l < s.len; ++l) m = std::max(m, p[base + l * s.inner]);
    double z = 0;
    for (int64_t l = 0; l < s.len; ++l) z += std::exp(static_cast<double>(p[base + l * s.inner] - m));
    const float lse = m + static_cast<float>(std::log(z));
    for (int64_t l = 0; l < s.len; ++l) o[base + l * s.inner] = p[base + l * s.inner] - lse;
  });
}

void log_softmax_backward(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s) {
  const float* g = gy.data();
  const float* py = y.data();
  float* o = gx.data();
  for_rows(s, [&](int64_t base) {
    double sum = 0;
    for (int64_t l = 0; l < s.len; ++l) sum += g[base + l * s.inner];
    for (int64_t l = 0; l < s.len; ++l) {
      const int64_t i = base + l * s.inner;
      o[i] = g[i] - std::exp(py[i]) * static_cast<float>(sum);
    }
  });
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

Tensor softmax(const Tensor& x, int64_t dim) {
  DimSplit s = split_at(x.shape(), dim, "softmax");
  Tensor y = Tensor::empty(x.shape(), x.device());
  dispatch("softmax", x.device(), GLIMPSE_KERNEL(softmax_forward), y, x.contiguous(), s);
  Tensor yd = y.detach();
  return record("softmax", y, {x}, [yd, s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(yd.shape(), yd.device());
    dispatch("softmax", yd.device(), GLIMPSE_KERNEL(softmax_backward), gx, g.contiguous(), yd, s);
    return {gx};
  });
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  DimSplit s = split_at(x.shape(), dim, "log_softmax");
  Tensor y = Tensor::empty(x.shape(), x.device());
  dispatch("log_softmax", x.device(), GLIMPSE_KERNEL(log_softmax_forward), y, x.contiguous(), s);
  Tensor yd = y.detach();
  return record("log_softmax", y, {x}, [yd, s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(yd.shape(), yd.device());
    dispatch("log_softmax", yd.device(), GLIMPSE_KERNEL(log_softmax_backward), gx, g.contiguous(), yd, s);
    return {gx};
  });
}

}  // namespace glimpse

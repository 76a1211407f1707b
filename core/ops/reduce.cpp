#include "core/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"

namespace glimpse {

namespace {
// Outer rows per parallel chunk: about 32K elements of work each.
int64_t rows_grain(const DimSplit& s) { return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(s.len * s.inner, 1)); }
}  // namespace

DimSplit split_at(const Shape& shape, int64_t& dim, const char* op) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (dim < 0) dim += nd;
  GLIMPSE_CHECK(dim >= 0 && dim < nd, op, ": dimension out of range for shape ", shape_str(shape));
  DimSplit s;
  for (int64_t d = 0; d < dim; ++d) s.outer *= shape[d];
  s.len = shape[dim];
  for (int64_t d = dim + 1; d < nd; ++d) s.inner *= shape[d];
  return s;
}

void sum_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s) {
  check_cpu(x, "sum");
  const float* p = x.data();
  float* o = out.data();
  parallel_for_range(s.outer, rows_grain(s), [&](int64_t a0, int64_t a1) {
    for (int64_t a = a0; a < a1; ++a)
      for (int64_t c = 0; c < s.inner; ++c) {
        double acc = 0;
        for (int64_t l = 0; l < s.len; ++l) acc += p[(a * s.len + l) * s.inner + c];
        o[a * s.inner + c] = static_cast<float>(acc);
      }
  });
}

namespace {
// The index along len of the max of column (a, c): the first NaN, else the first maximum.
int64_t first_argmax(const float* p, const DimSplit& s, int64_t a, int64_t c) {
  int64_t best = 0;
  float bv = p[a * s.len * s.inner + c];
  for (int64_t l = 1; l < s.len; ++l) {
    const float v = p[(a * s.len + l) * s.inner + c];
    if (v > bv || (std::isnan(v) && !std::isnan(bv))) {
      bv = v;
      best = l;
    }
  }
  return best;
}
}  // namespace

void max_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s) {
  const float* p = x.data();
  float* o = out.data();
  for (int64_t a = 0; a < s.outer; ++a)
    for (int64_t c = 0; c < s.inner; ++c) o[a * s.inner + c] = p[(a * s.len + first_argmax(p, s, a, c)) * s.inner + c];
}

void max_dim_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const DimSplit& s) {
  const float* p = x.data();
  const float* g = gout.data();
  float* o = gx.data();
  std::fill(o, o + gx.numel(), 0.f);
  for (int64_t a = 0; a < s.outer; ++a)
    for (int64_t c = 0; c < s.inner; ++c) o[(a * s.len + first_argmax(p, s, a, c)) * s.inner + c] = g[a * s.inner + c];
}

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

void sum_dim_backward(Tensor& gx, const Tensor& gout, const DimSplit& s, float scale) {
  const float* pg = gout.data();
  float* o = gx.data();
  for (int64_t a = 0; a < s.outer; ++a)
    for (int64_t l = 0; l < s.len; ++l)
      for (int64_t c = 0; c < s.inner; ++c) o[(a * s.len + l) * s.inner + c] = scale * pg[a * s.inner + c];
}

}  // namespace glimpse

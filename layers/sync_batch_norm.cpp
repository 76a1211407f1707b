#include "layers/sync_batch_norm.h"

#include <cmath>
#include <initializer_list>
#include <vector>

#include "core/error.h"
#include "core/grad_mode.h"
#include "core/tape.h"

namespace glimpse {
namespace {

// x viewed as [N, C, P]: channel c's values of sample n are x[(n C + c) P, ... + P).
struct Layout {
  int64_t n = 0, c = 0, p = 1;
};

Layout layout_of(const Tensor& x) {
  Layout l{x.size(0), x.size(1), 1};
  for (int64_t d = 2; d < x.dim(); ++d) l.p *= x.size(d);
  return l;
}

// Per-channel sums of f(value, channel, index) over this rank's values, in double.
template <class F>
std::vector<double> channel_sums(const float* x, const Layout& l, F f) {
  std::vector<double> acc(static_cast<size_t>(l.c), 0.0);
  for (int64_t n = 0; n < l.n; ++n)
    for (int64_t c = 0; c < l.c; ++c) {
      double s = 0;
      for (int64_t i = 0, at = (n * l.c + c) * l.p; i < l.p; ++i, ++at) s += f(x[at], c, at);
      acc[static_cast<size_t>(c)] += s;
    }
  return acc;
}

// v summed over the group in (nearly) double precision: the communicator sums float32, so each
// value travels as a float and the float of its remainder, and the two sums are added in double.
// One float alone would round every sum to 1 part in 10^7, which the training of a batch-norm net
// amplifies step after step; one process keeps its statistics in double.
void sum_over_group(BatchNormGroup& group, std::vector<double>& v) {
  const int64_t n = static_cast<int64_t>(v.size());
  Tensor t = Tensor::empty({2 * n});
  for (int64_t i = 0; i < n; ++i) {
    const float hi = static_cast<float>(v[static_cast<size_t>(i)]);
    t.data()[i] = hi;
    t.data()[n + i] = static_cast<float>(v[static_cast<size_t>(i)] - hi);
  }
  group.sum(t);
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<double>(t.data()[i]) + static_cast<double>(t.data()[n + i]);
}

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                       Tensor& running_var, float momentum, float eps, const std::shared_ptr<BatchNormGroup>& group) {
  GLIMPSE_CHECK(group != nullptr, "sync_batch_norm: no group to synchronize with");
  GLIMPSE_CHECK(x.defined() && x.dim() >= 2, "sync_batch_norm: input must be [N, C, ...], got ",
                x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  GLIMPSE_CHECK(x.device().is_cpu(), "sync_batch_norm: synchronized batch norm runs on the CPU only (input on ",
                x.device().str(), "); train without --sync-bn on GPUs");
  const Layout l = layout_of(x);
  for (const Tensor* v : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var})
    GLIMPSE_CHECK(!v->defined() || (v->numel() == l.c && v->device().is_cpu()),
                  "sync_batch_norm: per-channel vectors must be [", l.c, "] on the CPU, got ",
                  v->defined() ? shape_str(v->shape()) : std::string("?"));
  const Tensor xc = x.contiguous();
  const float* xd = xc.data();

  // Allreduce 1: the sums and, in the last slot, this rank's count: M may differ between ranks.
  std::vector<double> s1 = channel_sums(xd, l, [](float v, int64_t, int64_t) { return static_cast<double>(v); });
  s1.push_back(static_cast<double>(l.n * l.p));
  sum_over_group(*group, s1);
  const double M = s1.back();
  GLIMPSE_CHECK(M > 1, "sync_batch_norm: training needs more than one value per channel over the group, got ", M);
  std::vector<double> mean(static_cast<size_t>(l.c));
  for (size_t c = 0; c < mean.size(); ++c) mean[c] = s1[c] / M;
  // Allreduce 2: the squared deviations from the global mean.
  std::vector<double> s2 = channel_sums(xd, l, [&](float v, int64_t c, int64_t) {
    const double d = v - mean[static_cast<size_t>(c)];
    return d * d;
  });
  sum_over_group(*group, s2);
  Tensor save_mean = Tensor::empty({l.c}), invstd = Tensor::empty({l.c});
  for (int64_t c = 0; c < l.c; ++c) {
    const size_t k = static_cast<size_t>(c);
    const double var = s2[k] / M;
    save_mean.data()[c] = static_cast<float>(mean[k]);
    invstd.data()[c] = static_cast<float>(1.0 / std::sqrt(var + eps));
    if (running_mean.defined()) {
      float& rm = running_mean.data()[c];
      float& rv = running_var.data()[c];
      rm = static_cast<float>((1 - momentum) * rm + momentum * mean[k]);
      rv = static_cast<float>((1 - momentum) * rv + momentum * var * M / (M - 1));
    }
  }
  Tensor out = Tensor::empty(x.shape());
  float* y = out.data();
  for (int64_t n = 0; n < l.n; ++n)
    for (int64_t c = 0; c < l.c; ++c) {
      const int64_t at = (n * l.c + c) * l.p;
      const float m = save_mean.data()[c], s = invstd.data()[c];
      const float g = gamma.defined() ? gamma.data()[c] : 1.f, b = beta.defined() ? beta.data()[c] : 0.f;
      for (int64_t i = 0; i < l.p; ++i) y[at + i] = (xd[at + i] - m) * s * g + b;
    }

  if (!grad_enabled() || !any_requires_grad({x, gamma, beta})) return out;
  const Tensor x_saved = xc.detach();
  const Tensor g_saved = gamma.defined() ? gamma.contiguous().detach() : Tensor();
  return record(
      "sync_batch_norm", out, {x, gamma, beta},
      [x_saved, g_saved, save_mean, invstd, l, M, group](const Tensor& grad_out, const std::vector<bool>& needs) {
        const Tensor go = grad_out.contiguous();
        const float *g = go.data(), *xs = x_saved.data();
        auto xhat = [&](int64_t c, int64_t at) {
          return (static_cast<double>(xs[at]) - save_mean.data()[c]) * invstd.data()[c];
        };
        // This rank's SG (first C) and SGX (next C); every rank joins the allreduce,
        // whatever it needs, so that the ranks stay in step.
        const std::vector<double> local_sg =
            channel_sums(g, l, [](float v, int64_t, int64_t) { return static_cast<double>(v); });
        const std::vector<double> local_sgx =
            channel_sums(g, l, [&](float v, int64_t c, int64_t at) { return v * xhat(c, at); });
        std::vector<double> sums = local_sg;
        sums.insert(sums.end(), local_sgx.begin(), local_sgx.end());
        sum_over_group(*group, sums);
        std::vector<Tensor> grads(3);
        if (needs[0]) {
          grads[0] = Tensor::empty(x_saved.shape());
          float* dx = grads[0].data();
          for (int64_t n = 0; n < l.n; ++n)
            for (int64_t c = 0; c < l.c; ++c) {
              const double k = (g_saved.defined() ? g_saved.data()[c] : 1.f) * invstd.data()[c] / M;
              const double sg = sums[static_cast<size_t>(c)], sgx = sums[static_cast<size_t>(l.c + c)];
              for (int64_t i = 0, at = (n * l.c + c) * l.p; i < l.p; ++i, ++at)
                dx[at] = static_cast<float>(k * (M * g[at] - sg - xhat(c, at) * sgx));
            }
        }
        auto as_tensor = [&](const std::vector<double>& v) {
          Tensor t = Tensor::empty({l.c});
          for (int64_t c = 0; c < l.c; ++c) t.data()[c] = static_cast<float>(v[static_cast<size_t>(c)]);
          return t;
        };
        if (needs[1]) grads[1] = as_tensor(local_sgx);
        if (needs[2]) grads[2] = as_tensor(local_sg);
        return grads;
      });
}

}  // namespace glimpse

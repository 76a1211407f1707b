// Batch normalization: CPU kernels, then the differentiable op (math: core/ops/batch_norm.h).
#include "core/ops/batch_norm.h"

#include <cmath>
#include <initializer_list>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/parallel.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {

// x [N, C, *] seen as N blocks of C planes of L values each.
struct BnDims {
  int64_t N, C, L;
  int64_t M() const { return N * L; }
};

BnDims bn_dims(const Tensor& x) {
  BnDims d{x.size(0), x.size(1), 1};
  for (int64_t i = 2; i < x.dim(); ++i) d.L *= x.size(i);
  return d;
}

void check_cpu_if(const Tensor& t, const char* op) {
  if (t.defined()) check_cpu(t, op);
}

const float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data() : nullptr; }
float* ptr_or_null(Tensor& t) { return t.defined() ? t.data() : nullptr; }

// y = (x - mean) * invstd * gamma + beta, channel by channel.
void normalize(float* y, const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta,
               const BnDims& d) {
  parallel_for_range(d.N * d.C, std::max<int64_t>(1, 65536 / std::max<int64_t>(d.L, 1)), [&](int64_t b0, int64_t b1) {
    for (int64_t nc = b0; nc < b1; ++nc) {
      const int64_t n = nc / d.C, c = nc % d.C;
      const float a = invstd[c] * (gamma ? gamma[c] : 1.f);
      const float b = (beta ? beta[c] : 0.f) - mean[c] * a;
      const float* xs = x + (n * d.C + c) * d.L;
      float* ys = y + (n * d.C + c) * d.L;
      for (int64_t i = 0; i < d.L; ++i) ys[i] = xs[i] * a + b;
    }
  });
}

}  // namespace

void batch_norm_forward_train(Tensor& y, Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                              Tensor& running_var, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              float momentum, float eps) {
  const char* op = "batch_norm_forward_train";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&y, &save_mean, &save_invstd, &x}) check_cpu(*t, op);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&running_mean, &running_var, &gamma, &beta})
    check_cpu_if(*t, op);
  const BnDims d = bn_dims(x);
  GLIMPSE_CHECK(d.M() > 1, "batch_norm: training needs more than one value per channel, got input ",
                shape_str(x.shape()));
  const float* px = x.data();
  float* mean = save_mean.data();
  float* invstd = save_invstd.data();
  float* rm = ptr_or_null(running_mean);
  float* rv = ptr_or_null(running_var);

  // Two passes in double per channel: the mean, then the centred sum of squares (no cancellation).
  parallel_for_range(d.C, std::max<int64_t>(1, 65536 / std::max<int64_t>(d.N * d.L, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double s = 0;
      for (int64_t n = 0; n < d.N; ++n) {
        const float* xs = px + (n * d.C + c) * d.L;
        for (int64_t i = 0; i < d.L; ++i) s += xs[i];
      }
      const double mu = s / static_cast<double>(d.M());
      double ss = 0;
      for (int64_t n = 0; n < d.N; ++n) {
        const float* xs = px + (n * d.C + c) * d.L;
        for (int64_t i = 0; i < d.L; ++i) {
          const double dx = xs[i] - mu;
          ss += dx * dx;
        }
      }
      const double var = ss / static_cast<double>(d.M());
      mean[c] = static_cast<float>(mu);
      invstd[c] = static_cast<float>(1.0 / std::sqrt(var + eps));
      if (rm) rm[c] = (1.f - momentum) * rm[c] + momentum * static_cast<float>(mu);
      if (rv)
        rv[c] = (1.f - momentum) * rv[c] +
                momentum * static_cast<float>(var * static_cast<double>(d.M()) / static_cast<double>(d.M() - 1));
    }
  });
  normalize(y.data(), px, mean, invstd, ptr_or_null(gamma), ptr_or_null(beta), d);
}

void batch_norm_forward_eval(Tensor& y, Tensor& save_mean, Tensor& save_invstd, const Tensor& x, const Tensor& gamma,
                             const Tensor& beta, const Tensor& running_mean, const Tensor& running_var, float eps) {
  const char* op = "batch_norm_forward_eval";
  for (const Tensor* t :
       std::initializer_list<const Tensor*>{&y, &save_mean, &save_invstd, &x, &running_mean, &running_var})
    check_cpu(*t, op);
  check_cpu_if(gamma, op);
  check_cpu_if(beta, op);
  const BnDims d = bn_dims(x);
  const float* rm = running_mean.data();
  const float* rv = running_var.data();
  float* mean = save_mean.data();
  float* invstd = save_invstd.data();
  for (int64_t c = 0; c < d.C; ++c) {
    mean[c] = rm[c];
    invstd[c] = 1.f / std::sqrt(rv[c] + eps);
  }
  normalize(y.data(), x.data(), mean, invstd, ptr_or_null(gamma), ptr_or_null(beta), d);
}

void batch_norm_backward(Tensor& gx, Tensor& ggamma, Tensor& gbeta, const Tensor& gout, const Tensor& x,
                         const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                         float /*eps: folded into save_invstd by the forward*/) {
  const char* op = "batch_norm_backward";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gout, &x, &save_mean, &save_invstd}) check_cpu(*t, op);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gx, &ggamma, &gbeta, &gamma}) check_cpu_if(*t, op);
  const BnDims d = bn_dims(x);
  const float* pg = gout.data();
  const float* px = x.data();
  const float* mean = save_mean.data();
  const float* invstd = save_invstd.data();
  const float* pgamma = ptr_or_null(gamma);
  float* pgx = ptr_or_null(gx);
  float* pgg = ptr_or_null(ggamma);
  float* pgb = ptr_or_null(gbeta);
  const bool need_sums = pgg || pgb || (pgx && training);

  parallel_for_range(d.C, std::max<int64_t>(1, 65536 / std::max<int64_t>(d.N * d.L, 1)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float mu = mean[c], is = invstd[c];
      double sum_g = 0, sum_gxhat = 0;  // sum g, sum g * xhat
      if (need_sums)
        for (int64_t n = 0; n < d.N; ++n) {
          const float* gs = pg + (n * d.C + c) * d.L;
          const float* xs = px + (n * d.C + c) * d.L;
          for (int64_t i = 0; i < d.L; ++i) {
            sum_g += gs[i];
            sum_gxhat += static_cast<double>(gs[i]) * ((xs[i] - mu) * is);
          }
        }
      if (pgg) pgg[c] = static_cast<float>(sum_gxhat);
      if (pgb) pgb[c] = static_cast<float>(sum_g);
      if (!pgx) continue;
      const float a = is * (pgamma ? pgamma[c] : 1.f);
      if (!training) {
        for (int64_t n = 0; n < d.N; ++n) {
          const float* gs = pg + (n * d.C + c) * d.L;
          float* out = pgx + (n * d.C + c) * d.L;
          for (int64_t i = 0; i < d.L; ++i) out[i] = a * gs[i];
        }
        continue;
      }
      // dx = a * (g - mean(g) - xhat * mean(g * xhat))
      const float mg = static_cast<float>(sum_g / static_cast<double>(d.M()));
      const float mgx = static_cast<float>(sum_gxhat / static_cast<double>(d.M()));
      for (int64_t n = 0; n < d.N; ++n) {
        const float* gs = pg + (n * d.C + c) * d.L;
        const float* xs = px + (n * d.C + c) * d.L;
        float* out = pgx + (n * d.C + c) * d.L;
        for (int64_t i = 0; i < d.L; ++i) out[i] = a * (gs[i] - mg - (xs[i] - mu) * is * mgx);
      }
    }
  });
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

namespace {

void check_channel_vector(const Tensor& t, const Tensor& x, const char* what) {
  if (!t.defined()) return;
  check_same_device(x, t, "batch_norm");
  GLIMPSE_CHECK(t.dim() == 1 && t.size(0) == x.size(1), "batch_norm: ", what, " has shape ", shape_str(t.shape()),
                " but input ", shape_str(x.shape()), " has ", x.size(1), " channels; it must be [", x.size(1), "]");
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  bool training, float momentum, float eps) {
  GLIMPSE_CHECK(x.defined(), "batch_norm: the input is undefined");
  GLIMPSE_CHECK(x.dim() >= 2, "batch_norm: input must be [N, C, ...], got shape ", shape_str(x.shape()));
  check_channel_vector(gamma, x, "gamma");
  check_channel_vector(beta, x, "beta");
  check_channel_vector(running_mean, x, "running_mean");
  check_channel_vector(running_var, x, "running_var");
  GLIMPSE_CHECK(eps > 0.f, "batch_norm: eps must be positive, got ", eps);
  GLIMPSE_CHECK(running_mean.defined() == running_var.defined(),
                "batch_norm: running_mean and running_var must both be given or both be undefined");
  GLIMPSE_CHECK(training || running_mean.defined(),
                "batch_norm: eval mode needs running_mean and running_var (got undefined tensors)");
  // The running statistics are buffers updated in place: they must not be part of a graph.
  GLIMPSE_CHECK(!running_mean.defined() || (!running_mean.requires_grad() && !running_var.requires_grad()),
                "batch_norm: running_mean / running_var must not require a gradient");
  GLIMPSE_CHECK(!running_mean.defined() || (running_mean.is_contiguous() && running_var.is_contiguous()),
                "batch_norm: running_mean / running_var must be contiguous (they are updated in place)");

  const int64_t C = x.size(1);
  const Tensor xc = x.contiguous();
  const Tensor gc = gamma.defined() ? gamma.contiguous() : Tensor();
  const Tensor bc = beta.defined() ? beta.contiguous() : Tensor();
  Tensor out = Tensor::empty(x.shape(), x.device());
  Tensor mean = Tensor::empty({C}, x.device()), invstd = Tensor::empty({C}, x.device());
  if (training)
    dispatch("batch_norm", x.device(), GLIMPSE_KERNEL(batch_norm_forward_train), out, mean, invstd, running_mean,
             running_var, xc, gc, bc, momentum, eps);
  else
    dispatch("batch_norm", x.device(), GLIMPSE_KERNEL(batch_norm_forward_eval), out, mean, invstd, xc, gc, bc,
             running_mean, running_var, eps);

  if (!grad_enabled() || !any_requires_grad({x, gamma, beta})) return out;
  const Tensor x_saved = xc.detach();
  const Tensor g_saved = gc.defined() ? gc.detach() : Tensor();
  return record(
      "batch_norm", out, {x, gamma, beta},
      [x_saved, g_saved, mean, invstd, training, eps](const Tensor& grad_out, const std::vector<bool>& needs) {
        const Tensor g = grad_out.contiguous();
        std::vector<Tensor> grads(3);
        const Shape cs{x_saved.size(1)};
        // The kernel overwrites every gradient it is given (core/dispatch.h).
        if (needs[0]) grads[0] = Tensor::empty(x_saved.shape(), g.device());
        if (needs[1]) grads[1] = Tensor::empty(cs, g.device());
        if (needs[2]) grads[2] = Tensor::empty(cs, g.device());
        dispatch("batch_norm", g.device(), GLIMPSE_KERNEL(batch_norm_backward), grads[0], grads[1], grads[2], g,
                 x_saved, g_saved, mean, invstd, training, eps);
        return grads;
      });
}

}  // namespace glimpse

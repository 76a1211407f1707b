// 2-D pooling: CPU kernels, then the differentiable ops (math: core/ops/pool2d.h).
#include "core/ops/pool2d.h"

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

struct PoolDims {
  int64_t NC, H, W, P, Q;
};

PoolDims pool_dims(const Tensor& x, const Tensor& out) {
  return {x.size(0) * x.size(1), x.size(2), x.size(3), out.size(2), out.size(3)};
}

void check_out_shape(const Tensor& out, const Tensor& x, const Pool2dOptions& opt, const char* op) {
  const Shape want{x.size(0), x.size(1), window_out_size(x.size(2), opt.kernel_h, opt.stride_h, opt.pad_h),
                   window_out_size(x.size(3), opt.kernel_w, opt.stride_w, opt.pad_w)};
  GLIMPSE_CHECK(out.shape() == want, op, ": output has shape ", shape_str(out.shape()), ", expected ", shape_str(want),
                " for input ", shape_str(x.shape()));
}

// The clipped window [h0, h1) x [w0, w1) of output (p, q).
struct Window {
  int64_t h0, h1, w0, w1;
};
inline Window window(int64_t p, int64_t q, const PoolDims& d, const Pool2dOptions& opt) {
  const int64_t hs = p * opt.stride_h - opt.pad_h, ws = q * opt.stride_w - opt.pad_w;
  return {std::max<int64_t>(hs, 0), std::min(hs + opt.kernel_h, d.H), std::max<int64_t>(ws, 0),
          std::min(ws + opt.kernel_w, d.W)};
}

// Offset within the H*W plane of the first maximal cell of the window (NaN counts as maximal, as
// in PyTorch, so a NaN propagates). -1 if the window is empty (cannot happen with pad <= k/2).
inline int64_t argmax_in(const float* plane, const Window& win, int64_t W) {
  int64_t best = -1;
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t h = win.h0; h < win.h1; ++h)
    for (int64_t w = win.w0; w < win.w1; ++w) {
      const float v = plane[h * W + w];
      if (best < 0 || v > m || std::isnan(v)) {
        best = h * W + w;
        m = v;
        if (std::isnan(v)) return best;
      }
    }
  return best;
}

// Planes per parallel chunk: a chunk holds at least `min_values` values, and the whole range runs
// serially when there are fewer values in all (a parallel start costs microseconds).
int64_t plane_grain(int64_t planes, int64_t values, int64_t min_values) {
  return values > min_values ? std::max<int64_t>(1, planes * min_values / values) : planes;
}

// 2x2 windows, stride 2, no padding (every VGG-style net): the window's four cells a b / c d in
// row-major order. Same rules as argmax_in: the first maximal cell, a NaN wins (the first one).
inline int argmax4(float a, float b, float c, float d) {
  if (a != a) return 0;
  int best = 0;
  float m = a;
  if (b > m || b != b) {
    if (b != b) return 1;
    best = 1, m = b;
  }
  if (c > m || c != c) {
    if (c != c) return 2;
    best = 2, m = c;
  }
  if (d > m || d != d) return 3;
  return best;
}

// relu as relu_forward computes it: NaN and -0 become +0.
inline float relu0(float v) { return v > 0.f ? v : 0.f; }

void max_pool_2x2_plane(float* o, const float* x, int64_t W, int64_t P, int64_t Q) {
  for (int64_t p = 0; p < P; ++p) {
    const float* r0 = x + 2 * p * W;
    const float* r1 = r0 + W;
    float* op = o + p * Q;
    for (int64_t q = 0; q < Q; ++q) {
      const float a = r0[2 * q], b = r0[2 * q + 1], c = r1[2 * q], d = r1[2 * q + 1];
      // Branch-free max that the compiler vectorizes; NaNs are rare and patched below.
      op[q] = std::max(std::max(a, b), std::max(c, d));
      if (a != a || b != b || c != c || d != d) op[q] = std::numeric_limits<float>::quiet_NaN();
    }
  }
}

// Each window's gradient goes to its argmax cell; every cell of the plane is written once -- the
// gradient at the argmax, 0 at the other three and in the last row/column that an odd H or W leaves
// outside every window -- so gx needs no zero fill first.
void max_pool_2x2_backward_plane(float* gx, const float* g, const float* x, int64_t H, int64_t W, int64_t P,
                                 int64_t Q) {
  for (int64_t p = 0; p < P; ++p) {
    const float* r0 = x + 2 * p * W;
    const float* r1 = r0 + W;
    float* cell[4] = {gx + 2 * p * W, gx + 2 * p * W + 1, gx + (2 * p + 1) * W, gx + (2 * p + 1) * W + 1};
    for (int64_t q = 0; q < Q; ++q) {
      const float v = g[p * Q + q];
      const int a = argmax4(r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1]);
      for (int c = 0; c < 4; ++c) cell[c][2 * q] = c == a ? v : 0.f;
    }
    if (W > 2 * Q) cell[1][2 * Q - 1] = cell[3][2 * Q - 1] = 0.f;  // column W - 1
  }
  if (H > 2 * P) std::fill(gx + 2 * P * W, gx + H * W, 0.f);
}

}  // namespace

void max_pool2d_forward(Tensor& out, const Tensor& x, const Pool2dOptions& opt) {
  check_cpu(out, "max_pool2d_forward");
  check_cpu(x, "max_pool2d_forward");
  check_out_shape(out, x, opt, "max_pool2d_forward");
  const PoolDims d = pool_dims(x, out);
  const float* px = x.data();
  float* po = out.data();
  const bool fast = opt.is_2x2_stride2();
  parallel_for_range(d.NC, plane_grain(d.NC, d.NC * d.P * d.Q, 4096), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* plane = px + i * d.H * d.W;
      float* o = po + i * d.P * d.Q;
      if (fast) {
        max_pool_2x2_plane(o, plane, d.W, d.P, d.Q);
        continue;
      }
      for (int64_t p = 0; p < d.P; ++p)
        for (int64_t q = 0; q < d.Q; ++q) {
          const int64_t a = argmax_in(plane, window(p, q, d, opt), d.W);
          o[p * d.Q + q] = a >= 0 ? plane[a] : -std::numeric_limits<float>::infinity();
        }
    }
  });
}

void max_pool2d_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const Pool2dOptions& opt) {
  check_cpu(gx, "max_pool2d_backward");
  check_cpu(gout, "max_pool2d_backward");
  check_cpu(x, "max_pool2d_backward");
  check_out_shape(gout, x, opt, "max_pool2d_backward");
  const PoolDims d = pool_dims(x, gout);
  const float* px = x.data();
  const float* pg = gout.data();
  float* pgx = gx.data();
  const bool fast = opt.is_2x2_stride2();
  // Overlapping windows may share an argmax, so planes (not outputs) are the unit of parallel work.
  parallel_for_range(d.NC, plane_grain(d.NC, d.NC * d.P * d.Q, 4096), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* plane = px + i * d.H * d.W;
      const float* g = pg + i * d.P * d.Q;
      float* gp = pgx + i * d.H * d.W;
      if (fast) {
        max_pool_2x2_backward_plane(gp, g, plane, d.H, d.W, d.P, d.Q);
        continue;
      }
      std::fill(gp, gp + d.H * d.W, 0.f);
      for (int64_t p = 0; p < d.P; ++p)
        for (int64_t q = 0; q < d.Q; ++q) {
          const int64_t a = argmax_in(plane, window(p, q, d, opt), d.W);
          if (a >= 0) gp[a] += g[p * d.Q + q];
        }
    }
  });
}

namespace {

// The planes of relu_max_pool2x2 are out-of-line functions with restrict pointers: written inline in
// the parallel_for lambdas, GCC compiled the forward loop to scalar code with a branch per
// comparison there (mispredicted on real data) while it vectorized the same loop on one thread,
// where the lambda is inlined elsewhere: 12.2 ms on 2 threads against 2.1 ms on 1 (bench_pool
// ReluMaxPool/w1_pool1_b32, forward + backward, 2026-12-04).
//
// The max of the relu'd cells, not relu of the max: relu(NaN) = 0, so a NaN cell must not hide a
// positive neighbour. Branch-free; the compiler vectorizes it.
[[gnu::noinline]] void relu_max_pool_2x2_plane(float* __restrict o, const float* __restrict x, int64_t W, int64_t P,
                                               int64_t Q) {
  for (int64_t p = 0; p < P; ++p) {
    const float* r0 = x + 2 * p * W;
    const float* r1 = r0 + W;
    float* op = o + p * Q;
    for (int64_t q = 0; q < Q; ++q)
      op[q] =
          std::max(std::max(relu0(r0[2 * q]), relu0(r0[2 * q + 1])), std::max(relu0(r1[2 * q]), relu0(r1[2 * q + 1])));
  }
}

// Branch-free so that the compiler vectorizes it: relu'd cells hold no NaN, so the first maximal
// cell is found with plain comparisons, and "x > 0 at the argmax" is "max > 0". Every cell of the
// plane is written (0 in the row / column an odd H or W leaves outside every window).
[[gnu::noinline]] void relu_max_pool_2x2_backward_plane(float* __restrict gp, const float* __restrict g,
                                                        const float* __restrict x, int64_t H, int64_t W, int64_t P,
                                                        int64_t Q, bool need_positive, bool need_positive_grad) {
  for (int64_t p = 0; p < P; ++p) {
    const float* r0 = x + 2 * p * W;
    const float* r1 = r0 + W;
    float* g0 = gp + 2 * p * W;
    float* g1 = g0 + W;
    const float* gr = g + p * Q;
    for (int64_t q = 0; q < Q; ++q) {
      const float a = relu0(r0[2 * q]), b = relu0(r0[2 * q + 1]), c = relu0(r1[2 * q]), e = relu0(r1[2 * q + 1]);
      const float v = gr[q];
      const bool ia = (a >= b) & (a >= c) & (a >= e);
      const bool ib = !ia & (b >= c) & (b >= e);
      const bool ic = !ia & !ib & (c >= e);
      const bool ie = !ia & !ib & !ic;
      const float m = std::max(std::max(a, b), std::max(c, e));
      const bool pass = (!need_positive | (m > 0.f)) & (!need_positive_grad | (v > 0.f));
      const float w = pass ? v : 0.f;
      g0[2 * q] = ia ? w : 0.f;
      g0[2 * q + 1] = ib ? w : 0.f;
      g1[2 * q] = ic ? w : 0.f;
      g1[2 * q + 1] = ie ? w : 0.f;
    }
    if (W > 2 * Q) g0[W - 1] = g1[W - 1] = 0.f;
  }
  if (H > 2 * P) std::fill(gp + 2 * P * W, gp + H * W, 0.f);
}

}  // namespace

void relu_max_pool2x2_forward(Tensor& out, const Tensor& x) {
  check_cpu(out, "relu_max_pool2x2_forward");
  check_cpu(x, "relu_max_pool2x2_forward");
  const Pool2dOptions opt = Pool2dOptions::square(2, 2);
  check_out_shape(out, x, opt, "relu_max_pool2x2_forward");
  const PoolDims d = pool_dims(x, out);
  const float* px = x.data();
  float* po = out.data();
  parallel_for_range(d.NC, plane_grain(d.NC, d.NC * d.P * d.Q, 4096), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) relu_max_pool_2x2_plane(po + i * d.P * d.Q, px + i * d.H * d.W, d.W, d.P, d.Q);
  });
}

void relu_max_pool2x2_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule) {
  check_cpu(gx, "relu_max_pool2x2_backward");
  check_cpu(gout, "relu_max_pool2x2_backward");
  check_cpu(x, "relu_max_pool2x2_backward");
  check_out_shape(gout, x, Pool2dOptions::square(2, 2), "relu_max_pool2x2_backward");
  const PoolDims d = pool_dims(x, gout);
  const float* px = x.data();
  const float* pg = gout.data();
  float* pgx = gx.data();
  const bool need_positive = rule != ReluRule::Deconvnet;      // Standard, Guided: x > 0
  const bool need_positive_grad = rule != ReluRule::Standard;  // Deconvnet, Guided: gradient > 0
  parallel_for_range(d.NC, plane_grain(d.NC, d.NC * d.P * d.Q, 4096), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      relu_max_pool_2x2_backward_plane(pgx + i * d.H * d.W, pg + i * d.P * d.Q, px + i * d.H * d.W, d.H, d.W, d.P, d.Q,
                                       need_positive, need_positive_grad);
  });
}

void avg_pool2d_forward(Tensor& out, const Tensor& x, const Pool2dOptions& opt) {
  check_cpu(out, "avg_pool2d_forward");
  check_cpu(x, "avg_pool2d_forward");
  check_out_shape(out, x, opt, "avg_pool2d_forward");
  const PoolDims d = pool_dims(x, out);
  const float* px = x.data();
  float* po = out.data();
  const float inv = 1.f / static_cast<float>(opt.kernel_h * opt.kernel_w);
  parallel_for_range(d.NC, plane_grain(d.NC, d.NC * d.P * d.Q, 4096), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* plane = px + i * d.H * d.W;
      float* o = po + i * d.P * d.Q;
      for (int64_t p = 0; p < d.P; ++p)
        for (int64_t q = 0; q < d.Q; ++q) {
          const Window win = window(p, q, d, opt);
          float s = 0.f;
          for (int64_t h = win.h0; h < win.h1; ++h)
            for (int64_t w = win.w0; w < win.w1; ++w) s += plane[h * d.W + w];
          o[p * d.Q + q] = s * inv;
        }
    }
  });
}

void avg_pool2d_backward(Tensor& gx, const Tensor& gout, const Pool2dOptions& opt) {
  check_cpu(gx, "avg_pool2d_backward");
  check_cpu(gout, "avg_pool2d_backward");
  check_out_shape(gout, gx, opt, "avg_pool2d_backward");
  const PoolDims d = pool_dims(gx, gout);
  const float* pg = gout.data();
  float* pgx = gx.data();
  const float inv = 1.f / static_cast<float>(opt.kernel_h * opt.kernel_w);
  parallel_for_range(d.NC, plane_grain(d.NC, d.NC * d.P * d.Q, 4096), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* g = pg + i * d.P * d.Q;
      float* gp = pgx + i * d.H * d.W;
      std::fill(gp, gp + d.H * d.W, 0.f);  // overlapping windows add up below
      for (int64_t p = 0; p < d.P; ++p)
        for (int64_t q = 0; q < d.Q; ++q) {
          const Window win = window(p, q, d, opt);
          const float v = g[p * d.Q + q] * inv;
          for (int64_t h = win.h0; h < win.h1; ++h)
            for (int64_t w = win.w0; w < win.w1; ++w) gp[h * d.W + w] += v;
        }
    }
  });
}

void global_avg_pool_forward(Tensor& out, const Tensor& x) {
  check_cpu(out, "global_avg_pool_forward");
  check_cpu(x, "global_avg_pool_forward");
  const int64_t NC = x.size(0) * x.size(1), HW = x.size(2) * x.size(3);
  GLIMPSE_CHECK(out.numel() == NC, "global_avg_pool_forward: output has shape ", shape_str(out.shape()), " for input ",
                shape_str(x.shape()));
  const float* px = x.data();
  float* po = out.data();
  parallel_for_range(NC, plane_grain(NC, NC * HW, 65536), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* plane = px + i * HW;
      double s = 0;
      for (int64_t j = 0; j < HW; ++j) s += plane[j];
      po[i] = static_cast<float>(s / static_cast<double>(HW));
    }
  });
}

void global_avg_pool_backward(Tensor& gx, const Tensor& gout) {
  check_cpu(gx, "global_avg_pool_backward");
  check_cpu(gout, "global_avg_pool_backward");
  const int64_t NC = gx.size(0) * gx.size(1), HW = gx.size(2) * gx.size(3);
  GLIMPSE_CHECK(gout.numel() == NC, "global_avg_pool_backward: gradient has shape ", shape_str(gout.shape()),
                " for input ", shape_str(gx.shape()));
  const float* pg = gout.data();
  float* pgx = gx.data();
  const float inv = 1.f / static_cast<float>(HW);
  parallel_for_range(NC, plane_grain(NC, NC * HW, 65536), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float* gp = pgx + i * HW;
      const float v = pg[i] * inv;
      for (int64_t j = 0; j < HW; ++j) gp[j] = v;
    }
  });
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

namespace {

// Validates x and the window; returns the output shape [N, C, P, Q].
Shape pool_out_shape(const Tensor& x, const Pool2dOptions& opt, const char* op) {
  GLIMPSE_CHECK(x.defined(), op, ": the input is undefined");
  GLIMPSE_CHECK(x.dim() == 4, op, ": input must be [N, C, H, W], got shape ", shape_str(x.shape()));
  GLIMPSE_CHECK(opt.kernel_h >= 1 && opt.kernel_w >= 1, op, ": kernel must be >= 1, got ", opt.kernel_h, "x",
                opt.kernel_w);
  GLIMPSE_CHECK(opt.stride_h >= 1 && opt.stride_w >= 1, op, ": stride must be >= 1, got (", opt.stride_h, ", ",
                opt.stride_w, ")");
  // PyTorch's rule: a window must always hold at least one real cell.
  GLIMPSE_CHECK(opt.pad_h >= 0 && opt.pad_w >= 0 && 2 * opt.pad_h <= opt.kernel_h && 2 * opt.pad_w <= opt.kernel_w, op,
                ": padding (", opt.pad_h, ", ", opt.pad_w, ") must be >= 0 and at most half the kernel ", opt.kernel_h,
                "x", opt.kernel_w);
  const int64_t P = window_out_size(x.size(2), opt.kernel_h, opt.stride_h, opt.pad_h);
  const int64_t Q = window_out_size(x.size(3), opt.kernel_w, opt.stride_w, opt.pad_w);
  GLIMPSE_CHECK(P >= 1 && Q >= 1, op, ": input ", shape_str(x.shape()), " with padding (", opt.pad_h, ", ", opt.pad_w,
                ") is smaller than the kernel ", opt.kernel_h, "x", opt.kernel_w);
  return {x.size(0), x.size(1), P, Q};
}

}  // namespace

// y = max over each window; the gradient goes to the window's first maximal cell.
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  const Shape os = pool_out_shape(x, opt, "max_pool2d");
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(os, x.device());
  dispatch("max_pool2d", x.device(), GLIMPSE_KERNEL(max_pool2d_forward), out, xc, opt);
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Tensor x_saved = xc.detach();
  return record("max_pool2d", out, {x}, [x_saved, opt](const Tensor& grad_out, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x_saved.shape(), x_saved.device());
    dispatch("max_pool2d", x_saved.device(), GLIMPSE_KERNEL(max_pool2d_backward), gx, grad_out.contiguous(), x_saved,
             opt);
    return std::vector<Tensor>{gx};
  });
}

// The fused pair (core/ops/pool2d.h): saves x only; the ReLU rule is read when backward runs, as
// relu() does, so deconvnet and guided backprop see the same gradients as through the two ops.
Tensor relu_max_pool2x2(const Tensor& x) {
  const Pool2dOptions opt = Pool2dOptions::square(2, 2);
  const Shape os = pool_out_shape(x, opt, "relu_max_pool2x2");
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(os, x.device());
  dispatch("relu_max_pool2x2", x.device(), GLIMPSE_KERNEL(relu_max_pool2x2_forward), out, xc);
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Tensor x_saved = xc.detach();
  return record("relu_max_pool2x2", out, {x}, [x_saved](const Tensor& grad_out, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x_saved.shape(), x_saved.device());
    dispatch("relu_max_pool2x2", x_saved.device(), GLIMPSE_KERNEL(relu_max_pool2x2_backward), gx, grad_out.contiguous(),
             x_saved, relu_rule());
    return std::vector<Tensor>{gx};
  });
}

// y = (sum over the window) / (kh*kw), padded cells counting; gx spreads gy/(kh*kw) over each window.
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  const Shape os = pool_out_shape(x, opt, "avg_pool2d");
  Tensor out = Tensor::empty(os, x.device());
  dispatch("avg_pool2d", x.device(), GLIMPSE_KERNEL(avg_pool2d_forward), out, x.contiguous(), opt);
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Shape x_shape = x.shape();
  const Device dev = x.device();
  return record("avg_pool2d", out, {x}, [x_shape, dev, opt](const Tensor& grad_out, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x_shape, dev);  // the kernel writes every cell
    dispatch("avg_pool2d", dev, GLIMPSE_KERNEL(avg_pool2d_backward), gx, grad_out.contiguous(), opt);
    return std::vector<Tensor>{gx};
  });
}

// [N, C, H, W] -> [N, C]: y = mean over H, W; gx = gy / (H*W) everywhere.
Tensor global_avg_pool(const Tensor& x) {
  GLIMPSE_CHECK(x.defined(), "global_avg_pool: the input is undefined");
  GLIMPSE_CHECK(x.dim() == 4, "global_avg_pool: input must be [N, C, H, W], got shape ", shape_str(x.shape()));
  GLIMPSE_CHECK(x.size(2) * x.size(3) > 0, "global_avg_pool: input ", shape_str(x.shape()), " has no pixels");
  Tensor out = Tensor::empty({x.size(0), x.size(1)}, x.device());
  dispatch("global_avg_pool", x.device(), GLIMPSE_KERNEL(global_avg_pool_forward), out, x.contiguous());
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Shape x_shape = x.shape();
  const Device dev = x.device();
  return record("global_avg_pool", out, {x}, [x_shape, dev](const Tensor& grad_out, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x_shape, dev);  // the kernel writes every cell
    dispatch("global_avg_pool", dev, GLIMPSE_KERNEL(global_avg_pool_backward), gx, grad_out.contiguous());
    return std::vector<Tensor>{gx};
  });
}

}  // namespace glimpse

// Bilinear resize: CPU kernels, then the differentiable op (math: core/ops/upsample.h).
#include "core/ops/upsample.h"

#include <algorithm>
#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/parallel.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {

// The two source indices and their weights for one output coordinate.
struct Tap {
  int64_t i0, i1;
  float l0, l1;
};

std::vector<Tap> taps(int64_t in, int64_t out, bool align_corners) {
  std::vector<Tap> t(out);
  float scale;
  if (align_corners)
    scale = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.f;
  else
    scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    float src;
    if (align_corners) {
      src = scale * static_cast<float>(o);
    } else {
      src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
      if (src < 0.f) src = 0.f;
    }
    const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
    const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const float l1 = src - static_cast<float>(i0);
    t[o] = {i0, i1, 1.f - l1, l1};
  }
  return t;
}

}  // namespace

void upsample_bilinear_forward(Tensor& out, const Tensor& x, bool align_corners) {
  check_cpu(out, "upsample_bilinear_forward");
  check_cpu(x, "upsample_bilinear_forward");
  GLIMPSE_CHECK(out.dim() == 4 && x.dim() == 4 && out.size(0) == x.size(0) && out.size(1) == x.size(1),
                "upsample_bilinear_forward: output ", shape_str(out.shape()), " does not fit input ",
                shape_str(x.shape()));
  const int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), OH = out.size(2), OW = out.size(3);
  const auto th = taps(H, OH, align_corners), tw = taps(W, OW, align_corners);
  const float* px = x.data();
  float* po = out.data();
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(OH * OW, 1));
  parallel_for_range(NC, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float* plane = px + i * H * W;
      float* o = po + i * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const Tap& a = th[oh];
        const float* r0 = plane + a.i0 * W;
        const float* r1 = plane + a.i1 * W;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const Tap& b = tw[ow];
          o[oh * OW + ow] = a.l0 * (b.l0 * r0[b.i0] + b.l1 * r0[b.i1]) + a.l1 * (b.l0 * r1[b.i0] + b.l1 * r1[b.i1]);
        }
      }
    }
  });
}

void upsample_bilinear_backward(Tensor& gx, const Tensor& gout, bool align_corners) {
  check_cpu(gx, "upsample_bilinear_backward");
  check_cpu(gout, "upsample_bilinear_backward");
  GLIMPSE_CHECK(gout.dim() == 4 && gx.dim() == 4 && gout.size(0) == gx.size(0) && gout.size(1) == gx.size(1),
                "upsample_bilinear_backward: gradient ", shape_str(gout.shape()), " does not fit input ",
                shape_str(gx.shape()));
  const int64_t NC = gx.size(0) * gx.size(1), H = gx.size(2), W = gx.size(3), OH = gout.size(2), OW = gout.size(3);
  const auto th = taps(H, OH, align_corners), tw = taps(W, OW, align_corners);
  const float* pg = gout.data();
  float* pgx = gx.data();
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(OH * OW, 1));
  parallel_for_range(NC, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* plane = pgx + i * H * W;
      const float* g = pg + i * OH * OW;
      std::fill(plane, plane + H * W, 0.f);  // the scatter below adds; the contract overwrites gx
      for (int64_t oh = 0; oh < OH; ++oh) {
        const Tap& a = th[oh];
        float* r0 = plane + a.i0 * W;
        float* r1 = plane + a.i1 * W;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const Tap& b = tw[ow];
          const float v = g[oh * OW + ow];
          r0[b.i0] += a.l0 * b.l0 * v;
          r0[b.i1] += a.l0 * b.l1 * v;
          r1[b.i0] += a.l1 * b.l0 * v;
          r1[b.i1] += a.l1 * b.l1 * v;
        }
      }
    }
  });
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

// Bilinear resize (PyTorch's F.interpolate(mode='bilinear', size=...)); gx scatters gy with the
// same interpolation weights.
Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  GLIMPSE_CHECK(x.defined(), "upsample_bilinear: the input is undefined");
  GLIMPSE_CHECK(x.dim() == 4, "upsample_bilinear: input must be [N, C, H, W], got shape ", shape_str(x.shape()));
  GLIMPSE_CHECK(x.size(2) >= 1 && x.size(3) >= 1, "upsample_bilinear: input ", shape_str(x.shape()), " has no pixels");
  GLIMPSE_CHECK(out_h >= 1 && out_w >= 1, "upsample_bilinear: output size must be positive, got ", out_h, "x", out_w,
                " for input ", shape_str(x.shape()));
  Tensor out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.device());
  dispatch("upsample_bilinear", x.device(), GLIMPSE_KERNEL(upsample_bilinear_forward), out, x.contiguous(),
           align_corners);
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Shape x_shape = x.shape();
  const Device dev = x.device();
  return record("upsample_bilinear", out, {x},
                [x_shape, dev, align_corners](const Tensor& grad_out, const std::vector<bool>&) {
                  Tensor gx = Tensor::empty(x_shape, dev);  // the kernel writes every cell
                  dispatch("upsample_bilinear", dev, GLIMPSE_KERNEL(upsample_bilinear_backward), gx,
                           grad_out.contiguous(), align_corners);
                  return std::vector<Tensor>{gx};
                });
}

}  // namespace glimpse

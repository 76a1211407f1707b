#include "core/ops/conv2d.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <Eigen/Core>
#include <omp.h>

#include "core/error.h"

namespace glimpse::cpu {
namespace {

using MatMap = Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using ConstMatMap = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// The sizes of one convolution, read once from the tensors.
struct ConvDims {
  int64_t N, C, H, W;  // input
  int64_t K, R, S;     // filters
  int64_t P, Q;        // output
  int64_t G, Cg, Kg;   // groups, channels and filters per group
  int64_t crs() const { return Cg * R * S; }  // rows of col (one group)
  int64_t pq() const { return P * Q; }        // columns of col
};

ConvDims dims_of(const Tensor& x, const Tensor& w, const Conv2dOptions& opt) {
  ConvDims d{};
  d.N = x.size(0), d.C = x.size(1), d.H = x.size(2), d.W = x.size(3);
  d.K = w.size(0), d.R = w.size(2), d.S = w.size(3);
  d.G = opt.groups;
  d.Cg = d.C / d.G, d.Kg = d.K / d.G;
  d.P = window_out_size(d.H, d.R, opt.stride_h, opt.pad_h, opt.dilation_h);
  d.Q = window_out_size(d.W, d.S, opt.stride_w, opt.pad_w, opt.dilation_w);
  return d;
}

// A 1x1 filter with stride 1 and no padding reads x exactly as col would lay it out: skip im2col.
bool col_is_input(const ConvDims& d, const Conv2dOptions& opt) {
  return d.R == 1 && d.S == 1 && opt.stride_h == 1 && opt.stride_w == 1 && opt.pad_h == 0 && opt.pad_w == 0;
}

// For the filter column offset `off` = s*dw - pw, the output columns q whose input column
// iw = q*sw + off lies in [0, W) form the range [lo, hi).
void valid_q_range(int64_t off, int64_t sw, int64_t W, int64_t Q, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  hi = W - off <= 0 ? 0 : std::min(Q, (W - off + sw - 1) / sw);
  lo = std::min(lo, Q);
  hi = std::max(hi, lo);
}

// col[(c*R + r)*S + s][p*Q + q] = x[c][p*sh - ph + r*dh][q*sw - pw + s*dw], 0 outside the image.
// x: the Cg channels [Cg, H, W] of one image and group.
void im2col(float* col, const float* x, const ConvDims& d, const Conv2dOptions& opt) {
  const int64_t sh = opt.stride_h, sw = opt.stride_w;
  for (int64_t c = 0; c < d.Cg; ++c)
    for (int64_t r = 0; r < d.R; ++r)
      for (int64_t s = 0; s < d.S; ++s) {
        float* dst = col + ((c * d.R + r) * d.S + s) * d.pq();
        const int64_t off = s * opt.dilation_w - opt.pad_w;
        int64_t lo, hi;
        valid_q_range(off, sw, d.W, d.Q, lo, hi);
        for (int64_t p = 0; p < d.P; ++p) {
          float* out = dst + p * d.Q;
          const int64_t ih = p * sh - opt.pad_h + r * opt.dilation_h;
          if (ih < 0 || ih >= d.H) {
            std::fill(out, out + d.Q, 0.f);
            continue;
          }
          const float* row = x + (c * d.H + ih) * d.W + off;
          std::fill(out, out + lo, 0.f);
          if (sw == 1) std::memcpy(out + lo, row + lo, sizeof(float) * (hi - lo));
          else
            for (int64_t q = lo; q < hi; ++q) out[q] = row[q * sw];
          std::fill(out + hi, out + d.Q, 0.f);
        }
      }
}

// The adjoint of im2col: gx[c][ih][iw] += col[...] for every col entry that im2col read from there.
void col2im_add(float* gx, const float* col, const ConvDims& d, const Conv2dOptions& opt) {
  const int64_t sh = opt.stride_h, sw = opt.stride_w;
  for (int64_t c = 0; c < d.Cg; ++c)
    for (int64_t r = 0; r < d.R; ++r)
      for (int64_t s = 0; s < d.S; ++s) {
        const float* src = col + ((c * d.R + r) * d.S + s) * d.pq();
        const int64_t off = s * opt.dilation_w - opt.pad_w;
        int64_t lo, hi;
        valid_q_range(off, sw, d.W, d.Q, lo, hi);
        for (int64_t p = 0; p < d.P; ++p) {
          const int64_t ih = p * sh - opt.pad_h + r * opt.dilation_h;
          if (ih < 0 || ih >= d.H) continue;
          float* row = gx + (c * d.H + ih) * d.W + off;
          const float* in = src + p * d.Q;
          for (int64_t q = lo; q < hi; ++q) row[q * sw] += in[q];
        }
      }
}

// Parallelism: the work items are (image, group) pairs. With at least as many items as threads,
// each thread takes whole items (its GEMMs then run single-threaded: Eigen does not nest inside an
// OpenMP region); with fewer (one image, few groups: the attribution case) the loop is serial and
// Eigen's GEMM uses the threads itself.
bool parallel_over_items(int64_t items) {
  const int64_t threads = omp_get_max_threads();
  return threads > 1 && items >= threads;
}

void check_all_cpu(std::initializer_list<const Tensor*> ts, const char* op) {
  for (const Tensor* t : ts)
    if (t->defined()) check_cpu(*t, op);
}

}  // namespace

void conv2d_forward(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt) {
  check_all_cpu({&out, &x, &w, &b}, "conv2d_forward");
  const ConvDims d = dims_of(x, w, opt);
  GLIMPSE_CHECK(out.shape() == (Shape{d.N, d.K, d.P, d.Q}), "conv2d_forward: out has shape ", shape_str(out.shape()),
                ", expected ", shape_str({d.N, d.K, d.P, d.Q}));
  const float* px = x.data();
  const float* pw = w.data();
  const float* pb = b.defined() ? b.data() : nullptr;
  float* po = out.data();
  const bool direct = col_is_input(d, opt);

#pragma omp parallel if (parallel_over_items(d.N * d.G))
  {
    std::vector<float> col(direct ? 0 : d.crs() * d.pq());
#pragma omp for schedule(static)
    for (int64_t item = 0; item < d.N * d.G; ++item) {
      const int64_t n = item / d.G, g = item % d.G;
      const float* xg = px + (n * d.C + g * d.Cg) * d.H * d.W;
      const float* cg = xg;
      if (!direct) {
        im2col(col.data(), xg, d, opt);
        cg = col.data();
      }
      ConstMatMap wg(pw + g * d.Kg * d.crs(), d.Kg, d.crs());
      ConstMatMap colm(cg, d.crs(), d.pq());
      float* og = po + (n * d.K + g * d.Kg) * d.pq();
      MatMap(og, d.Kg, d.pq()).noalias() = wg * colm;
      if (pb)
        for (int64_t k = 0; k < d.Kg; ++k) {
          const float bk = pb[g * d.Kg + k];
          float* o = og + k * d.pq();
          for (int64_t i = 0; i < d.pq(); ++i) o[i] += bk;
        }
    }
  }
}

void conv2d_backward_data(Tensor& gx, const Tensor& gout, const Tensor& w, const Conv2dOptions& opt) {
  check_all_cpu({&gx, &gout, &w}, "conv2d_backward_data");
  const ConvDims d = dims_of(gx, w, opt);
  GLIMPSE_CHECK(gout.shape() == (Shape{d.N, d.K, d.P, d.Q}), "conv2d_backward_data: gout has shape ",
                shape_str(gout.shape()), ", expected ", shape_str({d.N, d.K, d.P, d.Q}));
  const float* pg = gout.data();
  const float* pw = w.data();
  float* px = gx.data();
  const bool direct = col_is_input(d, opt);

#pragma omp parallel if (parallel_over_items(d.N * d.G))
  {
    std::vector<float> col(direct ? 0 : d.crs() * d.pq());
#pragma omp for schedule(static)
    for (int64_t item = 0; item < d.N * d.G; ++item) {
      const int64_t n = item / d.G, g = item % d.G;
      ConstMatMap wg(pw + g * d.Kg * d.crs(), d.Kg, d.crs());
      ConstMatMap gg(pg + (n * d.K + g * d.Kg) * d.pq(), d.Kg, d.pq());
      float* xg = px + (n * d.C + g * d.Cg) * d.H * d.W;
      if (direct) {
        MatMap gxm(xg, d.Cg, d.pq());
        gxm.noalias() += wg.transpose() * gg;
      } else {
        MatMap colm(col.data(), d.crs(), d.pq());
        colm.noalias() = wg.transpose() * gg;
        col2im_add(xg, col.data(), d, opt);
      }
    }
  }
}

void conv2d_backward_filter(Tensor& gw, Tensor& gb, const Tensor& gout, const Tensor& x, const Conv2dOptions& opt) {
  check_all_cpu({&gw, &gb, &gout, &x}, "conv2d_backward_filter");
  const float* pg = gout.data();
  const int64_t N = gout.size(0), K = gout.size(1), PQ = gout.size(2) * gout.size(3);

  if (gb.defined()) {
    float* pb = gb.data();
    for (int64_t k = 0; k < K; ++k) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float* g = pg + (n * K + k) * PQ;
        for (int64_t i = 0; i < PQ; ++i) s += g[i];
      }
      pb[k] += static_cast<float>(s);
    }
  }
  if (!gw.defined()) return;

  const ConvDims d = dims_of(x, gw, opt);
  GLIMPSE_CHECK(gout.shape() == (Shape{d.N, d.K, d.P, d.Q}), "conv2d_backward_filter: gout has shape ",
                shape_str(gout.shape()), ", expected ", shape_str({d.N, d.K, d.P, d.Q}));
  const float* px = x.data();
  float* pw = gw.data();
  const bool direct = col_is_input(d, opt);
  const int64_t wsize = d.K * d.crs();

  const bool parallel = parallel_over_items(d.N * d.G);
#pragma omp parallel if (parallel)
  {
    std::vector<float> col(direct ? 0 : d.crs() * d.pq());
    // In parallel each thread sums its items into a private gradient, added to gw once at the end;
    // serially the GEMMs accumulate straight into gw.
    std::vector<float> local(parallel ? wsize : 0, 0.f);
    float* acc = parallel ? local.data() : pw;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < d.N * d.G; ++item) {
      const int64_t n = item / d.G, g = item % d.G;
      const float* xg = px + (n * d.C + g * d.Cg) * d.H * d.W;
      const float* cg = xg;
      if (!direct) {
        im2col(col.data(), xg, d, opt);
        cg = col.data();
      }
      ConstMatMap colm(cg, d.crs(), d.pq());
      ConstMatMap gg(pg + (n * d.K + g * d.Kg) * d.pq(), d.Kg, d.pq());
      MatMap gwg(acc + g * d.Kg * d.crs(), d.Kg, d.crs());
      gwg.noalias() += gg * colm.transpose();
    }
    if (parallel) {
#pragma omp critical(glimpse_conv2d_backward_filter)
      for (int64_t i = 0; i < wsize; ++i) pw[i] += local[i];
    }
  }
}

}  // namespace glimpse::cpu

// 2-D convolution: the CPU kernels (im2col + GEMM), then the differentiable ops (math: core/ops/conv2d.h).
#include "core/ops/conv2d.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <Eigen/Core>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/activation.h"
#include "core/ops/conv2d_tile.h"
#include "core/ops/conv2d_winograd.h"
#include "core/parallel.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {

using namespace detail;  // the SIMD register tile (core/ops/conv2d_tile.h)

using MatMap = Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using ConstMatMap = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// The sizes of one convolution, read once from the tensors.
struct ConvDims {
  int64_t N, C, H, W;                         // input
  int64_t K, R, S;                            // filters
  int64_t P, Q;                               // output
  int64_t G, Cg, Kg;                          // groups, channels and filters per group
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

// col[(c*R + r)*S + s][(p - p0)*Q + q] = x[c][p*sh - ph + r*dh][q*sw - pw + s*dw] for the output
// rows p in [p0, p1), 0 outside the image. x: the Cg channels [Cg, H, W] of one image and group;
// col has (p1 - p0) * Q columns.
void im2col(float* col, const float* x, const ConvDims& d, const Conv2dOptions& opt, int64_t p0, int64_t p1) {
  const int64_t sh = opt.stride_h, sw = opt.stride_w;
  const int64_t cols = (p1 - p0) * d.Q;
  for (int64_t c = 0; c < d.Cg; ++c)
    for (int64_t r = 0; r < d.R; ++r)
      for (int64_t s = 0; s < d.S; ++s) {
        float* dst = col + ((c * d.R + r) * d.S + s) * cols;
        const int64_t off = s * opt.dilation_w - opt.pad_w;
        int64_t lo, hi;
        valid_q_range(off, sw, d.W, d.Q, lo, hi);
        for (int64_t p = p0; p < p1; ++p) {
          float* out = dst + (p - p0) * d.Q;
          const int64_t ih = p * sh - opt.pad_h + r * opt.dilation_h;
          if (ih < 0 || ih >= d.H) {
            std::fill(out, out + d.Q, 0.f);
            continue;
          }
          const float* row = x + (c * d.H + ih) * d.W + off;
          std::fill(out, out + lo, 0.f);
          if (sw == 1)
            std::memcpy(out + lo, row + lo, sizeof(float) * (hi - lo));
          else
            for (int64_t q = lo; q < hi; ++q) out[q] = row[q * sw];
          std::fill(out + hi, out + d.Q, 0.f);
        }
      }
}

// The adjoint of im2col over the same rows: gx[c][ih][iw] += col[...] for every col entry that
// im2col(p0, p1) read from there.
void col2im_add(float* gx, const float* col, const ConvDims& d, const Conv2dOptions& opt, int64_t p0, int64_t p1) {
  const int64_t sh = opt.stride_h, sw = opt.stride_w;
  const int64_t cols = (p1 - p0) * d.Q;
  for (int64_t c = 0; c < d.Cg; ++c)
    for (int64_t r = 0; r < d.R; ++r)
      for (int64_t s = 0; s < d.S; ++s) {
        const float* src = col + ((c * d.R + r) * d.S + s) * cols;
        const int64_t off = s * opt.dilation_w - opt.pad_w;
        int64_t lo, hi;
        valid_q_range(off, sw, d.W, d.Q, lo, hi);
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t ih = p * sh - opt.pad_h + r * opt.dilation_h;
          if (ih < 0 || ih >= d.H) continue;
          float* row = gx + (c * d.H + ih) * d.W + off;
          const float* in = src + (p - p0) * d.Q;
          if (sw == 1)
            for (int64_t q = lo; q < hi; ++q) row[q] += in[q];
          else
            for (int64_t q = lo; q < hi; ++q) row[q * sw] += in[q];
        }
      }
}

// ---- work decomposition -----------------------------------------------------------------------
// The unit of work is an item = (image n, group g, block of output rows [p0, p1)). Every item is
// independent in the forward and the filter gradient, so one parallel_for over the items (core/
// parallel.h) is the only synchronization of a call: no nested threading, no Eigen-internal
// threads (whose busy-waiting collapses on a loaded machine, see bench/NOTES.md). Blocks keep an item's im2col buffer
// near kColBytes (cache-resident, reused through a per-thread scratch buffer) and make a single image split into enough
// items for the threads.
constexpr int64_t kColBytes = 512 * 1024;

struct Blocking {
  int64_t rows;    // output rows per block (the last block may be shorter)
  int64_t blocks;  // blocks per (image, group)
  int64_t items(const ConvDims& d) const { return d.N * d.G * blocks; }
};

Blocking blocking(const ConvDims& d, int threads, int64_t min_rows = 1) {
  const int64_t row_bytes = std::max<int64_t>(1, d.crs() * d.Q * int64_t(sizeof(float)));
  int64_t blocks = std::max<int64_t>(1, (d.P * row_bytes + kColBytes - 1) / kColBytes);
  // Enough items for every thread: split each image further when the batch is small.
  const int64_t outer = d.N * d.G;
  if (outer * blocks < threads) blocks = (threads + outer - 1) / outer;
  blocks = std::min(blocks, std::max<int64_t>(1, d.P / std::max<int64_t>(1, min_rows)));
  int64_t rows = (d.P + blocks - 1) / blocks;
  rows = std::max(rows, std::min(min_rows, d.P));
  blocks = (d.P + rows - 1) / rows;
  return {rows, blocks};
}

// A per-thread buffer that only grows: im2col columns are rebuilt every call, never reallocated.
float* scratch(size_t count) {
  thread_local std::vector<float> buf;
  if (buf.size() < count) buf.resize(count);
  return buf.data();
}

using StrideMap = Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Unaligned,
                             Eigen::OuterStride<>>;
using ConstStrideMap = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                  Eigen::Unaligned, Eigen::OuterStride<>>;

int threads_for(int64_t items, double flop) {
  const int t = num_threads();
  if (t <= 1 || items < 2) return 1;
  // Below ~1 MFLOP a parallel region costs more than it saves.
  if (flop < 1e6) return 1;
  return static_cast<int>(std::min<int64_t>(t, items));
}

void check_all_cpu(std::initializer_list<const Tensor*> ts, const char* op) {
  for (const Tensor* t : ts)
    if (t->defined()) check_cpu(*t, op);
}

// ---- direct convolution (stride 1 along the width; issue #14) ---------------------------------
// im2col + GEMM writes every input value R*S times into col and Eigen packs col once more before its
// kernel reads it; with few channels (the first conv: C*R*S = 27) that copying is as costly as the
// arithmetic, and the backward-data scatter (col2im) adds a read-modify-write of the same size.
// The direct kernel reads the input where it lies: for stride 1 along the width, the values that
// VW consecutive output columns q0..q0+VW-1 need from input row ih at filter tap (c, r, s) are VW
// consecutive floats of that row, so a register tile of MR filters x NV vectors of VW outputs is
//   acc[i][j] += A[m0+i][c,r,s] * load(in + base_j + off[c,r,s])   for every tap (c, r, s)
// with A packed as [CRS][MR] per panel of MR filters (one broadcast per filter and tap). The input
// rows an item needs are first copied into a zero-bordered per-thread buffer (one copy of the input
// instead of R*S), so the kernel has no bounds checks. Backward-data of a stride-1 convolution is the
// same kernel on gout with the filters transposed and flipped and padding dil*(R-1) - pad: it writes
// every gx value once (no zero fill, no col2im scatter, no two phases).

bool g_direct_enabled = true;
bool g_winograd_enabled = true;

// Winograd F(2x2, 3x3) (core/ops/conv2d_winograd.h) takes the 3x3, stride-1, undilated, one-group
// convolutions with enough channels and tiles: 2.25x fewer multiply-adds than the direct kernel.
// For backward-data the tiles counted are the forward output's; gx's differ from them by at most a
// row and a column of tiles (none at padding 1).
bool winograd_applies(const ConvDims& d, const Conv2dOptions& opt) {
  return g_winograd_enabled && opt.groups == 1 && d.R == 3 && d.S == 3 && opt.stride_h == 1 && opt.stride_w == 1 &&
         opt.dilation_h == 1 && opt.dilation_w == 1 &&
         winograd_usable(d.C, d.K, d.N * ((d.P + 1) / 2) * ((d.Q + 1) / 2));
}

// out[n][m][p][q] = bias[m] + sum_{c,r,s} A[m][c][r][s] * in[n][c][p*sh - ph + r*dh][q - pw + s*dw],
// in: [N, C, H, W], out: [N, M, P, Q] (overwritten), optionally relu'd.
struct DirectDims {
  int64_t N, C, H, W;  // input
  int64_t M, R, S;     // filters
  int64_t P, Q;        // output
  int64_t sh, ph, pw, dh, dw;
};

#ifdef GLIMPSE_DIRECT_CONV
bool direct_usable(const ConvDims& d, const Conv2dOptions& opt) {
  return g_direct_enabled && opt.groups == 1 && opt.stride_w == 1 && !col_is_input(d, opt);
}

// Filters packed for the kernel: panel t holds filters [t*kMR, t*kMR + kMR) as [C*R*S][kMR], zeros
// past M. `flip` packs the backward-data filters A[c][k][r][s] = w[k][c][R-1-r][S-1-s] from w [K, C, R, S].
std::vector<float> pack_filters(const float* w, int64_t M, int64_t Cin, int64_t R, int64_t S, bool flip) {
  const int64_t crs = Cin * R * S, panels = (M + kMR - 1) / kMR;
  std::vector<float> a(panels * crs * kMR, 0.f);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < Cin; ++c)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s) {
          const float v =
              flip ? w[((c * M + m) * R + (R - 1 - r)) * S + (S - 1 - s)] : w[((m * Cin + c) * R + r) * S + s];
          a[((m / kMR) * crs + (c * R + r) * S + s) * kMR + m % kMR] = v;
        }
  return a;
}

void direct_conv(float* out, const float* in, const std::vector<float>& packed, const float* bias, bool relu,
                 const DirectDims& d) {
  const int64_t crs = d.C * d.R * d.S, panels = (d.M + kMR - 1) / kMR;
  const int64_t Wp = d.Q + (d.S - 1) * d.dw;  // buffer row: input columns -pw .. Q-1-pw+(S-1)*dw
  // Output rows per item: the buffer (C x Hb x Wp floats) near kColBytes / 2, enough items for the threads.
  const int64_t row_bytes = std::max<int64_t>(1, d.C * d.sh * Wp * int64_t(sizeof(float)));
  int64_t rows = std::clamp<int64_t>(kColBytes / 2 / row_bytes, 1, d.P);
  const int threads = num_threads();
  if (d.N * ((d.P + rows - 1) / rows) < threads) rows = std::max<int64_t>(1, d.P / ((threads + d.N - 1) / d.N));
  const int64_t blocks = (d.P + rows - 1) / rows;
  const int64_t Hb = (rows - 1) * d.sh + (d.R - 1) * d.dh + 1;
  std::vector<int64_t> off(crs);
  for (int64_t c = 0; c < d.C; ++c)
    for (int64_t r = 0; r < d.R; ++r)
      for (int64_t s = 0; s < d.S; ++s) off[(c * d.R + r) * d.S + s] = (c * Hb + r * d.dh) * Wp + s * d.dw;
  std::vector<float> bias_pad;
  if (bias) {
    bias_pad.assign(panels * kMR, 0.f);
    std::copy(bias, bias + d.M, bias_pad.begin());
  }
  const int64_t items = d.N * blocks;
  const int nt = threads_for(items, 2.0 * d.N * d.M * crs * d.P * d.Q);
  parallel_for(
      items,
      [&](int64_t item) {
        const int64_t n = item / blocks, p0 = (item % blocks) * rows, p1 = std::min(d.P, p0 + rows);
        // The input rows of this block, zero-bordered, plus kVW floats of slack for the last vector.
        float* buf = scratch(d.C * Hb * Wp + kVW);
        const float* xn = in + n * d.C * d.H * d.W;
        const int64_t ih0 = p0 * d.sh - d.ph;
        const int64_t jlo = std::min(Wp, d.pw), jhi = std::clamp<int64_t>(d.W + d.pw, jlo, Wp);
        for (int64_t c = 0; c < d.C; ++c)
          for (int64_t rr = 0; rr < Hb; ++rr) {
            float* dst = buf + (c * Hb + rr) * Wp;
            const int64_t ih = ih0 + rr;
            if (ih < 0 || ih >= d.H) {
              std::fill(dst, dst + Wp, 0.f);
              continue;
            }
            std::fill(dst, dst + jlo, 0.f);
            std::memcpy(dst + jlo, xn + (c * d.H + ih) * d.W + (jlo - d.pw), sizeof(float) * (jhi - jlo));
            std::fill(dst + jhi, dst + Wp, 0.f);
          }
        std::fill(buf + d.C * Hb * Wp, buf + d.C * Hb * Wp + kVW, 0.f);
        thread_local std::vector<VecPos> pos;
        pos.clear();
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t q0 = 0; q0 < d.Q; q0 += kVW)
            pos.push_back({p * d.Q + q0, (p - p0) * d.sh * Wp + q0, std::min(kVW, d.Q - q0)});
        const int64_t npos = static_cast<int64_t>(pos.size()), plane = d.P * d.Q;
        for (int64_t t = 0; t < panels; ++t) {
          const int64_t m0 = t * kMR;
          float* o = out + (n * d.M + m0) * plane;
          const float* a = packed.data() + t * crs * kMR;
          const float* bt = bias ? bias_pad.data() + m0 : nullptr;
          for (int64_t v = 0; v < npos; v += kNV)
            direct_tile<kMR, kNV>(o, plane, std::min(kMR, d.M - m0), a, off.data(), crs, buf, pos.data() + v,
                                  std::min(kNV, npos - v), bt, relu);
        }
      },
      nt);
}
#endif

}  // namespace

void conv2d_forward(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt,
                    bool relu) {
  check_all_cpu({&out, &x, &w, &b}, "conv2d_forward");
  const ConvDims d = dims_of(x, w, opt);
  GLIMPSE_CHECK(out.shape() == (Shape{d.N, d.K, d.P, d.Q}), "conv2d_forward: out has shape ", shape_str(out.shape()),
                ", expected ", shape_str({d.N, d.K, d.P, d.Q}));
  if (out.numel() == 0) return;  // an empty batch (the blocking below divides by N)
  const float* px = x.data();
  const float* pw = w.data();
  const float* pb = b.defined() ? b.data() : nullptr;
  float* po = out.data();
  if (winograd_applies(d, opt)) {
    winograd_conv3x3(po, px, pw, /*flip=*/false, pb, relu, {d.N, d.C, d.H, d.W, d.K, d.P, d.Q, opt.pad_h, opt.pad_w});
    return;
  }
#ifdef GLIMPSE_DIRECT_CONV
  if (direct_usable(d, opt)) {
    direct_conv(po, px, pack_filters(pw, d.K, d.C, d.R, d.S, /*flip=*/false), pb, relu,
                {d.N, d.C, d.H, d.W, d.K, d.R, d.S, d.P, d.Q, opt.stride_h, opt.pad_h, opt.pad_w, opt.dilation_h,
                 opt.dilation_w});
    return;
  }
#endif
  const bool direct = col_is_input(d, opt);
  const Blocking bl = blocking(d, num_threads());
  const int64_t items = bl.items(d);
  const int nt = threads_for(items, 2.0 * d.N * d.K * d.crs() * d.pq());

  parallel_for(
      items,
      [&](int64_t item) {
        const int64_t blk = item % bl.blocks, ng = item / bl.blocks;
        const int64_t n = ng / d.G, g = ng % d.G;
        const int64_t p0 = blk * bl.rows, p1 = std::min(d.P, p0 + bl.rows), cols = (p1 - p0) * d.Q;
        const float* xg = px + (n * d.C + g * d.Cg) * d.H * d.W;
        const float* bsrc;
        int64_t bstride;
        if (direct) {
          bsrc = xg + p0 * d.Q;  // the 1x1 case: x rows are already col's rows
          bstride = d.H * d.W;
        } else {
          float* col = scratch(d.crs() * cols);
          im2col(col, xg, d, opt, p0, p1);
          bsrc = col;
          bstride = cols;
        }
        ConstMatMap wg(pw + g * d.Kg * d.crs(), d.Kg, d.crs());
        ConstStrideMap colm(bsrc, d.crs(), cols, Eigen::OuterStride<>(bstride));
        float* og = po + (n * d.K + g * d.Kg) * d.pq() + p0 * d.Q;
        StrideMap om(og, d.Kg, cols, Eigen::OuterStride<>(d.pq()));
        om.noalias() = wg * colm;
        if (pb || relu)
          for (int64_t k = 0; k < d.Kg; ++k) {
            const float bk = pb ? pb[g * d.Kg + k] : 0.f;
            float* o = og + k * d.pq();
            if (relu)
              for (int64_t i = 0; i < cols; ++i) o[i] = std::max(o[i] + bk, 0.f);
            else
              for (int64_t i = 0; i < cols; ++i) o[i] += bk;
          }
      },
      nt);
}

void conv2d_backward_data(Tensor& gx, const Tensor& gout, const Tensor& w, const Conv2dOptions& opt) {
  check_all_cpu({&gx, &gout, &w}, "conv2d_backward_data");
  const ConvDims d = dims_of(gx, w, opt);
  GLIMPSE_CHECK(gout.shape() == (Shape{d.N, d.K, d.P, d.Q}), "conv2d_backward_data: gout has shape ",
                shape_str(gout.shape()), ", expected ", shape_str({d.N, d.K, d.P, d.Q}));
  if (gx.numel() == 0) return;
  const float* pg = gout.data();
  const float* pw = w.data();
  float* px = gx.data();
  // Stride 1: gx is the convolution of gout with the flipped, transposed filters (see direct_conv).
  const int64_t ph2 = opt.dilation_h * (d.R - 1) - opt.pad_h, pw2 = opt.dilation_w * (d.S - 1) - opt.pad_w;
  if (winograd_applies(d, opt) && ph2 >= 0 && pw2 >= 0) {
    winograd_conv3x3(px, pg, pw, /*flip=*/true, nullptr, /*relu=*/false, {d.N, d.K, d.P, d.Q, d.C, d.H, d.W, ph2, pw2});
    return;
  }
#ifdef GLIMPSE_DIRECT_CONV
  // Not for a few input channels (the first conv's gx: C = 3 fills 3 of a panel's 4 or 8 filter
  // slots; bench_conv measured the direct kernel 0.7x im2col there).
  if (direct_usable(d, opt) && opt.stride_h == 1 && ph2 >= 0 && pw2 >= 0 && d.C >= 2 * kMR) {
    direct_conv(px, pg, pack_filters(pw, d.C, d.K, d.R, d.S, /*flip=*/true), nullptr, /*relu=*/false,
                {d.N, d.K, d.P, d.Q, d.C, d.R, d.S, d.H, d.W, 1, ph2, pw2, opt.dilation_h, opt.dilation_w});
    return;
  }
#endif
  // col2im adds overlapping receptive fields, and the 1x1 case adds in place: start from zeros.
  parallel_for_range(gx.numel(), 1 << 16, [&](int64_t lo, int64_t hi) { std::fill(px + lo, px + hi, 0.f); });
  const bool direct = col_is_input(d, opt);
  // Blocks of one image write overlapping input rows (a filter spans R rows). Blocks at least
  // ceil((R-1)*dh / sh) rows tall only overlap their neighbours, so the even blocks run first,
  // then the odd ones: two loops, one barrier between them.
  const int64_t min_rows =
      direct ? 1 : std::max<int64_t>(1, ((d.R - 1) * opt.dilation_h + opt.stride_h - 1) / opt.stride_h);
  const Blocking bl = blocking(d, num_threads(), min_rows);
  const int64_t items = bl.items(d);
  const int nt = threads_for(items, 2.0 * d.N * d.K * d.crs() * d.pq());
  const int phases = (direct || bl.blocks == 1) ? 1 : 2;

  auto run = [&](int64_t item) {
    const int64_t blk = item % bl.blocks, ng = item / bl.blocks;
    const int64_t n = ng / d.G, g = ng % d.G;
    const int64_t p0 = blk * bl.rows, p1 = std::min(d.P, p0 + bl.rows), cols = (p1 - p0) * d.Q;
    ConstMatMap wg(pw + g * d.Kg * d.crs(), d.Kg, d.crs());
    ConstStrideMap gg(pg + (n * d.K + g * d.Kg) * d.pq() + p0 * d.Q, d.Kg, cols, Eigen::OuterStride<>(d.pq()));
    float* xg = px + (n * d.C + g * d.Cg) * d.H * d.W;
    if (direct) {
      StrideMap gxm(xg + p0 * d.Q, d.Cg, cols, Eigen::OuterStride<>(d.H * d.W));
      gxm.noalias() += wg.transpose() * gg;
    } else {
      float* col = scratch(d.crs() * cols);
      MatMap colm(col, d.crs(), cols);
      colm.noalias() = wg.transpose() * gg;
      col2im_add(xg, col, d, opt, p0, p1);
    }
  };

  for (int phase = 0; phase < phases; ++phase) {
    // Phase ph takes the blocks with blk % phases == ph (every block when phases == 1).
    const int64_t per = (bl.blocks - phase + phases - 1) / phases;  // blocks of this phase per image
    parallel_for(
        d.N * d.G * per,
        [&](int64_t i) {
          const int64_t ng = i / per, blk = (i % per) * phases + phase;
          run(ng * bl.blocks + blk);
        },
        nt);
  }
}

void conv2d_backward_filter(Tensor& gw, Tensor& gb, const Tensor& gout, const Tensor& x, const Conv2dOptions& opt) {
  check_all_cpu({&gw, &gb, &gout, &x}, "conv2d_backward_filter");
  const float* pg = gout.data();
  const int64_t N = gout.size(0), K = gout.size(1), PQ = gout.size(2) * gout.size(3);

  if (gb.defined()) {
    // Each plane summed in 16 float lanes (a loop the compiler vectorizes; one double accumulator was a
    // serial add chain: 5% of W1 training in perf), the lanes and the planes added in double, in a
    // fixed order.
    float* pb = gb.data();
    constexpr int64_t L = 16;
    for (int64_t k = 0; k < K; ++k) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float* g = pg + (n * K + k) * PQ;
        float lane[L] = {};
        int64_t i = 0;
        for (; i + L <= PQ; i += L)
          for (int64_t l = 0; l < L; ++l) lane[l] += g[i + l];
        for (; i < PQ; ++i) s += g[i];
        for (int64_t l = 0; l < L; ++l) s += lane[l];
      }
      pb[k] = static_cast<float>(s);
    }
  }
  if (!gw.defined()) return;

  const ConvDims d = dims_of(x, gw, opt);
  GLIMPSE_CHECK(gout.shape() == (Shape{d.N, d.K, d.P, d.Q}), "conv2d_backward_filter: gout has shape ",
                shape_str(gout.shape()), ", expected ", shape_str({d.N, d.K, d.P, d.Q}));
  float* pw = gw.data();
  std::fill(pw, pw + gw.numel(), 0.f);  // summed over the batch below
  if (x.numel() == 0) return;           // an empty batch, channel set or plane: a zero gradient
  const float* px = x.data();
  const bool direct = col_is_input(d, opt);
  const int64_t wsize = d.K * d.crs();
  const Blocking bl = blocking(d, num_threads());
  const int64_t items = bl.items(d);
  const int nt = threads_for(items, 2.0 * d.N * d.K * d.crs() * d.pq());

  // The items are cut into `slots` fixed contiguous ranges, each summed into its own gradient
  // buffer in item order; the buffers are then added to gw in slot order. The result is thus the
  // same whichever thread runs which slot. One slot: the GEMMs accumulate straight into gw.
  const int64_t slots = std::min<int64_t>(nt, items);
  std::vector<float> locals(slots > 1 ? slots * wsize : 0, 0.f);
  auto run_slot = [&](int64_t slot) {
    float* acc = slots > 1 ? locals.data() + slot * wsize : pw;
    const int64_t i0 = items * slot / slots, i1 = items * (slot + 1) / slots;
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t blk = item % bl.blocks, ng = item / bl.blocks;
      const int64_t n = ng / d.G, g = ng % d.G;
      const int64_t p0 = blk * bl.rows, p1 = std::min(d.P, p0 + bl.rows), cols = (p1 - p0) * d.Q;
      const float* xg = px + (n * d.C + g * d.Cg) * d.H * d.W;
      const float* bsrc;
      int64_t bstride;
      if (direct) {
        bsrc = xg + p0 * d.Q;
        bstride = d.H * d.W;
      } else {
        float* col = scratch(d.crs() * cols);
        im2col(col, xg, d, opt, p0, p1);
        bsrc = col;
        bstride = cols;
      }
      ConstStrideMap colm(bsrc, d.crs(), cols, Eigen::OuterStride<>(bstride));
      ConstStrideMap gg(pg + (n * d.K + g * d.Kg) * d.pq() + p0 * d.Q, d.Kg, cols, Eigen::OuterStride<>(d.pq()));
      MatMap gwg(acc + g * d.Kg * d.crs(), d.Kg, d.crs());
      gwg.noalias() += gg * colm.transpose();
    }
  };
  parallel_for(slots, run_slot, nt);
  if (slots > 1) {
    // Reduce in slices of gw (each slice sums the slots in order).
    const int64_t slice = 16384, nslices = (wsize + slice - 1) / slice;
    parallel_for(
        nslices,
        [&](int64_t j) {
          const int64_t lo = j * slice, hi = std::min(wsize, lo + slice);
          for (int64_t t = 0; t < slots; ++t) {
            const float* l = locals.data() + t * wsize;
            for (int64_t i = lo; i < hi; ++i) pw[i] += l[i];
          }
        },
        nslices * slice * slots > (1 << 16) ? nt : 1);
  }
}

void set_conv2d_direct(bool enabled) { g_direct_enabled = enabled; }
void set_conv2d_winograd(bool enabled) { g_winograd_enabled = enabled; }

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

namespace {

void check_conv_args(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt) {
  GLIMPSE_CHECK(x.defined(), "conv2d: the input is undefined");
  GLIMPSE_CHECK(w.defined(), "conv2d: the weight is undefined");
  GLIMPSE_CHECK(x.dim() == 4, "conv2d: input must be [N, C, H, W], got shape ", shape_str(x.shape()));
  GLIMPSE_CHECK(w.dim() == 4, "conv2d: weight must be [K, C/groups, R, S], got shape ", shape_str(w.shape()));
  check_same_device(x, w, "conv2d");
  GLIMPSE_CHECK(opt.groups >= 1, "conv2d: groups must be >= 1, got ", opt.groups);
  GLIMPSE_CHECK(opt.stride_h >= 1 && opt.stride_w >= 1, "conv2d: stride must be >= 1, got (", opt.stride_h, ", ",
                opt.stride_w, ")");
  GLIMPSE_CHECK(opt.dilation_h >= 1 && opt.dilation_w >= 1, "conv2d: dilation must be >= 1, got (", opt.dilation_h,
                ", ", opt.dilation_w, ")");
  GLIMPSE_CHECK(opt.pad_h >= 0 && opt.pad_w >= 0, "conv2d: padding must be >= 0, got (", opt.pad_h, ", ", opt.pad_w,
                ")");
  const int64_t C = x.size(1), K = w.size(0), G = opt.groups;
  GLIMPSE_CHECK(C % G == 0, "conv2d: input channels ", C, " (input ", shape_str(x.shape()),
                ") are not divisible by groups=", G);
  GLIMPSE_CHECK(K % G == 0, "conv2d: output channels ", K, " (weight ", shape_str(w.shape()),
                ") are not divisible by groups=", G);
  GLIMPSE_CHECK(w.size(1) * G == C, "conv2d: input has ", C, " channels but weight ", shape_str(w.shape()), " expects ",
                w.size(1) * G, " (groups=", G, ")");
  GLIMPSE_CHECK(w.size(2) >= 1 && w.size(3) >= 1 && K >= 1, "conv2d: empty weight ", shape_str(w.shape()));
  if (b.defined()) {
    check_same_device(x, b, "conv2d");
    GLIMPSE_CHECK(b.dim() == 1 && b.size(0) == K, "conv2d: bias has shape ", shape_str(b.shape()), " but weight ",
                  shape_str(w.shape()), " has ", K, " output channels; bias must be [", K, "]");
  }
  const int64_t P = window_out_size(x.size(2), w.size(2), opt.stride_h, opt.pad_h, opt.dilation_h);
  const int64_t Q = window_out_size(x.size(3), w.size(3), opt.stride_w, opt.pad_w, opt.dilation_w);
  GLIMPSE_CHECK(P >= 1 && Q >= 1, "conv2d: input ", shape_str(x.shape()), " with padding (", opt.pad_h, ", ", opt.pad_w,
                ") is smaller than the kernel ", w.size(2), "x", w.size(3), " at dilation (", opt.dilation_h, ", ",
                opt.dilation_w, ")");
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  check_conv_args(x, weight, bias, opt);
  const Tensor xc = x.contiguous(), wc = weight.contiguous();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  const int64_t P = window_out_size(x.size(2), weight.size(2), opt.stride_h, opt.pad_h, opt.dilation_h);
  const int64_t Q = window_out_size(x.size(3), weight.size(3), opt.stride_w, opt.pad_w, opt.dilation_w);
  Tensor out = Tensor::empty({x.size(0), weight.size(0), P, Q}, x.device());
  dispatch("conv2d", x.device(), GLIMPSE_KERNEL(conv2d_forward), out, xc, wc, bc, opt,
           /*relu=*/false);

  if (!grad_enabled() || !any_requires_grad({x, weight, bias})) return out;
  // Save only what a wanted gradient reads: gx reads w, gw reads x, gb reads neither.
  const Tensor x_saved = weight.requires_grad() ? xc.detach() : Tensor();
  const Tensor w_saved = x.requires_grad() ? wc.detach() : Tensor();
  const Shape x_shape = x.shape(), w_shape = weight.shape();
  const bool has_bias = bias.defined();
  return record(
      "conv2d", out, {x, weight, bias},
      [x_saved, w_saved, x_shape, w_shape, has_bias, opt](const Tensor& grad_out, const std::vector<bool>& needs) {
        const Tensor g = grad_out.contiguous();
        std::vector<Tensor> grads(3);
        if (needs[0]) {
          grads[0] = Tensor::empty(x_shape, g.device());  // kernels overwrite (core/dispatch.h)
          dispatch("conv2d", g.device(), GLIMPSE_KERNEL(conv2d_backward_data), grads[0], g, w_saved, opt);
        }
        const bool want_b = has_bias && needs[2];
        if (needs[1] || want_b) {
          Tensor gw = needs[1] ? Tensor::empty(w_shape, g.device()) : Tensor();
          Tensor gb = want_b ? Tensor::empty({w_shape[0]}, g.device()) : Tensor();
          dispatch("conv2d", g.device(), GLIMPSE_KERNEL(conv2d_backward_filter), gw, gb, g, x_saved, opt);
          grads[1] = gw;
          grads[2] = gb;
        }
        return grads;
      });
}

Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  if (grad_enabled() && any_requires_grad({x, weight, bias})) return relu(conv2d(x, weight, bias, opt));
  check_conv_args(x, weight, bias, opt);
  const int64_t P = window_out_size(x.size(2), weight.size(2), opt.stride_h, opt.pad_h, opt.dilation_h);
  const int64_t Q = window_out_size(x.size(3), weight.size(3), opt.stride_w, opt.pad_w, opt.dilation_w);
  Tensor out = Tensor::empty({x.size(0), weight.size(0), P, Q}, x.device());
  dispatch("conv2d_relu", x.device(), GLIMPSE_KERNEL(conv2d_forward), out, x.contiguous(), weight.contiguous(),
           bias.defined() ? bias.contiguous() : Tensor(), opt, /*relu=*/true);
  return out;
}

}  // namespace glimpse

// The receptive-field recomputation of attribution/local_forward.h.
#include "attribution/local_forward.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/layers.h"
#include "layers/models.h"

namespace glimpse::attr {

namespace {

// One axis of a window op: output o reads inputs o s - p + j d, j = 0..k-1.
struct Axis {
  int64_t k, s, p, d;
};

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Where the copies differ from the clean activation along one axis: copy b in [at[b], at[b] + len).
// One length for all copies, so that their crops stack into one batch.
struct Span {
  std::vector<int64_t> at;
  int64_t len;
};

// The output rows that can differ, for an op with `ax` producing `out` rows: a span of one shared
// length holding each copy's rows (shifted inward at the border, where a copy's own span is
// shorter; the extra rows are recomputed to the value they already had).
Span output_span(const Span& in, const Axis& ax, int64_t out) {
  Span r{std::vector<int64_t>(in.at.size()), 1};
  std::vector<int64_t> first(in.at.size());
  for (size_t b = 0; b < in.at.size(); ++b) {
    const int64_t lo = std::max<int64_t>(0, ceil_div(in.at[b] + ax.p - (ax.k - 1) * ax.d, ax.s));
    const int64_t hi = std::min(out - 1, floor_div(in.at[b] + in.len - 1 + ax.p, ax.s));
    first[b] = lo;
    r.len = std::max(r.len, hi - lo + 1);
  }
  r.len = std::min(r.len, out);
  for (size_t b = 0; b < in.at.size(); ++b) r.at[b] = std::min(first[b], out - r.len);
  return r;
}

// The input a window op needs for the output spans (oy, ox): [B, C, rows, cols] with padding 0,
// read from the copy's patch where it differs, from the clean activation elsewhere inside the map,
// and `pad` outside it.
Tensor gather_crop(const Tensor& clean, const Tensor& patch, const Span& py, const Span& px, const Span& oy,
                   const Span& ox, const Axis& ay, const Axis& ax, float pad) {
  const int64_t B = patch.size(0), C = clean.size(1), H = clean.size(2), W = clean.size(3);
  const int64_t rows = (oy.len - 1) * ay.s + (ay.k - 1) * ay.d + 1, cols = (ox.len - 1) * ax.s + (ax.k - 1) * ax.d + 1;
  Tensor crop = Tensor::empty({B, C, rows, cols});
  const float* cl = clean.data();
  const float* pt = patch.data();
  float* out = crop.data();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t y0 = oy.at[b] * ay.s - ay.p, x0 = ox.at[b] * ax.s - ax.p;
    // columns of the crop inside the map: [c0, c1); of those, the patch's: [q0, q1)
    const int64_t c0 = std::clamp<int64_t>(-x0, 0, cols), c1 = std::clamp<int64_t>(W - x0, c0, cols);
    const int64_t q0 = std::clamp<int64_t>(px.at[b] - x0, c0, c1),
                  q1 = std::clamp<int64_t>(px.at[b] + px.len - x0, q0, c1);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < rows; ++r) {
        float* dst = out + ((b * C + c) * rows + r) * cols;
        const int64_t gy = y0 + r;
        if (gy < 0 || gy >= H) {
          std::fill_n(dst, cols, pad);
          continue;
        }
        std::fill_n(dst, c0, pad);
        std::copy_n(cl + (c * H + gy) * W + x0 + c0, c1 - c0, dst + c0);
        std::fill_n(dst + c1, cols - c1, pad);
        const int64_t pr = gy - py.at[b];
        if (pr >= 0 && pr < py.len && q1 > q0)
          std::copy_n(pt + ((b * C + c) * py.len + pr) * px.len + (x0 + q0 - px.at[b]), q1 - q0, dst + q0);
      }
  }
  return crop;
}

// Leaves of the module tree in the order a chain runs them (a BasicBlock is one leaf); false where
// the order is not known.
bool flatten_chain(Module& m, std::vector<Module*>& out) {
  const auto* model = dynamic_cast<const Model*>(&m);
  if (dynamic_cast<Sequential*>(&m) || (model && model->is_chain())) {
    for (const auto& [name, child] : m.children())
      if (!flatten_chain(*child, out)) return false;
    return true;
  }
  if (!dynamic_cast<BasicBlock*>(&m) && (model || !m.children().empty())) return false;  // its own forward
  out.push_back(&m);
  return true;
}

bool is_activation(Module* m) { return dynamic_cast<ReLU*>(m) || dynamic_cast<LeakyReLU*>(m); }
bool is_eval_only(Module* m) { return (dynamic_cast<BatchNorm2d*>(m) || dynamic_cast<Dropout*>(m)) && !m->training(); }
bool is_eval_bn(Module* m) { return dynamic_cast<BatchNorm2d*>(m) && !m->training(); }

// A residual block the plan can follow: batch norms in eval mode, and a downsample (if any) of one
// convolution and one batch norm, as torchvision's.
bool is_local_block(Module* m) {
  auto* b = dynamic_cast<BasicBlock*>(m);
  if (!b || !is_eval_bn(b->bn1.get()) || !is_eval_bn(b->bn2.get())) return false;
  if (!b->downsample) return true;
  return b->downsample->size() == 2 && dynamic_cast<Conv2d*>(&(*b->downsample)[0]) && is_eval_bn(&(*b->downsample)[1]);
}

using local_detail::BlockClean;
using local_detail::Kind;

// The copies' values on a region of one map: values [B, C, y.len, x.len], copy b's at (y.at[b], x.at[b]).
struct Patch {
  Tensor values;
  Span y, x;
};

// One step on a patch: a window op reads its crop (the patch where the copies differ, the clean
// input elsewhere); a pointwise one maps the patch as it is.
Patch advance(Module* m, Kind kind, const Tensor& clean_in, const Tensor& clean_out, const Patch& in, bool fuse_relu) {
  if (kind == Kind::Pointwise) return {(*m)(in.values), in.y, in.x};
  Axis ay, ax;
  float pad = 0.f;
  Conv2dOptions conv_opt;
  Pool2dOptions pool_opt;
  if (kind == Kind::Conv) {
    const auto* conv = static_cast<Conv2d*>(m);
    conv_opt = conv->options;
    ay = {conv->weight.size(2), conv_opt.stride_h, conv_opt.pad_h, conv_opt.dilation_h};
    ax = {conv->weight.size(3), conv_opt.stride_w, conv_opt.pad_w, conv_opt.dilation_w};
    conv_opt.pad_h = conv_opt.pad_w = 0;
  } else {
    pool_opt = kind == Kind::MaxPool ? static_cast<MaxPool2d*>(m)->options : static_cast<AvgPool2d*>(m)->options;
    ay = {pool_opt.kernel_h, pool_opt.stride_h, pool_opt.pad_h, 1};
    ax = {pool_opt.kernel_w, pool_opt.stride_w, pool_opt.pad_w, 1};
    pool_opt.pad_h = pool_opt.pad_w = 0;
    // outside the map: max pooling never picks a padded cell; average pooling counts it as 0
    if (kind == Kind::MaxPool) pad = -std::numeric_limits<float>::infinity();
  }
  Patch out{Tensor(), output_span(in.y, ay, clean_out.size(2)), output_span(in.x, ax, clean_out.size(3))};
  const Tensor crop = gather_crop(clean_in, in.values, in.y, in.x, out.y, out.x, ay, ax, pad);
  if (kind == Kind::Conv) {
    const auto* conv = static_cast<Conv2d*>(m);
    out.values = fuse_relu ? conv2d_relu(crop, conv->weight, conv->bias, conv_opt)
                           : conv2d(crop, conv->weight, conv->bias, conv_opt);
  } else {
    out.values = kind == Kind::MaxPool ? max_pool2d(crop, pool_opt) : avg_pool2d(crop, pool_opt);
  }
  out.values = out.values.contiguous();
  return out;
}

Patch advance_block(BasicBlock& b, const BlockClean& clean, const Tensor& clean_in, const Tensor& clean_out,
                    const Patch& in) {
  // out = relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x)), each branch on its own crop
  Patch branch = advance(b.conv1.get(), Kind::Conv, clean_in, clean.mid, in, false);
  branch.values = (*b.relu1)((*b.bn1)(branch.values)).contiguous();
  branch = advance(b.conv2.get(), Kind::Conv, clean.mid, clean_out, branch, false);
  branch.values = (*b.bn2)(branch.values);
  Patch shortcut = in;
  if (b.downsample) {
    shortcut = advance(&(*b.downsample)[0], Kind::Conv, clean_in, clean.shortcut, in, false);
    shortcut.values = (*b.downsample)[1](shortcut.values).contiguous();
  }
  // the branch's region holds every position either side changes; the shortcut read on it
  const Axis one{1, 1, 0, 1};
  const Tensor sc =
      gather_crop(clean.shortcut, shortcut.values, shortcut.y, shortcut.x, branch.y, branch.x, one, one, 0.f);
  branch.values = (*b.relu2)(branch.values + sc).contiguous();
  return branch;
}

}  // namespace

std::optional<LocalForward> LocalForward::plan(Module& model, const Tensor& image) {
  if (!image.defined() || image.dim() != 4 || image.size(0) != 1 || !image.device().is_cpu()) return std::nullopt;
  for (const auto& [name, m] : model.named_modules()) {
    if (m->num_forward_hooks() > 0) return std::nullopt;
    if (auto* conv = dynamic_cast<Conv2d*>(m); conv && !conv->weight.device().is_cpu()) return std::nullopt;
  }
  std::vector<Module*> leaves;
  if (!flatten_chain(model, leaves)) return std::nullopt;
  LocalForward lf;
  bool pooled = false;
  for (Module* m : leaves) {
    if (dynamic_cast<GlobalAvgPool*>(m) && !pooled) {
      pooled = true;
    } else if (pooled) {
      if (!(dynamic_cast<Linear*>(m) || dynamic_cast<Flatten*>(m) || is_activation(m) ||
            (dynamic_cast<Dropout*>(m) && !m->training())))
        return std::nullopt;
      lf.head_.push_back({m, Kind::Head});
    } else if (dynamic_cast<Conv2d*>(m)) {
      lf.spatial_.push_back({m, Kind::Conv});
    } else if (dynamic_cast<MaxPool2d*>(m)) {
      lf.spatial_.push_back({m, Kind::MaxPool});
    } else if (dynamic_cast<AvgPool2d*>(m)) {
      lf.spatial_.push_back({m, Kind::AvgPool});
    } else if (is_activation(m) || is_eval_only(m)) {
      lf.spatial_.push_back({m, Kind::Pointwise});
    } else if (is_local_block(m)) {
      lf.spatial_.push_back({m, Kind::Block});
    } else {
      return std::nullopt;
    }
  }
  if (!pooled || lf.spatial_.empty()) return std::nullopt;

  NoGradGuard no_grad;
  Tensor y = image.contiguous();
  lf.blocks_.resize(lf.spatial_.size());
  for (size_t i = 0; i < lf.spatial_.size(); ++i) {
    lf.clean_.push_back(y);
    if (lf.spatial_[i].kind == Kind::Block) {
      auto& b = *static_cast<BasicBlock*>(lf.spatial_[i].module);
      lf.blocks_[i].mid = (*b.relu1)((*b.bn1)((*b.conv1)(y))).contiguous();
      lf.blocks_[i].shortcut = b.downsample ? (*b.downsample)(y).contiguous() : y;
    }
    y = (*lf.spatial_[i].module)(y).contiguous();
  }
  lf.clean_.push_back(y);
  const int64_t C = y.size(1), HW = y.size(2) * y.size(3);
  lf.clean_sum_.assign(static_cast<size_t>(C), 0.0);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < HW; ++i) lf.clean_sum_[c] += y.data()[c * HW + i];
  return lf;
}

Tensor LocalForward::logits(const Tensor& patches, const std::vector<int64_t>& ys,
                            const std::vector<int64_t>& xs) const {
  const Tensor& image = clean_.front();
  const int64_t B = patches.size(0);
  GLIMPSE_CHECK(patches.dim() == 4 && patches.size(1) == image.size(1) && ys.size() == static_cast<size_t>(B) &&
                    xs.size() == static_cast<size_t>(B),
                "LocalForward: patches must be [B, ", image.size(1), ", h, w] with B origins, got ",
                shape_str(patches.shape()), " and ", ys.size(), " / ", xs.size(), " origins");
  for (int64_t b = 0; b < B; ++b)
    GLIMPSE_CHECK(ys[b] >= 0 && xs[b] >= 0 && ys[b] + patches.size(2) <= image.size(2) &&
                      xs[b] + patches.size(3) <= image.size(3),
                  "LocalForward: patch ", b, " at (", ys[b], ", ", xs[b], ") of size ", patches.size(2), "x",
                  patches.size(3), " leaves the image ", shape_str(image.shape()));
  NoGradGuard no_grad;
  Patch p{patches.contiguous(), {ys, patches.size(2)}, {xs, patches.size(3)}};
  for (size_t i = 0; i < spatial_.size(); ++i) {
    const local_detail::Step& s = spatial_[i];
    if (s.kind == Kind::Block) {
      p = advance_block(*static_cast<BasicBlock*>(s.module), blocks_[i], clean_[i], clean_[i + 1], p);
      continue;
    }
    // a ReLU right after a convolution runs in the same kernel, as in Sequential's forward
    const bool fuse = s.kind == Kind::Conv && i + 1 < spatial_.size() && dynamic_cast<ReLU*>(spatial_[i + 1].module);
    p = advance(s.module, s.kind, clean_[i], clean_[fuse ? i + 2 : i + 1], p, fuse);
    if (fuse) ++i;
  }

  // gap(A')_c = (sum A_c - sum_R A_c + sum_R A'_c) / (H W), in double
  const Tensor& fin = clean_.back();
  const int64_t C = fin.size(1), H = fin.size(2), W = fin.size(3);
  Tensor features = Tensor::empty({B, C});
  const float* a = fin.data();
  const float* v = p.values.data();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      double sum = clean_sum_[c];
      for (int64_t r = 0; r < p.y.len; ++r)
        for (int64_t q = 0; q < p.x.len; ++q)
          sum += static_cast<double>(v[((b * C + c) * p.y.len + r) * p.x.len + q]) -
                 a[(c * H + p.y.at[b] + r) * W + p.x.at[b] + q];
      features.data()[b * C + c] = static_cast<float>(sum / static_cast<double>(H * W));
    }
  Tensor y = features;
  for (const local_detail::Step& s : head_) y = (*s.module)(y);
  return y;
}

}  // namespace glimpse::attr

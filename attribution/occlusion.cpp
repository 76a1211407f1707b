// Perturbation maps: occlusion (Zeiler & Fergus 2014) and the sliding-window classification map
// of the seed question's answer. Neither needs gradients: every forward runs under NoGradGuard, on
// batches of perturbed copies of one image.
//
// Window positions (both methods): a square window of side w moved with stride s, fully inside the
// image: top-left rows y0 in {0, s, 2s, ...} with y0 + w <= H, plus the row H - w when the stride
// does not land on it (the last window is flush with the border, so every pixel is covered); the
// same for columns. This is the definition tools/make_attribution_reference.py computes in PyTorch.
// The window must fit in the image (an Error otherwise).
//
// occlusion: with x_k = x with window k set to opt.occlusion_fill in every channel,
//     d_k = y_c(x) - y_c(x_k)                          (the drop of the target LOGIT)
//     raw[n, 0, i, j] = mean of d_k over the windows k that cover pixel (i, j)
//   so raw is [N, 1, H, W] (one value per pixel: the window blanks all channels at once), map is
//   raw[:, 0] upsampled (a no-op) and normalized as Options asks. Positive = evidence for the class.
//
// sliding_window: each window is classified ALONE: the crop x[:, y0:y0+w, x0:x0+w] is resized to
// the full input size H x W with bilinear interpolation (align_corners = false; the network sees
// the window as if it were the photo), and p_k = softmax(model(crop_k))[c];
//     raw[n, 0, i, j] = mean of p_k over the windows covering (i, j), in [0, 1].
// The target c is the class predicted on (or given for) the whole image; scores are its logits on
// the whole image.
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "attribution/attribution.h"
#include "attribution/internal.h"
#include "attribution/local_forward.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"

namespace glimpse::attr {

namespace {

constexpr int64_t kBatch = 64;  // perturbed copies per forward pass

std::vector<int64_t> window_starts(int64_t size, int64_t win, int64_t stride) {
  std::vector<int64_t> s;
  for (int64_t p = 0; p + win <= size; p += stride) s.push_back(p);
  if (s.back() != size - win) s.push_back(size - win);  // flush with the border: every pixel covered
  return s;
}

void check_window(const Tensor& x, int64_t win, int64_t stride, const char* method, const char* win_name,
                  const char* stride_name) {
  GLIMPSE_CHECK(win >= 1, method, ": ", win_name, " = ", win, " (must be >= 1)");
  GLIMPSE_CHECK(stride >= 1, method, ": ", stride_name, " = ", stride, " (must be >= 1)");
  GLIMPSE_CHECK(win <= x.size(2) && win <= x.size(3), method, ": ", win_name, " = ", win,
                " does not fit in the images of shape ", shape_str(x.shape()), "; use at most ",
                std::min(x.size(2), x.size(3)));
}

// Runs `make(k, dst)` for windows k = 0..count-1 to fill [C, H, W] copies, forwards them in
// batches, and hands each window's logits row to `take(k, logits_row)`.
template <typename Make, typename Take>
void forward_windows(Module& model, const Tensor& x, int64_t count, Make make, Take take) {
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3);
  NoGradGuard no_grad;
  for (int64_t k0 = 0; k0 < count; k0 += kBatch) {
    const int64_t k1 = std::min(count, k0 + kBatch);
    Tensor batch = Tensor::empty({k1 - k0, C, H, W});
    for (int64_t k = k0; k < k1; ++k) make(k, batch.data() + (k - k0) * C * H * W);
    Tensor logits = detail::cpu(model(x.device().is_cpu() ? batch : batch.to(x.device())));
    for (int64_t k = k0; k < k1; ++k) take(k, logits.data() + (k - k0) * logits.size(1), logits.size(1));
  }
}

// raw[n, 0, i, j] = mean of the values given to the windows of image n that cover (i, j): the
// running sums in double, per image.
struct WindowMean {
  int64_t N, H, W, w;
  std::vector<double> sum, cover;
  WindowMean(int64_t n, int64_t h, int64_t wd, int64_t win)
      : N(n), H(h), W(wd), w(win), sum(n * h * wd), cover(n * h * wd) {}
  void add(int64_t n, int64_t y0, int64_t x0, double v) {
    double *sn = sum.data() + n * H * W, *cn = cover.data() + n * H * W;
    for (int64_t i = y0; i < y0 + w; ++i)
      for (int64_t j = x0; j < x0 + w; ++j) sn[i * W + j] += v, cn[i * W + j] += 1;
  }
  Tensor raw() const {
    Tensor r = Tensor::zeros({N, 1, H, W});
    float* out = r.data();
    for (int64_t p = 0; p < N * H * W; ++p) out[p] = cover[p] > 0 ? static_cast<float>(sum[p] / cover[p]) : 0.f;
    return r;
  }
};

}  // namespace

AttributionMap occlusion(Module& model, const Tensor& x, const Options& opt) {
  const char* method = "occlusion";
  detail::check_input(model, x, method);
  check_window(x, opt.occlusion_window, opt.occlusion_stride, method, "occlusion_window", "occlusion_stride");
  detail::EvalModeGuard eval(model);
  const Tensor logits = detail::forward_logits(model, x);
  const std::vector<int64_t> targets = detail::resolve_targets(logits, opt.targets, method);
  const std::vector<float> scores = detail::target_scores(logits, targets);

  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), HW = H * W, w = opt.occlusion_window;
  const std::vector<int64_t> ys = window_starts(H, w, opt.occlusion_stride),
                             xs = window_starts(W, w, opt.occlusion_stride);
  const int64_t count = static_cast<int64_t>(ys.size() * xs.size());
  const Tensor X = detail::cpu(x);
  WindowMean mean(N, H, W, w);
  auto take = [&](int64_t n, int64_t kk, const float* row, int64_t K) {
    GLIMPSE_CHECK(targets[n] < K, method, ": the model gave ", K, " logits for an occluded copy");
    const double d = static_cast<double>(scores[n]) - row[targets[n]];
    mean.add(n, ys[kk / xs.size()], xs[kk % xs.size()], d);
  };
  std::optional<LocalForward> local;
  if (opt.occlusion_local) local = LocalForward::plan(model, X.slice(0, 1));
  if (local) {
    // A chain of local layers (attribution/local_forward.h): each copy recomputed only where its
    // window can reach, from the image's clean activations; one plan per image.
    for (int64_t n = 0; n < N; ++n) {
      if (n > 0) local = LocalForward::plan(model, X.slice(n, n + 1));
      for (int64_t k0 = 0; k0 < count; k0 += kBatch) {
        const int64_t k1 = std::min(count, k0 + kBatch);
        std::vector<int64_t> y0(k1 - k0), x0(k1 - k0);
        for (int64_t k = k0; k < k1; ++k) y0[k - k0] = ys[k / xs.size()], x0[k - k0] = xs[k % xs.size()];
        const Tensor logits = local->logits(Tensor::full({k1 - k0, C, w, w}, opt.occlusion_fill), y0, x0);
        for (int64_t k = k0; k < k1; ++k) take(n, k, logits.data() + (k - k0) * logits.size(1), logits.size(1));
      }
    }
  } else {
    // Whole copies: the windows of all images in one sequence (image-major), cut into forward
    // passes of kBatch copies that may span images: fewer, fuller passes than one image at a time.
    forward_windows(
        model, x, N * count,
        [&](int64_t k, float* dst) {
          const int64_t n = k / count, kk = k % count;
          std::copy_n(X.data() + n * C * HW, C * HW, dst);
          const int64_t y0 = ys[kk / xs.size()], x0 = xs[kk % xs.size()];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t i = y0; i < y0 + w; ++i) std::fill_n(dst + c * HW + i * W + x0, w, opt.occlusion_fill);
        },
        [&](int64_t k, const float* row, int64_t K) { take(k / count, k % count, row, K); });
  }
  const Tensor raw = mean.raw();
  AttributionMap r = detail::make_result(method, "", targets, scores, raw);
  detail::finish_map(r, raw.view({N, H, W}), opt, H, W);
  return r;
}

AttributionMap sliding_window(Module& model, const Tensor& x, const Options& opt) {
  const char* method = "sliding-window";
  detail::check_input(model, x, method);
  check_window(x, opt.sliding_window, opt.sliding_stride, method, "sliding_window", "sliding_stride");
  detail::EvalModeGuard eval(model);
  const Tensor logits = detail::forward_logits(model, x);
  const std::vector<int64_t> targets = detail::resolve_targets(logits, opt.targets, method);
  const std::vector<float> scores = detail::target_scores(logits, targets);

  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), HW = H * W, w = opt.sliding_window;
  const std::vector<int64_t> ys = window_starts(H, w, opt.sliding_stride), xs = window_starts(W, w, opt.sliding_stride);
  const int64_t count = static_cast<int64_t>(ys.size() * xs.size());
  const Tensor X = detail::cpu(x);
  // The windows of all images in one sequence, forwarded kBatch at a time (as occlusion).
  WindowMean mean(N, H, W, w);
  forward_windows(
      model, x, N * count,
      [&](int64_t k, float* dst) {
        const int64_t n = k / count, kk = k % count;
        const int64_t y0 = ys[kk / xs.size()], x0 = xs[kk % xs.size()];
        Tensor crop = Tensor::empty({1, C, w, w});
        const float* xp = X.data();
        float* cp = crop.data();
        for (int64_t c = 0; c < C; ++c)
          for (int64_t i = 0; i < w; ++i)
            std::copy_n(xp + (n * C + c) * HW + (y0 + i) * W + x0, w, cp + (c * w + i) * w);
        const Tensor up = (w == H && w == W) ? crop : upsample_bilinear(crop, H, W, false).contiguous();
        std::copy_n(up.data(), C * HW, dst);
      },
      [&](int64_t k, const float* row, int64_t K) {
        const int64_t n = k / count, kk = k % count;
        GLIMPSE_CHECK(targets[n] < K, method, ": the model gave ", K, " logits for a window");
        // softmax probability of the target, computed stably from the logits row
        float mx = row[0];
        for (int64_t j = 1; j < K; ++j) mx = std::max(mx, row[j]);
        double z = 0;
        for (int64_t j = 0; j < K; ++j) z += std::exp(static_cast<double>(row[j]) - mx);
        const double p = std::exp(static_cast<double>(row[targets[n]]) - mx) / z;
        mean.add(n, ys[kk / xs.size()], xs[kk % xs.size()], p);
      });
  const Tensor raw = mean.raw();
  AttributionMap r = detail::make_result(method, "", targets, scores, raw);
  detail::finish_map(r, raw.view({N, H, W}), opt, H, W);
  return r;
}

}  // namespace glimpse::attr

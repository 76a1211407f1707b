// cuDNN convolution: forward, backward-data and backward-filter side by side, with the algorithm
// selection and cache described in cuda/cudnn_conv.h. The CPU twin is core/ops/conv2d.cpp.
#include "cuda/cudnn_conv.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/resources.h"

namespace glimpse::cuda {
namespace {

// ---- settings and cache ----

std::mutex& settings_mu() {
  static std::mutex mu;
  return mu;
}
ConvSettings& settings_ref() {
  static ConvSettings s;
  return s;
}

// One algorithm as cuDNN reported it (the three Perf structs share these fields).
struct Candidate {
  int algo = -1;
  size_t memory = 0;
  bool deterministic = false;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

// The acceptable algorithms of one key, best first; the first is the one in use.
struct Entry {
  std::vector<Candidate> candidates;
};

// pass, device, the 7 sizes, the 7 options, the settings bits, the workspace limit.
using Key = std::array<int64_t, 18>;

struct Cache {
  std::mutex mu;
  std::map<Key, Entry> entries;
};
Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: calls during exit stay safe
  return *c;
}

Key make_key(ConvPass pass, int device, const ConvGeometry& g, const ConvSettings& s) {
  const Conv2dOptions& o = g.opt;
  return {static_cast<int64_t>(pass),
          device,
          g.N,
          g.C,
          g.H,
          g.W,
          g.K,
          g.R,
          g.S,
          o.stride_h,
          o.stride_w,
          o.pad_h,
          o.pad_w,
          o.dilation_h,
          o.dilation_w,
          o.groups,
          (s.benchmark ? 1 : 0) | (s.deterministic ? 2 : 0) | (s.allow_tf32 ? 4 : 0),
          static_cast<int64_t>(std::min<size_t>(s.max_workspace_bytes, INT64_MAX))};
}

// ---- descriptors of one call ----

struct Descs {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
  Descs(const ConvGeometry& g, const ConvSettings& s)
      : x(g.N, g.C, g.H, g.W),
        y(g.N, g.K, g.P(), g.Q()),
        w(g.K, g.C / g.opt.groups, g.R, g.S),
        conv(g.opt.pad_h, g.opt.pad_w, g.opt.stride_h, g.opt.stride_w, g.opt.dilation_h, g.opt.dilation_w,
             g.opt.groups) {
    // FMA math: true FP32 arithmetic; without it cuDNN may use TF32 tensor cores on Ampere and later.
    conv.set_math(s.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH);
    // The output size glimpse computed (window_out_size, as the CPU) must be cuDNN's own.
    int n = 0, k = 0, p = 0, q = 0;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv.get(), x.get(), w.get(), &n, &k, &p, &q));
    GLIMPSE_CHECK(n == g.N && k == g.K && p == g.P() && q == g.Q(), "cuda::conv2d: cuDNN computes the output [", n,
                  ", ", k, ", ", p, ", ", q, "] where glimpse computes [", g.N, ", ", g.K, ", ", g.P(), ", ", g.Q(),
                  "] for ", "x [", g.N, ", ", g.C, ", ", g.H, ", ", g.W, "]");
  }
};

void validate(const ConvGeometry& g, const char* op) {
  const Conv2dOptions& o = g.opt;
  GLIMPSE_CHECK(g.N > 0 && g.C > 0 && g.H > 0 && g.W > 0 && g.K > 0 && g.R > 0 && g.S > 0, "cuda::", op,
                ": sizes must be positive, got x [", g.N, ", ", g.C, ", ", g.H, ", ", g.W, "], w [", g.K, ", ", g.C,
                "/groups, ", g.R, ", ", g.S, "]");
  GLIMPSE_CHECK(o.groups > 0 && g.C % o.groups == 0 && g.K % o.groups == 0, "cuda::", op, ": groups = ", o.groups,
                " must divide C = ", g.C, " and K = ", g.K);
  GLIMPSE_CHECK(
      o.stride_h > 0 && o.stride_w > 0 && o.dilation_h > 0 && o.dilation_w > 0 && o.pad_h >= 0 && o.pad_w >= 0,
      "cuda::", op, ": strides and dilations must be positive and padding >= 0");
  GLIMPSE_CHECK(g.P() > 0 && g.Q() > 0, "cuda::", op, ": the ", g.R, "x", g.S, " kernel (dilation ", o.dilation_h, "x",
                o.dilation_w, ") does not fit the padded ", g.H, "x", g.W, " input");
}

// ---- the three passes, side by side ----

template <typename Perf>
std::vector<Candidate> to_candidates(const Perf* perf, int n) {
  std::vector<Candidate> out;
  for (int i = 0; i < n; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS)
      out.push_back({static_cast<int>(perf[i].algo), perf[i].memory, perf[i].determinism == CUDNN_DETERMINISTIC,
                     perf[i].mathType});
  return out;
}

// Every algorithm cuDNN can run for this shape, best first (heuristic order or measured time).
std::vector<Candidate> query(ConvPass pass, cudnnHandle_t h, const Descs& d, bool benchmark) {
  int n = 0;
  switch (pass) {
    case ConvPass::Forward: {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      const int want = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
      if (benchmark)
        CUDNN_CHECK(
            cudnnFindConvolutionForwardAlgorithm(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), want, &n, perf));
      else
        CUDNN_CHECK(
            cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), want, &n, perf));
      return to_candidates(perf, n);
    }
    case ConvPass::BackwardData: {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      const int want = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
      if (benchmark)
        CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), want,
                                                              &n, perf));
      else
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), want,
                                                                &n, perf));
      return to_candidates(perf, n);
    }
    case ConvPass::BackwardFilter: {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      const int want = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
      if (benchmark)
        CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), want,
                                                                &n, perf));
      else
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(),
                                                                  want, &n, perf));
      return to_candidates(perf, n);
    }
  }
  return {};
}

// The workspace the algorithm needs with the descriptors as set (math type included), or nothing
// when cuDNN cannot say for this algorithm (the caller skips it rather than fail the convolution).
std::optional<size_t> workspace_size(ConvPass pass, cudnnHandle_t h, const Descs& d, int algo) {
  size_t bytes = 0;
  cudnnStatus_t st = CUDNN_STATUS_BAD_PARAM;
  switch (pass) {
    case ConvPass::Forward:
      st = cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(),
                                                   static_cast<cudnnConvolutionFwdAlgo_t>(algo), &bytes);
      break;
    case ConvPass::BackwardData:
      st = cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
                                                        static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), &bytes);
      break;
    case ConvPass::BackwardFilter:
      st = cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(),
                                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), &bytes);
      break;
  }
  if (st != CUDNN_STATUS_SUCCESS) return std::nullopt;
  return bytes;
}

// The data of one call: out = alpha op(in0, in1) + beta out.
struct Operands {
  void* out;
  const void* in0;  // Forward: x; BackwardData: w; BackwardFilter: x
  const void* in1;  // Forward: w; BackwardData: dy; BackwardFilter: dy
  float beta;       // 0: overwrite, every pass (the kernel contract, core/dispatch.h)
};

cudnnStatus_t execute(ConvPass pass, cudnnHandle_t h, const Descs& d, int algo, void* ws, size_t ws_bytes,
                      const Operands& o) {
  const float alpha = 1.f;
  switch (pass) {
    case ConvPass::Forward:
      return cudnnConvolutionForward(h, &alpha, d.x.get(), o.in0, d.w.get(), o.in1, d.conv.get(),
                                     static_cast<cudnnConvolutionFwdAlgo_t>(algo), ws, ws_bytes, &o.beta, d.y.get(),
                                     o.out);
    case ConvPass::BackwardData:
      return cudnnConvolutionBackwardData(h, &alpha, d.w.get(), o.in0, d.y.get(), o.in1, d.conv.get(),
                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), ws, ws_bytes, &o.beta,
                                          d.x.get(), o.out);
    case ConvPass::BackwardFilter:
      return cudnnConvolutionBackwardFilter(h, &alpha, d.x.get(), o.in0, d.y.get(), o.in1, d.conv.get(),
                                            static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), ws, ws_bytes, &o.beta,
                                            d.w.get(), o.out);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

const char* pass_name(ConvPass pass) {
  switch (pass) {
    case ConvPass::Forward:
      return "conv2d_forward";
    case ConvPass::BackwardData:
      return "conv2d_backward_data";
    case ConvPass::BackwardFilter:
      return "conv2d_backward_filter";
  }
  return "conv2d";
}

std::string shape_of(const ConvGeometry& g) {
  return ::glimpse::detail::concat("x [", g.N, ", ", g.C, ", ", g.H, ", ", g.W, "], w [", g.K, ", ", g.C / g.opt.groups,
                                   ", ", g.R, ", ", g.S, "], stride ", g.opt.stride_h, "x", g.opt.stride_w, ", pad ",
                                   g.opt.pad_h, "x", g.opt.pad_w, ", dilation ", g.opt.dilation_h, "x",
                                   g.opt.dilation_w, ", groups ", g.opt.groups);
}

// The cached entry of this key, selecting the candidates on first use: cuDNN's list filtered by the
// settings (determinism; FMA-only math unless TF32 is allowed), each with its exact workspace size.
Entry select(ConvPass pass, int device, cudnnHandle_t h, const Descs& d, const ConvGeometry& g, const ConvSettings& s) {
  const Key key = make_key(pass, device, g, s);
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    auto it = cache().entries.find(key);
    if (it != cache().entries.end()) return it->second;
  }
  Entry e;
  size_t smallest_over_limit = 0;
  for (Candidate c : query(pass, h, d, s.benchmark)) {
    if (s.deterministic && !c.deterministic) continue;
    // With FMA math set on the descriptor cuDNN reports FMA (or default, for kernels without tensor
    // cores); a tensor-op entry would round to TF32.
    if (!s.allow_tf32 && c.math != CUDNN_FMA_MATH && c.math != CUDNN_DEFAULT_MATH) continue;
    const std::optional<size_t> ws = workspace_size(pass, h, d, c.algo);
    if (!ws) continue;  // cuDNN listed it but cannot size it: the next candidate, not a failure
    c.memory = std::max(c.memory, *ws);
    if (c.memory > s.max_workspace_bytes) {
      smallest_over_limit = smallest_over_limit ? std::min(smallest_over_limit, c.memory) : c.memory;
      continue;
    }
    e.candidates.push_back(c);
  }
  GLIMPSE_CHECK(
      !e.candidates.empty(), "cuda::", pass_name(pass), ": cuDNN offers no ", s.deterministic ? "deterministic " : "",
      "algorithm for ", shape_of(g), s.deterministic ? "; turn off ConvSettings::deterministic" : "",
      smallest_over_limit
          ? ::glimpse::detail::concat("; the smallest workspace needed is ", smallest_over_limit,
                                      " bytes, above ConvSettings::max_workspace_bytes = ", s.max_workspace_bytes)
          : std::string());
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().entries.emplace(key, std::move(e)).first->second;  // another thread may have won: keep its entry
}

void drop_candidate(ConvPass pass, int device, const ConvGeometry& g, const ConvSettings& s, int algo) {
  std::lock_guard<std::mutex> lock(cache().mu);
  auto it = cache().entries.find(make_key(pass, device, g, s));
  if (it == cache().entries.end()) return;
  auto& c = it->second.candidates;
  for (size_t i = 0; i < c.size(); ++i)
    if (c[i].algo == algo) {
      c.erase(c.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
}

// Runs one pass with the cached choice, falling back as the header describes.
void run(ConvPass pass, const ConvGeometry& g, const Operands& ops, cudaStream_t stream) {
  require_default_stream(stream, pass_name(pass));  // the workspace is shared by the thread's calls
  validate(g, pass_name(pass));
  const ConvSettings s = conv_settings();
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudnnHandle_t h = cudnn_handle(device);
  CUDNN_CHECK(cudnnSetStream(h, stream));
  Descs d(g, s);
  for (;;) {
    const Entry e = select(pass, device, h, d, g, s);
    GLIMPSE_CHECK(!e.candidates.empty(), "cuda::", pass_name(pass), ": cuDNN could run none of its algorithms for ",
                  shape_of(g));
    Candidate c = e.candidates.front();
    void* ws = nullptr;
    try {
      ws = workspace(c.memory, device);
    } catch (const Error& oom) {
      // Memory is short: the best acceptable algorithm that needs no workspace, for this call only.
      const Candidate* zero = nullptr;
      for (const Candidate& k : e.candidates)
        if (k.memory == 0) {
          zero = &k;
          break;
        }
      if (!zero)
        GLIMPSE_FAIL(oom.what(), " (cuda::", pass_name(pass),
                     " needed it as cuDNN workspace, and no zero-workspace "
                     "algorithm is available for ",
                     shape_of(g), ")");
      c = *zero;
    }
    if (s.allow_tf32) d.conv.set_math(c.math);  // run it with the math cuDNN benchmarked or ranked it with
    const cudnnStatus_t st = execute(pass, h, d, c.algo, ws, c.memory, ops);
    if (st == CUDNN_STATUS_NOT_SUPPORTED) {  // cuDNN listed it but refuses this configuration: next one
      drop_candidate(pass, device, g, s, c.algo);
      continue;
    }
    CUDNN_CHECK(st);
    return;
  }
}

}  // namespace

ConvSettings conv_settings() {
  std::lock_guard<std::mutex> lock(settings_mu());
  return settings_ref();
}

void set_conv_settings(const ConvSettings& settings) {
  std::lock_guard<std::mutex> lock(settings_mu());
  settings_ref() = settings;
}

void conv2d_forward(float* y, const float* x, const float* w, const float* b, const ConvGeometry& g, cudaStream_t s) {
  run(ConvPass::Forward, g, {y, x, w, 0.f}, s);
  if (b) bias_add_forward(y, y, b, g.N, g.K, g.P() * g.Q(), s);
}

void conv2d_backward_data(float* gx, const float* gy, const float* w, const ConvGeometry& g, cudaStream_t s) {
  run(ConvPass::BackwardData, g, {gx, w, gy, 0.f}, s);
}

void conv2d_backward_filter(float* gw, float* gb, const float* gy, const float* x, const ConvGeometry& g,
                            cudaStream_t s) {
  if (gw) run(ConvPass::BackwardFilter, g, {gw, x, gy, 0.f}, s);
  if (gb) {
    validate(g, "conv2d_backward_filter");
    bias_add_backward(gb, gy, g.N, g.K, g.P() * g.Q(), s);
  }
}

ConvAlgoChoice conv_algorithm(ConvPass pass, const ConvGeometry& g) {
  validate(g, pass_name(pass));
  const ConvSettings s = conv_settings();
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudnnHandle_t h = cudnn_handle(device);
  Descs d(g, s);
  const Entry e = select(pass, device, h, d, g, s);
  GLIMPSE_CHECK(!e.candidates.empty(), "cuda::", pass_name(pass), ": cuDNN could run none of its algorithms for ",
                shape_of(g));
  const Candidate& c = e.candidates.front();
  return {c.algo, c.memory, s.allow_tf32 ? c.math : CUDNN_FMA_MATH, c.deterministic};
}

size_t conv_algo_cache_size() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().entries.size();
}

void clear_conv_algo_cache() {
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().entries.clear();
}

}  // namespace glimpse::cuda

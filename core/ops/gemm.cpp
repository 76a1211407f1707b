// matmul and linear: the CPU GEMM and kernels, then the differentiable ops (math: core/ops/gemm.h).
#include "core/ops/gemm.h"

#include <algorithm>

#include <Eigen/Core>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/parallel.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using ConstMap = Eigen::Map<const RowMat, Eigen::Unaligned, Stride>;
using MutMap = Eigen::Map<RowMat, Eigen::Unaligned, Stride>;

// C[M,N] += alpha * op(A) op(B) on one thread (Eigen's blocked, packed GEMM; its own threading
// stays off: we are either inside our parallel region or Eigen::nbThreads() is 1).
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float* C, int64_t ldc) {
  MutMap c(C, M, N, Stride(ldc));
  // A stored as [M,K] (or [K,M] when transposed); likewise B.
  ConstMap a(A, trans_a ? K : M, trans_a ? M : K, Stride(lda));
  ConstMap b(B, trans_b ? N : K, trans_b ? K : N, Stride(ldb));
  // noalias(): C never aliases A or B here, so Eigen writes straight into C, no temporary; the
  // scalar alpha is folded into the kernel.
  if (!trans_a && !trans_b)
    c.noalias() += alpha * a * b;
  else if (trans_a && !trans_b)
    c.noalias() += alpha * a.transpose() * b;
  else if (!trans_a && trans_b)
    c.noalias() += alpha * a * b.transpose();
  else
    c.noalias() += alpha * a.transpose() * b.transpose();
}

// Below this many multiply-adds per thread a parallel region costs more than it saves.
constexpr double kMinWorkPerThread = 1 << 18;
}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  MutMap c(C, M, N, Stride(ldc));
  if (M == 0 || N == 0) return;
  if (beta == 0.f)
    c.setZero();
  else if (beta != 1.f)
    c *= beta;
  if (K == 0) return;

  // Threads split C into independent panels -- columns when N is the larger side, else rows --
  // each computed by a serial Eigen GEMM, through parallel_for (core/parallel.h): no busy-waiting
  // between threads (Eigen's own parallel GEMM spins on shared flags; see bench/NOTES.md).
  const double work = double(M) * N * K;
  int nt = num_threads();
  nt = static_cast<int>(std::min<double>(nt, std::max(1.0, work / kMinWorkPerThread)));
  if (nt <= 1) {
    gemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, C, ldc);
    return;
  }
  const bool by_cols = N >= M;
  const int64_t len = by_cols ? N : M;
  // Panels in multiples of 16 (Eigen's register blocks are 8- and 24-wide on AVX2).
  const int64_t chunk = ((len + nt - 1) / nt + 15) / 16 * 16;
  parallel_for(
      nt,
      [&](int64_t t) {
        const int64_t lo = std::min<int64_t>(len, t * chunk), hi = std::min<int64_t>(len, lo + chunk);
        if (lo >= hi) return;
        if (by_cols) {
          // Columns [lo, hi) of C need columns [lo, hi) of op(B).
          const float* Bp = trans_b ? B + lo * ldb : B + lo;
          gemm_serial(trans_a, trans_b, M, hi - lo, K, alpha, A, lda, Bp, ldb, C + lo, ldc);
        } else {
          const float* Ap = trans_a ? A + lo : A + lo * lda;
          gemm_serial(trans_a, trans_b, hi - lo, N, K, alpha, Ap, lda, B, ldb, C + lo * ldc, ldc);
        }
      },
      nt);
}

void matmul_forward(Tensor& out, const Tensor& a, const Tensor& b) {
  check_cpu(a, "matmul");
  check_cpu(b, "matmul");
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  gemm(false, false, M, N, K, 1.f, a.data(), K, b.data(), N, 0.f, out.data(), N);
}

void matmul_backward(Tensor& ga, Tensor& gb, const Tensor& g, const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  if (ga.defined()) gemm(false, true, M, K, N, 1.f, g.data(), N, b.data(), N, 0.f, ga.data(), K);
  if (gb.defined()) gemm(true, false, K, N, M, 1.f, a.data(), K, g.data(), N, 0.f, gb.data(), N);
}

void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t N = x.size(0), I = x.size(1), O = w.size(0);
  float* o = y.data();
  // The bias rows first, then the GEMM adds onto them (beta = 1): no second pass over y.
  if (b.defined()) {
    const float* pb = b.data();
    for (int64_t n = 0; n < N; ++n) std::copy(pb, pb + O, o + n * O);
  }
  gemm(false, true, N, O, I, 1.f, x.data(), I, w.data(), I, b.defined() ? 1.f : 0.f, o, O);
}

void linear_backward(Tensor& gx, Tensor& gw, Tensor& gb, const Tensor& g, const Tensor& x, const Tensor& w) {
  const int64_t N = x.size(0), I = x.size(1), O = w.size(0);
  if (gx.defined()) gemm(false, false, N, I, O, 1.f, g.data(), O, w.data(), I, 0.f, gx.data(), I);
  if (gw.defined()) gemm(true, false, O, I, N, 1.f, g.data(), O, x.data(), I, 0.f, gw.data(), I);
  if (gb.defined()) {
    gb.fill_(0.f);
    float* pb = gb.data();
    const float* pg = g.data();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) pb[o] += pg[n * O + o];
  }
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

Tensor matmul(const Tensor& a, const Tensor& b) {
  GLIMPSE_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: shapes ", shape_str(a.shape()),
                " and ", shape_str(b.shape()), " do not multiply ([M,K] x [K,N])");
  check_same_device(a, b, "matmul");
  Tensor ac = a.contiguous(), bc = b.contiguous();
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  Tensor out = Tensor::empty({M, N}, a.device());
  dispatch("matmul", a.device(), GLIMPSE_KERNEL(matmul_forward), out, ac, bc);
  Tensor ad = ac.detach(), bd = bc.detach();
  return record("matmul", out, {a, b},
                [ad, bd, M, K, N](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                  Tensor ga = needs[0] ? Tensor::empty({M, K}, g.device()) : Tensor();
                  Tensor gb = needs[1] ? Tensor::empty({K, N}, g.device()) : Tensor();
                  dispatch("matmul", g.device(), GLIMPSE_KERNEL(matmul_backward), ga, gb, g.contiguous(), ad, bd);
                  return {ga, gb};
                });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  GLIMPSE_CHECK(x.dim() == 2, "linear: input must be [N, in_features], got ", shape_str(x.shape()),
                " (flatten it first)");
  GLIMPSE_CHECK(weight.dim() == 2 && weight.size(1) == x.size(1), "linear: input ", shape_str(x.shape()),
                " does not match weight ", shape_str(weight.shape()), " (expects [out_features, ", x.size(1), "])");
  const int64_t N = x.size(0), I = x.size(1), O = weight.size(0);
  if (bias.defined()) {
    GLIMPSE_CHECK(bias.dim() == 1 && bias.size(0) == O, "linear: bias ", shape_str(bias.shape()),
                  " does not match weight ", shape_str(weight.shape()));
    check_same_device(x, bias, "linear");
  }
  check_same_device(x, weight, "linear");
  Tensor xc = x.contiguous(), wc = weight.contiguous();
  Tensor out = Tensor::empty({N, O}, x.device());
  dispatch("linear", x.device(), GLIMPSE_KERNEL(linear_forward), out, xc, wc,
           bias.defined() ? bias.contiguous() : Tensor());
  Tensor xd = xc.detach(), wd = wc.detach();
  return record("linear", out, {x, weight, bias},
                [xd, wd, N, I, O](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                  const Device dev = g.device();
                  Tensor gx = needs[0] ? Tensor::empty({N, I}, dev) : Tensor();
                  Tensor gw = needs[1] ? Tensor::empty({O, I}, dev) : Tensor();
                  Tensor gb = needs[2] ? Tensor::empty({O}, dev) : Tensor();
                  dispatch("linear", dev, GLIMPSE_KERNEL(linear_backward), gx, gw, gb, g.contiguous(), xd, wd);
                  return {gx, gw, gb};
                });
}

}  // namespace glimpse

// matmul and linear, forward and backward side by side.
//   C = A B        : dA = g B^T,   dB = A^T g
//   y = x W^T + b  : dx = g W,     dW = g^T x,   db = sum over rows of g
#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/error.h"
#include "core/ops/gemm.h"

namespace glimpse {

Tensor matmul(const Tensor& a, const Tensor& b) {
  GLIMPSE_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: shapes ", shape_str(a.shape()),
                " and ", shape_str(b.shape()), " do not multiply ([M,K] x [K,N])");
  check_same_device(a, b, "matmul");
  Tensor ac = a.contiguous(), bc = b.contiguous();
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  Tensor out = Tensor::empty({M, N}, a.device());
  matmul_forward(out, ac, bc);
  Tensor ad = ac.detach(), bd = bc.detach();
  return record("matmul", out, {a, b}, [ad, bd, M, K, N](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
    Tensor gc = g.contiguous(), ga, gb;
    if (needs[0]) {
      ga = Tensor::empty({M, K});
      gemm(false, true, M, K, N, 1.f, gc.data(), N, bd.data(), N, 0.f, ga.data(), K);
    }
    if (needs[1]) {
      gb = Tensor::empty({K, N});
      gemm(true, false, K, N, M, 1.f, ad.data(), K, gc.data(), N, 0.f, gb.data(), N);
    }
    return {ga, gb};
  });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  GLIMPSE_CHECK(x.dim() == 2, "linear: input must be [N, in_features], got ", shape_str(x.shape()),
                " (flatten it first)");
  GLIMPSE_CHECK(weight.dim() == 2 && weight.size(1) == x.size(1), "linear: input ", shape_str(x.shape()),
                " does not match weight ", shape_str(weight.shape()), " (expects [out_features, ", x.size(1), "])");
  const int64_t N = x.size(0), I = x.size(1), O = weight.size(0);
  if (bias.defined())
    GLIMPSE_CHECK(bias.dim() == 1 && bias.size(0) == O, "linear: bias ", shape_str(bias.shape()), " does not match weight ",
                  shape_str(weight.shape()));
  check_cpu(x, "linear");
  check_same_device(x, weight, "linear");
  Tensor xc = x.contiguous(), wc = weight.contiguous();
  Tensor out = Tensor::empty({N, O});
  float* o = out.data();
  if (bias.defined()) {
    const float* pb = bias.data();
    for (int64_t n = 0; n < N; ++n) std::copy(pb, pb + O, o + n * O);
  }
  gemm(false, true, N, O, I, 1.f, xc.data(), I, wc.data(), I, bias.defined() ? 1.f : 0.f, o, O);
  Tensor xd = xc.detach(), wd = wc.detach();
  return record("linear", out, {x, weight, bias},
                [xd, wd, N, I, O](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                  Tensor gc = g.contiguous(), gx, gw, gb;
                  if (needs[0]) {
                    gx = Tensor::empty({N, I});
                    gemm(false, false, N, I, O, 1.f, gc.data(), O, wd.data(), I, 0.f, gx.data(), I);
                  }
                  if (needs[1]) {
                    gw = Tensor::empty({O, I});
                    gemm(true, false, O, I, N, 1.f, gc.data(), O, xd.data(), I, 0.f, gw.data(), I);
                  }
                  if (needs[2]) {
                    gb = Tensor::zeros({O});
                    float* pb = gb.data();
                    const float* pg = gc.data();
                    for (int64_t n = 0; n < N; ++n)
                      for (int64_t o2 = 0; o2 < O; ++o2) pb[o2] += pg[n * O + o2];
                  }
                  return {gx, gw, gb};
                });
}

}  // namespace glimpse

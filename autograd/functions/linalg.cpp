// matmul and linear, forward and backward side by side (kernels in core/ops/gemm.h, CUDA twins in
// cuda/gemm.cpp, reached through core/dispatch.h).
//   C = A B        : dA = g B^T,   dB = A^T g
//   y = x W^T + b  : dx = g W,     dW = g^T x,   db = sum over rows of g
#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/dispatch.h"
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
  dispatch("matmul", a.device(), &matmul_forward, &DeviceKernels::matmul_forward, out, ac, bc);
  Tensor ad = ac.detach(), bd = bc.detach();
  return record("matmul", out, {a, b}, [ad, bd, M, K, N](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
    Tensor ga = needs[0] ? Tensor::empty({M, K}, g.device()) : Tensor();
    Tensor gb = needs[1] ? Tensor::empty({K, N}, g.device()) : Tensor();
    dispatch("matmul", g.device(), &matmul_backward, &DeviceKernels::matmul_backward, ga, gb, g.contiguous(), ad, bd);
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
    GLIMPSE_CHECK(bias.dim() == 1 && bias.size(0) == O, "linear: bias ", shape_str(bias.shape()), " does not match weight ",
                  shape_str(weight.shape()));
    check_same_device(x, bias, "linear");
  }
  check_same_device(x, weight, "linear");
  Tensor xc = x.contiguous(), wc = weight.contiguous();
  Tensor out = Tensor::empty({N, O}, x.device());
  dispatch("linear", x.device(), &linear_forward, &DeviceKernels::linear_forward, out, xc, wc,
           bias.defined() ? bias.contiguous() : Tensor());
  Tensor xd = xc.detach(), wd = wc.detach();
  return record("linear", out, {x, weight, bias},
                [xd, wd, N, I, O](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                  const Device dev = g.device();
                  Tensor gx = needs[0] ? Tensor::empty({N, I}, dev) : Tensor();
                  Tensor gw = needs[1] ? Tensor::empty({O, I}, dev) : Tensor();
                  Tensor gb = needs[2] ? Tensor::empty({O}, dev) : Tensor();
                  dispatch("linear", dev, &linear_backward, &DeviceKernels::linear_backward, gx, gw, gb, g.contiguous(),
                           xd, wd);
                  return {gx, gw, gb};
                });
}

}  // namespace glimpse

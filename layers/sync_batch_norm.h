// Synchronized batch norm: training-mode statistics over the batch of every process of a
// data-parallel job, not over this process's slice alone, so that N ranks at global batch B
// normalize as one process at batch B does. The collective comes from outside layers/ (a
// BatchNormGroup; glimpse_dist makes one of its communicator: dist::synchronize_batch_norm).
//
// x [N, C, *] on each rank; sums over the M = sum of every rank's N * prod(*) values per channel:
//   forward : mean_c = (1/M) SUM x                  (allreduce 1: per-channel sums and the count)
//             var_c  = (1/M) SUM (x - mean_c)^2     (allreduce 2: two passes, as one process)
//             xhat = (x - mean_c) invstd_c, y = gamma_c xhat + beta_c; running statistics updated
//             with the global mean and unbiased variance (M / (M - 1)).
//   backward: with g = dL/dy of this rank, L the loss of the whole job (each rank seeds its
//             backward with its share of the global loss),
//             SG_c = SUM g, SGX_c = SUM g xhat           (allreduce 3)
//             dx = gamma invstd / M (M g - SG - xhat SGX); dgamma, dbeta: this rank's sums (the
//             gradient averaging adds the ranks' parameter gradients).
// Every rank must run the same layers in the same order (each forward and backward is a
// collective). CPU tensors.
#pragma once
#include <memory>

#include "core/tensor.h"

namespace glimpse {

class BatchNormGroup {
 public:
  virtual ~BatchNormGroup() = default;
  // `t` (contiguous float32 on the CPU, the same shape on every member) summed over the group, in place.
  virtual void sum(Tensor& t) = 0;
};

Tensor sync_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                       Tensor& running_var, float momentum, float eps, const std::shared_ptr<BatchNormGroup>& group);

}  // namespace glimpse

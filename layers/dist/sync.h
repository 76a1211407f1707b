// What data-parallel training needs on top of the communicator: the same starting point on every
// rank (parameters, buffers, optimizer state from rank 0), gradients averaged over the global batch
// (bucketed allreduce), batch-norm statistics averaged, and agreement -- an error on one rank, or
// ranks started differently, stops every rank with the same message instead of hanging the job.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "layers/dist/comm.h"
#include "layers/module.h"
#include "layers/optim.h"

namespace glimpse::dist {

// Thrown on every rank alike after an agreement found a fault (agree, check_same_everywhere): each
// rank knows the whole story, so a program prints it once (rank 0) and exits normally, where an
// error seen by one rank alone must end the job (Communicator::abort).
class CollectiveError : public Error {
 public:
  using Error::Error;
};

// Runs `step` on every rank, then compares notes: when it threw on any rank, every rank throws
// CollectiveError "<what>: rank R of N: <its message>" (the first failing rank's; the count of
// others is added). Collective: every rank must call it.
void agree(Communicator& c, const std::string& what, const std::function<void()>& step);

// Each rank's `description` (one "key value" per line) against rank 0's: a rank that differs
// stops the job on every rank with CollectiveError naming the rank and its first differing line.
void check_same_everywhere(Communicator& c, const std::string& what, const std::string& description);
// FNV-1a 64 of this program's file (/proc/self/exe), in hex: ranks running different builds differ.
std::string binary_fingerprint();

// Parameters and buffers of rank `root` copied to every rank (same architecture everywhere).
void broadcast_module(Communicator& c, Module& m, int root = 0);
// The optimizer state (moments, step counts) of rank `root` loaded on every rank; an empty state
// (a fresh optimizer) on root empties nothing elsewhere. Same parameters on every rank.
void broadcast_optimizer(Communicator& c, Optimizer& opt, int root = 0);
// Buffers (batch-norm running mean and variance, ...) replaced by their mean over ranks.
void average_buffers(Communicator& c, Module& m);
// Synchronized batch norm (layers/sync_batch_norm.h): every BatchNorm2d of `m` takes its
// training-mode statistics over the batches of every rank of `c`. Returns how many layers.
// The loss each rank backpropagates must then be its share of the global batch's loss (the
// statistics' backward sums every rank's gradient): train's --sync-bn does so.
int64_t synchronize_batch_norm(Communicator& c, Module& m);

// Averages the gradients of `params` over the global batch after each rank's backward pass.
// Each rank's loss is a (weighted) mean over its own slice; the global batch's mean is
//   sum_r w_r g_r / sum_r w_r, with w_r the rank's total sample weight (the image count, or the
// class weights of its labels), which is what average() computes. Gradients are packed into flat
// buckets of about `bucket_bytes` each and allreduced bucket by bucket (one call per bucket, not
// per parameter); the bucket lives on the parameters' device when the backend moves that memory
// (NCCL), else on the host. A parameter that got no gradient on any rank keeps none.
class GradientAverager {
 public:
  GradientAverager(Communicator& c, std::vector<Tensor> params, int64_t bucket_bytes = 4 << 20);
  // The global batch, from each rank's weight, its (weighted-mean) loss and image count.
  struct GlobalBatch {
    double weight = 0, loss = 0;
    int64_t images = 0;
  };
  GlobalBatch average(double local_weight, double local_loss, int64_t local_images);
  double seconds() const { return seconds_; }  // spent in allreduce so far
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indexes into params_
    int64_t numel = 0;           // gradient elements (+ 1 per parameter: its has-gradient flag)
  };
  Communicator& c_;
  std::vector<Tensor> params_;
  std::vector<Bucket> buckets_;
  double seconds_ = 0;
};

}  // namespace glimpse::dist

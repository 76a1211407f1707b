// The NCCL backend (GLIMPSE_WITH_NCCL: a CUDA build with MPI and NCCL): tensors on a GPU go through
// NCCL (ncclAllReduce, ncclBroadcast), everything on the host through MPI, which also bootstraps
// NCCL (rank 0's ncclUniqueId is broadcast with MPI_Bcast). One GPU per rank: the communicator is
// created, collectively, on the device of the first GPU tensor it sees, and every later GPU tensor
// must be on that device. Work goes on glimpse's stream (the legacy default stream, cuda/check.h)
// and each call waits for it, so the result is ready when the call returns.
#include <cuda_runtime.h>
#include <nccl.h>

#include "cuda/check.h"
#include "cuda/tensor_ops.h"
#include "layers/dist/mpi_comm.h"
#include "layers/dist/nccl_comm.h"

#define GLIMPSE_NCCL_CHECK(call, hint)                                                                           \
  do {                                                                                                           \
    const ncclResult_t glimpse_nccl_rc_ = (call);                                                                \
    if (glimpse_nccl_rc_ != ncclSuccess)                                                                         \
      ::glimpse::detail::fail(__FILE__, __LINE__, #call,                                                         \
                              ::glimpse::detail::concat("NCCL error ", static_cast<int>(glimpse_nccl_rc_), ": ", \
                                                        ncclGetErrorString(glimpse_nccl_rc_), " (", hint, ")")); \
  } while (0)

namespace glimpse::dist {
namespace {

constexpr const char* kNcclHint =
    "another rank may have stopped, or the GPUs cannot reach each other; rerun with NCCL_DEBUG=WARN for NCCL's reason";

class NcclComm final : public MpiComm {
 public:
  ~NcclComm() override {
    // Not checked: a destructor must not throw, and the job is ending anyway.
    if (comm_) ncclCommDestroy(comm_);
  }
  std::string backend() const override { return "nccl"; }

  void allreduce_sum(Tensor& t) override {
    if (!t.defined() || t.device().is_cpu()) return MpiComm::allreduce_sum(t);
    float* p = device_ptr(t);
    GLIMPSE_NCCL_CHECK(ncclAllReduce(p, p, static_cast<size_t>(t.numel()), ncclFloat, ncclSum, comm_, 0), kNcclHint);
    CUDA_CHECK(cudaStreamSynchronize(0));
  }

  void broadcast(Tensor& t, int root) override {
    if (!t.defined() || t.device().is_cpu()) return MpiComm::broadcast(t, root);
    float* p = device_ptr(t);
    GLIMPSE_NCCL_CHECK(ncclBroadcast(p, p, static_cast<size_t>(t.numel()), ncclFloat, root, comm_, 0), kNcclHint);
    CUDA_CHECK(cudaStreamSynchronize(0));
  }

 private:
  // The device pointer of t, creating the NCCL communicator on t's device the first time.
  float* device_ptr(const Tensor& t) {
    const int dev = t.device().index;
    if (!comm_) {
      CUDA_CHECK(cudaSetDevice(dev));
      ncclUniqueId id;
      if (rank() == 0) GLIMPSE_NCCL_CHECK(ncclGetUniqueId(&id), "rank 0 could not create NCCL's bootstrap id");
      broadcast_bytes(&id, sizeof id, 0);
      GLIMPSE_NCCL_CHECK(ncclCommInitRank(&comm_, size(), id, rank()), kNcclHint);
      device_ = dev;
    }
    GLIMPSE_CHECK(dev == device_, "dist (nccl): rank ", rank(), " has its NCCL communicator on cuda:", device_,
                  " and was given a tensor on ", t.device().str(), "; use one GPU per rank (--device cuda:N)");
    return cuda::device_data(t);
  }

  ncclComm_t comm_ = nullptr;
  int device_ = -1;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_comm() { return std::make_unique<NcclComm>(); }

}  // namespace glimpse::dist

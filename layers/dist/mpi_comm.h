// The MPI backend (built with GLIMPSE_WITH_MPI only): MPI_COMM_WORLD, host tensors. Internal to
// dist/: programs get it through Session::world().
#pragma once
#include <mpi.h>

#include "layers/dist/comm.h"

namespace glimpse::dist {

// Throws glimpse::Error naming the call, file:line, MPI's message and a hint.
[[noreturn]] void mpi_fail(const char* file, int line, const char* call, int code, const char* hint);
#define GLIMPSE_MPI_CHECK(call, hint)                                                                                \
  do {                                                                                                               \
    const int glimpse_mpi_rc_ = (call);                                                                              \
    if (glimpse_mpi_rc_ != MPI_SUCCESS) ::glimpse::dist::mpi_fail(__FILE__, __LINE__, #call, glimpse_mpi_rc_, hint); \
  } while (0)

class MpiComm : public Communicator {
 public:
  MpiComm();  // MPI_COMM_WORLD; MPI must be initialized
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  void allreduce_sum(Tensor& t) override;
  void broadcast(Tensor& t, int root) override;
  void broadcast_bytes(void* data, size_t bytes, int root) override;
  void allgather_bytes(const void* mine, size_t bytes, void* all) override;
  std::vector<std::vector<char>> gather_bytes(const void* mine, size_t bytes, int root) override;
  void barrier() override;
  void abort(int code) override;

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace glimpse::dist

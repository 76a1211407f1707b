// The MPI backend: each collective is the one MPI call of the same name on MPI_COMM_WORLD.
#include "layers/dist/mpi_comm.h"

#include <climits>
#include <cstdio>

#include "core/error.h"

namespace glimpse::dist {
namespace {

constexpr const char* kPeerHint =
    "another rank may have stopped (see its message above) or the launcher lost it; check mpirun's output";

// MPI counts are ints: larger buffers are refused rather than truncated.
int count_of(size_t n, const char* what) {
  GLIMPSE_CHECK(n <= static_cast<size_t>(INT_MAX), "dist (mpi): ", what, " of ", n,
                " elements is more than one MPI call carries (", INT_MAX, ")");
  return static_cast<int>(n);
}

void check_tensor(const Tensor& t, const char* what) {
  GLIMPSE_CHECK(t.defined(), "dist (mpi): ", what, " of an undefined tensor");
  GLIMPSE_CHECK(
      t.device().is_cpu(), "dist (mpi): ", what, " of a tensor on ", t.device().str(),
      "; the MPI backend moves host memory only (build with CUDA and NCCL for GPU tensors, or copy to the CPU)");
  GLIMPSE_CHECK(t.is_contiguous(), "dist (mpi): ", what, " needs a contiguous tensor, got ", t.str());
}

}  // namespace

void mpi_fail(const char* file, int line, const char* call, int code, const char* hint) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof text, "MPI error %d", code);
  int rank = -1, initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  detail::fail(file, line, nullptr,
               detail::concat("MPI call ", call, " failed on rank ", rank, ": ", text, " (", hint, ")"));
}

MpiComm::MpiComm() {
  GLIMPSE_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Init must come first (dist::Session)");
  GLIMPSE_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Init must come first (dist::Session)");
}

void MpiComm::allreduce_sum(Tensor& t) {
  check_tensor(t, "allreduce");
  GLIMPSE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.data(), count_of(static_cast<size_t>(t.numel()), "allreduce"),
                                  MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                    kPeerHint);
}

void MpiComm::broadcast(Tensor& t, int root) {
  check_tensor(t, "broadcast");
  GLIMPSE_MPI_CHECK(
      MPI_Bcast(t.data(), count_of(static_cast<size_t>(t.numel()), "broadcast"), MPI_FLOAT, root, MPI_COMM_WORLD),
      kPeerHint);
}

void MpiComm::broadcast_bytes(void* data, size_t bytes, int root) {
  GLIMPSE_MPI_CHECK(MPI_Bcast(data, count_of(bytes, "broadcast"), MPI_BYTE, root, MPI_COMM_WORLD), kPeerHint);
}

void MpiComm::allgather_bytes(const void* mine, size_t bytes, void* all) {
  const int n = count_of(bytes, "allgather");
  GLIMPSE_MPI_CHECK(MPI_Allgather(mine, n, MPI_BYTE, all, n, MPI_BYTE, MPI_COMM_WORLD), kPeerHint);
}

std::vector<std::vector<char>> MpiComm::gather_bytes(const void* mine, size_t bytes, int root) {
  const int n = count_of(bytes, "gather");
  std::vector<int> counts(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
  GLIMPSE_MPI_CHECK(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, MPI_COMM_WORLD), kPeerHint);
  std::vector<char> all;
  if (rank_ == root) {
    size_t total = 0;
    for (int r = 0; r < size_; ++r) {
      displs[r] = count_of(total, "gather (offset)");
      total += static_cast<size_t>(counts[r]);
    }
    all.resize(total);
  }
  GLIMPSE_MPI_CHECK(
      MPI_Gatherv(mine, n, MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE, root, MPI_COMM_WORLD),
      kPeerHint);
  std::vector<std::vector<char>> out;
  if (rank_ == root)
    for (int r = 0; r < size_; ++r) out.emplace_back(all.begin() + displs[r], all.begin() + displs[r] + counts[r]);
  return out;
}

void MpiComm::barrier() { GLIMPSE_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD), kPeerHint); }

void MpiComm::abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

}  // namespace glimpse::dist

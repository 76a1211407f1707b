// The communicator of data-parallel runs: rank, world size, and the collectives glimpse needs
// (allreduce, broadcast, gather of tensors; bytes for strings and hashes; barrier). Three backends
// behind one interface, so the same training code runs alone or under `mpirun`:
//   - local: one process, every collective the identity (the default, and the build without MPI);
//   - mpi:   Open MPI (or any MPI), host tensors;
//   - nccl:  NCCL for tensors on a GPU, bootstrapped over MPI (MPI carries the host traffic).
// No collective algorithm is ours: each call is one MPI or NCCL call. Every call is checked and a
// failure throws glimpse::Error naming the call, file:line, the MPI/NCCL message and a hint.
//
// Collectives are called by every rank in the same order with the same shapes (tensors) or sizes
// (bytes); a rank that skips one hangs the job, so code that may fail on one rank only first
// agrees on success (dist/agree.h).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace glimpse::dist {

enum class Reduce { Sum, Mean };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "local", "mpi", "nccl"

  // In place on a contiguous float32 tensor, same shape on every rank.
  virtual void allreduce_sum(Tensor& t) = 0;
  virtual void broadcast(Tensor& t, int root) = 0;
  // Host bytes. broadcast_bytes: `bytes` equal on every rank. allgather_bytes: each rank gives
  // `bytes` (equal on every rank), `all` receives size() * bytes, rank r's at r * bytes.
  virtual void broadcast_bytes(void* data, size_t bytes, int root) = 0;
  virtual void allgather_bytes(const void* mine, size_t bytes, void* all) = 0;
  // Variable sizes: root receives every rank's bytes, in rank order; the others get nothing.
  virtual std::vector<std::vector<char>> gather_bytes(const void* mine, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends every process of the job now: for an error on one rank that the others, blocked in a
  // collective, cannot see. Returns only from the one-process backend (it does nothing there).
  virtual void abort(int code) = 0;
};

// Sum, or the mean over ranks, in place.
void allreduce(Communicator& c, Tensor& t, Reduce op = Reduce::Sum);
// Rows of every rank's tensor (dim 0 may differ between ranks, the other dims may not) concatenated
// in rank order on `root`; the other ranks get an undefined tensor. CPU tensors.
Tensor gather(Communicator& c, const Tensor& t, int root = 0);
// Each rank's string, in rank order, on every rank.
std::vector<std::string> allgather_strings(Communicator& c, const std::string& mine);
void broadcast_string(Communicator& c, std::string& s, int root = 0);

// The one-process communicator (process-wide; stateless).
Communicator& local();

// What a program holds for its lifetime: MPI initialized (and finalized at the end) when the
// process was started by an MPI launcher (mpirun, mpiexec, srun --mpi=pmix) and glimpse was built
// with MPI; the local communicator otherwise. A launch under mpirun of a build without MPI is
// refused (every process would think it is rank 0 and they would overwrite each other's files).
class Session {
 public:
  Session(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Communicator& world() { return *world_; }

 private:
  struct Runtime;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<Communicator> owned_;
  Communicator* world_ = nullptr;
};

// True when an MPI launcher started this process (its environment variables are set).
bool launched_by_mpi();
// Whether this build has the MPI / NCCL backend.
bool built_with_mpi();
bool built_with_nccl();

}  // namespace glimpse::dist

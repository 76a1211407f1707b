// The backend-independent collectives (on top of the virtual calls) and the one-process backend.
#include "layers/dist/comm.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace glimpse::dist {
namespace {

// One process: every collective leaves its data as it is (a sum over one rank is itself).
class LocalComm final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void allreduce_sum(Tensor&) override {}
  void broadcast(Tensor&, int root) override { check_root(root); }
  void broadcast_bytes(void*, size_t, int root) override { check_root(root); }
  void allgather_bytes(const void* mine, size_t bytes, void* all) override {
    if (bytes) std::memcpy(all, mine, bytes);
  }
  std::vector<std::vector<char>> gather_bytes(const void* mine, size_t bytes, int root) override {
    check_root(root);
    const char* p = static_cast<const char*>(mine);
    return {std::vector<char>(p, p + bytes)};
  }
  void barrier() override {}
  void abort(int) override {}

 private:
  static void check_root(int root) {
    GLIMPSE_CHECK(root == 0, "dist: root rank ", root, " in a one-process run (world size 1)");
  }
};

}  // namespace

Communicator& local() {
  static LocalComm c;
  return c;
}

void allreduce(Communicator& c, Tensor& t, Reduce op) {
  c.allreduce_sum(t);
  if (op == Reduce::Mean && c.size() > 1) t.scale_(1.f / static_cast<float>(c.size()));
}

Tensor gather(Communicator& c, const Tensor& t, int root) {
  GLIMPSE_CHECK(t.defined() && t.device().is_cpu(), "dist::gather: needs a defined CPU tensor");
  GLIMPSE_CHECK(t.dim() >= 1, "dist::gather: needs at least one dimension (rows), got ", t.str());
  const Tensor x = t.contiguous();
  // The shape travels with the rows, so that the root can check the trailing dims agree.
  std::vector<int64_t> header(1 + x.shape().size());
  header[0] = x.dim();
  for (int64_t d = 0; d < x.dim(); ++d) header[1 + d] = x.size(d);
  std::vector<char> msg(header.size() * sizeof(int64_t) + static_cast<size_t>(x.numel()) * sizeof(float));
  std::memcpy(msg.data(), header.data(), header.size() * sizeof(int64_t));
  if (x.numel()) std::memcpy(msg.data() + header.size() * sizeof(int64_t), x.data(), x.numel() * sizeof(float));
  const std::vector<std::vector<char>> parts = c.gather_bytes(msg.data(), msg.size(), root);
  if (c.rank() != root) return Tensor();
  Shape shape = x.shape();
  shape[0] = 0;
  for (size_t r = 0; r < parts.size(); ++r) {
    int64_t dims = 0;
    std::memcpy(&dims, parts[r].data(), sizeof(int64_t));
    GLIMPSE_CHECK(dims == x.dim(), "dist::gather: rank ", r, " sent ", dims, " dims, rank ", root, " has ", x.dim());
    for (int64_t d = 1; d < dims; ++d) {
      int64_t n = 0;
      std::memcpy(&n, parts[r].data() + (1 + d) * sizeof(int64_t), sizeof(int64_t));
      GLIMPSE_CHECK(n == x.size(d), "dist::gather: rank ", r, " sent dim ", d, " of size ", n, ", rank ", root, " has ",
                    x.size(d));
    }
    int64_t rows = 0;
    std::memcpy(&rows, parts[r].data() + sizeof(int64_t), sizeof(int64_t));
    shape[0] += rows;
  }
  Tensor out = Tensor::empty(shape);
  char* dst = reinterpret_cast<char*>(out.data());
  for (const auto& p : parts) {
    const size_t off = static_cast<size_t>(1 + x.dim()) * sizeof(int64_t);
    if (p.size() == off) continue;  // no rows from that rank
    std::memcpy(dst, p.data() + off, p.size() - off);
    dst += p.size() - off;
  }
  return out;
}

std::vector<std::string> allgather_strings(Communicator& c, const std::string& mine) {
  // Lengths first (fixed size), then every string padded to the longest.
  const uint64_t len = mine.size();
  std::vector<uint64_t> lens(static_cast<size_t>(c.size()));
  c.allgather_bytes(&len, sizeof len, lens.data());
  uint64_t longest = 0;
  for (uint64_t l : lens) longest = std::max(longest, l);
  std::vector<char> padded(longest, '\0'), all(longest * lens.size());
  if (!mine.empty()) std::memcpy(padded.data(), mine.data(), mine.size());
  c.allgather_bytes(padded.data(), longest, all.data());
  std::vector<std::string> out;
  for (size_t r = 0; r < lens.size(); ++r) out.emplace_back(all.data() + r * longest, lens[r]);
  return out;
}

void broadcast_string(Communicator& c, std::string& s, int root) {
  uint64_t len = s.size();
  c.broadcast_bytes(&len, sizeof len, root);
  s.resize(len);
  if (len) c.broadcast_bytes(s.data(), len, root);
}

bool launched_by_mpi() {
  // Open MPI's mpirun, PMIx launchers (srun --mpi=pmix, prterun), and MPICH/Hydra's PMI.
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace glimpse::dist

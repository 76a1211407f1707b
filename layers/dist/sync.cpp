#include "layers/dist/sync.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "layers/layers.h"

namespace glimpse::dist {
namespace {

// The first line where a and b differ, for the message ("" when equal).
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (;;) {
    const bool ga = static_cast<bool>(std::getline(sa, la)), gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "";
    if (!ga) la = "(nothing)";
    if (!gb) lb = "(nothing)";
    if (la != lb) return "'" + lb + "' where rank 0 has '" + la + "'";
  }
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

void agree(Communicator& c, const std::string& what, const std::function<void()>& step) {
  std::string error;
  try {
    step();
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "failed (no message)";
  }
  if (c.size() == 1) {
    if (!error.empty()) throw CollectiveError(what + ": " + error);
    return;
  }
  const std::vector<std::string> all = allgather_strings(c, error);
  int first = -1, failed = 0;
  for (int r = 0; r < c.size(); ++r)
    if (!all[r].empty()) {
      if (first < 0) first = r;
      ++failed;
    }
  if (first < 0) return;
  std::string msg = what + ": rank " + std::to_string(first) + " of " + std::to_string(c.size()) + ": " + all[first];
  if (failed > 1) msg += " (and " + std::to_string(failed - 1) + " other rank(s) failed too)";
  throw CollectiveError(msg);
}

void check_same_everywhere(Communicator& c, const std::string& what, const std::string& description) {
  if (c.size() == 1) return;
  std::string root = description;
  broadcast_string(c, root, 0);
  const std::string mine = first_difference(root, description);
  const std::vector<std::string> all = allgather_strings(c, mine);
  for (int r = 0; r < c.size(); ++r)
    if (!all[r].empty())
      throw CollectiveError(what + ": rank " + std::to_string(r) + " was started differently from rank 0: it has " +
                            all[r] + "; start every rank with the same program and flags");
}

std::string binary_fingerprint() {
  std::ifstream f("/proc/self/exe", std::ios::binary);
  if (!f) return "unknown";
  uint64_t h = 1469598103934665603ull;
  char buf[1 << 16];
  while (f) {
    f.read(buf, sizeof buf);
    for (std::streamsize i = 0; i < f.gcount(); ++i) h = (h ^ static_cast<unsigned char>(buf[i])) * 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

void broadcast_module(Communicator& c, Module& m, int root) {
  if (c.size() == 1) return;
  for (auto& [name, t] : m.named_parameters()) c.broadcast(t, root);
  for (auto& [name, t] : m.named_buffers()) c.broadcast(t, root);
}

void broadcast_optimizer(Communicator& c, Optimizer& opt, int root) {
  if (c.size() == 1) return;
  // Names and shapes first (as text), then each tensor.
  std::map<std::string, Tensor> state = opt.state_dict();
  std::string layout;
  if (c.rank() == root) {
    std::ostringstream os;
    for (const auto& [name, t] : state) {
      os << name << ' ' << t.dim();
      for (int64_t d = 0; d < t.dim(); ++d) os << ' ' << t.size(d);
      os << '\n';
    }
    layout = os.str();
  }
  broadcast_string(c, layout, root);
  std::map<std::string, Tensor> received;
  std::istringstream is(layout);
  std::string name;
  int64_t dims = 0;
  while (is >> name >> dims) {
    Shape shape(static_cast<size_t>(dims));
    for (auto& n : shape) is >> n;
    Tensor t = c.rank() == root ? state.at(name).contiguous().to(Device::cpu()) : Tensor::zeros(shape);
    c.broadcast(t, root);
    received[name] = t;
  }
  if (c.rank() != root && !received.empty()) opt.load_state_dict(received);
}

void average_buffers(Communicator& c, Module& m) {
  if (c.size() == 1) return;
  for (auto& [name, t] : m.named_buffers()) {
    Tensor host = t.contiguous().to(Device::cpu()).clone();
    allreduce(c, host, Reduce::Mean);
    t.copy_from(host.to(t.device()));
  }
}

GradientAverager::GradientAverager(Communicator& c, std::vector<Tensor> params, int64_t bucket_bytes)
    : c_(c), params_(std::move(params)) {
  GLIMPSE_CHECK(bucket_bytes >= 4, "dist: bucket size must be at least 4 bytes, got ", bucket_bytes);
  Bucket b;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].requires_grad()) continue;  // frozen the same way on every rank
    b.params.push_back(i);
    b.numel += params_[i].numel() + 1;
    if (b.numel * 4 >= bucket_bytes) {
      buckets_.push_back(std::move(b));
      b = Bucket();
    }
  }
  if (!b.params.empty()) buckets_.push_back(std::move(b));
}

GradientAverager::GlobalBatch GradientAverager::average(double local_weight, double local_loss, int64_t local_images) {
  if (c_.size() == 1) return {local_weight, local_loss, local_images};
  const double t0 = now_s();
  // The global batch's weight, loss and size first (three floats), then the buckets; every bucket
  // carries, per parameter, a slot counting the ranks that have a gradient for it.
  Tensor head =
      Tensor::from_vector({3}, {static_cast<float>(local_weight), static_cast<float>(local_loss * local_weight),
                                static_cast<float>(local_images)});
  c_.allreduce_sum(head);
  const float sum_w = head.data()[0];
  GLIMPSE_CHECK(sum_w > 0, "dist: the global batch has no weight (", sum_w, "); every rank's slice was empty");
  const GlobalBatch global{sum_w, head.data()[1] / sum_w, static_cast<int64_t>(head.data()[2])};
  const float scale_in = static_cast<float>(local_weight);
  for (const Bucket& b : buckets_) {
    const Device dev = c_.backend() == "nccl" ? params_[b.params.front()].device() : Device::cpu();
    Tensor flat = Tensor::zeros({b.numel}, dev);
    int64_t off = 0;
    for (size_t i : b.params) {
      const Tensor& p = params_[i];
      const int64_t n = p.numel();
      const Tensor g = p.grad();
      if (g.defined()) {
        Tensor dst = flat.slice(off, off + n);
        dst.copy_from(g.contiguous().view({n}).to(dev));
        dst.scale_(scale_in);
        flat.slice(off + n, off + n + 1).fill_(1.f);
      }
      off += n + 1;
    }
    c_.allreduce_sum(flat);
    off = 0;
    const Tensor host_flags = dev.is_cpu() ? flat : flat.to(Device::cpu());
    for (size_t i : b.params) {
      Tensor& p = params_[i];
      const int64_t n = p.numel();
      if (host_flags.data()[off + n] > 0) {
        Tensor g = flat.slice(off, off + n).view(p.shape()).to(p.device()).clone();
        g.scale_(1.f / sum_w);
        p.impl()->grad = g.impl_ptr();
      }
      off += n + 1;
    }
  }
  seconds_ += now_s() - t0;
  return global;
}

namespace {

// The communicator as a batch-norm group (its collectives are the only thing the layer needs).
class CommunicatorGroup : public BatchNormGroup {
 public:
  explicit CommunicatorGroup(Communicator& c) : c_(c) {}
  void sum(Tensor& t) override { c_.allreduce_sum(t); }

 private:
  Communicator& c_;
};

}  // namespace

int64_t synchronize_batch_norm(Communicator& c, Module& m) {
  const auto group = std::make_shared<CommunicatorGroup>(c);
  int64_t n = 0;
  for (const auto& [name, mod] : m.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm2d*>(mod)) {
      bn->group = group;
      ++n;
    }
  return n;
}

}  // namespace glimpse::dist

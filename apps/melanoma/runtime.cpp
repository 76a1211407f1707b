#include "runtime.h"

#include <malloc.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/parallel.h"
#include "core/rng.h"

#ifdef GLIMPSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {

namespace {
int g_threads = 1;
ProgressBar::Mode g_progress = ProgressBar::Mode::Auto;
}  // namespace

void setup_runtime(int threads, uint64_t seed) {
  // Every step allocates and frees the same large activation buffers; keep them in the heap
  // instead of a fresh mmap (and page faults) per allocation.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  // core/parallel.h: every CPU kernel on glimpse's thread pool (Eigen's own threading off).
  set_num_threads(threads);
  g_threads = num_threads();
  manual_seed(seed);
}

int runtime_threads() { return g_threads; }
int loader_threads() { return g_threads <= 2 ? 1 : 2; }

ProgressBar::Mode progress_mode(const std::string& name) {
  if (name == "tty") return ProgressBar::Mode::Tty;
  if (name == "plain") return ProgressBar::Mode::Plain;
  if (name == "none") return ProgressBar::Mode::Silent;
  GLIMPSE_CHECK(name == "auto", "unknown progress mode '", name, "'; known: auto, tty, plain, none");
  return ProgressBar::Mode::Auto;
}
void set_progress(const std::string& name) { g_progress = progress_mode(name); }
ProgressBar::Mode progress(bool inner) {
  if (!inner) return g_progress;
  const bool tty =
      g_progress == ProgressBar::Mode::Tty || (g_progress == ProgressBar::Mode::Auto && ProgressBar::stderr_is_tty());
  return tty ? ProgressBar::Mode::Tty : ProgressBar::Mode::Silent;
}

std::optional<Device> parse_device(const std::string& spec) {
  if (spec == "cpu") return Device::cpu();
  if (spec == "cuda") return Device::cuda(0);
  if (spec.rfind("cuda:", 0) != 0 || spec.size() <= 5 || spec.size() > 8 ||
      spec.find_first_not_of("0123456789", 5) != std::string::npos)
    return std::nullopt;
  return Device::cuda(std::stoi(spec.substr(5)));
}

Device resolve_device(const std::string& spec) {
  const std::optional<Device> parsed = parse_device(spec);
  GLIMPSE_CHECK(parsed, "--device: '", spec, "' is not a device; use cpu, cuda or cuda:N");
  if (parsed->is_cpu()) return *parsed;
#ifdef GLIMPSE_WITH_CUDA
  GLIMPSE_CHECK(glimpse::cuda::init(), "--device ", spec,
                ": CUDA is unavailable: ", glimpse::cuda::unavailable_reason());
  const int count = glimpse::cuda::device_count();
  GLIMPSE_CHECK(parsed->index < count, "--device ", spec, ": this machine has ", count,
                " CUDA device(s), cuda:0..cuda:", count - 1);
  return *parsed;
#else
  GLIMPSE_FAIL("--device ", spec, ": CUDA is unavailable: this build has no CUDA backend (configured with ",
               "GLIMPSE_CUDA=OFF, or without nvcc and cuDNN)");
#endif
}

Device model_device(Module& model) {
  const std::vector<Tensor> params = model.parameters();
  return params.empty() ? Device::cpu() : params.front().device();
}

}  // namespace mel

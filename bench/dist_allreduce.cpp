// The gradient allreduce of data-parallel training alone (dist::GradientAverager), per model and
// bucket size: run under `mpirun -np N build/bin/dist_allreduce`. Every rank fills its gradients,
// the ranks meet at a barrier (so that waiting for a slower rank is not counted), then the averaging
// is timed; the median of 20 rounds is printed by rank 0 with the bytes moved. docs/distributed.md
// quotes it. Alone (no mpirun) it prints the parameter counts only.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "core/rng.h"
#include "layers/dist/sync.h"
#include "layers/models.h"

using namespace glimpse;

int main(int argc, char** argv) {
  dist::Session session(&argc, &argv);
  dist::Communicator& c = session.world();
  for (const char* arch : {"small-gap", "bn-gap", "resnet18-gap", "vgg16-gap"}) {
    Rng rng(1);
    std::shared_ptr<Model> m = make_model(arch, 3, 0, rng);
    std::vector<Tensor> params = m->parameters();
    int64_t n = 0;
    for (Tensor& p : params) {
      n += p.numel();
      p.impl()->grad = Tensor::full(p.shape(), 0.5f + static_cast<float>(c.rank())).impl_ptr();
    }
    if (c.rank() == 0)
      std::printf("%-13s %10lld parameters, %7.2f MB of float32 gradients\n", arch, static_cast<long long>(n),
                  4e-6 * static_cast<double>(n));
    if (c.size() == 1) continue;
    for (double mb : {0.25, 1.0, 4.0, 16.0}) {
      dist::GradientAverager avg(c, params, static_cast<int64_t>(mb * (1 << 20)));
      std::vector<double> ms;
      for (int round = 0; round < 20; ++round) {
        c.barrier();
        const auto t0 = std::chrono::steady_clock::now();
        avg.average(1.0, 0.0, 1);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      if (c.rank() == 0)
        std::printf("  bucket %5.2f MiB: %3lld bucket(s), median %8.2f ms, fastest %8.2f ms (%d ranks, %s)\n", mb,
                    static_cast<long long>(avg.buckets()), ms[ms.size() / 2], ms.front(), c.size(),
                    c.backend().c_str());
    }
  }
  return 0;
}

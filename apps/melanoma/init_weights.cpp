#include "init_weights.h"

#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "layers/interop/torch_import.h"

namespace mel {

using namespace glimpse;

std::string init_model(Model& model, const std::string& path) {
  const interop::TorchImport r = interop::import_weights(model, path, /*new_head=*/true);
  std::printf("train: initialised from %s: %zu tensors loaded, %zu left as initialised%s, %zu ignored\n", path.c_str(),
              r.loaded.size(), r.kept.size(), r.kept.empty() ? "" : " (the classifier or layers the file lacks)",
              r.ignored.size());
  return path;
}

int64_t freeze_layers(Model& model, const std::string& prefixes) {
  if (prefixes.empty()) return 0;
  int64_t frozen = 0;
  std::stringstream ss(prefixes);
  for (std::string prefix; std::getline(ss, prefix, ',');) {
    bool matched = false;
    for (auto& [name, p] : model.named_parameters())
      if (name.rfind(prefix + ".", 0) == 0) {
        p.set_requires_grad(false);  // no gradient, so the optimizers skip it (layers/optim.cpp)
        frozen += p.numel();
        matched = true;
      }
    if (!matched) {
      std::string top;
      for (const auto& [name, m] : model.children()) top += (top.empty() ? "" : ", ") + name;
      GLIMPSE_FAIL("--freeze: '", prefix, "' names no layer with parameters in ", model.info.name,
                   " (dotted names, e.g. ", top, ")");
    }
  }
  std::printf("train: frozen %s: %lld of %lld parameters\n", prefixes.c_str(), (long long)frozen,
              (long long)model.num_parameters());
  return frozen;
}

}  // namespace mel

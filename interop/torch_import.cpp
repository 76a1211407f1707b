#include "interop/torch_import.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/io/safetensors.h"
#include "core/shape.h"

namespace glimpse::interop {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// The glimpse head: the Linear after the GAP.
std::string head_prefix(const std::string& arch) { return arch == "resnet18-gap" ? "fc." : "classifier."; }

}  // namespace

std::vector<std::string> torchvision_architectures() { return {"resnet18-gap", "vgg16-gap"}; }

TorchImport import_torchvision(Model& model, const std::string& path, bool new_head) {
  const std::string arch = model.info.name;
  const auto archs = torchvision_architectures();
  if (std::find(archs.begin(), archs.end(), arch) == archs.end())
    GLIMPSE_FAIL("torchvision weights map onto resnet18-gap and vgg16-gap only, not '", arch, "'");
  const SafetensorsFile file = load_safetensors(path);
  const std::string head = head_prefix(arch);

  std::map<std::string, Tensor> state;
  for (auto& [name, t] : model.state()) state[name] = t;

  TorchImport r;
  std::map<std::string, const Tensor*> incoming;  // glimpse name -> file tensor
  for (const auto& [key, t] : file.tensors) {
    if (ends_with(key, ".num_batches_tracked") || (arch == "vgg16-gap" && starts_with(key, "classifier."))) {
      r.ignored.push_back(key);
      continue;
    }
    const auto it = state.find(key);
    GLIMPSE_CHECK(it != state.end(), path, ": unexpected key '", key, "' (shape ", shape_str(t.shape()), "): ", arch,
                  " has no such tensor (is this a ", arch == "vgg16-gap" ? "VGG-16" : "ResNet-18",
                  " state_dict in torchvision's names?)");
    if (it->second.shape() != t.shape()) {
      GLIMPSE_CHECK(new_head && starts_with(key, head), path, ": key '", key, "': expected shape ",
                    shape_str(it->second.shape()), ", found ", shape_str(t.shape()),
                    starts_with(key, head) ? " (a different class count: start a new classifier, train --init with "
                                             "another --classes)" : "");
      r.ignored.push_back(key);
      continue;
    }
    incoming[key] = &t;
  }
  for (const auto& [name, t] : state) {
    if (incoming.count(name)) continue;
    // VGG's GAP head and extra conv have no torchvision counterpart; a new head is asked for.
    const bool may_stay = (arch == "vgg16-gap" && (starts_with(name, head) || starts_with(name, "features.30."))) ||
                          (new_head && starts_with(name, head));
    GLIMPSE_CHECK(may_stay, path, ": missing key '", name, "' (expected shape ", shape_str(t.shape()), ") for ", arch);
    r.kept.push_back(name);
  }
  // Everything checked: copy.
  for (auto& [name, src] : incoming) {
    state[name].copy_from(src->to(state[name].device()));
    r.loaded.push_back(name);
  }
  return r;
}

}  // namespace glimpse::interop

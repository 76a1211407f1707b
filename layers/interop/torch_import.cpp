#include "layers/interop/torch_import.h"

#include <algorithm>
#include <functional>
#include <map>

#include "core/error.h"
#include "core/io/safetensors.h"
#include "core/shape.h"
#include "layers/checkpoint.h"

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

namespace {

// Checks every tensor of `file` against `model` (ignore: file names to drop; may_stay: model names
// the file may lack), then copies. Nothing is copied unless everything passes.
TorchImport match_and_copy(Model& model, const SafetensorsFile& file, const std::string& path, bool new_head,
                           const std::function<bool(const std::string&)>& ignore,
                           const std::function<bool(const std::string&)>& may_stay) {
  const std::string arch = model.info.name, head = head_prefix(arch);
  std::map<std::string, Tensor> state;
  for (auto& [name, t] : model.state()) state[name] = t;

  TorchImport r;
  std::map<std::string, const Tensor*> incoming;  // glimpse name -> file tensor
  for (const auto& [key, t] : file.tensors) {
    if (ignore(key)) {
      r.ignored.push_back(key);
      continue;
    }
    const auto it = state.find(key);
    GLIMPSE_CHECK(it != state.end(), path, ": unexpected key '", key, "' (shape ", shape_str(t.shape()), "): ", arch,
                  " has no such tensor");
    if (it->second.shape() != t.shape()) {
      GLIMPSE_CHECK(new_head && starts_with(key, head), path, ": key '", key, "': expected shape ",
                    shape_str(it->second.shape()), ", found ", shape_str(t.shape()),
                    starts_with(key, head) ? " (a different class count: a new classifier needs train --init)" : "");
      r.ignored.push_back(key);
      continue;
    }
    incoming[key] = &t;
  }
  for (const auto& [name, t] : state) {
    if (incoming.count(name)) continue;
    GLIMPSE_CHECK(may_stay(name) || (new_head && starts_with(name, head)), path, ": missing key '", name,
                  "' (expected shape ", shape_str(t.shape()), ") for ", arch);
    r.kept.push_back(name);
  }
  for (auto& [name, src] : incoming) {
    state[name].copy_from(src->to(state[name].device()));
    r.loaded.push_back(name);
  }
  return r;
}

TorchImport torchvision_into(Model& model, const SafetensorsFile& file, const std::string& path, bool new_head) {
  const std::string arch = model.info.name;
  const auto archs = torchvision_architectures();
  if (std::find(archs.begin(), archs.end(), arch) == archs.end())
    GLIMPSE_FAIL(path, ": torchvision weights map onto resnet18-gap and vgg16-gap only, not '", arch, "'");
  const bool vgg = arch == "vgg16-gap";
  return match_and_copy(
      model, file, path, new_head,
      [&](const std::string& key) {
        return ends_with(key, ".num_batches_tracked") || (vgg && starts_with(key, "classifier."));
      },
      // VGG's GAP head and extra conv have no torchvision counterpart.
      [&](const std::string& name) {
        return vgg && (starts_with(name, "classifier.") || starts_with(name, "features.30."));
      });
}

}  // namespace

TorchImport import_torchvision(Model& model, const std::string& path, bool new_head) {
  return torchvision_into(model, load_safetensors(path), path, new_head);
}

TorchImport import_weights(Model& model, const std::string& path, bool new_head) {
  const SafetensorsFile file = load_safetensors(path);
  const auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != "glimpse")
    return torchvision_into(model, file, path, new_head);
  // A glimpse checkpoint: the same names; its optimizer state belongs to its own run.
  const auto arch = file.metadata.find("arch");
  GLIMPSE_CHECK(arch == file.metadata.end() || arch->second == model.info.name, path, " holds a ", arch->second,
                " checkpoint, not ", model.info.name);
  return match_and_copy(
      model, file, path, new_head, [](const std::string& key) { return starts_with(key, kOptimizerPrefix); },
      [](const std::string&) { return false; });
}

}  // namespace glimpse::interop

#include "layers/checkpoint.h"

#include <set>
#include <sstream>

#include "core/error.h"
#include "core/io/safetensors.h"

namespace glimpse {
namespace {

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

void save_checkpoint(Module& module, const std::string& path, const std::map<std::string, std::string>& metadata,
                     const Optimizer* optimizer) {
  std::map<std::string, std::string> meta = metadata;
  for (const char* key : {"format", "version", "module", kSafetensorsChecksumKey}) {
    GLIMPSE_CHECK(!meta.count(key), "save_checkpoint('", path, "'): the metadata key '", key,
                  "' is reserved for glimpse; use another name");
  }
  meta.emplace("format", "glimpse");
  meta.emplace("version", kCheckpointVersion);
  meta.emplace("module", module.type_name());
  auto tensors = module.state();
  if (optimizer)
    for (auto& [name, t] : optimizer->state_dict()) tensors.emplace_back(kOptimizerPrefix + name, t);
  save_safetensors(path, tensors, meta);
}

CheckpointLoad load_checkpoint(Module& module, const std::string& path, bool strict, Optimizer* optimizer) {
  SafetensorsFile file = load_safetensors(path);
  const std::string where = "load_checkpoint('" + path + "'): ";

  auto fmt = file.metadata.find("format");
  if (fmt != file.metadata.end() && fmt->second == "glimpse") {
    auto ver = file.metadata.find("version");
    std::string v = ver == file.metadata.end() ? "(none)" : ver->second;
    GLIMPSE_CHECK(v == kCheckpointVersion, where, "checkpoint format version ", v,
                  ", but this build of glimpse reads version ", kCheckpointVersion,
                  " (written by a different glimpse? re-save it with a matching version)");
  }

  CheckpointLoad result;
  result.metadata = file.metadata;
  result.checksum_verified = file.checksum_verified;
  auto state = module.state();
  std::set<std::string> module_names;
  for (const auto& [name, t] : state) module_names.insert(name);
  for (const auto& [name, t] : state) {
    if (!file.contains(name)) result.missing.push_back(name);
  }
  const std::string prefix = kOptimizerPrefix;
  std::map<std::string, Tensor> optimizer_state;
  for (const auto& [name, t] : file.tensors) {
    if (name.rfind(prefix, 0) == 0)
      optimizer_state.emplace(name.substr(prefix.size()), t);
    else if (!module_names.count(name))
      result.unexpected.push_back(name);
  }
  result.has_optimizer_state = !optimizer_state.empty();
  if (strict && (!result.missing.empty() || !result.unexpected.empty())) {
    std::ostringstream os;
    os << where << "the names in the file do not match the module (" << module.type_name() << ")";
    if (!result.missing.empty()) os << "; missing from the file: " << join(result.missing);
    if (!result.unexpected.empty()) os << "; unexpected in the file: " << join(result.unexpected);
    os << " (load_checkpoint(..., strict=false) loads the names that match)";
    GLIMPSE_FAIL(os.str());
  }

  // Every check before any copy, and every source moved to its destination's device first, so that
  // a failure (a mismatch, or running out of device memory) leaves the module as it was.
  std::vector<std::string> faults;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  for (auto& [name, dst] : state) {
    if (!file.contains(name)) continue;
    const Tensor& src = file.at(name);
    const std::string& dtype = file.dtypes.at(name);
    if (src.shape() != dst.shape()) {
      faults.push_back("tensor '" + name + "' has shape " + shape_str(src.shape()) + " in the file but " +
                       shape_str(dst.shape()) + " in the module");
    } else if (strict && dtype != "F32") {
      faults.push_back("tensor '" + name + "' is " + dtype + " in the file, not F32 (strict=false converts it)");
    } else {
      copies.emplace_back(dst, src);
    }
  }
  if (!faults.empty()) {
    std::ostringstream os;
    os << where << faults.size() << " tensor(s) do not fit the module (" << module.type_name()
       << "), nothing was loaded: ";
    for (size_t i = 0; i < faults.size(); ++i) os << (i ? "; " : "") << faults[i];
    GLIMPSE_FAIL(os.str());
  }
  for (auto& [dst, src] : copies) src = src.to(dst.device());
  if (optimizer && result.has_optimizer_state) {
    try {
      optimizer->load_state_dict(optimizer_state);  // checks everything before changing anything
    } catch (const std::exception& e) {
      GLIMPSE_FAIL(where, "the optimizer state does not fit, nothing was loaded: ", e.what());
    }
    result.optimizer_loaded = true;
  }
  for (auto& [dst, src] : copies) dst.copy_from(src);
  for (const auto& [name, t] : state) {
    if (file.contains(name)) result.loaded.push_back(name);
  }
  return result;
}

}  // namespace glimpse

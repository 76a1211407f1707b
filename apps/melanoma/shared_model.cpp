#include "shared_model.h"

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "layers/dist/sync.h"

namespace mel {

void agreed(glimpse::dist::Communicator& c, const std::string& what, const std::function<void()>& work) {
  if (c.size() == 1) return work();
  glimpse::dist::agree(c, what, work);
}

void on_root(glimpse::dist::Communicator& c, const std::string& what, const std::function<void()>& work) {
  agreed(c, what, [&] {
    if (c.rank() == 0) work();
  });
}

LoadedModel share_model(glimpse::dist::Communicator& c, const LoadedModel& on_root) {
  if (c.size() == 1) return on_root;
  std::string meta = c.rank() == 0 ? nlohmann::json(meta_to_map(on_root.meta)).dump() : std::string();
  glimpse::dist::broadcast_string(c, meta, 0);
  LoadedModel lm;
  if (c.rank() == 0) {
    lm = on_root;
  } else {
    lm.meta = meta_from_map(nlohmann::json::parse(meta).get<std::map<std::string, std::string>>(), "rank 0's model");
    glimpse::Rng rng(lm.meta.seed);
    lm.model = glimpse::make_model(lm.meta.arch, lm.meta.classes, lm.meta.size, rng);
  }
  glimpse::dist::broadcast_module(c, *lm.model, 0);
  lm.model->eval();
  return lm;
}

}  // namespace mel

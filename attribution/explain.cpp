// explain(name, ...): every attribution method by name, for the apps and the docs' tables.
#include <sstream>
#include <utility>

#include "attribution/attribution.h"
#include "core/error.h"

namespace glimpse::attr {
namespace {

using Method = AttributionMap (*)(Module&, const Tensor&, const Options&);

const std::vector<std::pair<std::string, Method>>& registry() {
  static const std::vector<std::pair<std::string, Method>> r = {
      {"cam", &cam},
      {"gradcam", &gradcam},
      {"gradcam++", &gradcam_plus_plus},
      {"layercam", &layercam},
      {"hirescam", &hirescam},
      {"scorecam", &scorecam},
      {"deconvnet", &deconvnet},
      {"guided-backprop", &guided_backprop},
      {"guided-gradcam", &guided_gradcam},
      {"saliency", &saliency},
      {"smoothgrad", &smoothgrad},
      {"integrated-gradients", &integrated_gradients},
      {"gradient-x-input", &gradient_x_input},
      {"occlusion", &occlusion},
      {"sliding-window", &sliding_window},
      {"lrp-epsilon", &lrp_epsilon},
      {"lrp-alphabeta", &lrp_alphabeta},
      {"lrp-composite", &lrp_composite},
      {"sam", &sam},
  };
  return r;
}

}  // namespace

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [name, fn] : registry()) v.push_back(name);
    return v;
  }();
  return names;
}

AttributionMap explain(const std::string& method, Module& model, const Tensor& x, const Options& opt) {
  for (const auto& [name, fn] : registry())
    if (name == method) return fn(model, x, opt);
  std::ostringstream known;
  for (const auto& name : method_names()) known << (known.tellp() > 0 ? ", " : "") << name;
  GLIMPSE_FAIL("explain: unknown attribution method '", method, "'; known methods: ", known.str());
}

}  // namespace glimpse::attr

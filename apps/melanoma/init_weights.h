// train --init FILE and --freeze PREFIXES: start from imported or glimpse weights (a new
// classifier when the class count differs) and keep the first layers fixed.
#pragma once
#include <string>

#include "layers/models.h"

namespace mel {

// Loads FILE into a freshly built model (interop::import_weights with a new head allowed), prints
// what was loaded, kept and ignored, and returns the value recorded in the checkpoint's metadata.
std::string init_model(glimpse::Model& model, const std::string& path);
// Stops training of every parameter under the comma-separated dotted prefixes ("conv1,bn1,layer1":
// a prefix matches itself and what lies below it). A prefix that matches nothing is an error listing
// the model's top-level modules. Returns the number of frozen scalars.
int64_t freeze_layers(glimpse::Model& model, const std::string& prefixes);

}  // namespace mel

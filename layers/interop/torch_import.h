// Weights in: a glimpse checkpoint, or from PyTorch a torchvision state_dict (converted to safetensors by
// tools/torch_to_safetensors.py) loaded into glimpse's resnet18-gap or vgg16-gap.
//
// glimpse's models use torchvision's layout, so most names are the same; the mapping says what
// differs:
//   every architecture: "*.num_batches_tracked" (a BatchNorm step counter) is ignored;
//   vgg16-gap:    torchvision's "classifier.{0,3,6}.*" (the 25088-4096-4096-1000 fully connected
//                 head) is dropped -- glimpse's head is GAP + one Linear; glimpse's extra conv
//                 "features.30" and its "classifier" stay as initialised;
//   resnet18-gap: "fc.*" loads when its class count matches, else (with new_head) stays as
//                 initialised.
// Anything else must match exactly: a name the model lacks, a name it has that the file lacks,
// or a shape that differs is refused before anything is copied, naming the key and both shapes.
#pragma once
#include <string>
#include <vector>

#include "layers/models.h"

namespace glimpse::interop {

struct TorchImport {
  std::vector<std::string> loaded;   // glimpse names filled from the file
  std::vector<std::string> ignored;  // file names the mapping drops (num_batches_tracked, VGG's FC head)
  std::vector<std::string> kept;     // glimpse names left as initialised (new head, VGG's extra conv)
};

// The architectures import_torchvision maps (ModelInfo::name).
std::vector<std::string> torchvision_architectures();

// Loads `path` (safetensors with torchvision names) into `model`. new_head: the classifier may
// differ in class count (it then keeps its initialisation). A refused file changes nothing.
TorchImport import_torchvision(Model& model, const std::string& path, bool new_head = false);

// `train --init`: a glimpse checkpoint of the same architecture (metadata format = glimpse; its
// optimizer state ignored; same names, same shapes) or else a torchvision file as above. new_head:
// the classifier may have another class count and then keeps its initialisation.
TorchImport import_weights(Model& model, const std::string& path, bool new_head = false);

}  // namespace glimpse::interop

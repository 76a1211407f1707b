// The GAP networks the Fashion-MNIST example trains: 1-channel 28x28 input, conv features, global
// average pooling, one linear layer -- so CAM applies to them as to the melanoma models.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "layers/models.h"

namespace fmnist {

// "small-gap": W1's layout (3 conv blocks of 32/64/128 channels, 2 max-pools) with a BatchNorm
//              after each conv, for one input channel. CAM layer features.10.
// "wide-gap" : two 3x3 convs per block (32,32 | 64,64 | 128,128), BatchNorm, 2 max-pools.
//              CAM layer features.19.
std::shared_ptr<glimpse::Model> make_net(const std::string& name, glimpse::Rng& rng);
const std::vector<std::string>& net_names();

}  // namespace fmnist

#include "core/rng.h"

namespace glimpse {

Rng& global_rng() {
  static Rng rng(0x5eed);
  return rng;
}

void manual_seed(uint64_t seed) { global_rng().seed(seed); }

}  // namespace glimpse

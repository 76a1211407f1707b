// `melanoma synth`: the synthetic data set in the ISIC layout (data/data.h's generator).
#include <cstdio>

#include "commands.h"
#include "core/error.h"

namespace mel {

void run_synth(const SynthOptions& o) {
  GLIMPSE_CHECK(!o.out.empty(), "synth: no output directory given (--out DIR)");
  GLIMPSE_CHECK(o.count >= 3, "synth: --count must be at least 3 (one image per class), got ", o.count);
  GLIMPSE_CHECK(o.size >= 16, "synth: --size must be at least 16 pixels, got ", o.size);
  ensure_dir(o.out);
  const double t0 = now_s();
  glimpse::data::SynthOptions s;
  s.count = o.count;
  s.size = o.size;
  s.seed = o.seed;
  s.val_fraction = o.val_fraction;
  s.distractors = o.distractors;
  glimpse::data::write_synthetic(o.out, s);
  std::printf(
      "synth: %lld images of %lldx%lld (seed %llu, %.0f%% val) written to %s in %.1fs "
      "(images/, masks/, labels.csv)\n",
      static_cast<long long>(o.count), static_cast<long long>(o.size), static_cast<long long>(o.size),
      static_cast<unsigned long long>(o.seed), 100 * o.val_fraction, o.out.c_str(), seconds_since(t0));
  std::fflush(stdout);
}

}  // namespace mel

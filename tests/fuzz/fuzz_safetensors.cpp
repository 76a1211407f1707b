// libFuzzer harness: the safetensors reader (core/io/safetensors.h) on any bytes.
// Whatever the header claims (lengths, shapes, offsets, dtypes, numbers outside every range), the
// reader must refuse with a glimpse::Error or return tensors whose sizes match the bytes it read.
#include <cstdint>
#include <cstdlib>

#include "core/io/safetensors.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  glimpse::fuzz::InputFile file(data, size);
  glimpse::fuzz::refuse_or_succeed([&] {
    const glimpse::SafetensorsFile f = glimpse::load_safetensors(file.path());
    // What came back must be self-consistent: every tensor readable to its last element.
    double sum = 0;
    for (const auto& [name, t] : f.tensors) {
      const float* p = t.data();
      for (int64_t i = 0; i < t.numel(); ++i) sum += p[i] != p[i] ? 0.0 : 1.0;
      if (!f.dtypes.count(name)) std::abort();
    }
    if (sum < 0) std::abort();
  });
  return 0;
}

// libFuzzer harness: every JSON file the melanoma app reads -- the training curve that
// `train --resume` continues, and the eval / localize / two_stage / roar results that `report`
// renders -- parsed by the app's own code (mel::parse_app_json), each input as every kind.
// A missing key, a wrong type, a number outside double's range, deep nesting: each must end in a
// glimpse::Error naming the file and the key, never in undefined behaviour or a bare nlohmann
// exception.
#include <cstdint>

#include "commands.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  glimpse::fuzz::InputFile file(data, size);
  for (const char* kind : {"curve", "eval", "localize", "two_stage", "roar"})
    glimpse::fuzz::refuse_or_succeed([&] { (void)mel::parse_app_json(kind, file.path()); });
  return 0;
}

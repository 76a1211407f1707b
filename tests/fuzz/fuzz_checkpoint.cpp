// libFuzzer harness: loading a melanoma checkpoint, as `melanoma eval|explain --model FILE` and
// `melanoma train --resume FILE` do: safetensors -> metadata (bounds, and checked against the
// weights' own shapes) -> the model built from the metadata -> strict load of the weights -> the
// optimizer's state for a resume.
//
// Nearly every mutation of a real checkpoint breaks its checksum, and the fuzzer would never get
// past that first check. So the checksum is verified on half of the inputs and skipped on the other
// half (the lowest bit of the input's length decides), so that the metadata validation, the model
// construction and the strict load behind it are fuzzed too.
#include <cstdint>
#include <cstdlib>

#include "common.h"
#include "core/io/safetensors.h"
#include "fuzz_support.h"
#include "layers/checkpoint.h"
#include "layers/optim.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mel::setup_runtime(1, 0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  glimpse::fuzz::InputFile file(data, size);
  glimpse::detail::set_safetensors_skip_checksum(size & 1);
  glimpse::fuzz::refuse_or_succeed([&] {
    mel::LoadedModel lm = mel::load_model(file.path());
    // The resume path: the optimizer's moments and step counts come from the same file.
    glimpse::AdamOptions o;
    glimpse::Adam adam(lm.model->parameters(), o);
    glimpse::load_checkpoint(*lm.model, file.path(), /*strict=*/true, &adam);
  });
  glimpse::detail::set_safetensors_skip_checksum(false);
  return 0;
}

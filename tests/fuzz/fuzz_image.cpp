// libFuzzer harness: a photo or a mask from any bytes, through everything the app does to it
// before the network sees it:
//   - data::load_for_model: decode (format by magic bytes, pixel budget from the header), the
//     bounded preprocessing (hair removal and colour constancy), the resize to the model's size,
//     normalisation -- what `melanoma explain --image` and the upload page do;
//   - the training loader's path: decode, then the random resized crop / flips / rotation / jitter
//     / stickers / vignette, resampled to the model's size, with the mask transformed alongside;
//   - io::load_mask: the same bytes read as an expert mask.
// The pixel budget is lowered to 1 megapixel here so that the fuzzer spends its time on the code
// and not on decoding the largest images the default budget (40) lets through; the budget check
// itself is the same code either way, and 1 MP is still above the working size (512 px a side)
// that the preprocessing shrinks to, so the shrinking path is fuzzed too.
#include <cstdint>
#include <cstdlib>

#include "core/io/image.h"
#include "core/rng.h"
#include "data/data.h"
#include "fuzz_support.h"

using namespace glimpse;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  io::set_max_image_pixels(1'000'000);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::InputFile file(data, size);
  data::Preprocess pre;
  pre.hair_removal = true;
  pre.color_constancy = true;
  fuzz::refuse_or_succeed([&] { (void)data::load_for_model(file.path(), 24, pre); });

  fuzz::refuse_or_succeed([&] {
    const io::Image image = io::decode_image(data, size, "fuzz input");
    io::Mask mask(image.width, image.height);
    mask.at(image.width / 2, image.height / 2) = 1;
    data::AugmentOptions opt;
    opt.stickers = 0.5f;
    opt.vignette = 0.5f;
    Rng rng(size);
    (void)data::augment_resized(image, &mask, opt, rng, 20, 20);
  });

  fuzz::refuse_or_succeed([&] {
    const io::Mask m = io::load_mask(file.path());
    (void)io::resize_mask(m, 16, 16);
  });
  return 0;
}

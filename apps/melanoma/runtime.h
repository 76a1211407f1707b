// The melanoma app's process settings: threads, seed, progress bars, and the --device flag.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "core/progress.h"
#include "core/tensor.h"
#include "layers/module.h"

namespace mel {

using glimpse::Tensor;

// Threads for the CPU kernels (glimpse::set_num_threads; 0 = all cores), the global seed,
// and malloc settings that keep the large, short-lived activation buffers in the heap.
void setup_runtime(int threads, uint64_t seed);
int runtime_threads();
// Decoding workers of a data loader beside `threads` compute threads.
int loader_threads();

// "auto", "tty", "plain", "none".
glimpse::ProgressBar::Mode progress_mode(const std::string& name);
void set_progress(const std::string& name);  // the mode of every bar of this process
// The mode of a bar; an `inner` bar (evaluation inside training, say) is drawn on a terminal only,
// so that a log keeps one line per epoch.
glimpse::ProgressBar::Mode progress(bool inner = false);

// ---- devices ----
// "cpu", "cuda" (= cuda:0) or "cuda:N" -> that device, not yet checked to be usable; nullopt else.
std::optional<glimpse::Device> parse_device(const std::string& spec);
// --device: "cpu", "cuda" (= cuda:0) or "cuda:N" -> that device, ready for tensors (cuda::init()).
// A device that cannot be used is an error at once, naming why: cuda::unavailable_reason() (no
// driver, no GPU), an index past the device count, or a build without the CUDA backend.
glimpse::Device resolve_device(const std::string& spec);
// Where a model's parameters live (the CPU for a model without parameters).
glimpse::Device model_device(glimpse::Module& model);

}  // namespace mel

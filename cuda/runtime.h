// CUDA runtime queries that are safe to call on a machine without a GPU or driver.
#pragma once

namespace glimpse::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no GPU (never throws).
int device_count();

}  // namespace glimpse::cuda

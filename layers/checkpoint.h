// Checkpoints: a Module's state() (parameters and buffers, by dotted name) in a safetensors file
// (core/io/safetensors.h), with metadata {"format": "glimpse", "version": "1", "module": <type>}
// plus whatever the caller adds (epoch, accuracy, ...).
//
// Saving is atomic: a crash or a full disk mid-save leaves the previous checkpoint intact. Every
// checkpoint carries the checksum of safetensors.h (metadata, layout and data); loading verifies it
// and refuses a mismatch, and loads a file without one (PyTorch, older glimpse) unverified.
// Loading checks everything before touching the module: names (missing and unexpected ones are
// listed), shapes (the error names the tensor and both shapes) and dtypes; only when all checks pass
// are the values copied, in place, into the module's tensors (which keep their device). A failed
// load leaves the module untouched.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "layers/module.h"
#include "layers/optim.h"

namespace glimpse {

// The format version this build writes and reads. A glimpse checkpoint with another version is
// refused, naming both.
inline constexpr const char* kCheckpointVersion = "1";

// Writes module.state() and `metadata` to `path`. The keys "format", "version" and "module" are
// glimpse's own and may not be given. With an optimizer, its state_dict() goes into the same file
// (names prefixed "optimizer."), so a resumed run continues with the same moments and counts.
void save_checkpoint(Module& module, const std::string& path, const std::map<std::string, std::string>& metadata = {},
                     const Optimizer* optimizer = nullptr);

// Prefix of the optimizer's entries in a checkpoint; they are never module state.
inline constexpr const char* kOptimizerPrefix = "optimizer.";

struct CheckpointLoad {
  std::vector<std::string> loaded;      // names copied into the module
  std::vector<std::string> missing;     // in the module, not in the file (left unchanged)
  std::vector<std::string> unexpected;  // in the file, not in the module (ignored)
  std::map<std::string, std::string> metadata;
  bool checksum_verified = false;    // the file's glimpse.checksum matched (false: it has none)
  bool has_optimizer_state = false;  // the file holds "optimizer." entries
  bool optimizer_loaded = false;     // ...and they were loaded into the optimizer given
};

// Loads `path` into `module`.
//   strict = true:  the file must hold exactly the module's state: every name, no other, all F32.
//   strict = false: names missing from the file are left as they are and extra names are ignored
//                   (both reported in the result), and F64/F16/BF16 tensors are accepted (converted
//                   to float32) -- for importing weights from elsewhere.
// Shapes must match in both modes. "optimizer." entries are set aside (neither missing nor
// unexpected); with an optimizer they are loaded into it (Optimizer::load_state_dict), checked
// before anything is copied, so a refused optimizer state leaves module and optimizer unchanged.
CheckpointLoad load_checkpoint(Module& module, const std::string& path, bool strict = true,
                               Optimizer* optimizer = nullptr);

}  // namespace glimpse

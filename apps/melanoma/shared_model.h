// Work that one rank does for the job under mpirun, and its result handed to every rank: a model
// trained by rank 0 alone (so that its weights are one process's, bit for bit) copied to the
// others, and errors agreed on so that a failure on any rank stops every rank naming it.
#pragma once
#include <functional>
#include <string>

#include "layers/dist/comm.h"
#include "model_file.h"

namespace mel {

// Runs `work` on every rank; under mpirun, an error on any rank then stops every rank with
// "<what>: rank R of N: <message>" (dist::agree). In one process `work` runs as it is, its errors
// unchanged.
void agreed(glimpse::dist::Communicator& c, const std::string& what, const std::function<void()>& work);
// Runs `work` on rank 0 alone; the others wait for it, and stop with its error if it fails.
void on_root(glimpse::dist::Communicator& c, const std::string& what, const std::function<void()>& work);
// Rank 0's model on every rank: its metadata broadcast, the same network built from it, then its
// parameters and buffers broadcast (dist::broadcast_module). `on_root` is read on rank 0 only.
LoadedModel share_model(glimpse::dist::Communicator& c, const LoadedModel& on_root);

}  // namespace mel

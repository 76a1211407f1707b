// The NCCL backend's factory (built with GLIMPSE_WITH_NCCL only); MPI must be initialized.
#pragma once
#include <memory>

#include "layers/dist/comm.h"

namespace glimpse::dist {
std::unique_ptr<Communicator> make_nccl_comm();
}

// dist::Session: MPI's lifetime (RAII) and the choice of the world communicator.
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "layers/dist/comm.h"
#if GLIMPSE_WITH_MPI
#include "layers/dist/mpi_comm.h"
#endif
#if GLIMPSE_WITH_NCCL
#include "layers/dist/nccl_comm.h"
#endif

namespace glimpse::dist {

bool built_with_mpi() { return GLIMPSE_WITH_MPI != 0; }
bool built_with_nccl() { return GLIMPSE_WITH_NCCL != 0; }

#if GLIMPSE_WITH_MPI
// MPI_Init_thread at construction, MPI_Finalize at destruction (unless something finalized it).
// Only the main thread calls MPI (FUNNELED): the loader's workers and the thread pool never do.
// Errors return codes instead of aborting, so each call's check can say what failed and where.
struct Session::Runtime {
  Runtime(int* argc, char*** argv) {
    int provided = 0;
    GLIMPSE_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided),
                      "is the MPI launcher the one of the library glimpse was built with?");
    GLIMPSE_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI setup");
  }
  ~Runtime() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
};
#else
struct Session::Runtime {};
#endif

Session::Session([[maybe_unused]] int* argc, [[maybe_unused]] char*** argv) {
  world_ = &local();
  if (!launched_by_mpi()) return;
#if GLIMPSE_WITH_MPI
  runtime_ = std::make_unique<Runtime>(argc, argv);
#if GLIMPSE_WITH_NCCL
  owned_ = make_nccl_comm();
#else
  owned_ = std::make_unique<MpiComm>();
#endif
  world_ = owned_.get();
#else
  // Every process would run as rank 0 of 1 and write the same files: refuse, saying why.
  const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
  GLIMPSE_CHECK(n == nullptr || std::atoi(n) <= 1,
                "this glimpse was built without MPI (GLIMPSE_MPI=OFF, or libopenmpi-dev was missing), yet an MPI "
                "launcher started ",
                n, " processes; rebuild with libopenmpi-dev installed, or run one process without mpirun");
#endif
}

Session::~Session() {
  owned_.reset();  // NCCL communicators before MPI_Finalize
  runtime_.reset();
}

}  // namespace glimpse::dist

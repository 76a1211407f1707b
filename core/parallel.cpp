#include "core/parallel.h"

#include <Eigen/Core>
#include <omp.h>

namespace glimpse {

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  // glimpse threads its GEMMs itself (core/ops/gemm.cpp, conv2d.cpp): Eigen's parallel GEMM
  // busy-waits between its threads, which collapses when the machine is oversubscribed.
  Eigen::setNbThreads(1);
  // One level of parallelism only: a kernel inside an OpenMP loop runs serially.
  omp_set_max_active_levels(1);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace glimpse

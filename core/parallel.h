// Thread-count control for the CPU kernels.
//
// glimpse has two possible sources of threads: its own OpenMP loops (convolution work items, GEMM
// panels, pooling, element-wise ops) and Eigen's GEMM, which in an -fopenmp build can parallelize
// with OpenMP too. glimpse's kernels call Eigen from inside their own parallel regions (where Eigen
// runs serially) or split the GEMM themselves, so set_num_threads(n) gives OpenMP n threads and
// Eigen 1: a program asking for n threads gets at most n busy threads, never n x n, and no
// busy-waiting between Eigen's threads.
#pragma once

namespace glimpse {

// n >= 1 threads for glimpse's OpenMP loops (Eigen's own threading off); n <= 0 means "the number of processors".
void set_num_threads(int n);
// The current setting (omp_get_max_threads()).
int num_threads();

}  // namespace glimpse

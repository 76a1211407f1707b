#!/usr/bin/python3
"""sgemm GFLOP/s of the system BLAS (numpy's; OpenBLAS on Debian when installed) and of torch.mm,
at 256^3 and 1024^3 on N threads (default 2): the reference for glimpse's GEMM target.
Usage: OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/gemm_openblas.py [threads]"""
import os
import sys
import time

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
os.environ.setdefault('OPENBLAS_NUM_THREADS', str(threads))
os.environ.setdefault('OMP_NUM_THREADS', str(threads))
import numpy as np  # noqa: E402


def rate(fn, n, reps):
    fn()
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best.append((time.perf_counter() - t0) / reps)
    best.sort()
    return 2 * n ** 3 / best[len(best) // 2] * 1e-9


for n, reps in ((256, 50), (1024, 5)):
    a = np.random.rand(n, n).astype(np.float32) * 2 - 1
    b = np.random.rand(n, n).astype(np.float32) * 2 - 1
    print(f'numpy sgemm {n}^3: {rate(lambda: a @ b, n, reps):.1f} GFLOP/s (median of 5)')
try:
    import torch
    torch.set_num_threads(threads)
    for n, reps in ((256, 50), (1024, 5)):
        a = torch.rand(n, n) * 2 - 1
        b = torch.rand(n, n) * 2 - 1
        print(f'torch.mm    {n}^3: {rate(lambda: torch.mm(a, b), n, reps):.1f} GFLOP/s (median of 5)')
except ImportError:
    pass

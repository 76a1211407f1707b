// Every differentiable operation of glimpse, in one include. Each op lives in one place,
// core/ops/<op>.{h,cpp,cu}: the header with the math and the kernel contract, the CPU kernels with
// the differentiable op beside them (forward, and the closure that records its backward on the
// tape, core/tape.h), and the CUDA twin with its registration. autograd/engine.h runs the tape.
//
// Conventions: images are NCHW; shape errors name the op and both shapes; no op works in place
// (an in-place op under a hook is how other frameworks lose gradients).
#pragma once
#include "core/ops/activation.h"   // relu, leaky_relu, dropout
#include "core/ops/batch_norm.h"   // batch_norm
#include "core/ops/conv2d.h"       // conv2d, conv2d_relu
#include "core/ops/elementwise.h"  // add, sub, mul, div, exp, log, ..., sigmoid, tanh, sum_to
#include "core/ops/gemm.h"         // matmul, linear
#include "core/ops/loss.h"         // cross_entropy, bce_with_logits
#include "core/ops/pool2d.h"       // max_pool2d, relu_max_pool2x2, avg_pool2d, global_avg_pool
#include "core/ops/reduce.h"       // sum, mean, max, argmax_rows
#include "core/ops/shape.h"        // reshape, flatten, concat, pad2d, narrow0
#include "core/ops/softmax.h"      // softmax, log_softmax
#include "core/ops/upsample.h"     // upsample_bilinear

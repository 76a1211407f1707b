// Winograd F(2x2, 3x3) for the 3x3, stride-1 convolutions of core/ops/conv2d.cpp (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", CVPR 2016). Internal to core/ops: conv2d's
// forward and backward-data kernels call it where winograd_usable() says so.
//
// Math. For one channel, a 4x4 input tile d and a 3x3 filter g, the 2x2 output tile of the
// cross-correlation y[a][b] = sum_{r,s} d[a+r][b+s] g[r][s] is
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A        ((.) the elementwise product)
// with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
//      A^T = [1 1 1 0; 0 1 -1 -1].
// Over channels the sum moves inside the transform: with U_e[m][c] = (G g_mc G^T)_e and
// V_e[c][t] = (B^T d_ct B)_e for each of the 16 elements e of the 4x4 transform domain and tile t,
//   M_e = U_e V_e          (16 products of [M, C] x [C, tiles])
//   y_mt = A^T M_.mt A     (each output tile from its 16 M values)
// 16 multiply-adds per channel make 4 outputs, against 36 directly: 2.25x fewer, paid for with the
// transforms (additions only, a few per value) and a rounding error a few times the direct sum's.
//
// Each tile is computed the same way whatever batch, chunk or thread it falls in (the channel sum
// runs in channel order), so results do not depend on the batch size or the thread count.
#pragma once

#include <cstdint>

namespace glimpse::cpu::detail {

struct WinogradDims {
  int64_t N, C, H, W;  // input [N, C, H, W]
  int64_t M;           // filters (output channels)
  int64_t P, Q;        // output [N, M, P, Q]: P = H + 2 ph - 2, Q = W + 2 pw - 2
  int64_t ph, pw;      // zero padding
};

// Whether winograd_conv3x3 runs in this build (it needs the SIMD register tile of conv2d_tile.h)
// and pays off for C input and M output channels and `tiles` 2x2 output tiles over the batch
// (N * ceil(P/2) * ceil(Q/2)): at least 64 channels each way and 128 tiles (bench/NOTES.md §15).
bool winograd_usable(int64_t C, int64_t M, int64_t tiles);

// out[n][m][p][q] = bias[m] + sum_{c,r,s} A[m][c][r][s] in[n][c][p - ph + r][q - pw + s], relu'd if asked,
// with A = w [M, C, 3, 3] (flip = false) or, for the backward-data of a convolution whose weight is
// w [C, M, 3, 3], A[m][c][r][s] = w[c][m][2 - r][2 - s] (flip = true). bias may be null.
void winograd_conv3x3(float* out, const float* in, const float* w, bool flip, const float* bias, bool relu,
                      const WinogradDims& d);

}  // namespace glimpse::cpu::detail

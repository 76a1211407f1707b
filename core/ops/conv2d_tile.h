// The register tile shared by the CPU convolution kernels of core/ops/conv2d.cpp (the direct
// convolution) and core/ops/conv2d_winograd.cpp (the Winograd transform-domain products): SIMD
// types for the build's widest float vector with FMA, and the tile itself. Internal to core/ops.
#pragma once

#include <cstdint>
#include <cstring>

#include <immintrin.h>

namespace glimpse::cpu::detail {

// GLIMPSE_DIRECT_CONV is defined when the build has AVX2+FMA or AVX-512 (the kernels' only paths);
// otherwise the convolutions take im2col + GEMM.
#if defined(__AVX512F__)
#define GLIMPSE_DIRECT_CONV 1
using Vreg = __m512;
constexpr int64_t kVW = 16, kMR = 8, kNV = 3;  // 24 accumulators of 32 zmm registers
inline Vreg vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, Vreg v) { _mm512_storeu_ps(p, v); }
inline Vreg vset1(float a) { return _mm512_set1_ps(a); }
inline Vreg vfma(Vreg a, Vreg b, Vreg c) { return _mm512_fmadd_ps(a, b, c); }
inline Vreg vrelu(Vreg v) { return _mm512_max_ps(v, _mm512_setzero_ps()); }  // NaN -> 0, as relu_forward
inline Vreg vadd(Vreg a, Vreg b) { return _mm512_add_ps(a, b); }
inline Vreg vsub(Vreg a, Vreg b) { return _mm512_sub_ps(a, b); }
#elif defined(__AVX2__) && defined(__FMA__)
#define GLIMPSE_DIRECT_CONV 1
using Vreg = __m256;
constexpr int64_t kVW = 8, kMR = 4, kNV = 3;  // 12 accumulators + 3 loads + 1 broadcast = 16 ymm registers
inline Vreg vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, Vreg v) { _mm256_storeu_ps(p, v); }
inline Vreg vset1(float a) { return _mm256_set1_ps(a); }
inline Vreg vfma(Vreg a, Vreg b, Vreg c) { return _mm256_fmadd_ps(a, b, c); }
inline Vreg vrelu(Vreg v) { return _mm256_max_ps(v, _mm256_setzero_ps()); }  // NaN -> 0, as relu_forward
inline Vreg vadd(Vreg a, Vreg b) { return _mm256_add_ps(a, b); }
inline Vreg vsub(Vreg a, Vreg b) { return _mm256_sub_ps(a, b); }
#endif

#ifdef GLIMPSE_DIRECT_CONV
struct VecPos {
  int64_t out, in;  // offset in the output plane, offset in the item's input buffer
  int64_t valid;    // output columns of the vector inside the row (kVW but at a row's end)
};

// One register tile: MR filters (mvalid of them real) x NV vectors of kVW outputs,
//   acc[i][j] = bias[i] + sum_k a[k*MR + i] * buf[pos[j].in + off[k]]   for k < crs,
// stored (ReLU'd if asked) to out[i*plane + pos[j].out], pos[j].valid floats of it. It is a GEMM
// micro-kernel whose right-hand rows lie at the offsets off[k]: the input taps of a direct
// convolution, or the channel rows of a Winograd transform.
template <int64_t MR, int64_t NV>
inline void direct_tile(float* out, int64_t plane, int64_t mvalid, const float* a, const int64_t* off, int64_t crs,
                        const float* buf, const VecPos* pos, int64_t npos, const float* bias, bool relu) {
  Vreg acc[MR][NV];
  const float* base[NV];
  for (int64_t j = 0; j < NV; ++j) base[j] = buf + pos[j < npos ? j : 0].in;
  for (int64_t i = 0; i < MR; ++i)
    for (int64_t j = 0; j < NV; ++j) acc[i][j] = vset1(bias ? bias[i] : 0.f);
  for (int64_t k = 0; k < crs; ++k) {
    const int64_t o = off[k];
    Vreg b[NV];
    for (int64_t j = 0; j < NV; ++j) b[j] = vload(base[j] + o);
    const float* ak = a + k * MR;
    for (int64_t i = 0; i < MR; ++i) {
      const Vreg av = vset1(ak[i]);
      for (int64_t j = 0; j < NV; ++j) acc[i][j] = vfma(av, b[j], acc[i][j]);
    }
  }
  for (int64_t i = 0; i < mvalid; ++i)
    for (int64_t j = 0; j < NV && j < npos; ++j) {
      const Vreg v = relu ? vrelu(acc[i][j]) : acc[i][j];
      float* dst = out + i * plane + pos[j].out;
      if (pos[j].valid == kVW) {
        vstore(dst, v);
      } else {
        alignas(64) float tmp[kVW];
        vstore(tmp, v);
        std::memcpy(dst, tmp, sizeof(float) * pos[j].valid);
      }
    }
}
#endif

}  // namespace glimpse::cpu::detail

// Winograd F(2x2, 3x3): the math is in core/ops/conv2d_winograd.h.
//
// Work decomposition. Tiles are numbered by tile row: the tile rows of all images form one sequence
// (image n, tile row i), and a chunk is a run of consecutive tile rows, so a chunk may span images.
// One chunk (about 128 tiles) is one work item of parallel_for and runs three steps in a per-thread
// buffer that only grows:
//   1. input transform: V[e][c][t] for the chunk's tiles t (additions only, vectorized along a tile row);
//   2. the 16 products M_e = U_e V_e through the register tile of conv2d_tile.h (U packed as panels of
//      kMR filters, like the direct convolution's filters);
//   3. output transform: each 2x2 output tile from its 16 values of M, plus bias and ReLU.
#include "core/ops/conv2d_winograd.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/ops/conv2d_tile.h"
#include "core/parallel.h"

namespace glimpse::cpu::detail {

#ifdef GLIMPSE_DIRECT_CONV

namespace {

constexpr int64_t kE = 16;  // elements of the 4x4 transform domain
// Tiles per chunk: the products' right-hand side is [C, tiles] per element; a few register tiles
// wide, so that each packed filter panel is used for several tiles (bench_conv, 1 thread, 2026-12-04:
// 96-384 tiles all within 10% of each other; L2-sized chunks of 20-40 tiles were up to 1.8x slower).
constexpr int64_t kChunkTiles = 128;
// Below these the transforms and the filter transform cost about what the 2.25x fewer multiply-adds
// save (bench/NOTES.md §15, 1 thread: at C = 32, M = 64 Winograd was 1.07x the direct kernel with
// AVX-512 and 0.9x with AVX2; on 49 tiles of 512 x 512 channels 0.75x).
constexpr int64_t kMinChannels = 64;
constexpr int64_t kMinTiles = 128;

// U[e][panel][c][i] = (G g G^T)_e of filter m = panel * kMR + i and channel c; zero past M. Into a
// buffer of the calling thread that only grows (at batch 1 a fresh 16 MiB vector per VGG layer cost
// more in page faults than the transform itself), the panels shared out over the threads.
const float* transform_filters(const float* w, int64_t M, int64_t C, bool flip, int threads) {
  const int64_t panels = (M + kMR - 1) / kMR;
  thread_local std::vector<float> u;
  if (u.size() < size_t(kE * panels * C * kMR)) u.resize(kE * panels * C * kMR);
  float* pu = u.data();
  parallel_for(
      panels,
      [&](int64_t p) {
        // Lane i of every array below is filter p * kMR + i: the arithmetic runs on whole vectors and
        // each of the 16 results is one store of kMR floats.
        for (int64_t c = 0; c < C; ++c) {
          float g[9][kMR] = {};
          for (int64_t i = 0; i < kMR && p * kMR + i < M; ++i) {
            const int64_t m = p * kMR + i;
            for (int rs = 0; rs < 9; ++rs) g[rs][i] = flip ? w[(c * M + m) * 9 + (8 - rs)] : w[(m * C + c) * 9 + rs];
          }
          float h[4][3][kMR];  // G g
          for (int s = 0; s < 3; ++s)
            for (int64_t i = 0; i < kMR; ++i) {
              h[0][s][i] = g[s][i];
              h[1][s][i] = 0.5f * (g[s][i] + g[3 + s][i] + g[6 + s][i]);
              h[2][s][i] = 0.5f * (g[s][i] - g[3 + s][i] + g[6 + s][i]);
              h[3][s][i] = g[6 + s][i];
            }
          for (int r = 0; r < 4; ++r) {  // (G g) G^T
            float* dst = pu + ((r * 4 * panels + p) * C + c) * kMR;
            const int64_t es = panels * C * kMR;  // from element (r, s) to (r, s + 1)
            for (int64_t i = 0; i < kMR; ++i) {
              dst[i] = h[r][0][i];
              dst[es + i] = 0.5f * (h[r][0][i] + h[r][1][i] + h[r][2][i]);
              dst[2 * es + i] = 0.5f * (h[r][0][i] - h[r][1][i] + h[r][2][i]);
              dst[3 * es + i] = h[r][2][i];
            }
          }
        }
      },
      threads);
  return pu;
}

struct Chunking {
  int64_t TH, TW;  // tile rows and tiles per row of one image
  int64_t rows;    // tile rows per chunk (the last chunk may be shorter)
  int64_t chunks;  // over all images
  int64_t max_tp;  // tiles of the largest chunk, rounded up to whole vectors
};

Chunking chunking(const WinogradDims& d, int threads) {
  Chunking k{};
  k.TH = (d.P + 1) / 2, k.TW = (d.Q + 1) / 2;
  const int64_t total = d.N * k.TH;
  k.rows = std::clamp<int64_t>((kChunkTiles + k.TW - 1) / k.TW, 1, total);
  // Enough chunks for every thread.
  if ((total + k.rows - 1) / k.rows < threads) k.rows = std::max<int64_t>(1, total / threads);
  k.chunks = (total + k.rows - 1) / k.rows;
  k.max_tp = (k.rows * k.TW + kVW - 1) / kVW * kVW;
  return k;
}

// Step 1 for one channel plane x [H, W] and tile row i: writes V[e * estride + j] for the row's TW
// tiles j. The four input rows 2i - ph .. 2i - ph + 3 are copied zero-bordered (input columns
// -pw .. 2 TW + 1 - pw), so that every further step is a loop along the row without bounds checks.
void input_transform_row(float* v, int64_t estride, const float* x, const WinogradDims& d, int64_t i, int64_t TW,
                         float* work) {
  const int64_t Wp = 2 * TW + 2;
  const int64_t lo = std::min(Wp, d.pw), hi = std::clamp<int64_t>(d.W + d.pw, lo, Wp);  // columns inside the image
  float* t[4];
  for (int r = 0; r < 4; ++r) {
    t[r] = work + r * Wp;
    const int64_t ih = 2 * i - d.ph + r;
    if (ih < 0 || ih >= d.H) {
      std::fill(t[r], t[r] + Wp, 0.f);
      continue;
    }
    std::fill(t[r], t[r] + lo, 0.f);
    std::copy(x + ih * d.W + (lo - d.pw), x + ih * d.W + (hi - d.pw), t[r] + lo);
    std::fill(t[r] + hi, t[r] + Wp, 0.f);
  }
  // B^T down the columns: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3, in place.
  {
    float* __restrict a0 = t[0];
    float* __restrict a1 = t[1];
    float* __restrict a2 = t[2];
    float* __restrict a3 = t[3];
    for (int64_t k = 0; k < Wp; ++k) {
      const float d0 = a0[k], d1 = a1[k], d2 = a2[k], d3 = a3[k];
      a0[k] = d0 - d2;
      a1[k] = d1 + d2;
      a2[k] = d2 - d1;
      a3[k] = d1 - d3;
    }
  }
  // B along each row: tile j covers columns 2j .. 2j + 3.
  for (int r = 0; r < 4; ++r) {
    const float* __restrict a = t[r];
    float* __restrict v0 = v + (r * 4 + 0) * estride;
    float* __restrict v1 = v + (r * 4 + 1) * estride;
    float* __restrict v2 = v + (r * 4 + 2) * estride;
    float* __restrict v3 = v + (r * 4 + 3) * estride;
    for (int64_t j = 0; j < TW; ++j) {
      const float d0 = a[2 * j], d1 = a[2 * j + 1], d2 = a[2 * j + 2], d3 = a[2 * j + 3];
      v0[j] = d0 - d2;
      v1[j] = d1 + d2;
      v2[j] = d2 - d1;
      v3[j] = d1 - d3;
    }
  }
}

// Step 3, first half, for one filter: y[0..3][t] = A^T M_.t A + bias (ReLU'd if asked) for the
// chunk's tp tiles t (tp a whole number of vectors), from M[e * estride + t]. y00, y01, y10, y11 are
// the tile's outputs (row, column) = (0, 0), (0, 1), (1, 0), (1, 1), each an array of tp.
void output_transform(float* y, const float* mv, int64_t estride, int64_t tp, float bias, bool relu) {
  const Vreg vb = vset1(bias);
  for (int64_t t = 0; t < tp; t += kVW) {
    Vreg m[16];
    for (int e = 0; e < 16; ++e) m[e] = vload(mv + e * estride + t);
    Vreg a[4], b[4];  // A^T down the columns of the 4x4 tile
    for (int s = 0; s < 4; ++s) {
      a[s] = vadd(vadd(m[s], m[4 + s]), m[8 + s]);
      b[s] = vsub(vsub(m[4 + s], m[8 + s]), m[12 + s]);
    }
    Vreg out[4] = {vadd(vadd(vadd(a[0], a[1]), a[2]), vb), vadd(vsub(vsub(a[1], a[2]), a[3]), vb),  // A along rows
                   vadd(vadd(vadd(b[0], b[1]), b[2]), vb), vadd(vsub(vsub(b[1], b[2]), b[3]), vb)};
    for (int o = 0; o < 4; ++o) vstore(y + o * tp + t, relu ? vrelu(out[o]) : out[o]);
  }
}

// Step 3, second half: the TW tiles of tile row i (from y + t0 of each of the four arrays) into the
// output plane, two rows of 2 TW columns, less the last row and column when P or Q is odd.
void store_tile_row(float* out_plane, const float* y, int64_t tp, int64_t t0, const WinogradDims& d, int64_t i,
                    int64_t TW) {
  const int64_t full = d.Q / 2;  // tiles whose both columns are inside the output
  for (int a = 0; a < 2 && 2 * i + a < d.P; ++a) {
    float* __restrict o = out_plane + (2 * i + a) * d.Q;
    const float* __restrict ya = y + (2 * a) * tp + t0;
    const float* __restrict yb = y + (2 * a + 1) * tp + t0;
    for (int64_t j = 0; j < full; ++j) {
      o[2 * j] = ya[j];
      o[2 * j + 1] = yb[j];
    }
    if (full < TW) o[2 * full] = ya[full];  // odd Q: the last tile's first column only
  }
}

}  // namespace

bool winograd_usable(int64_t C, int64_t M, int64_t tiles) {
  return C >= kMinChannels && M >= kMinChannels && tiles >= kMinTiles;
}

void winograd_conv3x3(float* out, const float* in, const float* w, bool flip, const float* bias, bool relu,
                      const WinogradDims& d) {
  GLIMPSE_CHECK(d.P == d.H + 2 * d.ph - 2 && d.Q == d.W + 2 * d.pw - 2 && d.P >= 1 && d.Q >= 1,
                "winograd_conv3x3: output ", d.P, "x", d.Q, " does not match input ", d.H, "x", d.W, " and padding (",
                d.ph, ", ", d.pw, ")");
  const int64_t panels = (d.M + kMR - 1) / kMR;
  const int threads = num_threads();
  const Chunking k = chunking(d, threads);
  // 2 * 16 * C * M multiply-adds per tile.
  const double flop = 32.0 * d.C * d.M * k.TH * k.TW * d.N;
  const int nt =
      threads <= 1 || k.chunks < 2 || flop < 1e6 ? 1 : static_cast<int>(std::min<int64_t>(threads, k.chunks));
  const float* u = transform_filters(w, d.M, d.C, flip, d.C * d.M >= 64 * 64 ? threads : 1);
  parallel_for(
      k.chunks,
      [&](int64_t chunk) {
        const int64_t r0 = chunk * k.rows, r1 = std::min(d.N * k.TH, r0 + k.rows);
        const int64_t tiles = (r1 - r0) * k.TW, tp = (tiles + kVW - 1) / kVW * kVW;
        // Per-thread buffer: V [16][C][tp], M [16][M][tp], row work space.
        const size_t need = size_t(kE * (d.C + d.M) * k.max_tp + std::max(4 * (2 * k.TW + 2), 4 * k.max_tp));
        thread_local std::vector<float> buf;
        if (buf.size() < need) buf.resize(need);
        float* V = buf.data();
        float* Mv = V + kE * d.C * tp;
        float* work = Mv + kE * d.M * tp;

        // 1. input transform; the vector slack past the chunk's tiles is zeroed (it is read, never stored).
        for (int64_t gr = r0; gr < r1; ++gr) {
          const int64_t n = gr / k.TH, i = gr % k.TH, t0 = (gr - r0) * k.TW;
          for (int64_t c = 0; c < d.C; ++c)
            input_transform_row(V + c * tp + t0, d.C * tp, in + (n * d.C + c) * d.H * d.W, d, i, k.TW, work);
        }
        if (tp > tiles)
          for (int64_t e = 0; e < kE; ++e)
            for (int64_t c = 0; c < d.C; ++c)
              std::fill(V + (e * d.C + c) * tp + tiles, V + (e * d.C + c + 1) * tp, 0.f);

        // 2. M_e = U_e V_e, tile by tile of kMR filters x kNV vectors of tiles.
        thread_local std::vector<int64_t> off;
        thread_local std::vector<VecPos> pos;
        off.resize(d.C);
        for (int64_t c = 0; c < d.C; ++c) off[c] = c * tp;
        pos.clear();
        for (int64_t t = 0; t < tp; t += kVW) pos.push_back({t, t, kVW});
        const int64_t npos = static_cast<int64_t>(pos.size());
        for (int64_t e = 0; e < kE; ++e) {
          const float* ve = V + e * d.C * tp;
          for (int64_t p = 0; p < panels; ++p) {
            const float* a = u + (e * panels + p) * d.C * kMR;
            float* o = Mv + (e * d.M + p * kMR) * tp;
            for (int64_t v = 0; v < npos; v += kNV)
              direct_tile<kMR, kNV>(o, tp, std::min(kMR, d.M - p * kMR), a, off.data(), d.C, ve, pos.data() + v,
                                    std::min(kNV, npos - v), nullptr, false);
          }
        }

        // 3. output transform, bias, ReLU.
        for (int64_t m = 0; m < d.M; ++m) {
          output_transform(work, Mv + m * tp, d.M * tp, tp, bias ? bias[m] : 0.f, relu);
          for (int64_t gr = r0; gr < r1; ++gr)
            store_tile_row(out + ((gr / k.TH) * d.M + m) * d.P * d.Q, work, tp, (gr - r0) * k.TW, d, gr % k.TH, k.TW);
        }
      },
      nt);
}

#else  // no SIMD register tile in this build: conv2d takes its other paths

bool winograd_usable(int64_t, int64_t, int64_t) { return false; }

void winograd_conv3x3(float*, const float*, const float*, bool, const float*, bool, const WinogradDims&) {
  GLIMPSE_CHECK(false, "winograd_conv3x3: not built (needs AVX2+FMA or AVX-512)");
}

#endif

}  // namespace glimpse::cpu::detail

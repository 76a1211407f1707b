#include "inference.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "interrupt.h"
#include "layers/dist/comm.h"
#include "runtime.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {

data::Dataset open_dataset(const std::string& dir, const std::string& split) {
  GLIMPSE_CHECK(!dir.empty(), "no data directory given: pass --data DIR (ISIC layout, or `melanoma synth --out DIR`)");
  GLIMPSE_CHECK(fs::is_directory(dir), "the data directory '", dir, "' does not exist");
  data::Dataset ds = data::Dataset::open(dir, split);
  GLIMPSE_CHECK(ds.size() > 0, "the data set ", dir, split.empty() ? std::string() : " (split '" + split + "')",
                " holds no images", split.empty() ? "" : "; is the split name right (train, val, test)?");
  return ds;
}

data::LoaderOptions inference_loader(int64_t size, int64_t batch, bool with_masks, const data::Preprocess& pre) {
  data::LoaderOptions o;
  o.batch_size = batch;
  o.image_size = size;
  o.shuffle = false;
  o.augment = false;
  o.with_masks = with_masks;
  o.preprocess = pre;
  o.threads = loader_threads();
  o.prefetch = 4;
  return o;
}

std::vector<std::vector<float>> softmax_rows(const Tensor& logits) {
  const Tensor p = softmax(logits.detach(), 1).contiguous().to(Device::cpu());
  const int64_t n = p.size(0), k = p.size(1);
  std::vector<std::vector<float>> rows(static_cast<size_t>(n));
  const float* d = p.data();
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)].assign(d + i * k, d + (i + 1) * k);
  return rows;
}

Tensor dihedral(const Tensor& images, int k) {
  GLIMPSE_CHECK(images.dim() == 4 && images.size(2) == images.size(3),
                "dihedral: expects square images [N, C, S, S], got ", shape_str(images.shape()));
  GLIMPSE_CHECK(k >= 0 && k < 8, "dihedral: k must be in 0..7, got ", k);
  const Tensor x = images.contiguous();
  const int64_t planes = x.size(0) * x.size(1), S = x.size(2);
  Tensor y = Tensor::empty(x.shape());
  const float* src = x.data();
  float* dst = y.data();
  const bool flip = k & 1;
  const int turns = k >> 1;
  for (int64_t p = 0; p < planes; ++p) {
    const float* a = src + p * S * S;
    float* b = dst + p * S * S;
    for (int64_t i = 0; i < S; ++i)
      for (int64_t j = 0; j < S; ++j) {
        // Output (i, j) reads the source pixel that the rotation, then the flip, brings here.
        int64_t r = i, c = flip ? S - 1 - j : j;
        for (int t = 0; t < turns; ++t) {  // undo one counter-clockwise quarter turn
          const int64_t r0 = r;
          r = c;
          c = S - 1 - r0;
        }
        b[i * S + j] = a[r * S + c];
      }
  }
  return y;
}

double mean_nll(const std::vector<std::vector<float>>& probs, const std::vector<int64_t>& labels) {
  double sum = 0;
  for (size_t i = 0; i < probs.size(); ++i) sum -= std::log(std::max(probs[i][static_cast<size_t>(labels[i])], 1e-12f));
  return probs.empty() ? 0 : sum / static_cast<double>(probs.size());
}

Shard shard_of(size_t n, int rank, int ranks, size_t granule) {
  const size_t g = (n + granule - 1) / granule, r = static_cast<size_t>(rank), R = static_cast<size_t>(ranks);
  return {std::min(n, g * r / R * granule), std::min(n, g * (r + 1) / R * granule)};
}

void keep_shard(data::Dataset& ds, const dist::Communicator& c, size_t granule) {
  if (c.size() == 1) return;
  const Shard s = shard_of(ds.samples.size(), c.rank(), c.size(), granule);
  ds.samples = std::vector<data::Sample>(ds.samples.begin() + static_cast<std::ptrdiff_t>(s.begin),
                                         ds.samples.begin() + static_cast<std::ptrdiff_t>(s.end));
}

Predictions gather_predictions(dist::Communicator& c, const Predictions& mine) {
  if (c.size() == 1) return mine;
  // Rows of probabilities with the label as a last column (exact in float32 below 2^24), and the
  // ids as one newline-joined string per rank.
  const int64_t n = static_cast<int64_t>(mine.probs.size());
  int64_t classes = n ? static_cast<int64_t>(mine.probs[0].size()) : 0;
  Tensor width = Tensor::from_vector({1}, {static_cast<float>(classes)});
  // A rank with no images does not know the class count: the widest rank's is everyone's.
  std::vector<float> widths(static_cast<size_t>(c.size()));
  c.allgather_bytes(width.data(), sizeof(float), widths.data());
  for (float w : widths) classes = std::max(classes, static_cast<int64_t>(w));
  Tensor rows = Tensor::zeros({n, classes + 1});
  std::string ids;
  for (int64_t i = 0; i < n; ++i) {
    std::copy(mine.probs[i].begin(), mine.probs[i].end(), rows.data() + i * (classes + 1));
    rows.data()[i * (classes + 1) + classes] = static_cast<float>(mine.labels[i]);
    ids += mine.ids[i] + "\n";
  }
  const Tensor all = dist::gather(c, rows, 0);
  const std::vector<std::vector<char>> id_parts = c.gather_bytes(ids.data(), ids.size(), 0);
  if (c.rank() != 0) return mine;
  Predictions p;
  for (int64_t i = 0; i < all.size(0); ++i) {
    const float* r = all.data() + i * (classes + 1);
    p.probs.emplace_back(r, r + classes);
    p.labels.push_back(static_cast<int64_t>(r[classes]));
  }
  for (const auto& part : id_parts) {
    std::string cur;
    for (char ch : part) {
      if (ch == '\n') {
        p.ids.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
  }
  p.loss = mean_nll(p.probs, p.labels);
  return p;
}

Predictions predict(Model& model, const data::Dataset& ds, int64_t size, const data::Preprocess& pre,
                    const std::string& label, bool tta) {
  NoGradGuard no_grad;
  const bool was_training = model.training();
  model.eval();
  data::DataLoader loader(ds, inference_loader(size, kPredictBatch, false, pre));
  loader.start_epoch(0);
  Predictions p;
  ProgressBar bar(label, std::max<int64_t>(1, loader.batches_per_epoch()), "img", progress(/*inner=*/true));
  data::Batch b;
  const Device dev = model_device(model);  // batches are decoded on the CPU, then moved to the model
  while (loader.next(b)) {
    if (interrupt_requested()) break;  // train's validation: a Ctrl-C stops here too (interrupt.h)
    std::vector<std::vector<float>> rows = softmax_rows(model(b.images.to(dev)));
    for (int k = 1; tta && k < 8; ++k) {
      const std::vector<std::vector<float>> more = softmax_rows(model(dihedral(b.images, k).to(dev)));
      for (size_t i = 0; i < rows.size(); ++i)
        for (size_t c = 0; c < rows[i].size(); ++c) rows[i][c] += more[i][c];
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      if (tta)
        for (float& v : rows[i]) v /= 8.f;
      p.probs.push_back(std::move(rows[i]));
    }
    p.labels.insert(p.labels.end(), b.labels.begin(), b.labels.end());
    p.ids.insert(p.ids.end(), b.ids.begin(), b.ids.end());
    bar.step(static_cast<int64_t>(b.labels.size()));
  }
  bar.finish();
  p.loss = mean_nll(p.probs, p.labels);
  model.train(was_training);
  return p;
}

}  // namespace mel

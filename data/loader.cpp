// DataLoader: worker threads decode, resize and augment whole batches ahead of the consumer, into
// a bounded reorder buffer (at most `prefetch` batches past the one the consumer waits for).
//
// Determinism: the epoch's order is a permutation drawn from Rng(mix(seed, epoch)); sample i of
// the dataset is augmented with its own Rng(mix(seed, epoch, i)); each batch is built by one worker
// from those alone and handed out in batch order. So the batches depend on (seed, epoch) only, never
// on the number of threads or their timing.
//
// Unreadable samples (a missing or corrupt image or mask, a mask whose size differs from its image)
// are dropped from their batch and counted; each path is printed to stderr once, and an epoch that
// skipped any ends with a one-line summary. With fail_on_unreadable the first one is rethrown from
// next() instead. Shutdown: the destructor (or start_epoch mid-epoch) raises a stop flag, wakes the
// workers and joins them; a worker finishes at most the sample it is decoding.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>
#include <utility>

#include "core/error.h"
#include "data/data.h"
#include "data/internal.h"

namespace glimpse::data {

struct DataLoader::Impl {
  std::vector<Sample> samples;
  LoaderOptions opt;

  std::mutex mu;
  std::condition_variable cv_work;   // workers wait for room in the buffer
  std::condition_variable cv_ready;  // the consumer waits for its batch
  std::vector<std::thread> workers;
  bool stop = false;

  struct Slot {
    Batch batch;
    int64_t count = 0;  // samples that loaded
    std::exception_ptr error;
  };
  int64_t epoch = -1;
  std::vector<std::vector<int64_t>> batches;  // dataset indices of each batch of this epoch
  int64_t next_claim = 0, next_consume = 0;
  std::map<int64_t, Slot> ready;
  bool summary_printed = false;

  // Decoded samples by dataset index (null: not cached yet). Guarded by cache_mu; entries are
  // immutable once stored, so workers share them through shared_ptr without copying under the lock.
  struct Decoded {
    io::Image image;
    io::Mask mask;
  };
  std::mutex cache_mu;
  std::vector<std::shared_ptr<const Decoded>> cache;
  int64_t cache_bytes = 0;

  std::shared_ptr<const Decoded> decode(int64_t i) {
    if (opt.cache_mb > 0) {
      std::lock_guard<std::mutex> lock(cache_mu);
      if (cache[i]) return cache[i];
    }
    const Sample& s = samples[i];
    auto d = std::make_shared<Decoded>();
    d->image = io::load_image(s.image_path);
    if (opt.with_masks && !s.mask_path.empty()) {
      d->mask = io::load_mask(s.mask_path);
      GLIMPSE_CHECK(d->mask.width == d->image.width && d->mask.height == d->image.height, "the mask '", s.mask_path,
                    "' is ", d->mask.width, "x", d->mask.height, " but its image '", s.image_path, "' is ",
                    d->image.width, "x", d->image.height);
    }
    // A huge photo is shrunk to a working size first, so that preprocessing, augmentation and the
    // cache cost the same for it as for a normal one (working_size.cpp); normal photos are untouched.
    io::Mask* mask = d->mask.data.empty() ? nullptr : &d->mask;
    d->image = detail::shrink_to_working_size(std::move(d->image), opt.image_size, mask);
    if (opt.preprocess.any()) d->image = preprocess(d->image, opt.preprocess);
    if (opt.cache_mb > 0) {
      const int64_t bytes =
          static_cast<int64_t>(d->image.pixels.size() + d->mask.data.size() * sizeof(d->mask.data[0]));
      std::lock_guard<std::mutex> lock(cache_mu);
      if (!cache[i] && cache_bytes + bytes <= opt.cache_mb * (int64_t(1) << 20)) {
        cache[i] = d;
        cache_bytes += bytes;
      }
    }
    return d;
  }

  std::atomic<int64_t> skipped_total{0};
  std::atomic<int64_t> skipped_epoch{0};
  std::mutex report_mu;
  std::set<std::string> reported;

  ~Impl() { stop_workers(); }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv_work.notify_all();
    cv_ready.notify_all();
    for (std::thread& t : workers)
      if (t.joinable()) t.join();
    workers.clear();
    std::lock_guard<std::mutex> lock(mu);
    stop = false;
    ready.clear();
  }

  void report(const std::string& path, const std::string& why) {
    std::lock_guard<std::mutex> lock(report_mu);
    if (reported.insert(path).second) std::fprintf(stderr, "data: skipping unreadable sample (%s)\n", why.c_str());
  }

  // Decodes one batch; only reads immutable state (samples, opt, batches[b]) and its own Rngs.
  Slot build(int64_t b, int64_t ep) {
    Slot slot;
    const std::vector<int64_t>& idx = batches[b];
    const int64_t S = opt.image_size;
    std::vector<io::Image> images;
    std::vector<io::Mask> masks;
    std::vector<int64_t> kept;
    for (int64_t i : idx) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stop) return slot;
      }
      const Sample& s = samples[i];
      try {
        const std::shared_ptr<const Decoded> d = decode(i);
        io::Image im;
        io::Mask mk = d->mask;
        if (opt.augment) {
          Rng rng(detail::mix_seed(opt.seed, static_cast<uint64_t>(ep), static_cast<uint64_t>(i)));
          im = augment_resized(d->image, mk.data.empty() ? nullptr : &mk, opt.augment_options, rng, S, S);
        } else {
          im = resize_area(d->image, S, S);
          if (!mk.data.empty()) mk = io::resize_mask(mk, S, S);
        }
        images.push_back(std::move(im));
        masks.push_back(std::move(mk));
        kept.push_back(i);
      } catch (const std::exception& e) {
        if (opt.fail_on_unreadable)
          throw Error(std::string("data loader: sample '") + s.id + "' (" + s.image_path + "): " + e.what() +
                      " [fail_on_unreadable is set; unset it to skip unreadable images]");
        ++skipped_total;
        ++skipped_epoch;
        report(s.image_path, e.what());
      }
    }
    slot.count = static_cast<int64_t>(kept.size());
    if (kept.empty()) return slot;
    Batch& out = slot.batch;
    out.images = Tensor::empty({slot.count, 3, S, S});
    float* p = out.images.data();
    for (int64_t k = 0; k < slot.count; ++k) {
      detail::image_to_planar(images[k], p + k * 3 * S * S, opt.normalize);
      out.labels.push_back(samples[kept[k]].label);
      out.ids.push_back(samples[kept[k]].id);
    }
    if (opt.with_masks) out.masks = std::move(masks);
    return slot;
  }

  void worker(int64_t ep) {
    for (;;) {
      int64_t b;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv_work.wait(lock, [&] {
          return stop || next_claim >= static_cast<int64_t>(batches.size()) || next_claim < next_consume + opt.prefetch;
        });
        if (stop || next_claim >= static_cast<int64_t>(batches.size())) return;
        b = next_claim++;
      }
      Slot slot;
      try {
        slot = build(b, ep);
      } catch (...) {
        slot.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stop) return;
        ready[b] = std::move(slot);
      }
      cv_ready.notify_all();
    }
  }
};

DataLoader::DataLoader(const Dataset& dataset, LoaderOptions options) : impl_(std::make_unique<Impl>()) {
  GLIMPSE_CHECK(options.batch_size > 0, "DataLoader: batch_size ", options.batch_size, " must be positive");
  GLIMPSE_CHECK(options.image_size > 0, "DataLoader: image_size ", options.image_size, " must be positive");
  GLIMPSE_CHECK(!dataset.samples.empty(), "DataLoader: the dataset '", dataset.root, "' is empty");
  GLIMPSE_CHECK(options.shards >= 1 && options.shard >= 0 && options.shard < options.shards, "DataLoader: shard ",
                options.shard, " of ", options.shards, " does not exist");
  GLIMPSE_CHECK(options.shards <= options.batch_size, "DataLoader: ", options.shards, " shards of a batch of ",
                options.batch_size, " would leave some empty; the batch must be at least the rank count");
  if (options.prefetch < 1) options.prefetch = 1;
  if (options.threads <= 0) options.threads = std::max(1u, std::thread::hardware_concurrency());
  impl_->samples = dataset.samples;
  impl_->opt = options;
  impl_->cache.resize(impl_->samples.size());
}

DataLoader::~DataLoader() = default;  // Impl's destructor stops and joins the workers

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = static_cast<int64_t>(impl_->samples.size()), B = impl_->opt.batch_size;
  return impl_->opt.drop_last ? n / B : (n + B - 1) / B;
}

int64_t DataLoader::skipped() const { return impl_->skipped_total.load(); }

void DataLoader::start_epoch(int64_t epoch) {
  Impl& im = *impl_;
  im.stop_workers();
  const int64_t n = static_cast<int64_t>(im.samples.size()), B = im.opt.batch_size;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (im.opt.shuffle) {
    Rng rng(detail::mix_seed(im.opt.seed, static_cast<uint64_t>(epoch)));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<uint64_t>(i + 1))]);
  }
  im.batches.clear();
  const int64_t shard = im.opt.shard, shards = im.opt.shards;
  for (int64_t b = 0; b < batches_per_epoch(); ++b) {
    const int64_t lo = b * B, len = std::min(n, (b + 1) * B) - lo;
    im.batches.emplace_back(order.begin() + lo + len * shard / shards, order.begin() + lo + len * (shard + 1) / shards);
  }
  im.epoch = epoch;
  im.next_claim = im.next_consume = 0;
  im.summary_printed = false;
  im.skipped_epoch = 0;
  const int64_t nthreads = std::min<int64_t>(im.opt.threads, static_cast<int64_t>(im.batches.size()));
  for (int64_t t = 0; t < nthreads; ++t) im.workers.emplace_back([&im, epoch] { im.worker(epoch); });
}

bool DataLoader::next(Batch& batch) {
  Impl& im = *impl_;
  if (im.epoch < 0) start_epoch(0);
  for (;;) {
    if (im.next_consume >= static_cast<int64_t>(im.batches.size())) {
      if (!im.summary_printed && im.skipped_epoch > 0)
        std::fprintf(stderr, "data: skipped %lld unreadable image(s) in epoch %lld (%lld in all)\n",
                     static_cast<long long>(im.skipped_epoch.load()), static_cast<long long>(im.epoch),
                     static_cast<long long>(im.skipped_total.load()));
      im.summary_printed = true;
      return false;
    }
    Impl::Slot slot;
    {
      std::unique_lock<std::mutex> lock(im.mu);
      im.cv_ready.wait(lock, [&] { return im.ready.count(im.next_consume) > 0; });
      auto it = im.ready.find(im.next_consume);
      slot = std::move(it->second);
      im.ready.erase(it);
      ++im.next_consume;
    }
    im.cv_work.notify_all();
    if (slot.error) std::rethrow_exception(slot.error);
    if (slot.count == 0) continue;  // every sample of this batch was unreadable
    batch = std::move(slot.batch);
    return true;
  }
}

}  // namespace glimpse::data

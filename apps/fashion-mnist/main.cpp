// fashion-mnist: trains a GAP classifier on Fashion-MNIST (Xiao et al. 2017; Debian's
// dataset-fashion-mnist package puts the IDX files in /usr/share/datasets/fashion-mnist), showing
// progress, test accuracy after every epoch, and optionally saving a safetensors checkpoint.
//
//   build/bin/fashion-mnist --epochs 5 --out fmnist.safetensors
#include <malloc.h>
#include <thread>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/io/atomic_file.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "idx.h"
#include "layers/checkpoint.h"
#include "layers/dist/sync.h"
#include "layers/lr_schedule.h"
#include "layers/optim.h"
#include "model.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {

const char* const kClassNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
// Mean and standard deviation of the Fashion-MNIST training pixels (in [0, 1]).
constexpr float kMean = 0.2860f, kStd = 0.3530f;

struct Options {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string model = "small-gap";
  std::string optimizer = "sgd";
  std::string augment = "flip";
  std::string progress = "auto";
  std::string out;
  int epochs = 10;  // 91.5% test accuracy (README: measured runs)
  int batch = 64;
  float lr = 0.f;  // 0: the optimizer's default below
  float momentum = 0.9f;
  float weight_decay = 5e-4f;
  int threads = 0;  // 0: all cores
  uint64_t seed = 1;
  int64_t limit = 0;       // train on the first N images (0: all)
  int64_t test_limit = 0;  // evaluate on the first N test images (0: all)
};

struct Split {
  fmnist::IdxImages images;
  std::vector<uint8_t> labels;
  int64_t size() const { return images.count; }
};

Split load_split(const std::string& dir, const std::string& prefix, int64_t limit) {
  Split s;
  const std::string images = (fs::path(dir) / (prefix + "-images-idx3-ubyte.gz")).string();
  const std::string labels = (fs::path(dir) / (prefix + "-labels-idx1-ubyte.gz")).string();
  s.images = fmnist::read_idx_images(images);
  s.labels = fmnist::read_idx_labels(labels, 10);
  GLIMPSE_CHECK(static_cast<int64_t>(s.labels.size()) == s.images.count, images, " holds ", s.images.count,
                " images but ", labels, " holds ", s.labels.size(), " labels");
  GLIMPSE_CHECK(s.images.rows == 28 && s.images.cols == 28, images, ": expected 28x28 images, found ", s.images.rows,
                "x", s.images.cols);
  if (limit > 0 && limit < s.images.count) {
    s.images.count = limit;
    s.images.pixels.resize(static_cast<size_t>(limit * 28 * 28));
    s.labels.resize(static_cast<size_t>(limit));
  }
  return s;
}

// Builds the batch of images idx[begin, end) as a normalised [B, 1, 28, 28] tensor. With
// augmentation: a random horizontal flip (clothes are left-right symmetric in this data set) and,
// for "flip-crop", a random shift of up to 2 pixels (zero padding then a 28x28 crop).
Tensor make_batch(const Split& s, const std::vector<int64_t>& idx, int64_t begin, int64_t end,
                  const std::string& augment, Rng& rng, std::vector<int64_t>& targets) {
  const int64_t B = end - begin, HW = 28;
  Tensor x = Tensor::empty({B, 1, HW, HW});
  float* dst = x.data();
  targets.resize(static_cast<size_t>(B));
  const float background = (0.f - kMean) / kStd;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t i = idx[static_cast<size_t>(begin + b)];
    targets[static_cast<size_t>(b)] = s.labels[static_cast<size_t>(i)];
    const uint8_t* src = s.images.pixels.data() + i * HW * HW;
    const bool flip = augment != "none" && rng.bernoulli(0.5f);
    int64_t dy = 0, dx = 0;
    if (augment == "flip-crop") {
      dy = static_cast<int64_t>(rng.below(5)) - 2;
      dx = static_cast<int64_t>(rng.below(5)) - 2;
    }
    float* out = dst + b * HW * HW;
    for (int64_t y = 0; y < HW; ++y) {
      for (int64_t xx = 0; xx < HW; ++xx) {
        const int64_t sy = y + dy, sx0 = xx + dx;
        const int64_t sx = flip ? HW - 1 - sx0 : sx0;
        out[y * HW + xx] = (sy < 0 || sy >= HW || sx < 0 || sx >= HW)
                               ? background
                               : (src[sy * HW + sx] * (1.f / 255.f) - kMean) / kStd;
      }
    }
  }
  return x;
}

struct EvalResult {
  double accuracy = 0, loss = 0;
  std::vector<int64_t> per_class_correct = std::vector<int64_t>(10, 0), per_class_total = std::vector<int64_t>(10, 0);
};

EvalResult evaluate(Module& model, const Split& test, ProgressBar::Mode mode) {
  NoGradGuard no_grad;
  model.eval();
  const int64_t n = test.size(), batch = 500;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  Rng unused;
  std::vector<int64_t> targets;
  EvalResult r;
  int64_t correct = 0;
  ProgressBar bar("  test", (n + batch - 1) / batch, "img",
                  mode == ProgressBar::Mode::Tty ? mode : ProgressBar::Mode::Silent);
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t end = std::min(n, begin + batch);
    Tensor x = make_batch(test, idx, begin, end, "none", unused, targets);
    Tensor logits = model(x);
    r.loss += cross_entropy(logits, targets).item() * static_cast<double>(end - begin);
    const std::vector<int64_t> pred = argmax_rows(logits);
    for (size_t k = 0; k < pred.size(); ++k) {
      ++r.per_class_total[static_cast<size_t>(targets[k])];
      if (pred[k] == targets[k]) {
        ++correct;
        ++r.per_class_correct[static_cast<size_t>(targets[k])];
      }
    }
    bar.step(end - begin);
  }
  bar.finish();
  model.train();
  r.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  r.loss /= static_cast<double>(n);
  return r;
}

std::unique_ptr<Optimizer> make_optimizer(const Options& o, Module& model) {
  if (o.optimizer == "sgd") {
    SGDOptions s;
    s.lr = o.lr;
    s.momentum = o.momentum;
    s.nesterov = o.momentum > 0;
    s.weight_decay = o.weight_decay;
    return std::make_unique<SGD>(model.parameters(), s);
  }
  AdamOptions a;
  a.lr = o.lr;
  a.weight_decay = o.weight_decay;
  if (o.optimizer == "adamw") return std::make_unique<AdamW>(model.parameters(), a);
  return std::make_unique<Adam>(model.parameters(), a);
}

std::string percent(double v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * v);
  return buf;
}

// Under mpirun (docs/distributed.md): every rank shuffles with the same generator and takes slice
// `rank` of each global batch of --batch images; gradients are averaged over the global batch;
// rank 0 evaluates, prints and writes. Augmentation then draws from a generator of the rank's own,
// so the shuffling generators stay in step (one process keeps its single generator: unchanged).
int run(const Options& o, dist::Communicator& comm) {
  const bool leader = comm.rank() == 0, parallel = comm.size() > 1;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  // Every step allocates and frees the same large activation buffers. glibc would serve each from
  // a fresh mmap and unmap it on free, so every step pays page faults on fresh pages; keeping
  // them in the heap (the working set is a few tens of MiB) removes that cost.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  set_num_threads(threads);  // core/parallel.h: conv, GEMM and pooling threads
  manual_seed(o.seed);
  Rng rng(o.seed);

  Rng augment_rng(o.seed + 1000003ull * static_cast<uint64_t>(comm.rank()));
  Rng& aug = parallel ? augment_rng : rng;
  GLIMPSE_CHECK(o.batch >= comm.size(), "fashion-mnist: --batch ", o.batch, " is smaller than the ", comm.size(),
                " ranks");
  if (!o.out.empty() && leader) {
    // The checkpoint is written once, after all the epochs: an unwritable directory must fail now,
    // not after the training. Temporaries of runs killed mid-write (kill -9) are removed.
    io::check_writable_dir(io::parent_dir(o.out));
    if (const int removed = io::remove_stale_temps(o.out); removed > 0)
      std::fprintf(stderr, "fashion-mnist: removed %d temporary file(s) left beside %s by killed runs\n", removed,
                   o.out.c_str());
  }
  const Split train = load_split(o.data, "train", o.limit);
  const Split test = load_split(o.data, "t10k", o.test_limit);
  auto model = fmnist::make_net(o.model, rng);
  std::unique_ptr<Optimizer> opt = make_optimizer(o, *model);
  dist::broadcast_module(comm, *model, 0);
  dist::GradientAverager averager(comm, model->parameters());

  const int64_t n = train.size();
  // Several ranks drop the last partial batch, so that every rank has images in every step.
  const int64_t steps_per_epoch = parallel ? n / o.batch : (n + o.batch - 1) / o.batch;
  GLIMPSE_CHECK(steps_per_epoch > 0, "fashion-mnist: ", n, " training images make no batch of ", o.batch);
  const int64_t total_steps = steps_per_epoch * o.epochs;
  // Linear warm-up over the first few hundred steps (BatchNorm nets at a high SGD rate can diverge
  // in the first steps without it), then cosine to zero.
  const CosineLR schedule(total_steps, 0.f, std::min<int64_t>(200, total_steps / 10));

  if (leader)
    std::printf(
        "fashion-mnist: %s (%lld parameters), %s lr %g, batch %d, %d epoch(s), %lld train / %lld test images, "
        "augment %s, %d thread(s), seed %llu\n",
        o.model.c_str(), static_cast<long long>(model->num_parameters()), o.optimizer.c_str(), o.lr, o.batch, o.epochs,
        static_cast<long long>(n), static_cast<long long>(test.size()), o.augment.c_str(), threads,
        static_cast<unsigned long long>(o.seed));
  std::fflush(stdout);

  if (parallel && leader)
    std::printf("fashion-mnist: %d ranks (%s), %d images per rank per step\n", comm.size(), comm.backend().c_str(),
                o.batch / comm.size());
  const ProgressBar::Mode mode = !leader                 ? ProgressBar::Mode::Silent
                                 : o.progress == "tty"   ? ProgressBar::Mode::Tty
                                 : o.progress == "plain" ? ProgressBar::Mode::Plain
                                 : o.progress == "none"  ? ProgressBar::Mode::Silent
                                                         : ProgressBar::Mode::Auto;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::vector<int64_t> targets;
  int64_t step = 0;
  EvalResult last;
  double train_seconds = 0;
  model->train();
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto te = Clock::now();
    std::shuffle(order.begin(), order.end(), rng.engine());
    ProgressBar bar("epoch " + std::to_string(epoch) + "/" + std::to_string(o.epochs), steps_per_epoch, "img", mode);
    double loss_sum = 0;
    int64_t seen = 0, correct = 0, loss_seen = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      const int64_t first = s * o.batch, len = std::min(n, first + o.batch) - first;
      const int64_t begin = first + len * comm.rank() / comm.size(),
                    end = first + len * (comm.rank() + 1) / comm.size();
      Tensor x = make_batch(train, order, begin, end, o.augment, aug, targets);
      schedule.apply(*opt, step);
      Tensor logits = (*model)(x);
      Tensor loss = cross_entropy(logits, targets);
      const float lv = loss.item();
      if (!std::isfinite(lv))
        GLIMPSE_FAIL("the training loss became ", lv, " at epoch ", epoch, ", step ", s + 1, "/", steps_per_epoch,
                     " (global step ", step + 1, ", lr ", opt->lr(), "); try a smaller --lr");
      opt->zero_grad();
      loss.backward();
      const auto global = averager.average(static_cast<double>(end - begin), lv, end - begin);
      opt->step();

      const std::vector<int64_t> pred = argmax_rows(logits);
      for (size_t k = 0; k < pred.size(); ++k) correct += pred[k] == targets[k];
      loss_sum += global.loss * static_cast<double>(global.images);
      loss_seen += global.images;
      seen += end - begin;
      char post[96];
      std::snprintf(post, sizeof post, "loss %.4f  acc %.1f%%  lr %.2g", loss_sum / static_cast<double>(loss_seen),
                    100.0 * static_cast<double>(correct) / static_cast<double>(seen), opt->lr());
      bar.set_postfix(post);
      bar.step(len);
    }
    bar.finish();
    if (parallel) {  // the epoch's accuracy over every rank's images
      Tensor counts = Tensor::from_vector({2}, {static_cast<float>(correct), static_cast<float>(seen)});
      comm.allreduce_sum(counts);
      correct = static_cast<int64_t>(counts.data()[0]);
      seen = static_cast<int64_t>(counts.data()[1]);
    }
    // Batch norm normalized each rank's slice on its own; the running statistics rank 0 evaluates
    // (and saves) with are the ranks' mean.
    dist::average_buffers(comm, *model);
    train_seconds += std::chrono::duration<double>(Clock::now() - te).count();
    if (!leader) continue;  // rank 0 evaluates, prints and writes
    last = evaluate(*model, test, mode);
    std::printf("epoch %d/%d: train loss %.4f acc %s | test loss %.4f acc %s | %s elapsed\n", epoch, o.epochs,
                loss_sum / static_cast<double>(loss_seen),
                percent(static_cast<double>(correct) / static_cast<double>(seen)).c_str(), last.loss,
                percent(last.accuracy).c_str(),
                ProgressBar::format_duration(std::chrono::duration<double>(Clock::now() - t0).count()).c_str());
    std::fflush(stdout);
  }

  if (!leader) return 0;
  std::printf("per-class test accuracy:");
  for (int c = 0; c < 10; ++c)
    std::printf("%s %s %.1f%%", c ? "," : "", kClassNames[c],
                last.per_class_total[c] ? 100.0 * static_cast<double>(last.per_class_correct[c]) /
                                              static_cast<double>(last.per_class_total[c])
                                        : 0.0);
  std::printf("\n");
  const double total = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("final test accuracy %s after %d epoch(s); total time %s (training %s, %.0f img/s)\n",
              percent(last.accuracy).c_str(), o.epochs, ProgressBar::format_duration(total).c_str(),
              ProgressBar::format_duration(train_seconds).c_str(),
              static_cast<double>(parallel ? steps_per_epoch * o.batch : n) * o.epochs / std::max(train_seconds, 1e-9));

  if (!o.out.empty()) {
    save_checkpoint(*model, o.out,
                    {{"model", o.model},
                     {"dataset", "fashion-mnist"},
                     {"epochs", std::to_string(o.epochs)},
                     {"test_accuracy", std::to_string(last.accuracy)},
                     {"cam_layer", model->info.cam_layer}});
    std::printf("checkpoint written to %s\n", o.out.c_str());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // MPI when an MPI launcher started us (docs/distributed.md), else one process.
  std::unique_ptr<dist::Session> session;
  try {
    session = std::make_unique<dist::Session>(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion-mnist: error: %s\n", e.what());
    return 1;
  }
  dist::Communicator& world = session->world();
  Options o;
  CLI::App app{"Trains a GAP classifier (CAM-ready) on Fashion-MNIST and reports the test accuracy.", "fashion-mnist"};
  app.add_option("--data", o.data, "Directory with the four Fashion-MNIST IDX files (.gz)")->capture_default_str();
  app.add_option("--model", o.model, "Network")->check(CLI::IsMember(fmnist::net_names()))->capture_default_str();
  app.add_option("--epochs", o.epochs, "Passes over the training set")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--batch", o.batch, "Images per step")->check(CLI::Range(1, 60000))->capture_default_str();
  app.add_option("--optimizer", o.optimizer, "sgd (momentum, Nesterov), adam or adamw")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}))
      ->capture_default_str();
  app.add_option("--lr", o.lr,
                 "Peak learning rate of the cosine schedule (default: 0.05 for sgd, 0.002 for adam/adamw)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            const double lr = std::strtod(v.c_str(), nullptr);
            return lr > 0 && lr <= 10 ? "" : "the learning rate must be in (0, 10], got " + v;
          },
          "in (0, 10]", "learning rate"));
  app.add_option("--momentum", o.momentum, "SGD momentum")->check(CLI::Range(0.f, 0.999f))->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "Weight decay (L2 for sgd/adam, decoupled for adamw)")
      ->check(CLI::Range(0.f, 1.f))
      ->capture_default_str();
  app.add_option("--augment", o.augment, "Training augmentation")
      ->check(CLI::IsMember({"none", "flip", "flip-crop"}))
      ->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of initialisation, shuffling and augmentation")->capture_default_str();
  app.add_option("--limit", o.limit, "Train on the first N training images only (0: all 60000)")
      ->check(CLI::Range(int64_t(0), int64_t(60000)))
      ->capture_default_str();
  app.add_option("--test-limit", o.test_limit, "Evaluate on the first N test images only (0: all 10000)")
      ->check(CLI::Range(int64_t(0), int64_t(10000)))
      ->capture_default_str();
  app.add_option(
         "--progress", o.progress,
         "Progress display on stderr: auto (redraw on a terminal, one line per epoch otherwise), tty, plain, none")
      ->check(CLI::IsMember({"auto", "tty", "plain", "none"}))
      ->capture_default_str();
  app.add_option("--out", o.out, "Write the trained model here (safetensors; written atomically)")
      ->check(CLI::Validator(
          [](std::string& path) -> std::string {
            if (path.empty()) return "the path is empty";
            const fs::path parent = fs::absolute(fs::path(path)).parent_path();
            if (!fs::is_directory(parent)) return "the directory " + parent.string() + " does not exist";
            if (fs::is_directory(path)) return path + " is a directory; give a file name";
            return "";
          },
          "FILE", "writable file path"));
  app.failure_message(CLI::FailureMessage::help);  // a bad flag prints the error and the usage
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    if (code != 0 && world.size() > 1) world.abort(code);  // the other ranks would wait for this one
    return code;
  }
  if (app.count("--lr") == 0) o.lr = o.optimizer == "sgd" ? 0.05f : 0.002f;

  try {
    return run(o, world);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nfashion-mnist: error: %s\n", e.what());
    if (world.size() > 1) {
      std::fprintf(stderr, "fashion-mnist: rank %d of %d stopped with the error above; stopping every rank\n",
                   world.rank(), world.size());
      world.abort(1);
    }
    return 1;
  }
}

// data/: CSV reader, dataset layouts, the threaded loader's guarantees (every sample once, same seed
// -> same batches, unreadable files skipped and counted), augmentation, hair removal, the synthetic
// generator, and the shared ISIC 2017 copy when present.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <unistd.h>

#include "core/error.h"
#include "data/data.h"
#include "tests/support.h"

namespace fs = std::filesystem;
using namespace glimpse;
using namespace glimpse::data;

namespace {

// A fresh temporary directory, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() /
           ("glimpse_test_data_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& s) const { return (path / s).string(); }
};

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A small image with a per-index colour, so that different samples have different tensors.
void write_image(const std::string& path, int64_t size, int seed) {
  fs::create_directories(fs::path(path).parent_path());
  io::Image im(size, size, 3);
  for (int64_t y = 0; y < size; ++y)
    for (int64_t x = 0; x < size; ++x) {
      uint8_t* p = im.at(x, y);
      p[0] = static_cast<uint8_t>((seed * 37 + x * 5) % 256);
      p[1] = static_cast<uint8_t>((seed * 91 + y * 7) % 256);
      p[2] = static_cast<uint8_t>((seed * 13 + x * y) % 256);
    }
  io::save_png(path, im);
}

using glimpse::testing::error_of;

// A tiny ISIC-layout dataset: n images (labels cycle nevus, melanoma, SK), every 4th row val.
void write_tiny_isic(const TempDir& dir, int n, int64_t size = 20) {
  std::string csv = "split,image_id,diagnosis,melanoma,seborrheic_keratosis,mask_fraction\n";
  for (int i = 0; i < n; ++i) {
    const std::string id = "ISIC_" + std::to_string(1000 + i);
    const int label = i % 3;
    csv += std::string(i % 4 == 3 ? "val" : "train") + "," + id + "," +
           (label == 0   ? "nevus"
            : label == 1 ? "melanoma"
                         : "seborrheic_keratosis") +
           "," + (label == 1 ? "1" : "0") + "," + (label == 2 ? "1.0" : "0.0") + ",0.25\n";
    write_image(dir / ("images/" + id + (i % 2 ? ".PNG" : ".png")), size, i);
    io::Mask m(size, size);
    for (int64_t y = size / 4; y < 3 * size / 4; ++y)
      for (int64_t x = size / 4; x < 3 * size / 4; ++x) m.at(x, y) = 1;
    fs::create_directories(dir.path / "masks");
    io::save_png(dir / ("masks/" + id + "_segmentation.png"), m);
  }
  write_text(dir / "labels.csv", csv);
}

double mean_grey(const io::Image& im, const std::vector<std::pair<int64_t, int64_t>>& pts) {
  double s = 0;
  for (auto [x, y] : pts) {
    const uint8_t* p = im.at(x, y);
    s += 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
  }
  return s / pts.size();
}

}  // namespace

// ---- CSV ------------------------------------------------------------------------------------------

TEST(Csv, ParsesQuotesCrlfAndBlankLines) {
  TempDir dir;
  write_text(dir / "a.csv",
             "\xEF\xBB\xBFimage_id, melanoma ,note\r\n\r\nA,1,\"x, y\"\r\nB,0,\"say \"\"hi\"\"\"\n\nC,1,plain\n");
  const CsvTable t = read_csv(dir / "a.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"image_id", "melanoma", "note"}));
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][2], "x, y");
  EXPECT_EQ(t.rows[1][2], "say \"hi\"");
  EXPECT_EQ(t.lines, (std::vector<int64_t>{3, 4, 6}));
  EXPECT_EQ(t.column("melanoma"), 1);
  EXPECT_EQ(t.column("missing"), -1);
}

TEST(Csv, MalformedRowNamesFileAndLine) {
  TempDir dir;
  write_text(dir / "labels.csv", "image_id,melanoma,seborrheic_keratosis\nA,0,0\nB,1\n");
  const std::string e = error_of([&] { read_csv(dir / "labels.csv"); });
  EXPECT_NE(e.find("labels.csv:3"), std::string::npos) << e;
  EXPECT_NE(e.find("expected 3 fields"), std::string::npos) << e;
  EXPECT_NE(e.find("found 2"), std::string::npos) << e;

  write_text(dir / "q.csv", "a,b\n1,\"open\n");
  const std::string e2 = error_of([&] { read_csv(dir / "q.csv"); });
  EXPECT_NE(e2.find("q.csv:2"), std::string::npos) << e2;
  EXPECT_NE(e2.find("unterminated"), std::string::npos) << e2;
}

TEST(Dataset, BadFlagValueNamesFileLineColumnAndValue) {
  TempDir dir;
  write_tiny_isic(dir, 3);
  write_text(dir / "labels.csv", "image_id,melanoma,seborrheic_keratosis\nISIC_1000,0,0\nISIC_1001,yes,0\n");
  const std::string e = error_of([&] { Dataset::open_isic(dir.path.string()); });
  EXPECT_NE(e.find("labels.csv:3"), std::string::npos) << e;
  EXPECT_NE(e.find("'melanoma'"), std::string::npos) << e;
  EXPECT_NE(e.find("'yes'"), std::string::npos) << e;

  write_text(dir / "labels.csv", "image_id,melanoma,seborrheic_keratosis\nISIC_1000,1,1\n");
  const std::string e2 = error_of([&] { Dataset::open_isic(dir.path.string()); });
  EXPECT_NE(e2.find("labels.csv:2"), std::string::npos) << e2;
  EXPECT_NE(e2.find("both"), std::string::npos) << e2;

  write_text(dir / "labels.csv", "image_id,mel,seborrheic_keratosis\nISIC_1000,1,0\n");
  const std::string e3 = error_of([&] { Dataset::open_isic(dir.path.string()); });
  EXPECT_NE(e3.find("melanoma"), std::string::npos) << e3;
}

// ---- datasets --------------------------------------------------------------------------------------

TEST(Dataset, IsicLayoutSplitColumnAndClassCounts) {
  TempDir dir;
  write_tiny_isic(dir, 12);
  const Dataset all = Dataset::open(dir.path.string());
  ASSERT_EQ(all.size(), 12u);
  EXPECT_EQ(all.class_names, (std::vector<std::string>{"nevus", "melanoma", "seborrheic_keratosis"}));
  EXPECT_EQ(all.class_counts(), (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(all.missing_images, 0);
  for (const Sample& s : all.samples) {
    EXPECT_TRUE(fs::exists(s.image_path)) << s.image_path;
    EXPECT_TRUE(fs::exists(s.mask_path)) << s.mask_path;
  }
  EXPECT_EQ(all.samples[1].label, 1);
  EXPECT_EQ(all.samples[2].label, 2);  // "1.0" as in the official CSVs

  const Dataset train = Dataset::open_isic(dir.path.string(), "train");
  const Dataset val = Dataset::open_isic(dir.path.string(), "val");
  EXPECT_EQ(train.size(), 9u);
  EXPECT_EQ(val.size(), 3u);  // rows 3, 7, 11: labels 0, 1, 2
  EXPECT_EQ(val.class_counts(), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(val.samples[0].id, "ISIC_1003");

  const std::string e = error_of([&] { Dataset::open_isic(dir.path.string(), "test"); });
  EXPECT_NE(e.find("split 'test'"), std::string::npos) << e;
  EXPECT_NE(e.find("'train'"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { Dataset::open((dir.path / "nope").string()); }).find("nope"), std::string::npos);
}

TEST(Dataset, OfficialLayoutWithoutSplitAndMissingImage) {
  TempDir dir;
  write_tiny_isic(dir, 3);
  write_text(dir / "gt.csv",
             "image_id,melanoma,seborrheic_keratosis\nISIC_1000,0.0,0.0\nISIC_1001,1.0,0.0\nISIC_9999,0.0,1.0\n");
  const Dataset ds = Dataset::open_isic(dir.path.string(), "", dir / "gt.csv");
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds.missing_images, 1);
  EXPECT_NE(ds.samples[2].image_path.find("ISIC_9999"), std::string::npos);
  EXPECT_TRUE(ds.samples[2].mask_path.empty());
}

TEST(Dataset, ClassFolders) {
  TempDir dir;
  write_image(dir / "zebra/b.png", 8, 1);
  write_image(dir / "zebra/a.png", 8, 2);
  write_image(dir / "ant/c.png", 8, 3);
  write_text(dir / "ant/readme.txt", "not an image");
  const Dataset ds = Dataset::open(dir.path.string());
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"ant", "zebra"}));
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds.samples[0].id, "c");
  EXPECT_EQ(ds.samples[1].id, "a");
  EXPECT_EQ(ds.class_counts(), (std::vector<int64_t>{1, 2}));
}

// ---- loader ---------------------------------------------------------------------------------------

namespace {
std::vector<Batch> run_epoch(DataLoader& dl, int64_t epoch) {
  dl.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (dl.next(b)) out.push_back(b);
  return out;
}
bool same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].ids != b[i].ids || a[i].labels != b[i].labels) return false;
    if (a[i].images.shape() != b[i].images.shape() || a[i].images.to_vector() != b[i].images.to_vector()) return false;
  }
  return true;
}
}  // namespace

TEST(Loader, EverySampleOncePerEpochAndDeterministic) {
  TempDir dir;
  write_tiny_isic(dir, 23);
  const Dataset ds = Dataset::open(dir.path.string());
  LoaderOptions opt;
  opt.batch_size = 5;
  opt.image_size = 16;
  opt.augment = true;
  opt.seed = 42;
  opt.threads = 3;
  opt.prefetch = 2;
  DataLoader a(ds, opt);
  EXPECT_EQ(a.batches_per_epoch(), 5);
  const auto e0 = run_epoch(a, 0);
  ASSERT_EQ(e0.size(), 5u);
  std::multiset<std::string> ids;
  for (const Batch& b : e0) {
    EXPECT_EQ(b.images.shape(), (Shape{static_cast<int64_t>(b.ids.size()), 3, 16, 16}));
    ids.insert(b.ids.begin(), b.ids.end());
  }
  std::multiset<std::string> expected;
  for (const Sample& s : ds.samples) expected.insert(s.id);
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(e0.back().ids.size(), 3u);  // 23 = 4 * 5 + 3

  // Same seed, different thread count and prefetch: identical batches.
  LoaderOptions opt1 = opt;
  opt1.threads = 1;
  opt1.prefetch = 1;
  DataLoader b(ds, opt1);
  EXPECT_TRUE(same_batches(e0, run_epoch(b, 0)));
  // Another epoch: another order.
  const auto e1 = run_epoch(a, 1);
  EXPECT_NE(e0[0].ids, e1[0].ids);
  // Re-running epoch 0 reproduces it.
  EXPECT_TRUE(same_batches(e0, run_epoch(a, 0)));
  // Another seed: other batches.
  LoaderOptions opt2 = opt;
  opt2.seed = 43;
  DataLoader c(ds, opt2);
  EXPECT_FALSE(same_batches(e0, run_epoch(c, 0)));
  EXPECT_EQ(a.skipped(), 0);
}

TEST(Loader, DecodedCacheGivesTheSameBatchesAndServesLaterEpochs) {
  TempDir dir;
  write_tiny_isic(dir, 9);
  const Dataset ds = Dataset::open(dir.path.string());
  LoaderOptions opt;
  opt.batch_size = 4;
  opt.image_size = 12;
  opt.augment = true;
  opt.with_masks = true;
  opt.seed = 7;
  LoaderOptions uncached_opt = opt;
  uncached_opt.cache_mb = 0;
  DataLoader cached(ds, opt), uncached(ds, uncached_opt);
  const auto c0 = run_epoch(cached, 0);
  EXPECT_TRUE(same_batches(c0, run_epoch(uncached, 0)));
  // With the files gone, the cached loader still delivers every sample (it decodes nothing now);
  // the uncached one skips all of them.
  for (const Sample& s : ds.samples) std::filesystem::remove(s.image_path);
  const auto c1 = run_epoch(cached, 1);
  size_t n = 0;
  for (const Batch& b : c1) {
    n += b.ids.size();
    ASSERT_EQ(b.masks.size(), b.ids.size());
  }
  EXPECT_EQ(n, ds.samples.size());
  EXPECT_EQ(cached.skipped(), 0);
  EXPECT_TRUE(same_batches(c0, run_epoch(cached, 0)));  // epoch 0 again, now from the cache
  EXPECT_TRUE(run_epoch(uncached, 1).empty());
  EXPECT_EQ(uncached.skipped(), static_cast<int64_t>(ds.samples.size()));
}

TEST(Loader, NoShuffleKeepsOrderAndDropLast) {
  TempDir dir;
  write_tiny_isic(dir, 7);
  const Dataset ds = Dataset::open(dir.path.string());
  LoaderOptions opt;
  opt.batch_size = 3;
  opt.image_size = 8;
  opt.shuffle = false;
  opt.drop_last = true;
  opt.with_masks = true;
  DataLoader dl(ds, opt);
  const auto e = run_epoch(dl, 0);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].ids, (std::vector<std::string>{"ISIC_1000", "ISIC_1001", "ISIC_1002"}));
  ASSERT_EQ(e[0].masks.size(), 3u);
  EXPECT_EQ(e[0].masks[0].width, 8);
  EXPECT_EQ(e[0].masks[0].count(), 16);  // the centre 4x4 of 8x8
}

TEST(Loader, UnreadableImageSkippedAndCountedOrFatal) {
  TempDir dir;
  write_tiny_isic(dir, 6);
  write_text(dir / "images/ISIC_1002.png", "this is not a PNG");
  const Dataset ds = Dataset::open(dir.path.string());
  LoaderOptions opt;
  opt.batch_size = 4;
  opt.image_size = 8;
  opt.seed = 3;
  DataLoader dl(ds, opt);
  int64_t seen = 0;
  for (const Batch& b : run_epoch(dl, 0)) {
    seen += static_cast<int64_t>(b.ids.size());
    EXPECT_EQ(std::count(b.ids.begin(), b.ids.end(), "ISIC_1002"), 0);
  }
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(dl.skipped(), 1);

  opt.fail_on_unreadable = true;
  DataLoader strict(ds, opt);
  const std::string e = error_of([&] { run_epoch(strict, 0); });
  EXPECT_NE(e.find("ISIC_1002.png"), std::string::npos) << e;

  // A mask whose size differs from its image is a bad sample too, named by both paths.
  io::save_png(dir / "masks/ISIC_1004_segmentation.png", io::Mask(7, 9));
  opt.with_masks = true;
  opt.fail_on_unreadable = false;
  DataLoader with_masks(ds, opt);
  int64_t n = 0;
  for (const Batch& b : run_epoch(with_masks, 0)) n += static_cast<int64_t>(b.ids.size());
  EXPECT_EQ(n, 4);
  EXPECT_EQ(with_masks.skipped(), 2);
  opt.fail_on_unreadable = true;
  opt.seed = 4;
  Dataset only_bad = ds;
  only_bad.samples = {ds.samples[4]};
  DataLoader strict_mask(only_bad, opt);
  const std::string e2 = error_of([&] { run_epoch(strict_mask, 0); });
  EXPECT_NE(e2.find("7x9"), std::string::npos) << e2;
  EXPECT_NE(e2.find("ISIC_1004_segmentation.png"), std::string::npos) << e2;
}

TEST(Loader, MatchesLoadForModel) {
  // What a model is trained on (the loader, no augmentation) and what explain feeds it
  // (load_for_model) are the same pixels.
  TempDir dir;
  write_tiny_isic(dir, 3, 50);
  const Dataset ds = Dataset::open(dir.path.string());
  LoaderOptions opt;
  opt.batch_size = 1;
  opt.image_size = 24;
  opt.shuffle = false;
  for (const Preprocess pre : {Preprocess{}, Preprocess{true, false}, Preprocess{true, true}}) {
    opt.preprocess = pre;
    DataLoader dl(ds, opt);
    Batch b;
    ASSERT_TRUE(dl.next(b));
    EXPECT_EQ(b.images.to_vector(), load_for_model(ds.samples[0].image_path, 24, opt.preprocess).to_vector());
  }
}

TEST(Loader, DestroyedMidEpochShutsDownCleanly) {
  TempDir dir;
  write_tiny_isic(dir, 20, 32);
  const Dataset ds = Dataset::open(dir.path.string());
  LoaderOptions opt;
  opt.batch_size = 2;
  opt.image_size = 16;
  opt.threads = 3;
  opt.prefetch = 2;
  const auto t0 = std::chrono::steady_clock::now();
  for (int rep = 0; rep < 5; ++rep) {
    DataLoader dl(ds, opt);
    dl.start_epoch(0);
    Batch b;
    ASSERT_TRUE(dl.next(b));
    dl.start_epoch(1);  // abandon epoch 0 mid-way
    ASSERT_TRUE(dl.next(b));
  }  // destroyed with workers blocked on a full buffer
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

// ---- normalization --------------------------------------------------------------------------------

TEST(Normalize, LoadForModelAndDenormalizeRoundTrip) {
  TempDir dir;
  write_image(dir / "x.png", 16, 5);
  const Tensor t = load_for_model(dir / "x.png", 16);
  EXPECT_EQ(t.shape(), (Shape{1, 3, 16, 16}));
  const Tensor raw = io::load_image_tensor(dir / "x.png");
  const Tensor back = denormalize(t);
  const auto a = raw.to_vector(), b = back.to_vector();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5f);
  EXPECT_NEAR(t.at({0, 0, 0, 0}), (raw.at({0, 0, 0, 0}) - kNormMean[0]) / kNormStd[0], 1e-5f);
}

// ---- augmentation ---------------------------------------------------------------------------------

TEST(Augment, KeepsShapeAndIsDeterministic) {
  const SynthImage s = synth_image(7, 1, 48, false);
  io::Image rect = io::resize_image(s.image, 40, 24);
  AugmentOptions opt;
  for (const io::Image* im : std::vector<const io::Image*>{&s.image, &rect}) {
    Rng r1(5), r2(5), r3(6);
    const io::Image a = augment(*im, opt, r1), b = augment(*im, opt, r2), c = augment(*im, opt, r3);
    EXPECT_EQ(a.width, im->width);
    EXPECT_EQ(a.height, im->height);
    EXPECT_EQ(a.channels, 3);
    EXPECT_EQ(a.pixels, b.pixels);
    EXPECT_NE(a.pixels, c.pixels);
  }
  // Everything off: the identity.
  AugmentOptions none{false, false, 1.f, 0.f};
  Rng r(1);
  EXPECT_EQ(augment(s.image, none, r).pixels, s.image.pixels);
}

TEST(Augment, VignetteBlacksOutAllButACircle) {
  io::Image im(40, 40, 3, 180);
  io::Mask m(40, 40, 1);
  AugmentOptions opt{false, false, 1.f, 0.f, 1.f};  // vignette only, always
  int black_corners = 0;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    Rng rng(seed);
    io::Mask mk = m;
    const io::Image out = augment(im, mk, opt, rng);
    EXPECT_EQ(mk.data, m.data);  // masks are not touched
    // The middle is kept (centre within 8% of it, radius >= 45% of the side)...
    EXPECT_EQ(out.at(20, 20)[0], 180);
    // ...the farthest corner (>= 69% of the side from the circle's centre) is always darkened,
    // and most corners end up black.
    int darker = 0;
    for (auto [x, y] : {std::pair{0, 0}, {39, 0}, {0, 39}, {39, 39}}) {
      darker += out.at(x, y)[0] < 180;
      black_corners += out.at(x, y)[0] == 0;
    }
    EXPECT_GE(darker, 1) << "seed " << seed;
    for (uint8_t v : out.pixels) ASSERT_LE(v, 180);  // only darkening
  }
  EXPECT_GE(black_corners, 16);
  // Probability 0: identical to no vignette at all (and draws nothing from the Rng).
  AugmentOptions none{false, false, 1.f, 0.f, 0.f};
  Rng a(4), b(4);
  EXPECT_EQ(augment(im, none, a).pixels, im.pixels);
  EXPECT_EQ(a.engine()(), b.engine()());
}

TEST(Augment, StickerIsAColouredDotCutByTheBorder) {
  io::Image im(60, 60, 3, 128);
  io::Mask m(60, 60, 1);
  AugmentOptions opt{false, false, 1.f, 0.f, 0.f, 1.f};  // stickers only, always
  for (uint64_t seed = 0; seed < 12; ++seed) {
    Rng rng(seed);
    io::Mask mk = m;
    const io::Image out = augment(im, mk, opt, rng);
    EXPECT_EQ(mk.data, m.data);  // masks are not touched
    // The dot covers pixels, all of them connected to the border: flood from the changed border
    // pixels must reach every changed pixel (one dot, cut by an edge).
    std::vector<uint8_t> changed(60 * 60), seen(60 * 60);
    int64_t count = 0;
    for (int64_t i = 0; i < 60 * 60; ++i) {
      const uint8_t* p = out.pixels.data() + i * 3;
      changed[i] = p[0] != 128 || p[1] != 128 || p[2] != 128;
      count += changed[i];
    }
    ASSERT_GT(count, 60 * 60 / 100) << "seed " << seed;      // radius >= 0.12 side, at least half inside
    ASSERT_LT(count, 60 * 60 / 3) << "seed " << seed;        // radius <= 0.38 side: at most half a disc
    EXPECT_FALSE(changed[30 * 60 + 30]) << "seed " << seed;  // never reaches the middle
    std::vector<int64_t> stack;
    for (int64_t i = 0; i < 60 * 60; ++i) {
      const int64_t x = i % 60, y = i / 60;
      if (changed[i] && (x == 0 || y == 0 || x == 59 || y == 59)) stack.push_back(i), seen[i] = 1;
    }
    int64_t reached = 0;
    while (!stack.empty()) {
      const int64_t i = stack.back();
      stack.pop_back();
      ++reached;
      const int64_t x = i % 60, y = i / 60;
      for (auto [dx, dy] : {std::pair{1, 0}, {-1, 0}, {0, 1}, {0, -1}}) {
        const int64_t nx = x + dx, ny = y + dy, j = ny * 60 + nx;
        if (nx < 0 || ny < 0 || nx >= 60 || ny >= 60 || !changed[j] || seen[j]) continue;
        seen[j] = 1;
        stack.push_back(j);
      }
    }
    EXPECT_EQ(reached, count) << "seed " << seed;
  }
  // Probability 0: identical, and draws nothing from the Rng.
  AugmentOptions none{false, false, 1.f, 0.f, 0.f, 0.f};
  Rng a(4), b(4);
  EXPECT_EQ(augment(im, none, a).pixels, im.pixels);
  EXPECT_EQ(a.engine()(), b.engine()());
}

TEST(Augment, MaskFollowsTheImage) {
  // A red L-shape on grey; its mask must stay on the red pixels through flips and rotations.
  io::Image im(24, 24, 3, 100);
  io::Mask m(24, 24);
  for (int64_t y = 3; y < 20; ++y)
    for (int64_t x = 4; x < 9; ++x) m.at(x, y) = 1;
  for (int64_t y = 15; y < 20; ++y)
    for (int64_t x = 4; x < 18; ++x) m.at(x, y) = 1;
  for (int64_t i = 0; i < 24 * 24; ++i)
    if (m.data[i]) im.pixels[i * 3] = 250;
  AugmentOptions opt{true, true, 1.f, 0.f};
  std::set<std::string> shapes;  // distinct masks reached
  for (uint64_t seed = 0; seed < 16; ++seed) {
    Rng rng(seed);
    io::Mask mk = m;
    const io::Image out = augment(im, mk, opt, rng);
    shapes.insert(std::string(mk.data.begin(), mk.data.end()));
    ASSERT_EQ(mk.count(), m.count());
    for (int64_t i = 0; i < 24 * 24; ++i)
      ASSERT_EQ(mk.data[i] != 0, out.pixels[i * 3] > 200) << "seed " << seed << " pixel " << i;
  }
  EXPECT_GE(shapes.size(), 6u);  // the 8 flip/rotation combinations mostly reached

  // With a crop: the mask still marks (nearly) the red pixels.
  AugmentOptions crop{true, true, 0.5f, 0.f};
  Rng rng(9);
  io::Mask mk = m;
  const io::Image out = augment(im, mk, crop, rng);
  int64_t agree = 0;
  for (int64_t i = 0; i < 24 * 24; ++i) agree += (mk.data[i] != 0) == (out.pixels[i * 3] > 175);
  EXPECT_GE(agree, 24 * 24 * 9 / 10);
}

// ---- hair removal ---------------------------------------------------------------------------------

TEST(ColorConstancy, TintIsRemovedAndGreyIsKept) {
  using glimpse::io::Image;
  // A flat tinted photo becomes flat grey of the same norm: 255 |e| / sqrt(3) = 229.1 / 1.732.
  Image flat(5, 4, 3);
  for (int64_t i = 0; i < 20; ++i) {
    flat.pixels[i * 3] = 200;
    flat.pixels[i * 3 + 1] = 100;
    flat.pixels[i * 3 + 2] = 50;
  }
  const Image g = shades_of_gray(flat);
  for (uint8_t v : g.pixels) EXPECT_EQ(v, 132);
  // A grey photo (equal channels, any texture) is left as it is.
  Rng rng(3);
  Image grey(16, 16, 3);
  for (int64_t i = 0; i < 256; ++i)
    grey.pixels[i * 3] = grey.pixels[i * 3 + 1] = grey.pixels[i * 3 + 2] = static_cast<uint8_t>(40 + rng.below(150));
  EXPECT_EQ(shades_of_gray(grey).pixels, grey.pixels);
  // Von Kries invariance: tinting a textured photo (each channel scaled) changes the corrected
  // photo only by one overall brightness factor (the gain keeps |e|, which the tint lowered), up to
  // rounding.
  Image tex(16, 16, 3), tinted(16, 16, 3);
  const float tint[3] = {1.0f, 0.8f, 0.55f};
  for (int64_t i = 0; i < 256 * 3; ++i) {
    tex.pixels[i] = static_cast<uint8_t>(30 + rng.below(170));
    tinted.pixels[i] = static_cast<uint8_t>(std::lround(tex.pixels[i] * tint[i % 3]));
  }
  const Image a = shades_of_gray(tex), b = shades_of_gray(tinted);
  double sa = 0, sb = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    sa += a.pixels[i];
    sb += b.pixels[i];
  }
  const double scale = sb / sa;
  EXPECT_LT(scale, 0.95);  // the tint darkened the photo
  double worst = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(b.pixels[i] - scale * a.pixels[i]));
  EXPECT_LE(worst, 2.0);
  int tinted_worst = 0;  // and the tint itself was far bigger than that
  for (size_t i = 0; i < a.pixels.size(); ++i)
    tinted_worst = std::max(tinted_worst, std::abs(tex.pixels[i] - tinted.pixels[i]));
  EXPECT_GT(tinted_worst, 50);
  EXPECT_NE(error_of([&] { shades_of_gray(tex, 0.5f); }).find("0.5"), std::string::npos);
  // Through the loader: the preprocessing runs before resizing, as load_for_model does it.
  EXPECT_EQ(preprocess(tex, Preprocess{false, true}).pixels, a.pixels);
  EXPECT_EQ(preprocess(tex, Preprocess{}).pixels, tex.pixels);
}

TEST(HairRemoval, RemovesThinDarkLinesKeepsBlob) {
  const int64_t N = 128;
  io::Image im(N, N, 3);
  Rng rng(3);
  for (int64_t i = 0; i < N * N; ++i) {
    const float g = rng.normal(0.f, 3.f);
    im.pixels[i * 3] = static_cast<uint8_t>(225 + g);
    im.pixels[i * 3 + 1] = static_cast<uint8_t>(180 + g);
    im.pixels[i * 3 + 2] = static_cast<uint8_t>(160 + g);
  }
  std::vector<std::pair<int64_t, int64_t>> blob, hair;
  for (int64_t y = 0; y < N; ++y)
    for (int64_t x = 0; x < N; ++x) {
      if (std::hypot(x - 40.0, y - 70.0) < 20) {
        uint8_t* p = im.at(x, y);
        p[0] = 90, p[1] = 60, p[2] = 45;
        if (std::hypot(x - 40.0, y - 70.0) < 14) blob.emplace_back(x, y);
      }
    }
  // a 2-px hair crossing the image diagonally, and a 1-px horizontal one (also over the blob)
  for (int64_t t = 0; t < N; ++t)
    for (int64_t w = 0; w < 2; ++w) {
      const int64_t x = t, y = std::clamp<int64_t>(t / 2 + 10 + w, 0, N - 1);
      uint8_t* p = im.at(x, y);
      p[0] = 35, p[1] = 25, p[2] = 20;
      if (std::hypot(x - 40.0, y - 70.0) > 24) hair.emplace_back(x, y);
    }
  for (int64_t x = 5; x < 120; ++x) {
    uint8_t* p = im.at(x, 100);
    p[0] = 40, p[1] = 30, p[2] = 25;
    hair.emplace_back(x, 100);
  }
  const double skin = 0.299 * 225 + 0.587 * 180 + 0.114 * 160;
  const double hair_before = skin - mean_grey(im, hair), blob_before = skin - mean_grey(im, blob);
  io::Mask found;
  const io::Image out = remove_hair(im, &found);
  const double hair_after = skin - mean_grey(out, hair), blob_after = skin - mean_grey(out, blob);
  EXPECT_GT(hair_before, 100);
  EXPECT_LT(hair_after, 0.15 * hair_before) << "hair darkness " << hair_before << " -> " << hair_after;
  EXPECT_GT(blob_after, 0.9 * blob_before) << "blob darkness " << blob_before << " -> " << blob_after;
  int64_t blob_flagged = 0;
  for (auto [x, y] : blob) blob_flagged += found.at(x, y);
  EXPECT_LT(blob_flagged, static_cast<int64_t>(blob.size()) / 10);
  EXPECT_EQ(out.width, N);
}

// ---- synthetic data -------------------------------------------------------------------------------

TEST(Synthetic, MasksCoverTheLesionAndClassesDiffer) {
  double frac[3] = {0, 0, 0};
  for (int64_t label = 0; label < 3; ++label)
    for (uint64_t seed = 0; seed < 6; ++seed) {
      const SynthImage s = synth_image(seed, label, 64, false);
      ASSERT_EQ(s.mask.width, 64);
      const int64_t n = s.mask.count();
      ASSERT_GT(n, 64 * 64 / 50);
      frac[label] += static_cast<double>(n) / (64 * 64) / 6;
      // the lesion is darker than the skin around it
      std::vector<std::pair<int64_t, int64_t>> in, out;
      for (int64_t y = 0; y < 64; ++y)
        for (int64_t x = 0; x < 64; ++x) (s.mask.at(x, y) ? in : out).emplace_back(x, y);
      EXPECT_LT(mean_grey(s.image, in) + 20, mean_grey(s.image, out)) << "label " << label << " seed " << seed;
    }
  EXPECT_LT(frac[0], frac[2]);  // nevi are the smallest, melanomas the largest on average
  EXPECT_LT(frac[2], frac[1]);
  // the tablecloth scene
  const SynthImage t = synth_image(1, 1, 64, true, true);
  EXPECT_TRUE(t.cloth);
}

TEST(Synthetic, WriteIsDeterministicAndOpensAsIsic) {
  TempDir dir;
  SynthOptions opt;
  opt.count = 15;
  opt.size = 48;
  opt.seed = 11;
  opt.progress = false;
  opt.threads = 3;
  write_synthetic(dir / "a", opt);
  opt.threads = 1;
  write_synthetic(dir / "b", opt);
  opt.seed = 12;
  write_synthetic(dir / "c", opt);
  EXPECT_EQ(read_bytes(dir / "a/labels.csv"), read_bytes(dir / "b/labels.csv"));
  for (const char* f : {"images/SYN_0000000.png", "images/SYN_0000014.png", "masks/SYN_0000007_segmentation.png"}) {
    const std::string a = read_bytes(dir / (std::string("a/") + f));
    ASSERT_FALSE(a.empty()) << f;
    EXPECT_EQ(a, read_bytes(dir / (std::string("b/") + f))) << f;
  }
  EXPECT_NE(read_bytes(dir / "a/images/SYN_0000000.png"), read_bytes(dir / "c/images/SYN_0000000.png"));

  const Dataset all = Dataset::open(dir / "a");
  EXPECT_EQ(all.class_counts(), (std::vector<int64_t>{5, 5, 5}));
  const Dataset val = Dataset::open(dir / "a", "val");
  EXPECT_EQ(val.class_counts(), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(Dataset::open(dir / "a", "train").size(), 12u);
  for (const Sample& s : all.samples) {
    ASSERT_FALSE(s.mask_path.empty());
    const io::Mask m = io::load_mask(s.mask_path);
    EXPECT_GT(m.count(), 0);
  }
  // and it loads
  LoaderOptions lo;
  lo.batch_size = 8;
  lo.image_size = 32;
  lo.with_masks = true;
  lo.augment = true;
  lo.preprocess.hair_removal = true;
  DataLoader dl(all, lo);
  Batch b;
  ASSERT_TRUE(dl.next(b));
  EXPECT_EQ(b.images.shape(), (Shape{8, 3, 32, 32}));
  EXPECT_EQ(b.masks.size(), 8u);
}

// ---- the shared ISIC 2017 data ----------------------------------------------------------------------

TEST(Isic2017, OpensWithTheDocumentedCounts) {
  const std::string root = find_isic2017();
  if (root.empty()) GTEST_SKIP() << "ISIC 2017 not found (set GLIMPSE_ISIC_DIR or place it at ../shared/data/isic2017)";
  const Dataset train = Dataset::open(root, "train");
  const Dataset val = Dataset::open(root, "val");
  ASSERT_EQ(train.size(), 2000u);
  ASSERT_EQ(val.size(), 150u);
  EXPECT_EQ(train.class_counts(), (std::vector<int64_t>{1372, 374, 254}));
  EXPECT_EQ(val.class_counts(), (std::vector<int64_t>{78, 30, 42}));
  EXPECT_EQ(train.missing_images + val.missing_images, 0);
  for (const Dataset* ds : {&train, &val})
    for (const Sample& s : ds->samples) ASSERT_FALSE(s.mask_path.empty()) << s.id;

  LoaderOptions opt;
  opt.batch_size = 8;
  opt.image_size = 64;
  opt.with_masks = true;
  opt.augment = true;
  DataLoader dl(val, opt);
  Batch b;
  ASSERT_TRUE(dl.next(b));
  EXPECT_EQ(b.images.shape(), (Shape{8, 3, 64, 64}));
  ASSERT_EQ(b.masks.size(), 8u);
  for (const io::Mask& m : b.masks) {
    EXPECT_EQ(m.width, 64);
    EXPECT_GT(m.count(), 0);
  }
  EXPECT_EQ(dl.skipped(), 0);
}

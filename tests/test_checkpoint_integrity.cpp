// Checkpoints as untrusted input: the malformed files of ../shared/reliability, the shape rule of
// core/shape.h (zero dims included), glimpse.checksum (written, verified, its format pinned by an
// independent implementation here and in tools/make_fuzz_seeds.py), and the melanoma app's metadata
// bounds and checks against the weights' own shapes -- every refusal a glimpse::Error naming the file,
// and fast.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common.h"
#include "core/error.h"
#include "core/io/safetensors.h"
#include "core/shape.h"
#include "layers/checkpoint.h"
#include "layers/models.h"
#include "tests/support.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace {

const std::string kReliability = std::string(GLIMPSE_SOURCE_DIR) + "/../shared/reliability";
const std::string kCorpus = std::string(GLIMPSE_SOURCE_DIR) + "/tests/fuzz/corpus";

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  return n;
}

using glimpse::testing::expect_error;

class CheckpointIntegrity : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("glimpse_ci_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    detail::set_safetensors_skip_checksum(false);
    fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A melanoma checkpoint as `train` writes it: small-gap, 16 px, 3 classes.
  std::string melanoma_checkpoint(const std::string& name = "model.safetensors") {
    Rng rng(5);
    auto net = make_model("small-gap", 3, 16, rng);
    mel::ModelMeta meta;
    meta.size = 16;
    meta.classes = 3;
    meta.class_names = mel::class_names();
    meta.epoch = 1;
    meta.epochs = 2;
    meta.step = 10;
    meta.lr = 3e-3;
    meta.seed = 7;
    meta.val_auc_mean = 0.5;
    save_checkpoint(*net, path(name), mel::meta_to_map(meta));
    return path(name);
  }
  // A copy of `src` with metadata edits applied (an empty value erases the key), saved with a
  // freshly computed checksum or none: the bounds themselves, behind a valid checksum.
  std::string edited(const std::string& src, const std::map<std::string, std::string>& edits, bool checksum,
                     const std::string& name) {
    SafetensorsFile f = load_safetensors(src);
    for (const auto& [k, v] : edits) {
      if (v.empty())
        f.metadata.erase(k);
      else
        f.metadata[k] = v;
    }
    save_safetensors(path(name), f.tensors, f.metadata, checksum);
    return path(name);
  }
  fs::path dir_;
};

// An independent implementation of the documented checksum (core/io/safetensors.h), over the raw
// file: if the C++ reader and writer drifted from their own documentation together, this catches it.
std::string documented_checksum(const std::string& bytes) {
  const uint64_t n = header_length(bytes);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));  // sorted keys: the canonical order
  std::string stream;
  auto u64 = [&](uint64_t x) {
    for (int i = 0; i < 8; ++i) stream += static_cast<char>((x >> (8 * i)) & 0xff);
  };
  auto str = [&](const std::string& s) {
    u64(s.size());
    stream += s;
  };
  str("glimpse.safetensors.checksum.v1");
  nlohmann::json meta = header.value("__metadata__", nlohmann::json::object());
  meta.erase("glimpse.checksum");
  u64(meta.size());
  for (const auto& [k, v] : meta.items()) {
    str(k);
    str(v.get<std::string>());
  }
  u64(header.size() - (header.contains("__metadata__") ? 1 : 0));
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    str(name);
    str(e["dtype"].get<std::string>());
    u64(e["shape"].size());
    for (const auto& d : e["shape"]) u64(d.get<uint64_t>());
    u64(e["data_offsets"][0].get<uint64_t>());
    u64(e["data_offsets"][1].get<uint64_t>());
  }
  stream += bytes.substr(8 + n);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08lx",
                ::crc32(0L, reinterpret_cast<const Bytef*>(stream.data()), static_cast<uInt>(stream.size())));
  return std::string("crc32:") + buf;
}

}  // namespace

// ---- the files of ../shared/reliability ------------------------------------------------------------

TEST_F(CheckpointIntegrity, ReliabilityFilesAreRefusedNamingTheFile) {
  if (!fs::is_directory(kReliability)) GTEST_SKIP() << kReliability << " is absent (it lives beside the repository)";
  int seen = 0;
  for (const auto& e : fs::directory_iterator(kReliability)) {
    if (e.path().extension() != ".safetensors") continue;
    ++seen;
    const std::string p = e.path().string(), name = e.path().filename().string();
    SCOPED_TRACE(name);
    expect_error([&] { load_safetensors(p); }, {name});
    expect_error([&] { mel::load_model(p); }, {name});
    Rng rng(1);
    auto net = make_model("small-gap", 3, 16, rng);
    expect_error([&] { load_checkpoint(*net, p); }, {name});
  }
  EXPECT_GE(seen, 3);
  // What each says.
  const std::string dir = kReliability + "/";
  if (fs::exists(dir + "number_overflow_1e400.safetensors"))
    expect_error([&] { load_safetensors(dir + "number_overflow_1e400.safetensors"); }, {"1e400", "cannot represent"});
  if (fs::exists(dir + "zero_dim_stride_overflow.safetensors"))
    expect_error([&] { load_safetensors(dir + "zero_dim_stride_overflow.safetensors"); },
                 {"'z'", "[0, 4611686018427387904, 4]", "too large"});
  if (fs::exists(dir + "checkpoint_fuzz_1.safetensors"))
    expect_error([&] { mel::load_model(dir + "checkpoint_fuzz_1.safetensors"); }, {"header length"});
}

// The fuzzers' regression corpus holds the same files; the seeds beside them are valid, and those
// with a checksum (computed in Python by tools/make_fuzz_seeds.py) verify.
TEST_F(CheckpointIntegrity, FuzzCorpusSeedsLoadAndVerify) {
  if (!fs::is_directory(kCorpus + "/safetensors")) GTEST_SKIP() << "no corpus at " << kCorpus;
  int seeds = 0;
  for (const auto& e : fs::directory_iterator(kCorpus + "/safetensors")) {
    const std::string name = e.path().filename().string();
    SCOPED_TRACE(name);
    if (name.rfind("seed_", 0) == 0) {
      ++seeds;
      SafetensorsFile f = load_safetensors(e.path().string());
      EXPECT_EQ(f.checksum_verified, f.has_checksum);
      EXPECT_EQ(f.has_checksum, name != "seed_empty_tensor.safetensors");
    } else {
      expect_error([&] { load_safetensors(e.path().string()); }, {name});
    }
  }
  EXPECT_EQ(seeds, 3);
  const std::string head = kCorpus + "/checkpoint/seed_small_gap_head_only.safetensors";
  EXPECT_TRUE(load_safetensors(head).checksum_verified);
  // Valid metadata, a classifier that fits it: refused only by the strict load (the rest is absent).
  expect_error([&] { mel::load_model(head); }, {"missing from the file", "features.0.weight"});
}

// ---- shapes -----------------------------------------------------------------------------------------

TEST(ShapeRule, ZeroDimsCountForStrides) {
  const Shape bad = {0, int64_t(1) << 62, 4};
  EXPECT_EQ(shape_fault({3, 0, 2}), "");
  EXPECT_EQ(shape_numel({3, 0, 2}), 0);
  EXPECT_EQ(contiguous_strides({3, 0, 2}), (Shape{2, 2, 1}));  // as PyTorch's torch.empty(3, 0, 2).stride()
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_NE(shape_fault(bad).find("[0, 4611686018427387904, 4]"), std::string::npos);
  expect_error([&] { contiguous_strides(bad); }, {"[0, 4611686018427387904, 4]", "too large"});
  expect_error([&] { shape_numel(bad); }, {"[0, 4611686018427387904, 4]"});
  expect_error([&] { Tensor::empty(bad); }, {"[0, 4611686018427387904, 4]"});
  expect_error([&] { Tensor::empty({2, -1}); }, {"[2, -1]", "negative"});
  expect_error([&] { Tensor::empty({int64_t(1) << 32, int64_t(1) << 31}); }, {"too large"});
  // The largest product that fits passes the rule (it is not allocated here).
  EXPECT_EQ(shape_fault({int64_t(1) << 31, int64_t(1) << 31, 0}), "");
  EXPECT_NE(shape_fault({int64_t(1) << 32, int64_t(1) << 31, 0}), "");
  // view() with a product that wraps around to numel() is refused.
  Tensor t = Tensor::zeros({4});
  expect_error([&] { t.view({int64_t(1) << 62, 4, 4}); }, {"view()"});
}

// ---- the checksum -------------------------------------------------------------------------------

TEST_F(CheckpointIntegrity, ChecksumIsWrittenAndVerified) {
  const std::string p = melanoma_checkpoint();
  const std::string bytes = read_bytes(p);
  const std::string header = bytes.substr(8, header_length(bytes));
  EXPECT_NE(header.find("\"glimpse.checksum\":\"crc32:"), std::string::npos) << header.substr(0, 300);
  const SafetensorsFile f = load_safetensors(p);
  EXPECT_TRUE(f.has_checksum);
  EXPECT_TRUE(f.checksum_verified);
  EXPECT_FALSE(f.metadata.count(kSafetensorsChecksumKey)) << "the key is glimpse's, not the caller's";
  // The stored value is the documented one, computed independently.
  auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"]["glimpse.checksum"].get<std::string>(), documented_checksum(bytes));
  Rng rng(1);
  auto net = make_model("small-gap", 3, 16, rng);
  EXPECT_TRUE(load_checkpoint(*net, p).checksum_verified);
  // The key is reserved.
  expect_error(
      [&] {
        save_safetensors(path("x"), {{"a", Tensor::ones({1})}}, {{"glimpse.checksum", "crc32:00000000"}});
      },
      {"glimpse.checksum", "reserved"});
  expect_error([&] { save_checkpoint(*net, path("y"), {{"glimpse.checksum", "x"}}); }, {"reserved"});
}

TEST_F(CheckpointIntegrity, ChecksumIgnoresJsonOrderAndWhitespace) {
  const std::string p = melanoma_checkpoint();
  const std::string bytes = read_bytes(p);
  const uint64_t n = header_length(bytes);
  // The same header, its objects in reverse order and pretty-printed: the same file to a reader.
  auto header = nlohmann::ordered_json::parse(bytes.substr(8, n));
  nlohmann::ordered_json reversed = nlohmann::ordered_json::object();
  std::vector<std::string> keys;
  for (const auto& [k, v] : header.items()) keys.push_back(k);
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) reversed[*it] = header[*it];
  std::string text = reversed.dump(1);
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  write_bytes(path("reordered"), out + text + bytes.substr(8 + n));
  EXPECT_TRUE(load_safetensors(path("reordered")).checksum_verified);
}

TEST_F(CheckpointIntegrity, FlippedBitInTheWeightsIsRefused) {
  const std::string p = melanoma_checkpoint();
  const std::string good = read_bytes(p);
  const size_t data_start = 8 + header_length(good);
  // Every bit of a few bytes spread over the data section, the exponent bits of a weight included.
  for (size_t at : {data_start, data_start + 3, data_start + (good.size() - data_start) / 2, good.size() - 1}) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[at] = static_cast<char>(static_cast<unsigned char>(bad[at]) ^ (1u << bit));
      write_bytes(path("flipped.safetensors"), bad);
      SCOPED_TRACE("byte " + std::to_string(at) + " bit " + std::to_string(bit));
      expect_error([&] { load_safetensors(path("flipped.safetensors")); },
                   {"flipped.safetensors", "corrupt: checksum mismatch"});
      expect_error([&] { mel::load_model(path("flipped.safetensors")); }, {"flipped.safetensors", "checksum mismatch"});
    }
  }
  // With verification skipped (the fuzzers' hook), the flip loads: the checksum is what caught it.
  std::string bad = good;
  bad[good.size() - 2] = static_cast<char>(static_cast<unsigned char>(bad[good.size() - 2]) ^ 0x40);
  write_bytes(path("flipped.safetensors"), bad);
  detail::set_safetensors_skip_checksum(true);
  const SafetensorsFile f = load_safetensors(path("flipped.safetensors"));
  EXPECT_TRUE(f.has_checksum);
  EXPECT_FALSE(f.checksum_verified);
}

TEST_F(CheckpointIntegrity, EditedMetadataIsRefused) {
  const std::string p = melanoma_checkpoint();
  const std::string good = read_bytes(p);
  // Same length, so the file stays well-formed: only the checksum can tell.
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"input_size\":\"16\"", "\"input_size\":\"64\""},
           {"\"classes\":\"3\"", "\"classes\":\"4\""},
           {"\"epoch\":\"1\"", "\"epoch\":\"2\""},
           {"\"dtype\":\"F32\",\"shape\":[3,128]", "\"dtype\":\"F32\",\"shape\":[128,3]"}}) {
    std::string bad = good;
    const size_t at = bad.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    bad.replace(at, from.size(), to);
    write_bytes(path("edited.safetensors"), bad);
    SCOPED_TRACE(to);
    expect_error([&] { load_safetensors(path("edited.safetensors")); }, {"edited.safetensors", "checksum mismatch"});
    expect_error([&] { mel::load_model(path("edited.safetensors")); }, {"edited.safetensors", "checksum mismatch"});
  }
  // A malformed checksum value is refused too.
  std::string bad = good;
  const size_t at = bad.find("\"crc32:");
  ASSERT_NE(at, std::string::npos);
  bad.replace(at + 1, 5, "md5xx");
  write_bytes(path("edited.safetensors"), bad);
  expect_error([&] { load_safetensors(path("edited.safetensors")); }, {"edited.safetensors", "corrupt", "md5xx"});
}

TEST_F(CheckpointIntegrity, FileWithoutChecksumLoadsWithANote) {
  const std::string p = edited(melanoma_checkpoint(), {}, /*checksum=*/false, "plain.safetensors");
  EXPECT_EQ(read_bytes(p).find("glimpse.checksum"), std::string::npos);
  const SafetensorsFile f = load_safetensors(p);
  EXPECT_FALSE(f.has_checksum);
  EXPECT_FALSE(f.checksum_verified);
  ::testing::internal::CaptureStderr();
  mel::LoadedModel lm = mel::load_model(p);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(lm.meta.size, 16);
  EXPECT_NE(err.find("plain.safetensors has no checksum"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  // A verified file says nothing.
  ::testing::internal::CaptureStderr();
  mel::load_model(melanoma_checkpoint("verified.safetensors"));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  // The old fixtures, written before checksums, still load.
  for (const char* fx :
       {"independent.safetensors", "small_gap_reference.safetensors", "attribution_reference.safetensors"}) {
    EXPECT_FALSE(load_safetensors(std::string(GLIMPSE_TEST_FIXTURES) + "/" + fx).has_checksum) << fx;
  }
}

// ---- metadata bounds ----------------------------------------------------------------------------

TEST_F(CheckpointIntegrity, MetadataOutOfBoundsIsRefusedFast) {
  const std::string src = melanoma_checkpoint();
  struct Case {
    std::string key, value, says;
  };
  const std::vector<Case> cases = {
      // the cases of ../shared/reliability/README.md
      {"input_size", "4294967296", "out of range"},
      {"input_size", "60000", "out of range"},
      {"classes", "1000000000000", "out of range"},
      {"classes", "10000000", "out of range"},
      // strict parsing and the other bounds
      {"input_size", "2", "out of range"},
      {"input_size", "16 ", "not an integer"},
      {"input_size", "+16", "not an integer"},
      {"input_size", "0x10", "not an integer"},
      {"input_size", "99999999999999999999", "64-bit"},
      {"classes", "1", "out of range"},
      {"classes", "-3", "out of range"},
      {"epoch", "-1", "out of range"},
      {"epoch", "3", "out of range"},  // epochs = 2
      {"epochs", "x", "not an integer"},
      {"optimizer_step", "-5", "out of range"},
      {"seed", "-1", "unsigned"},
      {"seed", "18446744073709551616", "unsigned"},
      {"lr", "nan", "out of range"},
      {"lr", "inf", "out of range"},
      {"lr", "1e400", "not a number"},
      {"lr", "fast", "not a number"},
      {"mask_guidance", "-0.5", "out of range"},
      {"val_auc_mean", "7", "out of range"},
      {"hair_removal", "yes", "0 or 1"},
      {"class_names", "a,b", "3 comma-separated names"},
      {"arch", "nosuch-net", "not an architecture"},
  };
  for (bool checksum : {true, false}) {
    for (const auto& c : cases) {
      SCOPED_TRACE(c.key + " = " + c.value + (checksum ? " (checksum recomputed)" : " (no checksum)"));
      const std::string p = edited(src, {{c.key, c.value}}, checksum, "bounds.safetensors");
      const auto start = std::chrono::steady_clock::now();
      const std::string v = c.value.size() <= 40 ? c.value : c.value.substr(0, 40);
      expect_error([&] { mel::load_model(p); }, {"bounds.safetensors", "'" + c.key + "'", v, c.says});
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      EXPECT_LT(s, 2.0) << "refusing took " << s << " s";
    }
  }
  // A missing key names it.
  expect_error(
      [&] {
        mel::load_model(edited(src, {{"classes", ""}}, true, "bounds.safetensors"));
      },
      {"bounds.safetensors", "'classes'"});
  // Values at the bounds pass the bounds (and then the weights decide).
  const auto meta = mel::meta_from_map({{"arch", "small-gap"},
                                        {"input_size", "4"},
                                        {"classes", "10000"},
                                        {"epoch", "0"},
                                        {"optimizer_step", "0"},
                                        {"seed", "18446744073709551615"},
                                        {"val_auc_mean", "nan"}},
                                       "m");
  EXPECT_EQ(meta.size, 4);
  EXPECT_EQ(meta.class_names.size(), 10000u);
  EXPECT_EQ(meta.seed, UINT64_MAX);
  expect_error(
      [&] {
        mel::meta_from_map(
            {{"arch", "resnet18-gap"}, {"input_size", "16"}, {"classes", "3"}, {"epoch", "0"}, {"optimizer_step", "0"}},
            "m");
      },
      {"'input_size'", "32..4096"});
}

// ---- metadata against the weights ---------------------------------------------------------------

TEST_F(CheckpointIntegrity, ClassesMustMatchTheClassifierBeforeAnythingIsBuilt) {
  const std::string src = melanoma_checkpoint();
  for (bool checksum : {true, false}) {
    // 9999 classes would build a model happily; the weights say 3.
    for (const char* classes : {"2", "4", "9999"}) {
      SCOPED_TRACE(std::string(classes) + (checksum ? " with checksum" : " without"));
      std::map<std::string, std::string> e = {{"classes", classes}, {"class_names", ""}};
      const std::string p = edited(src, e, checksum, "liar.safetensors");
      const auto start = std::chrono::steady_clock::now();
      expect_error([&] { mel::load_model(p); },
                   {"liar.safetensors", "'classes' = " + std::string(classes), "classifier.weight", "[3, 128]"});
      EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
    }
  }
  // ResNet's head is "fc"; a file without the head of its arch is refused naming it.
  save_safetensors(
      path("resnet.safetensors"), {{"fc.weight", Tensor::zeros({3, 512})}, {"fc.bias", Tensor::zeros({3})}},
      {{"arch", "resnet18-gap"}, {"input_size", "32"}, {"classes", "5"}, {"epoch", "0"}, {"optimizer_step", "0"}});
  expect_error([&] { mel::load_model(path("resnet.safetensors")); }, {"resnet.safetensors", "fc.weight", "[3, 512]"});
  save_safetensors(
      path("headless.safetensors"), {{"x", Tensor::zeros({3})}},
      {{"arch", "small-gap"}, {"input_size", "16"}, {"classes", "3"}, {"epoch", "0"}, {"optimizer_step", "0"}});
  expect_error([&] { mel::load_model(path("headless.safetensors")); }, {"headless.safetensors", "classifier.weight"});
  // The bias is checked too.
  save_safetensors(
      path("bias.safetensors"),
      {{"classifier.weight", Tensor::zeros({3, 128})}, {"classifier.bias", Tensor::zeros({4})}},
      {{"arch", "small-gap"}, {"input_size", "16"}, {"classes", "3"}, {"epoch", "0"}, {"optimizer_step", "0"}});
  expect_error([&] { mel::load_model(path("bias.safetensors")); }, {"bias.safetensors", "classifier.bias", "[4]"});
}

// The --resume path goes through load_model and then load_checkpoint with the optimizer: both
// refuse a damaged file; an intact one round-trips with its checksum verified.
TEST_F(CheckpointIntegrity, IntactCheckpointRoundTrips) {
  const std::string p = melanoma_checkpoint();
  mel::LoadedModel lm = mel::load_model(p);
  EXPECT_EQ(lm.meta.arch, "small-gap");
  EXPECT_EQ(lm.meta.size, 16);
  EXPECT_EQ(lm.meta.classes, 3);
  EXPECT_EQ(lm.meta.epoch, 1);
  EXPECT_EQ(lm.meta.epochs, 2);
  EXPECT_EQ(lm.meta.step, 10);
  EXPECT_EQ(lm.meta.seed, 7u);
  EXPECT_EQ(lm.meta.class_names, mel::class_names());
  EXPECT_DOUBLE_EQ(lm.meta.val_auc_mean, 0.5);
}

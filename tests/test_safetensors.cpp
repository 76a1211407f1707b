// safetensors I/O and checkpoints: a fixture written by an independent pure-Python writer
// (tools/make_safetensors_fixture.py), bit-exact round trips, the refusals of malformed files, and
// atomic saves (a simulated crash leaves the previous checkpoint intact).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/io/safetensors.h"
#include "layers/checkpoint.h"
#include "layers/module.h"
#include "layers/optim.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace {

const std::string kFixtures = GLIMPSE_TEST_FIXTURES;

// A fresh directory per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("glimpse_st_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    detail::set_safetensors_fail_after_bytes(-1);
    fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path dir_;
};

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
float from_bits(uint32_t b) { return std::bit_cast<float>(b); }

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A file from a raw header text (not padded unless the caller pads it) and a data section.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Expects f() to throw a glimpse::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << parts.front() << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

void expect_bit_equal(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  auto va = a.contiguous().to_vector(), vb = b.contiguous().to_vector();
  ASSERT_EQ(va.size(), vb.size());
  if (!va.empty()) {
    EXPECT_EQ(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)), 0);
  }
}

}  // namespace

// ---- the independent fixture -----------------------------------------------------------------

TEST_F(SafetensorsTest, ReadsIndependentPythonFixture) {
  SafetensorsFile f = load_safetensors(kFixtures + "/independent.safetensors");
  // Header order, although the data section is laid out in the reverse order.
  EXPECT_EQ(f.names(),
            (std::vector<std::string>{"matrix", "specials", "image", "scalar", "empty", "half", "bfloat", "double"}));
  EXPECT_EQ(f.metadata.at("source"), "tools/make_safetensors_fixture.py");
  EXPECT_EQ(f.metadata.at("note"), "UTF-8 ok: \xc3\xa9\xc3\xa8 \xce\xbb");

  const Tensor& m = f.at("matrix");
  EXPECT_EQ(m.shape(), (Shape{2, 3}));
  std::vector<float> mv = m.to_vector();
  std::vector<float> expect_m = {1.f, -2.f, 3.5f, 0.1f, -0.f, 1e-3f};
  for (size_t i = 0; i < mv.size(); ++i) EXPECT_EQ(bits(mv[i]), bits(expect_m[i])) << "matrix[" << i << "]";

  auto s = f.at("specials").to_vector();
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0], std::numeric_limits<float>::infinity());
  EXPECT_EQ(s[1], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(s[2]));
  EXPECT_EQ(bits(s[3]), 1u);  // smallest subnormal

  const Tensor& img = f.at("image");
  EXPECT_EQ(img.shape(), (Shape{1, 2, 2, 2}));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(img.to_vector()[i], 0.5f * i);

  EXPECT_EQ(f.at("scalar").shape(), Shape{});
  EXPECT_EQ(f.at("scalar").item(), 42.f);
  EXPECT_EQ(f.at("empty").shape(), (Shape{0, 3}));
  EXPECT_EQ(f.at("empty").numel(), 0);

  EXPECT_EQ(f.dtypes.at("half"), "F16");
  EXPECT_EQ(f.at("half").to_vector(), (std::vector<float>{1.f, -2.5f, 65504.f, std::ldexp(1.f, -24)}));
  EXPECT_EQ(f.dtypes.at("bfloat"), "BF16");
  EXPECT_EQ(f.at("bfloat").to_vector(), (std::vector<float>{1.5f, -3.f}));
  EXPECT_EQ(f.dtypes.at("double"), "F64");
  EXPECT_EQ(f.at("double").to_vector(), (std::vector<float>{0.1f, -7.25f}));
  EXPECT_EQ(f.dtypes.at("matrix"), "F32");

  expect_error([&] { f.at("nope"); }, {"nope", "matrix", "double"});
}

// ---- round trip --------------------------------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripIsBitExact) {
  std::vector<float> special = {std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity(),
                                std::numeric_limits<float>::quiet_NaN(),
                                from_bits(0xffc00001u) /* negative NaN with payload */,
                                from_bits(0x7f800001u) /* signalling NaN bits */,
                                from_bits(0x00000001u) /* min subnormal */,
                                from_bits(0x807fffffu) /* largest negative subnormal */,
                                -0.f,
                                0.f,
                                std::numeric_limits<float>::max(),
                                std::numeric_limits<float>::lowest(),
                                std::numeric_limits<float>::min(),
                                0.1f,
                                1.f / 3.f};
  Rng rng(123);
  Tensor big = Tensor::randn({7, 5, 3}, rng);
  Tensor rows = Tensor::randn({6, 4}, rng).slice(2, 5);  // a view with a storage offset
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"special", Tensor::from_vector({static_cast<int64_t>(special.size())}, special)},
      {"big", big},
      {"rows", rows},
      {"scalar", Tensor::scalar(-1.5f)},
      {"empty", Tensor::zeros({3, 0, 2})},
      {"unicode.\xce\xbb", Tensor::ones({1})},
  };
  std::map<std::string, std::string> meta = {{"epoch", "3"}, {"note", "h\xc3\xa9llo \"quoted\""}};
  const std::string p = path("rt.safetensors");
  save_safetensors(p, tensors, meta);

  SafetensorsFile f = load_safetensors(p);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(f.tensors[i].first, tensors[i].first);
    EXPECT_EQ(f.dtypes.at(tensors[i].first), "F32");
    expect_bit_equal(f.tensors[i].second, tensors[i].second);
  }
  EXPECT_EQ(f.metadata, meta);

  // The layout the specification asks for: the data starts on an 8-byte boundary, after a header
  // starting with '{' and padded with spaces; then exactly the data of the tensors.
  std::string bytes = read_bytes(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  int64_t numel = 0;
  for (const auto& [name, t] : tensors) numel += t.numel();
  EXPECT_EQ(bytes.size(), 8 + n + 4 * numel);
  EXPECT_EQ(listing(), (std::vector<std::string>{"rt.safetensors"}));

  // Saving again replaces the file.
  save_safetensors(p, {{"only", Tensor::ones({2})}});
  EXPECT_EQ(load_safetensors(p).names(), std::vector<std::string>{"only"});
  EXPECT_EQ(load_safetensors(p).metadata.size(), 0u);
}

TEST_F(SafetensorsTest, SaveRefusesBadInput) {
  const std::string p = path("bad.safetensors");
  expect_error([&] { save_safetensors(p, {{"a", Tensor::ones({1})}, {"a", Tensor::ones({2})}}); }, {"'a'", "twice"});
  expect_error([&] { save_safetensors(p, {{"__metadata__", Tensor::ones({1})}}); }, {"__metadata__"});
  expect_error([&] { save_safetensors(p, {{"u", Tensor()}}); }, {"'u'", "undefined"});
  expect_error(
      [&] {
        save_safetensors(path("no/such/dir/x.safetensors"), {{"a", Tensor::ones({1})}});
      },
      {"no/such/dir/x.safetensors", "creating the temporary file", "does the directory exist"});
  EXPECT_TRUE(listing().empty());
}

// ---- refusals ----------------------------------------------------------------------------------

TEST_F(SafetensorsTest, RefusesMissingAndTinyFiles) {
  expect_error([&] { load_safetensors(path("missing.safetensors")); }, {"missing.safetensors", "cannot open"});
  write_bytes(path("tiny"), "abc");
  expect_error([&] { load_safetensors(path("tiny")); }, {"tiny", "3 bytes", "shorter than the 8-byte"});
  write_bytes(path("zero"), "");
  expect_error([&] { load_safetensors(path("zero")); }, {"0 bytes"});
}

TEST_F(SafetensorsTest, RefusesTruncatedFiles) {
  const std::string p = path("good.safetensors");
  save_safetensors(p, {{"w", Tensor::ones({4, 4})}, {"b", Tensor::ones({4})}});
  const std::string good = read_bytes(p);
  uint64_t n = static_cast<unsigned char>(good[0]) | (static_cast<uint64_t>(static_cast<unsigned char>(good[1])) << 8);

  // Cut inside the data section: the last tensor runs past the end.
  write_bytes(path("cut_data"), good.substr(0, good.size() - 3));
  expect_error([&] { load_safetensors(path("cut_data")); }, {"cut_data", "tensor 'b'", "beyond the data section"});
  // Cut inside the header.
  write_bytes(path("cut_header"), good.substr(0, 8 + n / 2));
  expect_error([&] { load_safetensors(path("cut_header")); },
               {"cut_header", "header length field says " + std::to_string(n)});
  // Cut right after the header: no data at all.
  write_bytes(path("cut_all_data"), good.substr(0, 8 + n));
  expect_error([&] { load_safetensors(path("cut_all_data")); }, {"beyond the data section of 0 bytes"});
}

TEST_F(SafetensorsTest, RefusesHeaderLengthBeyondFile) {
  std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string f = make_file(header, std::string(4, '\0'));
  f[0] = static_cast<char>(0xff);  // length 255 + ...
  f[5] = 0x01;                     // ... + 2^40: far beyond
  write_bytes(path("long"), f);
  expect_error([&] { load_safetensors(path("long")); }, {"long", "header length field says", "truncated"});
}

TEST_F(SafetensorsTest, RefusesCorruptHeaderJson) {
  std::string data(4, '\0');
  write_bytes(path("json"), make_file(R"({"a":{"dtype":"F32",,"shape":[1],"data_offsets":[0,4]}})", data));
  expect_error([&] { load_safetensors(path("json")); }, {"json", "not valid JSON", "header byte 21", "file offset"});
  write_bytes(path("notobj"), make_file(R"(["a"])", ""));
  expect_error([&] { load_safetensors(path("notobj")); }, {"must start with '{'"});
  write_bytes(path("array"), make_file(R"({"a": [1, 2]})", ""));
  expect_error([&] { load_safetensors(path("array")); }, {"'a'", "must be an object"});
  write_bytes(path("utf8"), make_file("{\"\xff\":1}", ""));
  expect_error([&] { load_safetensors(path("utf8")); }, {"not valid JSON"});
  write_bytes(path("dup"), make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                     R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                     data));
  expect_error([&] { load_safetensors(path("dup")); }, {"'a'", "twice"});
  write_bytes(path("meta"), make_file(R"({"__metadata__":{"epoch":3}})", ""));
  expect_error([&] { load_safetensors(path("meta")); }, {"__metadata__", "'epoch'", "strings"});
  write_bytes(path("nofield"), make_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", data));
  expect_error([&] { load_safetensors(path("nofield")); }, {"'a'", "\"shape\""});
  write_bytes(path("negdim"), make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", data));
  expect_error([&] { load_safetensors(path("negdim")); }, {"'a'", "non-negative integers"});
  // Padding with spaces is valid (and an empty file is a valid one).
  write_bytes(path("padded"), make_file(std::string("{}") + "      ", ""));
  EXPECT_TRUE(load_safetensors(path("padded")).tensors.empty());
}

// Every exception of the JSON library becomes an Error naming the file (the reliability file
// number_overflow_1e400: out_of_range.406 escaped, since only parse_error was caught), and shapes
// obey the rule of core/shape.h (zero_dim_stride_overflow: [0, 2^62, 4] overflowed the strides).
TEST_F(SafetensorsTest, EveryJsonAndShapeFaultIsAnError) {
  std::string data(4, '\0');
  write_bytes(path("e400"), make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"n":1e400})", data));
  expect_error([&] { load_safetensors(path("e400")); }, {"e400", "1e400", "out_of_range"});
  write_bytes(path("e400meta"), make_file(R"({"__metadata__":{"k":-1e999}})", ""));
  expect_error([&] { load_safetensors(path("e400meta")); }, {"e400meta", "1e999"});
  write_bytes(path("u64"),
              make_file(R"({"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}})", data));
  expect_error([&] { load_safetensors(path("u64")); }, {"u64", "'a'", "non-negative integers"});
  write_bytes(path("big"),
              make_file(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}})", data));
  expect_error([&] { load_safetensors(path("big")); }, {"big", "'a'", "above 2^63 - 1"});
  write_bytes(path("frac"), make_file(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", data));
  expect_error([&] { load_safetensors(path("frac")); }, {"frac", "'a'", "non-negative integers"});
  write_bytes(path("zerodim"),
              make_file(R"({"z":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})", ""));
  expect_error([&] { load_safetensors(path("zerodim")); },
               {"zerodim", "'z'", "[0, 4611686018427387904, 4]", "too large"});
  write_bytes(path("f64big"),
              make_file(R"({"z":{"dtype":"F64","shape":[2305843009213693952,2],"data_offsets":[0,0]}})", ""));
  expect_error([&] { load_safetensors(path("f64big")); }, {"f64big", "'z'"});
  // Deep nesting would overflow the stack of any recursive walk (dump, compare): refused.
  const std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  write_bytes(path("deep"), make_file(deep, ""));
  expect_error([&] { load_safetensors(path("deep")); }, {"deep", "levels deep"});
  // An empty shape in a zero dim is fine, and so is a header with nothing but metadata.
  write_bytes(path("ok"),
              make_file(R"({"__metadata__":{"k":"v"},"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})", ""));
  EXPECT_EQ(load_safetensors(path("ok")).at("z").shape(), (Shape{0, 3}));
}

// The checksum covers converted dtypes too (it is over the stored bytes), and files without
// metadata (the checksum alone makes a __metadata__ object).
TEST_F(SafetensorsTest, ChecksumRoundTripsAndCoversEveryTensor) {
  save_safetensors(path("c"), {{"a", Tensor::ones({2})}, {"e", Tensor::zeros({0, 2})}});
  SafetensorsFile f = load_safetensors(path("c"));
  EXPECT_TRUE(f.checksum_verified);
  EXPECT_TRUE(f.metadata.empty());
  save_safetensors(path("p"), {{"a", Tensor::ones({2})}}, {}, /*checksum=*/false);
  EXPECT_EQ(read_bytes(path("p")).find("__metadata__"), std::string::npos);  // byte-identical to before
  EXPECT_FALSE(load_safetensors(path("p")).has_checksum);
  // Renaming a tensor (same length) is refused: names are covered.
  std::string bytes = read_bytes(path("c"));
  bytes[bytes.find("\"e\":") + 1] = 'f';
  write_bytes(path("renamed"), bytes);
  expect_error([&] { load_safetensors(path("renamed")); }, {"renamed", "checksum mismatch"});
}

TEST_F(SafetensorsTest, RefusesUnsupportedDtypes) {
  std::string data(8, '\0');
  write_bytes(path("i64"), make_file(R"({"idx":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", data));
  expect_error([&] { load_safetensors(path("i64")); }, {"i64", "tensor 'idx'", "dtype I64", "does not load"});
  write_bytes(path("word"), make_file(R"({"w":{"dtype":"float32","shape":[2],"data_offsets":[0,8]}})", data));
  expect_error([&] { load_safetensors(path("word")); }, {"tensor 'w'", "unknown dtype 'float32'"});
  write_bytes(path("num"), make_file(R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", data));
  expect_error([&] { load_safetensors(path("num")); }, {"tensor 'w'", "dtype must be a string"});
}

TEST_F(SafetensorsTest, RefusesOffsetsThatDoNotFit) {
  // Shape [2, 3] of F32 needs 24 bytes, the offsets give 20.
  write_bytes(path("size"),
              make_file(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", std::string(20, '\0')));
  expect_error([&] { load_safetensors(path("size")); }, {"tensor 'w'", "[2, 3]", "needs 24 bytes", "span 20"});
  // Overlap.
  write_bytes(path("overlap"), make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                         R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                                         std::string(24, '\0')));
  expect_error([&] { load_safetensors(path("overlap")); }, {"tensor 'b'", "overlap", "tensor 'a'"});
  // A hole between two tensors.
  write_bytes(path("hole"), make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                                      std::string(20, '\0')));
  expect_error([&] { load_safetensors(path("hole")); }, {"tensor 'b'", "hole of 4 bytes"});
  // Out of bounds.
  write_bytes(path("oob"),
              make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0')));
  expect_error([&] { load_safetensors(path("oob")); }, {"tensor 'a'", "beyond the data section of 4 bytes"});
  // Reversed offsets.
  write_bytes(path("rev"),
              make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", std::string(8, '\0')));
  expect_error([&] { load_safetensors(path("rev")); }, {"tensor 'a'", "end before they begin"});
  // Trailing garbage after the last tensor.
  save_safetensors(path("good"), {{"a", Tensor::ones({2})}});
  write_bytes(path("trailing"), read_bytes(path("good")) + "junk");
  expect_error([&] { load_safetensors(path("trailing")); }, {"trailing", "4 bytes of trailing data"});
  // A shape whose byte count overflows 64 bits.
  write_bytes(path("huge"),
              make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""));
  expect_error([&] { load_safetensors(path("huge")); }, {"tensor 'a'", "too large"});
}

// ---- checkpoints -----------------------------------------------------------------------------

namespace {

// Two parameters and a buffer; `rows` changes the weight's shape.
class Tiny : public Module {
 public:
  explicit Tiny(int64_t rows = 2, float value = 0.f) : Module("Tiny") {
    weight = register_parameter("weight", Tensor::full({rows, 3}, value));
    bias = register_parameter("bias", Tensor::full({3}, value));
    running = register_buffer("running", Tensor::full({3}, value));
  }
  Tensor forward(const Tensor& x) override { return x; }
  Tensor weight, bias, running;
};

class TinyExtra : public Tiny {
 public:
  TinyExtra() : Tiny(2, 0.f) { extra = register_parameter("extra", Tensor::ones({1})); }
  Tensor extra;
};

}  // namespace

TEST_F(SafetensorsTest, CheckpointRoundTrip) {
  Tiny a(2, 1.5f);
  a.weight.at({1, 2}) = -4.f;
  save_checkpoint(a, path("ck.safetensors"), {{"epoch", "7"}});
  Tiny b(2, 0.f);
  const float* before = b.weight.data();
  CheckpointLoad r = load_checkpoint(b, path("ck.safetensors"));
  EXPECT_EQ(b.weight.data(), before);  // in place
  expect_bit_equal(b.weight, a.weight);
  expect_bit_equal(b.bias, a.bias);
  expect_bit_equal(b.running, a.running);
  EXPECT_EQ(r.loaded.size(), 3u);
  EXPECT_EQ(r.metadata.at("format"), "glimpse");
  EXPECT_EQ(r.metadata.at("version"), "1");
  EXPECT_EQ(r.metadata.at("epoch"), "7");
  EXPECT_TRUE(b.weight.requires_grad());
  expect_error([&] { save_checkpoint(a, path("x"), {{"version", "9"}}); }, {"'version'", "reserved"});
}

TEST_F(SafetensorsTest, CheckpointCarriesTheOptimizerState) {
  Tiny a(2, 1.5f);
  Adam opt(a.parameters(), {.lr = 0.1f});
  for (Tensor& p : a.parameters()) p.impl()->grad = Tensor::full(p.shape(), 0.5f).impl_ptr();
  opt.step();
  save_checkpoint(a, path("ck.safetensors"), {}, &opt);
  // Without an optimizer the entries are set aside: a strict load of the module still passes.
  Tiny b(2, 0.f);
  CheckpointLoad r = load_checkpoint(b, path("ck.safetensors"));
  EXPECT_TRUE(r.has_optimizer_state);
  EXPECT_FALSE(r.optimizer_loaded);
  EXPECT_TRUE(r.unexpected.empty());
  // With one, its moments and counts come back.
  Tiny c(2, 0.f);
  Adam opt2(c.parameters(), {.lr = 0.1f});
  r = load_checkpoint(c, path("ck.safetensors"), true, &opt2);
  EXPECT_TRUE(r.optimizer_loaded);
  EXPECT_EQ(opt2.steps(), 1);
  const auto s1 = opt.state_dict(), s2 = opt2.state_dict();
  ASSERT_EQ(s1.size(), s2.size());
  for (const auto& [name, t] : s1) expect_bit_equal(s2.at(name), t);
  // An optimizer that does not fit (SGD has no "m"/"v"): refused, and the module is untouched.
  Tiny d(2, 9.f);
  SGD sgd(d.parameters(), {.lr = 0.1f, .momentum = 0.9f});
  expect_error([&] { load_checkpoint(d, path("ck.safetensors"), true, &sgd); },
               {"ck.safetensors", "optimizer state", "unexpected entry"});
  for (float v : d.bias.to_vector()) EXPECT_EQ(v, 9.f);
  EXPECT_EQ(sgd.steps(), 0);
}

TEST_F(SafetensorsTest, CheckpointWrongShapeNamesBothShapesAndLeavesModuleUntouched) {
  Tiny a(2, 1.f);
  save_checkpoint(a, path("ck.safetensors"));
  Tiny b(5, 9.f);
  expect_error([&] { load_checkpoint(b, path("ck.safetensors")); },
               {"ck.safetensors", "'weight'", "[2, 3] in the file", "[5, 3] in the module", "nothing was loaded"});
  // Nothing copied: not even the tensors whose shapes fit.
  for (float v : b.bias.to_vector()) EXPECT_EQ(v, 9.f);
  for (float v : b.running.to_vector()) EXPECT_EQ(v, 9.f);
  expect_error([&] { load_checkpoint(b, path("ck.safetensors"), /*strict=*/false); }, {"'weight'", "[5, 3]"});
}

TEST_F(SafetensorsTest, CheckpointNamesMissingAndUnexpected) {
  TinyExtra big;
  big.extra.fill_(3.f);
  save_checkpoint(big, path("big.safetensors"));
  Tiny small(2, 1.f);
  save_checkpoint(small, path("small.safetensors"));

  Tiny t(2, 5.f);
  expect_error([&] { load_checkpoint(t, path("big.safetensors")); }, {"unexpected in the file: extra", "strict=false"});
  for (float v : t.bias.to_vector()) EXPECT_EQ(v, 5.f);
  TinyExtra e;
  expect_error([&] { load_checkpoint(e, path("small.safetensors")); }, {"missing from the file: extra"});
  EXPECT_EQ(e.extra.item(), 1.f);

  CheckpointLoad r = load_checkpoint(t, path("big.safetensors"), /*strict=*/false);
  EXPECT_EQ(r.unexpected, std::vector<std::string>{"extra"});
  EXPECT_TRUE(r.missing.empty());
  for (float v : t.bias.to_vector()) EXPECT_EQ(v, 0.f);
  r = load_checkpoint(e, path("small.safetensors"), /*strict=*/false);
  EXPECT_EQ(r.missing, std::vector<std::string>{"extra"});
  EXPECT_EQ(e.extra.item(), 1.f);
  for (float v : e.bias.to_vector()) EXPECT_EQ(v, 1.f);
}

TEST_F(SafetensorsTest, CheckpointDtypeAndVersion) {
  // A half-precision file (e.g. imported weights): strict refuses it, non-strict converts.
  std::string header = R"({"weight":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
                       R"("bias":{"dtype":"F32","shape":[3],"data_offsets":[12,24]},)"
                       R"("running":{"dtype":"F32","shape":[3],"data_offsets":[24,36]}})";
  std::string data;
  for (int i = 0; i < 6; ++i) data += std::string("\x00\x3c", 2);  // 1.0 in F16
  float ones[6] = {1, 1, 1, 1, 1, 1};
  data += std::string(reinterpret_cast<const char*>(ones), 24);
  write_bytes(path("half"), make_file(header, data));
  Tiny t(2, 0.f);
  expect_error([&] { load_checkpoint(t, path("half")); }, {"'weight'", "F16", "strict=false"});
  EXPECT_EQ(t.weight.to_vector()[0], 0.f);
  load_checkpoint(t, path("half"), /*strict=*/false);
  for (float v : t.weight.to_vector()) EXPECT_EQ(v, 1.f);

  // A glimpse checkpoint of another format version is refused.
  write_bytes(path("v2"), make_file(R"({"__metadata__":{"format":"glimpse","version":"2"}})", ""));
  expect_error([&] { load_checkpoint(t, path("v2"), false); }, {"format version 2", "reads version 1"});
}

TEST_F(SafetensorsTest, CrashDuringSaveKeepsPreviousCheckpoint) {
  const std::string p = path("model.safetensors");
  Tiny first(2, 1.f);
  save_checkpoint(first, p, {{"epoch", "1"}});
  const std::string before = read_bytes(p);

  Tiny second(2, 2.f);
  // Fail at several points: before anything, inside the length, inside the header, inside the data.
  for (int64_t k : std::vector<int64_t>{0, 5, 40, static_cast<int64_t>(before.size()) - 4}) {
    detail::set_safetensors_fail_after_bytes(k);
    expect_error([&] { save_checkpoint(second, p, {{"epoch", "2"}}); }, {"model.safetensors", "simulated"});
    detail::set_safetensors_fail_after_bytes(-1);
    EXPECT_EQ(read_bytes(p), before) << "fail after " << k << " bytes";
    EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"}) << "temporary file left behind";
    Tiny check(2, 0.f);
    CheckpointLoad r = load_checkpoint(check, p);
    EXPECT_EQ(r.metadata.at("epoch"), "1");
    for (float v : check.weight.to_vector()) EXPECT_EQ(v, 1.f);
  }
  // And with the hook off, the save goes through.
  save_checkpoint(second, p, {{"epoch", "2"}});
  Tiny check(2, 0.f);
  EXPECT_EQ(load_checkpoint(check, p).metadata.at("epoch"), "2");
  for (float v : check.weight.to_vector()) EXPECT_EQ(v, 2.f);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
}

// Every single-byte corruption and every truncation of a small valid file either loads or is
// refused with a glimpse::Error -- never a crash, a hang or another exception (run under ASan in CI).
TEST_F(SafetensorsTest, EveryCorruptionIsLoadedOrRefusedCleanly) {
  save_safetensors(path("good"), {{"w", Tensor::ones({2, 2})}, {"s", Tensor::scalar(3.f)}}, {{"k", "v"}});
  const std::string good = read_bytes(path("good"));
  const std::string p = path("bad");
  int refused = 0, loaded = 0;
  auto attempt = [&](const std::string& bytes) {
    write_bytes(p, bytes);
    try {
      load_safetensors(p);
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  };
  for (size_t len = 0; len < good.size(); ++len) attempt(good.substr(0, len));
  EXPECT_EQ(loaded, 0) << "a truncated file was accepted";
  for (size_t i = 0; i < good.size(); ++i) {
    for (unsigned char x : {0x01, 0x20, 0x80, 0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ x);
      attempt(bad);
    }
  }
  EXPECT_GT(refused, 0);
}

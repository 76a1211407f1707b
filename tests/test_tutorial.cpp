// The library tutorial (examples/tutorial/main.cpp, docs/tutorial.md):
//  - its code excerpts in docs/tutorial.md are the program's own lines (quoted by marker);
//  - the program, run as a user would on a small class-per-folder dataset this test writes (red and
//    blue discs on a noisy background), learns the classes, saves a checkpoint that reloads to the
//    same predictions, and circles the disc of a new photo on a PNG of the photo's size.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "autograd/functions.h"
#include "core/grad_mode.h"
#include "core/io/image.h"
#include "core/rng.h"
#include "data/data.h"
#include "layers/checkpoint.h"
#include "layers/models.h"
#include "support.h"

using namespace glimpse;
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  EXPECT_TRUE(f.good()) << "cannot read " << p;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The lines between "// [name]" and "// [/name]" of the program, less their common indentation.
std::map<std::string, std::string> marked_blocks(const std::string& source) {
  std::map<std::string, std::string> blocks;
  const std::regex open(R"(^\s*// \[([a-z-]+)\]\s*$)");
  std::string name;
  std::vector<std::string> body;
  for (const std::string& line : lines_of(source)) {
    std::smatch m;
    if (name.empty() && std::regex_match(line, m, open)) {
      name = m[1];
      body.clear();
    } else if (!name.empty() && line.find("// [/" + name + "]") != std::string::npos) {
      size_t indent = std::string::npos;
      for (const std::string& l : body)
        if (l.find_first_not_of(' ') != std::string::npos) indent = std::min(indent, l.find_first_not_of(' '));
      std::string text;
      for (const std::string& l : body) text += (l.size() > indent ? l.substr(indent) : "") + "\n";
      blocks[name] = text;
      name.clear();
    } else if (!name.empty()) {
      body.push_back(line);
    }
  }
  EXPECT_TRUE(name.empty()) << "block '" << name << "' is never closed by // [/" << name << "]";
  return blocks;
}

// The doc's quotes: "<!-- quote: name -->" on the line before a ```cpp fence.
std::map<std::string, std::string> quoted_blocks(const std::string& doc) {
  std::map<std::string, std::string> quotes;
  const std::regex marker(R"(^<!-- quote: ([a-z-]+) -->\s*$)");
  const std::vector<std::string> lines = lines_of(doc);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::smatch m;
    if (!std::regex_match(lines[i], m, marker)) continue;
    EXPECT_TRUE(i + 1 < lines.size() && lines[i + 1] == "```cpp") << "quote '" << m[1] << "' is not followed by ```cpp";
    std::string text;
    for (size_t j = i + 2; j < lines.size() && lines[j] != "```"; ++j) text += lines[j] + "\n";
    quotes[m[1]] = text;
  }
  return quotes;
}

}  // namespace

TEST(Tutorial, DocQuotesEveryMarkedBlockVerbatim) {
  const auto source = marked_blocks(read_text(fs::path(GLIMPSE_SOURCE_DIR) / "examples/tutorial/main.cpp"));
  const auto quotes = quoted_blocks(read_text(fs::path(GLIMPSE_SOURCE_DIR) / "docs/tutorial.md"));
  ASSERT_GE(source.size(), 5u) << "the program lost its // [name] markers";
  for (const auto& [name, text] : source) {
    ASSERT_TRUE(quotes.count(name)) << "docs/tutorial.md does not quote block '" << name << "'";
    EXPECT_EQ(quotes.at(name), text)
        << "docs/tutorial.md's quote of '" << name
        << "' differs from examples/tutorial/main.cpp; run python3 tools/tutorial_quotes.py";
  }
  for (const auto& [name, text] : quotes)
    EXPECT_TRUE(source.count(name)) << "docs/tutorial.md quotes '" << name << "', which the program does not mark";
}

#ifdef GLIMPSE_TUTORIAL_BIN
namespace {

constexpr int64_t kPhoto = 64;  // photos are written at 64 px; the tutorial's network sees 32

struct Disc {
  double cx, cy, r;
};

// A noisy beige background with one disc, red or blue, itself noisy.
io::Image disc_photo(const Disc& d, bool red, Rng& rng) {
  io::Image img(kPhoto, kPhoto, 3);
  for (int64_t y = 0; y < kPhoto; ++y)
    for (int64_t x = 0; x < kPhoto; ++x) {
      const bool in = std::hypot(x - d.cx, y - d.cy) <= d.r;
      const int base[3] = {in ? (red ? 200 : 40) : 170, in ? (red ? 40 : 70) : 150, in ? (red ? 40 : 200) : 120};
      for (int c = 0; c < 3; ++c)
        img.at(x, y)[c] = static_cast<uint8_t>(std::clamp(base[c] + static_cast<int>(rng.normal() * 18), 0, 255));
    }
  return img;
}

Disc random_disc(Rng& rng) {
  const double r = 8 + rng.uniform() * 6;
  return {r + 1 + rng.uniform() * (kPhoto - 2 * r - 2), r + 1 + rng.uniform() * (kPhoto - 2 * r - 2), r};
}

struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};
Csv read_predictions(const fs::path& p) {
  Csv csv;
  const std::vector<std::string> lines = lines_of(read_text(p));
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<std::string> fields(1);
    for (char c : lines[i])
      if (c == ',')
        fields.emplace_back();
      else
        fields.back().push_back(c);
    (i == 0 ? csv.header : csv.rows.emplace_back()) = fields;
  }
  return csv;
}

}  // namespace

TEST(Tutorial, TrainsSavesReloadsAndCirclesTheObject) {
  const fs::path dir = fs::temp_directory_path() / ("glimpse_tutorial_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // 30 photos per class; the tutorial keeps every 5th of each class (6 + 6) for validation.
  Rng rng(7);
  for (const char* cls : {"blue", "red"}) {
    fs::create_directories(dir / "data" / cls);
    for (int i = 0; i < 30; ++i) {
      char name[24];  // room for any int, so -Wformat-truncation has nothing to say
      std::snprintf(name, sizeof name, "p%02d.png", i);
      io::save_png((dir / "data" / cls / name).string(), disc_photo(random_disc(rng), std::string(cls) == "red", rng));
    }
  }
  // A new photo, not in the dataset: a red disc off-centre, in the lower left.
  const Disc object{18, 44, 11};
  const fs::path photo = dir / "new_photo.png";
  io::save_png(photo.string(), disc_photo(object, /*red=*/true, rng));

  const fs::path out = dir / "out";
  const std::string cmd = std::string(GLIMPSE_TUTORIAL_BIN) + " " + (dir / "data").string() + " " + out.string() + " " +
                          photo.string() + " > " + (dir / "log.txt").string() + " 2>&1";
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = std::system(cmd.c_str());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("tutorial ran in %.1f s:\n%s", seconds, read_text(dir / "log.txt").c_str());
  ASSERT_EQ(rc, 0) << "the tutorial failed";

  // Accuracy, recomputed from its predictions, each row's true class checked against the folder.
  const Csv csv = read_predictions(out / "predictions.csv");
  ASSERT_EQ(csv.header, (std::vector<std::string>{"path", "true_class", "predicted_class", "p_blue", "p_red"}));
  ASSERT_EQ(csv.rows.size(), 12u);
  int correct = 0;
  for (const auto& row : csv.rows) {
    ASSERT_EQ(row.size(), 5u);
    EXPECT_EQ(fs::path(row[0]).parent_path().filename().string(), row[1]) << row[0];
    correct += row[1] == row[2];
  }
  std::printf("validation: %d of %zu right\n", correct, csv.rows.size());
  EXPECT_GE(correct, 10) << "the easy classes were not learnt (chance is 6 of 12)";

  // The checkpoint, loaded into a fresh network, gives the probabilities the trained one wrote.
  Rng other(123);
  auto model = small_gap_net(2, 32, other);
  load_checkpoint(*model, (out / "model.safetensors").string());
  model->eval();
  NoGradGuard no_grad;
  std::vector<float> got, want;
  for (const auto& row : csv.rows) {
    Tensor p = softmax((*model)(data::load_for_model(row[0], 32)), 1);
    got.insert(got.end(), p.data(), p.data() + 2);
    want.push_back(std::stof(row[3]));
    want.push_back(std::stof(row[4]));
  }
  EXPECT_LE(glimpse::testing::worst_mismatch(got, want).error, 1e-6) << "the reloaded checkpoint predicts differently";

  // The picture: a PNG of the photo's size, not the photo itself.
  const io::Image picture = io::load_image((out / "explained.png").string());
  EXPECT_EQ(picture.width, kPhoto);
  EXPECT_EQ(picture.height, kPhoto);
  EXPECT_NE(picture.pixels, io::load_image(photo.string()).pixels) << "nothing was drawn over the photo";

  // The circled region: the red class, its best region's circle around the disc's centre, and
  // smaller than the picture (a circle around everything would contain any centre).
  const nlohmann::json regions = nlohmann::json::parse(read_text(out / "regions.json"));
  EXPECT_EQ(regions.at("class"), "red");
  ASSERT_FALSE(regions.at("regions").empty());
  const nlohmann::json& best = regions.at("regions")[0].at("circle");
  const double scale = double(kPhoto) / regions.at("width").get<double>();  // map pixels -> photo pixels
  const double cx = best.at("cx").get<double>() * scale, cy = best.at("cy").get<double>() * scale;
  const double r = best.at("r").get<double>() * scale;
  std::printf("best region: circle (%.1f, %.1f) r %.1f; the disc: (%.0f, %.0f) r %.0f\n", cx, cy, r, object.cx,
              object.cy, object.r);
  EXPECT_LE(std::hypot(cx - object.cx, cy - object.cy), r) << "the circle misses the disc's centre";
  EXPECT_LT(r, kPhoto / 2.0) << "the circle is as big as the picture";
  // GLIMPSE_TUTORIAL_FIGURE=path keeps the picture (docs/tutorial.md's figure is made so).
  if (const char* keep = std::getenv("GLIMPSE_TUTORIAL_FIGURE"))
    fs::copy_file(out / "explained.png", keep, fs::copy_options::overwrite_existing);
  fs::remove_all(dir);
}
#endif

// libFuzzer harness: a data set's labels CSV (data/dataset.cpp), read as `melanoma train --data DIR`
// reads it: the CSV parser, then the ISIC layout over it (ids, label columns, the split column,
// image and mask paths), for every split and for the whole file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "data/data.h"
#include "fuzz_support.h"

namespace fs = std::filesystem;

namespace {
// One directory per fuzzing process, with an images/ folder holding a few of the names a CSV may
// point at, so that the "image found" branches run too.
std::string g_root;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const fs::path root = fs::temp_directory_path() / ("glimpse-fuzz-dataset." + std::to_string(::getpid()));
  fs::create_directories(root / "images");
  fs::create_directories(root / "masks");
  for (const char* id : {"ISIC_0000000", "ISIC_0000001", "a", "1"}) {
    std::FILE* f = std::fopen((root / "images" / (std::string(id) + ".jpg")).c_str(), "wb");
    if (f) std::fclose(f);
  }
  g_root = root.string();
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(g_root, ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string csv = g_root + "/labels.csv";
  {
    std::FILE* f = std::fopen(csv.c_str(), "wb");
    if (!f) std::abort();
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
  }
  using glimpse::data::Dataset;
  glimpse::fuzz::refuse_or_succeed([&] { (void)glimpse::data::read_csv(csv); });
  for (const char* split : {"", "train", "val"}) {
    glimpse::fuzz::refuse_or_succeed([&] {
      const Dataset ds = Dataset::open(g_root, split);
      (void)ds.class_counts();
    });
  }
  return 0;
}

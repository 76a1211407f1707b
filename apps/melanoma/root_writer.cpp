#include "root_writer.h"

#include <algorithm>
#include <utility>

#include "files.h"

namespace mel {

RootWriter::RootWriter(glimpse::dist::Communicator& c, std::string what)
    : c_(c), what_(std::move(what)), texts_(static_cast<size_t>(c.size())) {}

void RootWriter::file(const std::string& path, std::string bytes) { files_.emplace_back(path, std::move(bytes)); }

void RootWriter::png(const std::string& path, const glimpse::io::Image& image) { file(path, png_bytes(image)); }

void RootWriter::png(const std::string& path, const glimpse::io::Mask& mask) {
  glimpse::io::Image grey(mask.width, mask.height, 1);
  for (size_t i = 0; i < mask.data.size(); ++i) grey.pixels[i] = mask.data[i] ? 255 : 0;
  file(path, png_bytes(grey));
}

void RootWriter::text(const std::string& s) { text_ += s; }
void RootWriter::count(int64_t n) { count_ += n; }

void RootWriter::flush() {
  round_.clear();
  round_.put_i64(count_);
  round_.put_i64(static_cast<int64_t>(files_.size()));
  for (const auto& [path, bytes] : files_) {
    round_.put_str(path);
    round_.put_str(bytes);
  }
  round_.put_str(text_);
  files_.clear();
  text_.clear();
  count_ = 0;
  const auto parts = c_.gather_bytes(round_.bytes().data(), round_.bytes().size(), 0);
  if (c_.rank() != 0) return;
  for (size_t r = 0; r < parts.size(); ++r) {
    ParcelReader in(parts[r].data(), parts[r].size(), what_ + " (rank " + std::to_string(r) + "'s output)");
    tally_ += in.i64();
    for (int64_t n = in.i64(), k = 0; k < n; ++k) {
      const std::string path = in.str();
      write_text(path, in.str());  // atomic; the parent folder made when missing
    }
    texts_[r] += in.str();
  }
}

std::string RootWriter::all_text() const {
  std::string s;
  for (const auto& t : texts_) s += t;
  return s;
}

int64_t largest_over_ranks(glimpse::dist::Communicator& c, int64_t mine) {
  std::vector<int64_t> all(static_cast<size_t>(c.size()));
  c.allgather_bytes(&mine, sizeof mine, all.data());
  return *std::max_element(all.begin(), all.end());
}

}  // namespace mel

// Output of work split over the ranks, written by rank 0 alone. Each rank queues the files of its
// part of a round (a photo, a batch of crops) and the text it adds (CSV rows); flush() -- called by
// every rank once per round, also by a rank with nothing left -- sends them to rank 0, which writes
// every file atomically (files.h) and keeps each rank's text apart. The text is read once at the end,
// rank after rank: with contiguous shards that is the order of one process. Files are sent as the
// encoded bytes one process would write, so they are the same files. One process runs the same code
// (the local communicator's gather is the identity).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/io/image.h"
#include "layers/dist/comm.h"
#include "parcel.h"

namespace mel {

class RootWriter {
 public:
  RootWriter(glimpse::dist::Communicator& c, std::string what);
  void file(const std::string& path, std::string bytes);
  void png(const std::string& path, const glimpse::io::Image& image);
  void png(const std::string& path, const glimpse::io::Mask& mask);  // 0 -> black, else white (as io::save_png)
  void text(const std::string& s);                                   // appended to this rank's text
  void count(int64_t n);                                             // added to the job's tally
  void flush();                                                      // collective
  // On rank 0 after the last flush: every rank's text in rank order, the tally summed over ranks.
  std::string all_text() const;
  int64_t tally() const { return tally_; }

 private:
  glimpse::dist::Communicator& c_;
  std::string what_;
  Parcel round_;  // count, then (path, bytes) pairs, then the text
  std::vector<std::pair<std::string, std::string>> files_;
  std::string text_;
  int64_t count_ = 0, tally_ = 0;
  std::vector<std::string> texts_;  // rank 0: per rank
};

// The largest `mine` over the ranks (on every rank): how many rounds a split job runs.
int64_t largest_over_ranks(glimpse::dist::Communicator& c, int64_t mine);

}  // namespace mel

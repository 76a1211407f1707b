// Bytes one rank sends another (dist::Communicator::gather_bytes): numbers and strings appended in
// order and read back in the same order, exactly -- doubles bit for bit, NaN included -- so that
// numbers gathered from ranks print as one process would print them. A reader that runs past the
// end, or finds a length larger than what is left, throws naming `what`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "roc.h"

namespace mel {

class Parcel {
 public:
  void put_i64(int64_t v);
  void put_f64(double v);
  void put_str(const std::string& s);
  void put(const ClassificationMetrics& m);
  const std::string& bytes() const { return bytes_; }
  void clear() { bytes_.clear(); }

 private:
  std::string bytes_;
};

class ParcelReader {
 public:
  ParcelReader(const char* data, size_t size, std::string what) : p_(data), left_(size), what_(std::move(what)) {}
  int64_t i64();
  double f64();
  std::string str();
  ClassificationMetrics metrics();
  bool done() const { return left_ == 0; }

 private:
  void take(void* out, size_t n);
  const char* p_;
  size_t left_;
  std::string what_;
};

}  // namespace mel

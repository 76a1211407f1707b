#include "parcel.h"

#include <cstring>

#include "core/error.h"

namespace mel {

void Parcel::put_i64(int64_t v) { bytes_.append(reinterpret_cast<const char*>(&v), sizeof v); }
void Parcel::put_f64(double v) { bytes_.append(reinterpret_cast<const char*>(&v), sizeof v); }
void Parcel::put_str(const std::string& s) {
  put_i64(static_cast<int64_t>(s.size()));
  bytes_ += s;
}

void Parcel::put(const ClassificationMetrics& m) {
  put_i64(m.count);
  for (double v : {m.accuracy, m.balanced_accuracy, m.auc_melanoma, m.auc_keratosis, m.auc_mean}) put_f64(v);
  put_str(m.auc_melanoma_note);
  put_str(m.auc_keratosis_note);
  put_i64(m.melanoma_class);
  put_i64(m.keratosis_class);
  put_i64(static_cast<int64_t>(m.confusion.size()));
  for (const auto& row : m.confusion) {
    put_i64(static_cast<int64_t>(row.size()));
    for (int64_t v : row) put_i64(v);
  }
  put_i64(static_cast<int64_t>(m.class_counts.size()));
  for (int64_t v : m.class_counts) put_i64(v);
}

void ParcelReader::take(void* out, size_t n) {
  GLIMPSE_CHECK(n <= left_, what_, ": a message from another rank ends early (", n, " byte(s) wanted, ", left_,
                " left); were the ranks started from different builds?");
  std::memcpy(out, p_, n);
  p_ += n;
  left_ -= n;
}

int64_t ParcelReader::i64() {
  int64_t v = 0;
  take(&v, sizeof v);
  return v;
}

double ParcelReader::f64() {
  double v = 0;
  take(&v, sizeof v);
  return v;
}

std::string ParcelReader::str() {
  const int64_t n = i64();
  GLIMPSE_CHECK(n >= 0 && static_cast<uint64_t>(n) <= left_, what_, ": a string of ", n,
                " byte(s) in a message from another rank with ", left_, " left");
  std::string s(p_, static_cast<size_t>(n));
  p_ += n;
  left_ -= static_cast<size_t>(n);
  return s;
}

ClassificationMetrics ParcelReader::metrics() {
  ClassificationMetrics m;
  m.count = i64();
  for (double* v : {&m.accuracy, &m.balanced_accuracy, &m.auc_melanoma, &m.auc_keratosis, &m.auc_mean}) *v = f64();
  m.auc_melanoma_note = str();
  m.auc_keratosis_note = str();
  m.melanoma_class = i64();
  m.keratosis_class = i64();
  // Counts bounded by what is left (8 bytes each), so a garbled count cannot allocate without end.
  auto count = [&](const char* of) {
    const int64_t n = i64();
    GLIMPSE_CHECK(n >= 0 && static_cast<uint64_t>(n) <= left_ / sizeof(int64_t), what_, ": ", n, " ", of,
                  " in a message from another rank with ", left_, " byte(s) left");
    return static_cast<size_t>(n);
  };
  m.confusion.resize(count("confusion rows"));
  for (auto& row : m.confusion) {
    row.resize(count("confusion columns"));
    for (int64_t& v : row) v = i64();
  }
  m.class_counts.resize(count("class counts"));
  for (int64_t& v : m.class_counts) v = i64();
  return m;
}

}  // namespace mel

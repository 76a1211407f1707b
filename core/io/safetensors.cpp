// safetensors reader and writer; the format and the rules we enforce are in safetensors.h.
#include "core/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

// The data is written and read with memcpy of float32 values: right only on little-endian hosts.
static_assert(std::endian::native == std::endian::little,
              "glimpse's safetensors I/O assumes a little-endian host (the format is little-endian)");
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559, "float must be IEEE-754 binary32");

namespace glimpse {
namespace {

using ordered_json = nlohmann::ordered_json;

// The reference implementation refuses headers above 100 MB; so do we (a corrupt length field
// must not make us allocate gigabytes).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

std::atomic<int64_t> g_fail_after_bytes{-1};

// ---------------------------------------------------------------------------------------------
// dtypes

enum class Dtype { F32, F64, F16, BF16 };

struct DtypeInfo {
  const char* name;
  Dtype dtype;
  uint64_t bytes;
};
constexpr DtypeInfo kReadable[] = {
    {"F32", Dtype::F32, 4}, {"F64", Dtype::F64, 8}, {"F16", Dtype::F16, 2}, {"BF16", Dtype::BF16, 2}};
// Valid safetensors dtypes that glimpse (float32 only) refuses to convert.
constexpr const char* kRefused[] = {"BOOL", "U8",  "I8",  "U16", "I16",      "U32",      "I32",    "U64",
                                    "I64",  "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",
                                    "C64"};

std::string file_fault(const std::string& path) { return "safetensors file '" + path + "': "; }

// IEEE binary16 -> binary32, exact (subnormals, inf and NaN payloads included).
float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // normal: rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;  // +-0
  } else {
    // Subnormal half: mant * 2^-24, normal in float32. Shift the leading 1 up to bit 10.
    int e = -1;
    do {
      mant <<= 1;
      ++e;
    } while ((mant & 0x400u) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

void convert_to_float(Dtype dtype, const unsigned char* src, float* dst, int64_t n) {
  switch (dtype) {
    case Dtype::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      break;
    case Dtype::F64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        dst[i] = static_cast<float>(d);
      }
      break;
    case Dtype::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = half_to_float(h);
      }
      break;
    case Dtype::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
      }
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// reading

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  Shape shape;
  uint64_t begin, end;
};

// A FILE* that closes itself.
struct File {
  std::FILE* f = nullptr;
  explicit File(std::FILE* f) : f(f) {}
  ~File() {
    if (f) std::fclose(f);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
};

void read_exact(std::FILE* f, void* dst, size_t bytes, const std::string& path, const std::string& what) {
  if (bytes == 0) return;
  size_t got = std::fread(dst, 1, bytes, f);
  if (got != bytes) {
    GLIMPSE_FAIL(file_fault(path), "read only ", got, " of ", bytes, " bytes of ", what,
                 std::ferror(f) ? std::string(" (I/O error: ") + std::strerror(errno) + ")"
                                : std::string(" (the file ended early: was it truncated while being read?)"));
  }
}

uint64_t json_u64(const ordered_json& v, const std::string& path, const std::string& tensor, const char* field) {
  if (!v.is_number_unsigned()) {
    GLIMPSE_FAIL(file_fault(path), "tensor '", tensor, "': ", field, " must hold non-negative integers, found ",
                 v.dump());
  }
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& name, const ordered_json& v, const std::string& path) {
  if (!v.is_object()) {
    GLIMPSE_FAIL(file_fault(path), "header entry '", name,
                 "' must be an object {\"dtype\", \"shape\", \"data_offsets\"}, found ", v.dump());
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(field)) GLIMPSE_FAIL(file_fault(path), "tensor '", name, "' has no \"", field, "\" field");
  }
  Entry e;
  e.name = name;

  const auto& dt = v["dtype"];
  if (!dt.is_string()) GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': dtype must be a string, found ", dt.dump());
  const std::string dts = dt.get<std::string>();
  e.dtype = nullptr;
  for (const auto& info : kReadable) {
    if (dts == info.name) e.dtype = &info;
  }
  if (!e.dtype) {
    bool known = std::find_if(std::begin(kRefused), std::end(kRefused),
                              [&](const char* s) { return dts == s; }) != std::end(kRefused);
    if (known) {
      GLIMPSE_FAIL(file_fault(path), "tensor '", name, "' has dtype ", dts,
                   ", which glimpse does not load (it reads F32 and converts F64, F16 and BF16 to float32)");
    }
    GLIMPSE_FAIL(file_fault(path), "tensor '", name, "' has unknown dtype '", dts,
                 "' (safetensors dtypes are F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, ...; "
                 "glimpse reads F32, F64, F16, BF16)");
  }

  const auto& sh = v["shape"];
  if (!sh.is_array()) GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': shape must be an array, found ", sh.dump());
  // Element count and byte size, refusing overflow (a hostile header must not wrap around).
  uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : sh) {
    uint64_t n = json_u64(d, path, name, "shape");
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
    e.shape.push_back(static_cast<int64_t>(n));
    if (n != 0 && numel > std::numeric_limits<uint64_t>::max() / n) overflow = true;
    numel *= n;
  }
  if (!overflow && numel > std::numeric_limits<uint64_t>::max() / e.dtype->bytes) overflow = true;
  if (overflow) GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': shape ", sh.dump(), " is too large");

  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2) {
    GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': data_offsets must be [begin, end], found ", off.dump());
  }
  e.begin = json_u64(off[0], path, name, "data_offsets");
  e.end = json_u64(off[1], path, name, "data_offsets");
  if (e.end < e.begin) {
    GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': data_offsets [", e.begin, ", ", e.end,
                 "] end before they begin");
  }
  const uint64_t bytes = numel * e.dtype->bytes;
  if (e.end - e.begin != bytes) {
    GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': shape ", shape_str(e.shape), " of dtype ", dts, " needs ",
                 bytes, " bytes but data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin, " bytes");
  }
  return e;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

bool SafetensorsFile::contains(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return true;
  }
  return false;
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  std::string known;
  for (const auto& [n, t] : tensors) known += (known.empty() ? "" : ", ") + n;
  GLIMPSE_FAIL("no tensor named '", name, "' in the safetensors file; it holds: ", known.empty() ? "(nothing)" : known);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [n, t] : tensors) out.push_back(n);
  return out;
}

SafetensorsFile load_safetensors(const std::string& path) {
  File file(std::fopen(path.c_str(), "rb"));
  if (!file.f) GLIMPSE_FAIL(file_fault(path), "cannot open for reading: ", std::strerror(errno));
  struct stat st {};
  if (fstat(fileno(file.f), &st) != 0) GLIMPSE_FAIL(file_fault(path), "cannot stat: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) GLIMPSE_FAIL(file_fault(path), "not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  // 1. The header length.
  if (file_size < 8) {
    GLIMPSE_FAIL(file_fault(path), "the file is ", file_size,
                 " bytes, shorter than the 8-byte header length that starts every safetensors file");
  }
  unsigned char len_bytes[8];
  read_exact(file.f, len_bytes, 8, path, "the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > file_size - 8) {
    GLIMPSE_FAIL(file_fault(path), "the header length field says ", n, " bytes but the file has only ",
                 file_size - 8, " bytes after it (truncated file, or not a safetensors file)");
  }
  if (n > kMaxHeaderBytes) {
    GLIMPSE_FAIL(file_fault(path), "the header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  }
  if (n < 2) GLIMPSE_FAIL(file_fault(path), "the header is ", n, " bytes long; it must be a JSON object");

  // 2. The header JSON.
  std::string header(n, '\0');
  read_exact(file.f, header.data(), n, path, "the header");
  if (header[0] != '{') {
    GLIMPSE_FAIL(file_fault(path), "the header must start with '{' (byte 8 of the file), found byte 0x", std::hex,
                 static_cast<int>(static_cast<unsigned char>(header[0])), std::dec,
                 " (not a safetensors file, or a corrupt one)");
  }
  // Duplicate keys, which JSON parsers silently resolve one way or another, are refused: the
  // callback keeps one set of seen keys per open object.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int, nlohmann::json::parse_event_t ev, ordered_json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) open_objects.emplace_back();
    if (ev == E::object_end && !open_objects.empty()) open_objects.pop_back();
    if (ev == E::key && !open_objects.empty() && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) duplicate = key;
    }
    return true;
  };
  ordered_json root;
  try {
    root = ordered_json::parse(header, callback);
  } catch (const nlohmann::json::parse_error& e) {
    GLIMPSE_FAIL(file_fault(path), "the header is not valid JSON: error at header byte ", e.byte, " (file offset ",
                 8 + e.byte - (e.byte > 0 ? 1 : 0), "): ", e.what());
  }
  if (!duplicate.empty()) GLIMPSE_FAIL(file_fault(path), "the header holds the key '", duplicate, "' twice");
  if (!root.is_object()) GLIMPSE_FAIL(file_fault(path), "the header must be a JSON object");

  // 3. Entries, in header order.
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) GLIMPSE_FAIL(file_fault(path), "__metadata__ must be an object, found ", value.dump());
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          GLIMPSE_FAIL(file_fault(path), "__metadata__ values must be strings; '", mk, "' is ", mv.dump());
        }
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(key, value, path));
  }

  // 4. The tensors must tile the byte buffer: sorted by offset, each begins where the last ended,
  //    and the last ends at the end of the file.
  const uint64_t buffer_size = file_size - 8 - n;
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : by_offset) {
    if (e->end > buffer_size) {
      GLIMPSE_FAIL(file_fault(path), "tensor '", e->name, "': data_offsets [", e->begin, ", ", e->end,
                   "] go beyond the data section of ", buffer_size, " bytes (truncated file?)");
    }
    if (e->begin < expected) {
      GLIMPSE_FAIL(file_fault(path), "tensor '", e->name, "': data_offsets [", e->begin, ", ", e->end,
                   "] overlap those of tensor '", previous->name, "' [", previous->begin, ", ", previous->end, "]");
    }
    if (e->begin > expected) {
      GLIMPSE_FAIL(file_fault(path), "tensor '", e->name, "': data_offsets [", e->begin, ", ", e->end,
                   "] leave a hole of ", e->begin - expected, " bytes at [", expected, ", ", e->begin,
                   ") of the data section (tensors must be contiguous)");
    }
    expected = e->end;
    previous = e;
  }
  if (expected != buffer_size) {
    GLIMPSE_FAIL(file_fault(path), buffer_size - expected, " bytes of trailing data after the last tensor (the data ",
                 "section is ", buffer_size, " bytes, the tensors cover ", expected, ")");
  }

  // 5. The data, read in file order.
  std::vector<Tensor> tensors(entries.size());
  std::vector<unsigned char> scratch;
  for (const Entry* e : by_offset) {
    Tensor t = Tensor::empty(e->shape);
    const uint64_t bytes = e->end - e->begin;
    if (bytes > 0) {
      if (fseeko(file.f, static_cast<off_t>(8 + n + e->begin), SEEK_SET) != 0) {
        GLIMPSE_FAIL(file_fault(path), "cannot seek to tensor '", e->name, "': ", std::strerror(errno));
      }
      if (e->dtype->dtype == Dtype::F32) {
        read_exact(file.f, t.data(), bytes, path, "tensor '" + e->name + "'");
      } else {
        scratch.resize(bytes);
        read_exact(file.f, scratch.data(), bytes, path, "tensor '" + e->name + "'");
        convert_to_float(e->dtype->dtype, scratch.data(), t.data(), t.numel());
      }
    }
    tensors[static_cast<size_t>(e - entries.data())] = t;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    out.tensors.emplace_back(entries[i].name, tensors[i]);
    out.dtypes[entries[i].name] = entries[i].dtype->name;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// writing

namespace {

// Writes to a temporary file, counting bytes for the test hook; the destructor removes the
// temporary file unless commit() renamed it into place.
class AtomicWriter {
 public:
  AtomicWriter(std::string path) : path_(std::move(path)) {
    tmp_ = path_ + ".tmp." + std::to_string(static_cast<long>(getpid()));
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) GLIMPSE_FAIL(file_fault(path_), "cannot create temporary file '", tmp_, "': ", std::strerror(errno));
    fail_after_ = g_fail_after_bytes.load();
  }
  ~AtomicWriter() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, size_t bytes) {
    if (fail_after_ >= 0 && written_ + static_cast<int64_t>(bytes) > fail_after_) {
      size_t part = static_cast<size_t>(fail_after_ - written_);
      std::fwrite(data, 1, part, f_);
      std::fflush(f_);
      GLIMPSE_FAIL(file_fault(path_), "simulated write failure after ", fail_after_,
                   " bytes (test hook detail::set_safetensors_fail_after_bytes)");
    }
    if (bytes && std::fwrite(data, 1, bytes, f_) != bytes) {
      GLIMPSE_FAIL(file_fault(path_), "write to '", tmp_, "' failed: ", std::strerror(errno));
    }
    written_ += static_cast<int64_t>(bytes);
  }

  void commit() {
    if (std::fflush(f_) != 0) GLIMPSE_FAIL(file_fault(path_), "flush of '", tmp_, "' failed: ", std::strerror(errno));
    if (fsync(fileno(f_)) != 0) GLIMPSE_FAIL(file_fault(path_), "fsync of '", tmp_, "' failed: ", std::strerror(errno));
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) GLIMPSE_FAIL(file_fault(path_), "close of '", tmp_, "' failed: ", std::strerror(errno));
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      GLIMPSE_FAIL(file_fault(path_), "cannot rename '", tmp_, "' into place: ", std::strerror(errno));
    }
    committed_ = true;
    // Make the rename itself durable: fsync the directory (best effort; some filesystems refuse).
    auto slash = path_.find_last_of('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
      (void)fsync(fd);
      ::close(fd);
    }
  }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  int64_t written_ = 0;
  int64_t fail_after_ = -1;
  bool committed_ = false;
};

}  // namespace

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Everything is checked and the header built before the temporary file is created.
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::set<std::string> seen;
  std::vector<Tensor> host;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    GLIMPSE_CHECK(name != "__metadata__", file_fault(path), "a tensor cannot be named __metadata__");
    GLIMPSE_CHECK(seen.insert(name).second, file_fault(path), "the tensor name '", name, "' appears twice");
    GLIMPSE_CHECK(t.defined(), file_fault(path), "tensor '", name, "' is undefined");
    Tensor c = t.to(Device::cpu()).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(c.numel()) * 4;
    ordered_json entry = ordered_json::object();
    entry["dtype"] = "F32";
    entry["shape"] = c.shape();
    entry["data_offsets"] = {offset, offset + bytes};
    header[name] = entry;
    offset += bytes;
    host.push_back(c);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    GLIMPSE_FAIL(file_fault(path), "cannot encode the header (tensor and metadata names must be valid UTF-8): ",
                 e.what());
  }
  // Pad with spaces so that the data section starts on an 8-byte boundary, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  AtomicWriter w(path);
  w.write(len_bytes, 8);
  w.write(text.data(), text.size());
  for (const auto& c : host) w.write(c.data(), static_cast<size_t>(c.numel()) * 4);
  w.commit();
}

namespace detail {
void set_safetensors_fail_after_bytes(int64_t bytes) { g_fail_after_bytes.store(bytes); }
}  // namespace detail

}  // namespace glimpse

// safetensors reader and writer; the format and the rules we enforce are in safetensors.h.
#include "core/io/safetensors.h"

#include <sys/stat.h>
#include <zlib.h>

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
#include "core/io/atomic_file.h"

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
// Deepest JSON nesting accepted in a header (see the parse callback).
constexpr int kMaxJsonDepth = 16;

std::atomic<bool> g_skip_checksum{false};  // detail::set_safetensors_skip_checksum

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
constexpr const char* kRefused[] = {"BOOL", "U8",      "I8",      "U16",     "I16",     "U32",     "I32", "U64",
                                    "I64",  "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",  "C64"};

std::string file_fault(const std::string& path) { return "safetensors file '" + path + "': "; }

// A JSON value for an error message, cut short: a hostile header may hold megabytes in one value.
std::string short_dump(const ordered_json& v) {
  std::string s;
  try {
    s = v.dump();
  } catch (const nlohmann::json::exception&) {
    return "(a value that cannot be printed)";
  }
  return s.size() <= 120 ? s : s.substr(0, 120) + "... (" + std::to_string(s.size()) + " chars)";
}

// ---------------------------------------------------------------------------------------------
// the checksum (format in safetensors.h)

// zlib's CRC-32, fed in pieces; uInt is 32 bits, so large buffers go in 1 GiB chunks.
class Crc32 {
 public:
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const Bytef*>(data);
    while (n > 0) {
      const size_t chunk = std::min<size_t>(n, size_t(1) << 30);
      crc_ = ::crc32(crc_, p, static_cast<uInt>(chunk));
      p += chunk;
      n -= chunk;
    }
  }
  void u64(uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    bytes(b, 8);
  }
  void str(const std::string& s) {
    u64(s.size());  // length-prefixed, so that no two different headers give the same byte stream
    bytes(s.data(), s.size());
  }
  std::string value() const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(crc_ & 0xffffffffu));
    return std::string("crc32:") + buf;
  }

 private:
  uLong crc_ = ::crc32(0L, Z_NULL, 0);
};

struct EntryDigest {
  std::string name, dtype;
  Shape shape;
  uint64_t begin, end;
};

// The header part of the checksum: the metadata (checksum key excluded) sorted by key, then the
// tensors sorted by name with dtype, shape and offsets. The data section follows it in the stream.
void digest_header(Crc32& crc, const std::map<std::string, std::string>& metadata, std::vector<EntryDigest> entries) {
  crc.str("glimpse.safetensors.checksum.v1");
  crc.u64(metadata.size());
  for (const auto& [k, v] : metadata) {  // std::map: sorted by key, bytewise
    crc.str(k);
    crc.str(v);
  }
  std::sort(entries.begin(), entries.end(), [](const EntryDigest& a, const EntryDigest& b) { return a.name < b.name; });
  crc.u64(entries.size());
  for (const auto& e : entries) {
    crc.str(e.name);
    crc.str(e.dtype);
    crc.u64(e.shape.size());
    for (int64_t d : e.shape) crc.u64(static_cast<uint64_t>(d));
    crc.u64(e.begin);
    crc.u64(e.end);
  }
}

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
                 short_dump(v));
  }
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& name, const ordered_json& v, const std::string& path) {
  if (!v.is_object()) {
    GLIMPSE_FAIL(file_fault(path), "header entry '", name,
                 "' must be an object {\"dtype\", \"shape\", \"data_offsets\"}, found ", short_dump(v));
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(field)) GLIMPSE_FAIL(file_fault(path), "tensor '", name, "' has no \"", field, "\" field");
  }
  Entry e;
  e.name = name;

  const auto& dt = v["dtype"];
  if (!dt.is_string())
    GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': dtype must be a string, found ", short_dump(dt));
  const std::string dts = dt.get<std::string>();
  e.dtype = nullptr;
  for (const auto& info : kReadable) {
    if (dts == info.name) e.dtype = &info;
  }
  if (!e.dtype) {
    bool known = std::find_if(std::begin(kRefused), std::end(kRefused), [&](const char* s) { return dts == s; }) !=
                 std::end(kRefused);
    if (known) {
      GLIMPSE_FAIL(file_fault(path), "tensor '", name, "' has dtype ", dts,
                   ", which glimpse does not load (it reads F32 and converts F64, F16 and BF16 to float32)");
    }
    GLIMPSE_FAIL(file_fault(path), "tensor '", name, "' has unknown dtype '", dts,
                 "' (safetensors dtypes are F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, ...; "
                 "glimpse reads F32, F64, F16, BF16)");
  }

  const auto& sh = v["shape"];
  if (!sh.is_array())
    GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': shape must be an array, found ", short_dump(sh));
  // Element count and byte size, refusing overflow (a hostile header must not wrap around): each
  // dim fits int64, the shape obeys the Tensor rule of core/shape.h (the product of max(dim, 1)
  // fits int64, so [0, 2^62, 4] is refused although it has no elements), and the byte size fits.
  for (const auto& d : sh) {
    const uint64_t n = json_u64(d, path, name, "shape");
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': shape ", short_dump(sh), " has a dimension above 2^63 - 1");
    }
    e.shape.push_back(static_cast<int64_t>(n));
  }
  const std::string fault = shape_fault(e.shape);
  if (!fault.empty()) GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': ", fault);
  const uint64_t numel = static_cast<uint64_t>(shape_numel(e.shape));
  if (numel > std::numeric_limits<uint64_t>::max() / e.dtype->bytes) {
    GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': shape ", shape_str(e.shape), " is too large for dtype ", dts);
  }

  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2) {
    GLIMPSE_FAIL(file_fault(path), "tensor '", name, "': data_offsets must be [begin, end], found ", short_dump(off));
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
    GLIMPSE_FAIL(file_fault(path), "the header length field says ", n, " bytes but the file has only ", file_size - 8,
                 " bytes after it (truncated file, or not a safetensors file)");
  }
  if (n > kMaxHeaderBytes) {
    GLIMPSE_FAIL(file_fault(path), "the header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  }
  if (n < 2) GLIMPSE_FAIL(file_fault(path), "the header is ", n, " bytes long; it must be a JSON object");

  // 2. The header JSON. Every exception of the JSON library (json::exception is the base of
  //    parse_error, out_of_range -- a number like 1e400 --, type_error, ...) becomes an Error naming
  //    the file and, once the entries are being read, the key; nothing of nlohmann's escapes.
  std::string header(n, '\0');
  read_exact(file.f, header.data(), n, path, "the header");
  if (header[0] != '{') {
    GLIMPSE_FAIL(file_fault(path), "the header must start with '{' (byte 8 of the file), found byte 0x", std::hex,
                 static_cast<int>(static_cast<unsigned char>(header[0])), std::dec,
                 " (not a safetensors file, or a corrupt one)");
  }
  // Duplicate keys, which JSON parsers silently resolve one way or another, are refused: the
  // callback keeps one set of seen keys per open object.
  // Nesting is bounded too: a safetensors header needs 3 levels, and a value nested a million deep
  // would overflow the stack of every recursive walk over it (dump, comparison). Deeper containers
  // are discarded as they are parsed (nlohmann's parser itself is iterative) and refused below.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool too_deep = false;
  auto callback = [&](int depth, nlohmann::json::parse_event_t ev, ordered_json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if ((ev == E::object_start || ev == E::array_start) && depth >= kMaxJsonDepth) {
      too_deep = true;
      return false;  // discard: nothing beneath is built
    }
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
  } catch (const nlohmann::json::out_of_range& e) {
    GLIMPSE_FAIL(file_fault(path), "the header holds a value the JSON reader cannot represent (", e.what(),
                 "; e.g. a number beyond the range of a double)");
  } catch (const nlohmann::json::exception& e) {
    GLIMPSE_FAIL(file_fault(path), "the header cannot be read as JSON: ", e.what());
  }
  if (too_deep) {
    GLIMPSE_FAIL(file_fault(path), "the header nests JSON objects or arrays more than ", kMaxJsonDepth,
                 " levels deep (a safetensors header needs 3): not a safetensors file, or a corrupt one");
  }
  if (!duplicate.empty()) GLIMPSE_FAIL(file_fault(path), "the header holds the key '", duplicate, "' twice");
  if (!root.is_object()) GLIMPSE_FAIL(file_fault(path), "the header must be a JSON object");

  // 3. Entries, in header order.
  SafetensorsFile out;
  std::vector<Entry> entries;
  std::string checksum;  // the stored "glimpse.checksum", if any
  std::string current = "(none)";
  try {
    for (const auto& [key, value] : root.items()) {
      current = key;
      if (key == "__metadata__") {
        if (!value.is_object()) {
          GLIMPSE_FAIL(file_fault(path), "__metadata__ must be an object, found ", short_dump(value));
        }
        for (const auto& [mk, mv] : value.items()) {
          current = "__metadata__." + mk;
          if (!mv.is_string()) {
            GLIMPSE_FAIL(file_fault(path), "__metadata__ values must be strings; '", mk, "' is ", short_dump(mv));
          }
          if (mk == kSafetensorsChecksumKey)
            checksum = mv.get<std::string>();
          else
            out.metadata[mk] = mv.get<std::string>();
        }
        if (value.contains(kSafetensorsChecksumKey)) out.has_checksum = true;
        continue;
      }
      entries.push_back(parse_entry(key, value, path));
    }
  } catch (const nlohmann::json::exception& e) {
    GLIMPSE_FAIL(file_fault(path), "header key '", current, "': ", e.what());
  }
  if (out.has_checksum && !(checksum.size() == 14 && checksum.rfind("crc32:", 0) == 0 &&
                            checksum.find_first_not_of("0123456789abcdef", 6) == std::string::npos)) {
    GLIMPSE_FAIL(file_fault(path), "corrupt: __metadata__ '", kSafetensorsChecksumKey, "' is '",
                 checksum.size() <= 40 ? checksum : checksum.substr(0, 40) + "...",
                 "', not crc32:<8 lower-case hex digits> (a damaged file, or written by a newer glimpse)");
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

  // 5. The data, read in file order. Since the tensors tile the data section, the bytes read here,
  //    in this order, are the whole data section: they follow the header digest in the checksum.
  Crc32 crc;
  const bool verify = out.has_checksum && !g_skip_checksum.load();
  if (verify) {
    std::vector<EntryDigest> digest;
    for (const auto& e : entries) digest.push_back({e.name, e.dtype->name, e.shape, e.begin, e.end});
    digest_header(crc, out.metadata, std::move(digest));
  }
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
        if (verify) crc.bytes(t.data(), bytes);
      } else {
        scratch.resize(bytes);
        read_exact(file.f, scratch.data(), bytes, path, "tensor '" + e->name + "'");
        if (verify) crc.bytes(scratch.data(), bytes);
        convert_to_float(e->dtype->dtype, scratch.data(), t.data(), t.numel());
      }
    }
    tensors[static_cast<size_t>(e - entries.data())] = t;
  }
  if (verify) {
    if (crc.value() != checksum) {
      GLIMPSE_FAIL(file_fault(path), "corrupt: checksum mismatch: the file records ", kSafetensorsChecksumKey, " = ",
                   checksum, " but its metadata, tensor layout and data give ", crc.value(),
                   " (a damaged copy, a flipped bit, or a header edited by hand; re-save or re-download it)");
    }
    out.checksum_verified = true;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    out.tensors.emplace_back(entries[i].name, tensors[i]);
    out.dtypes[entries[i].name] = entries[i].dtype->name;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// writing

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata, bool checksum) {
  // Everything is checked and the header built before the temporary file is created.
  GLIMPSE_CHECK(!metadata.count(kSafetensorsChecksumKey), file_fault(path), "the metadata key '",
                kSafetensorsChecksumKey, "' is reserved: save_safetensors computes it");
  std::set<std::string> seen;
  std::vector<Tensor> host;
  std::vector<EntryDigest> digest;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    GLIMPSE_CHECK(name != "__metadata__", file_fault(path), "a tensor cannot be named __metadata__");
    GLIMPSE_CHECK(seen.insert(name).second, file_fault(path), "the tensor name '", name, "' appears twice");
    GLIMPSE_CHECK(t.defined(), file_fault(path), "tensor '", name, "' is undefined");
    Tensor c = t.to(Device::cpu()).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(c.numel()) * 4;
    digest.push_back({name, "F32", c.shape(), offset, offset + bytes});
    offset += bytes;
    host.push_back(c);
  }
  ordered_json header = ordered_json::object();
  if (!metadata.empty() || checksum) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    if (checksum) {
      Crc32 crc;
      digest_header(crc, metadata, digest);
      for (const auto& c : host) crc.bytes(c.data(), static_cast<size_t>(c.numel()) * 4);
      meta[kSafetensorsChecksumKey] = crc.value();
    }
    header["__metadata__"] = meta;
  }
  for (const auto& e : digest) {
    ordered_json entry = ordered_json::object();
    entry["dtype"] = e.dtype;
    entry["shape"] = e.shape;
    entry["data_offsets"] = {e.begin, e.end};
    header[e.name] = entry;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    GLIMPSE_FAIL(file_fault(path),
                 "cannot encode the header (tensor and metadata names must be valid UTF-8): ", e.what());
  }
  // Pad with spaces so that the data section starts on an 8-byte boundary, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  // Checked to the last byte, fsync'ed, renamed into place; a failure removes the temporary file and
  // leaves an existing `path` untouched (core/io/atomic_file.h).
  io::AtomicFile w(path);
  w.write(len_bytes, 8);
  w.write(text.data(), text.size());
  for (const auto& c : host) w.write(c.data(), static_cast<size_t>(c.numel()) * 4);
  w.commit();
}

namespace detail {
// Kept for the tests written against it: the writes now go through io::AtomicFile, whose hook it sets.
void set_safetensors_fail_after_bytes(int64_t bytes) { io::detail::set_write_fail_after_bytes(bytes); }
void set_safetensors_skip_checksum(bool skip) { g_skip_checksum.store(skip); }
}  // namespace detail

}  // namespace glimpse

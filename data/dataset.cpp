// Datasets on disk: the CSV reader, the ISIC layout, the class-per-folder layout, and finding the
// shared ISIC 2017 copy. See data.h.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "data/data.h"

namespace fs = std::filesystem;

namespace glimpse::data {

// ---- CSV ----------------------------------------------------------------------------------------

int64_t CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int64_t>(i);
  return -1;
}

namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return s.substr(b, e - b);
}

bool blank(const std::string& s) { return trim(s).empty(); }

// A CSV is untrusted input: what goes into an error message is cut short (a hostile line may be
// megabytes), and the sizes below bound what any file can make us allocate.
constexpr uint64_t kMaxCsvBytes = uint64_t(256) << 20;  // ISIC 2019's 25k-row CSV is ~1 MiB
constexpr size_t kMaxColumns = 1024;

std::string shown(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 60)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return s.size() > 60 ? out + "... (" + std::to_string(s.size()) + " bytes)" : out;
}

// Splits one record starting at `line`; a quoted field may span lines, read from `in`.
// More than max_fields fields is an error at once (a line of a million commas allocates nothing).
std::vector<std::string> split_record(std::string line, std::istream& in, const std::string& path, int64_t& lineno,
                                      size_t max_fields) {
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false, was_quoted = false;
  const int64_t start_line = lineno;
  for (size_t i = 0;; ++i) {
    if (i == line.size()) {
      if (!quoted) break;
      std::string more;
      GLIMPSE_CHECK(static_cast<bool>(std::getline(in, more)), path, ":", start_line,
                    ": unterminated quoted field (a '\"' opened here is never closed)");
      ++lineno;
      if (!more.empty() && more.back() == '\r') more.pop_back();
      cur += '\n';
      line = std::move(more);
      i = static_cast<size_t>(-1);
      continue;
    }
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur += c;
      }
    } else if (c == '"' && trim(cur).empty()) {
      quoted = was_quoted = true;
      cur.clear();
    } else if (c == ',') {
      GLIMPSE_CHECK(fields.size() + 1 < max_fields, path, ":", start_line, ": more than ", max_fields, " fields",
                    max_fields == kMaxColumns ? std::string(" (the limit of a header)")
                                              : " (the header has " + std::to_string(max_fields) + ")");
      fields.push_back(was_quoted ? cur : trim(cur));
      cur.clear();
      was_quoted = false;
    } else {
      cur += c;
    }
  }
  fields.push_back(was_quoted ? cur : trim(cur));
  return fields;
}

}  // namespace

CsvTable read_csv(const std::string& path) {
  // Read whole and bounded (io::read_file names the path when it cannot be read or is too large).
  std::istringstream in(io::read_file(path, kMaxCsvBytes));
  CsvTable t;
  t.path = path;
  std::string line;
  int64_t lineno = 0;
  bool have_header = false;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.size() >= 3 && static_cast<unsigned char>(line[0]) == 0xEF &&
        static_cast<unsigned char>(line[1]) == 0xBB && static_cast<unsigned char>(line[2]) == 0xBF)
      line = line.substr(3);  // UTF-8 byte order mark
    if (blank(line)) continue;
    const int64_t row_line = lineno;
    std::vector<std::string> f = split_record(line, in, path, lineno, have_header ? t.header.size() : kMaxColumns);
    if (!have_header) {
      t.header = std::move(f);
      for (size_t i = 0; i < t.header.size(); ++i) {
        GLIMPSE_CHECK(!t.header[i].empty(), path, ":", row_line, ": empty column name in the header (column ", i + 1,
                      ")");
        for (size_t j = 0; j < i; ++j)
          GLIMPSE_CHECK(t.header[i] != t.header[j], path, ":", row_line, ": column '", shown(t.header[i]),
                        "' appears twice in the header");
      }
      have_header = true;
      continue;
    }
    GLIMPSE_CHECK(
        f.size() == t.header.size(), path, ":", row_line, ": expected ", t.header.size(), " fields (",
        [&] {
          std::string h;
          for (size_t i = 0; i < t.header.size(); ++i) h += (i ? "," : "") + t.header[i];
          return h;
        }(),
        "), found ", f.size(), " in '", shown(trim(line)), "'");
    t.rows.push_back(std::move(f));
    t.lines.push_back(row_line);
  }
  GLIMPSE_CHECK(have_header, "CSV file '", path, "' is empty (expected a header line)");
  return t;
}

// ---- helpers ------------------------------------------------------------------------------------

namespace {

bool is_image_ext(std::string ext) {
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".tga" || ext == ".gif" ||
         ext == ".ppm" || ext == ".pgm";
}

// Image files of a directory, by stem (the first in name order wins for duplicate stems).
std::map<std::string, std::string> images_by_stem(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2) && is_image_ext(it->path().extension().string())) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  std::map<std::string, std::string> out;
  for (const fs::path& p : files) out.emplace(p.stem().string(), p.string());
  return out;
}

// A 0/1 flag: "0", "1", "0.0", "1.0" (the official ISIC 2017 CSVs write floats).
int parse_flag(const std::string& v, const CsvTable& t, size_t row, const char* column) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  // end must reach the string's own end: an embedded NUL would stop strtod early and pass "1\0junk".
  const bool ok = !v.empty() && end == v.c_str() + v.size() && (d == 0.0 || d == 1.0);
  GLIMPSE_CHECK(ok, t.path, ":", t.lines[row], ": column '", column, "' has value '", shown(v),
                "'; expected 0 or 1 (row '", shown(t.rows[row][0]), "...')");
  return d == 1.0 ? 1 : 0;
}

// An image id or a split value becomes part of a path (images/<id>.jpg, <root>/<split>/images, and
// the files roar and two-stage write): a plain file name only, so that no CSV can point a read or a
// write outside the data set.
void check_plain_name(const std::string& v, const CsvTable& t, size_t row, const char* column) {
  bool ok = !v.empty() && v.size() <= 255 && v != "." && v != "..";
  for (char c : v) ok = ok && c != '/' && c != '\\' && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  GLIMPSE_CHECK(ok, t.path, ":", t.lines[row], ": column '", column, "' has value '", shown(v),
                "'; expected a plain file name (1-255 characters, no '/', '\\', control characters, '.' or '..')");
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}
bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

}  // namespace

// ---- ISIC layout --------------------------------------------------------------------------------

Dataset Dataset::open_isic(const std::string& root, const std::string& split, const std::string& csv) {
  GLIMPSE_CHECK(is_dir(root), "dataset directory '", root, "' does not exist (or is not a directory)");
  const std::string csv_path = csv.empty() ? (fs::path(root) / "labels.csv").string() : csv;
  GLIMPSE_CHECK(is_file(csv_path), "no labels file '", csv_path,
                "' (the ISIC layout needs a CSV with image_id,melanoma,seborrheic_keratosis)");
  const CsvTable t = read_csv(csv_path);
  const int64_t c_id = t.column("image_id"), c_mel = t.column("melanoma"), c_sk = t.column("seborrheic_keratosis"),
                c_split = t.column("split");
  GLIMPSE_CHECK(
      c_id >= 0 && c_mel >= 0 && c_sk >= 0, csv_path, ":1: the header needs the columns image_id, melanoma",
      " and seborrheic_keratosis (the ISIC 2017 Part 3 columns); found '",
      [&] {
        std::string h;
        for (size_t i = 0; i < t.header.size(); ++i) h += (i ? "," : "") + t.header[i];
        return h;
      }(),
      "'");
  GLIMPSE_CHECK(split.empty() || c_split >= 0, csv_path, ": split '", split,
                "' requested but the CSV has no 'split' column");

  Dataset ds;
  ds.root = root;
  ds.class_names = {"nevus", "melanoma", "seborrheic_keratosis"};

  // Image and mask folders per split value ("" = <root>/images), listed once each.
  struct Dirs {
    std::map<std::string, std::string> images, masks;
    fs::path image_dir, mask_dir;
  };
  std::map<std::string, Dirs> dirs;
  auto dirs_for = [&](const std::string& s) -> Dirs& {
    auto it = dirs.find(s);
    if (it != dirs.end()) return it->second;
    Dirs d;
    fs::path base = fs::path(root);
    if (!s.empty() && is_dir(base / s / "images")) base = base / s;
    d.image_dir = base / "images";
    d.mask_dir = base / "masks";
    GLIMPSE_CHECK(is_dir(d.image_dir), "dataset '", root, "': no image folder '", d.image_dir.string(), "'",
                  s.empty() ? std::string() : " (nor " + (fs::path(root) / s / "images").string() + ")");
    d.images = images_by_stem(d.image_dir);
    if (is_dir(d.mask_dir)) d.masks = images_by_stem(d.mask_dir);
    return dirs.emplace(s, std::move(d)).first->second;
  };

  std::set<std::string> splits_seen, ids_seen;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    const std::string row_split = c_split >= 0 ? row[c_split] : "";
    if (c_split >= 0) check_plain_name(row_split, t, r, "split");
    if (splits_seen.size() < 100) splits_seen.insert(row_split);  // for the message below only
    if (!split.empty() && row_split != split) continue;
    const std::string& id = row[c_id];
    GLIMPSE_CHECK(!id.empty(), csv_path, ":", t.lines[r], ": empty image_id");
    check_plain_name(id, t, r, "image_id");
    GLIMPSE_CHECK(ids_seen.insert(id).second, csv_path, ":", t.lines[r], ": image_id '", shown(id), "' appears twice");
    const int mel = parse_flag(row[c_mel], t, r, "melanoma");
    const int sk = parse_flag(row[c_sk], t, r, "seborrheic_keratosis");
    GLIMPSE_CHECK(!(mel && sk), csv_path, ":", t.lines[r], ": image '", shown(id),
                  "' is marked both melanoma and seborrheic_keratosis (the classes are exclusive)");
    // Without a requested split, rows still find their images under <root>/<split>/images.
    Dirs& d = dirs_for(split.empty() ? (c_split >= 0 && !is_dir(fs::path(root) / "images") ? row_split : "") : split);
    Sample s;
    s.id = id;
    s.label = mel ? 1 : sk ? 2 : 0;
    auto im = d.images.find(id);
    if (im != d.images.end()) {
      s.image_path = im->second;
    } else {
      s.image_path = (d.image_dir / (id + ".jpg")).string();
      ++ds.missing_images;
    }
    auto mk = d.masks.find(id + "_segmentation");
    if (mk != d.masks.end()) s.mask_path = mk->second;
    ds.samples.push_back(std::move(s));
  }
  if (ds.samples.empty()) {
    std::string seen;
    for (const auto& s : splits_seen) seen += (seen.empty() ? "'" : ", '") + s + "'";
    GLIMPSE_FAIL("dataset '", root, "' has no samples", split.empty() ? std::string() : " in split '" + split + "'",
                 " (", csv_path, " has ", t.rows.size(), " rows", c_split >= 0 ? "; split values: " + seen : "", ")");
  }
  if (ds.missing_images > 0) {
    std::fprintf(stderr, "data: %lld of %zu images listed in %s were not found (first: %s)\n",
                 static_cast<long long>(ds.missing_images), ds.samples.size(), csv_path.c_str(), [&] {
                   for (const auto& s : ds.samples)
                     if (!is_file(s.image_path)) return s.image_path.c_str();
                   return "";
                 }());
  }
  return ds;
}

// ---- class-per-folder layout --------------------------------------------------------------------

Dataset Dataset::open_class_folders(const std::string& root) {
  GLIMPSE_CHECK(is_dir(root), "dataset directory '", root, "' does not exist (or is not a directory)");
  std::vector<fs::path> classes;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_directory(ec2) && it->path().filename().string()[0] != '.') classes.push_back(it->path());
  }
  std::sort(classes.begin(), classes.end());
  GLIMPSE_CHECK(!classes.empty(), "dataset '", root,
                "': no class folders (expected <root>/<class>/<image files>, or a labels.csv for the ISIC layout)");
  Dataset ds;
  ds.root = root;
  for (size_t c = 0; c < classes.size(); ++c) {
    ds.class_names.push_back(classes[c].filename().string());
    for (const auto& [stem, path] : images_by_stem(classes[c])) {
      Sample s;
      s.id = stem;
      s.image_path = path;
      s.label = static_cast<int64_t>(c);
      ds.samples.push_back(std::move(s));
    }
  }
  GLIMPSE_CHECK(!ds.samples.empty(), "dataset '", root, "': the class folders hold no image files (.jpg, .png, .bmp)");
  return ds;
}

Dataset Dataset::open(const std::string& root, const std::string& split) {
  GLIMPSE_CHECK(is_dir(root), "dataset directory '", root, "' does not exist (or is not a directory)");
  if (is_file(fs::path(root) / "labels.csv")) return open_isic(root, split);
  if (!split.empty()) {
    const fs::path sub = fs::path(root) / split;
    GLIMPSE_CHECK(is_dir(sub), "dataset '", root, "': no labels.csv and no folder for split '", split, "'");
    if (is_file(sub / "labels.csv")) return open_isic(sub.string());
    return open_class_folders(sub.string());
  }
  return open_class_folders(root);
}

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> counts(class_names.size(), 0);
  for (const Sample& s : samples)
    if (s.label >= 0 && s.label < static_cast<int64_t>(counts.size())) ++counts[s.label];
  return counts;
}

// ---- the shared ISIC 2017 copy ------------------------------------------------------------------

namespace {

std::string isic_under(const fs::path& dir) {
  for (const fs::path& cand : {dir / "shared" / "data" / "isic2017", dir / ".." / "shared" / "data" / "isic2017"}) {
    if (is_file(cand / "labels.csv")) {
      std::error_code ec;
      const fs::path c = fs::canonical(cand, ec);
      return ec ? cand.string() : c.string();
    }
  }
  return "";
}

std::string search_upward(fs::path dir) {
  for (int depth = 0; depth < 32 && !dir.empty(); ++depth) {
    std::string found = isic_under(dir);
    if (!found.empty()) return found;
    const fs::path parent = dir.parent_path();
    if (parent == dir) break;
    dir = parent;
  }
  return "";
}

}  // namespace

std::string find_isic2017() {
  if (const char* env = std::getenv("GLIMPSE_ISIC_DIR"); env && *env) {
    if (is_file(fs::path(env) / "labels.csv")) return env;
    std::fprintf(stderr, "data: GLIMPSE_ISIC_DIR='%s' has no labels.csv; searching elsewhere\n", env);
  }
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  if (!ec) {
    std::string found = search_upward(cwd);
    if (!found.empty()) return found;
  }
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::string found = search_upward(exe.parent_path());
    if (!found.empty()) return found;
  }
  return "";
}

}  // namespace glimpse::data

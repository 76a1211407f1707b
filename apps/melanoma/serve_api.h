// What `melanoma serve` answers, without the HTTP: each call takes the query parameters of a request
// (and, for a photo of one's own, the uploaded bytes) and returns JSON or PNG bytes. serve_http.cpp
// maps routes onto these calls; docs/explorer.md documents them.
//
// Photos come from the data set (split + id: looked up among the split's samples, so a URL never
// names a file) or from an upload (bytes through io::decode_image: magic bytes, pixel budget,
// clear errors). Explanations are explain_photo's -- the function `melanoma explain` runs -- so the
// regions are explain --json's for the same photo and options; localization scores are
// score_against_mask's, localize's per-image computation.
//
// Thread-safety: every call may run on any thread. The model is shared and its evaluation is not
// thread-safe (attribution methods hook its layers while they run), so model work holds a mutex;
// decoding, data-set lookups and PNG encoding run outside it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"

namespace mel {

struct ServeOptions {
  std::string model;
  std::string data;  // ISIC-layout (or class-folder) data set to browse; empty: uploads only
  std::string host = "127.0.0.1";
  int port = 8080;                             // 0: a free port chosen by the system
  int workers = 4;                             // threads answering requests
  int queue = 32;                              // connections waiting for a worker; beyond that, 503
  int64_t max_body_bytes = int64_t(32) << 20;  // request bodies (uploads) larger than this: 413
  uint64_t seed = 1;                           // of the methods that draw noise (explain's --seed)
  std::string device = "cpu";
};

// An answer other than 200, with its HTTP status (404 for an unknown image, 400 for a bad value).
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// Query parameters of a request (one value per name).
using Params = std::map<std::string, std::string>;

class ExplorerApi {
 public:
  // Loads the model (and opens the data set's splits): errors name the file.
  explicit ExplorerApi(const ServeOptions& o);
  ~ExplorerApi();

  nlohmann::json info();                   // GET /api/info
  nlohmann::json images(const Params& p);  // GET /api/images?split=&offset=&limit=
  std::string photo_png(const Params& p);  // GET /api/photo?split=&id=&size=
  std::string mask_png(const Params& p);   // GET /api/mask?split=&id=&size=
  // POST /api/<name> with the photo as the body, or split + id in the query.
  nlohmann::json classify(const Params& p, const std::string& body);
  nlohmann::json explain(const Params& p, const std::string& body);
  nlohmann::json compare(const Params& p, const std::string& body);
  nlohmann::json localize(const Params& p, const std::string& body);
  // CAM / Grad-CAM taken apart: the top feature maps A_k, their weights, the sum building up.
  nlohmann::json glassbox(const Params& p, const std::string& body);

  // Held by every call that runs the model; tests hold it to keep workers busy.
  std::mutex& model_mutex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mel

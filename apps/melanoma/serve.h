// `melanoma serve`: the explorer -- an HTTP server in the binary, on cpp-httplib (Debian's
// libcpp-httplib-dev), that answers the JSON API of serve_api.h and serves the page of
// apps/melanoma/web/ (embedded at build time; no request leaves the machine). docs/explorer.md
// documents the routes.
//
// Safety: bound to 127.0.0.1 unless --host says otherwise; request bodies over --max-upload-mb are
// refused (413) before they are read; uploads decode through io::decode_image (pixel budget);
// static files are looked up by name in the embedded table, data-set photos by id, so no URL names
// a file on disk; a fixed pool of --workers threads with a queue of --queue connections, beyond which
// a request gets 503 at once.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "serve_api.h"

namespace mel {

// False (with the reason) when this build has no HTTP server (cpp-httplib was not found when it was
// configured).
bool serve_available(std::string* why = nullptr);

class ExplorerServer {
 public:
  // Loads the model and the data set, binds host:port (port 0: a free one). Errors name the file,
  // or the address that could not be bound.
  explicit ExplorerServer(const ServeOptions& o);
  ~ExplorerServer();  // stops
  ExplorerServer(const ExplorerServer&) = delete;
  ExplorerServer& operator=(const ExplorerServer&) = delete;

  int port() const;
  std::string url() const;  // http://host:port/
  void start();             // answers requests on background threads until stop()
  void stop();              // stops accepting, lets the requests under way finish

  struct Stats {
    int busy = 0;          // workers answering a request
    int queued = 0;        // connections waiting for a worker
    int64_t rejected = 0;  // answered 503 since the start
  };
  Stats stats() const;
  ExplorerApi& api();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The line that opens a model (and its data set) in the explorer, as `melanoma demo` ends with; says
// instead why there is none when the build has no HTTP server.
void print_serve_command(const std::string& model, const std::string& data);

// Runs the server until Ctrl-C / SIGTERM (interrupt.h), printing the URL; returns after a clean stop.
void run_serve(const ServeOptions& o);

}  // namespace mel

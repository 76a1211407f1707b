// melanoma serve: the explorer, a page in the browser (docs/explorer.md).
#include <cmath>
#include <memory>

#include "cli.h"
#include "serve.h"

namespace mel {

Command serve_command() {
  auto o = std::make_shared<ServeOptions>();
  auto max_upload_mb = std::make_shared<double>(32);
  Command cmd{"serve",
              "The explorer: a page in the browser to browse photos, classify them and compare every method's map "
              "(docs/explorer.md)"};
  cmd.flags = [o, max_upload_mb](CLI::App& sub) {
    sub.add_option("--model", o->model, "Checkpoint")->required()->check(CLI::ExistingFile);
    sub.add_option("--data", o->data, "Data directory to browse (ISIC layout; masks shown when present)")
        ->check(CLI::ExistingDirectory);
    sub.add_option("--host", o->host, "Address to listen on (0.0.0.0: every interface -- the explorer has no login)")
        ->capture_default_str();
    sub.add_option("--port", o->port, "Port (0: a free one)")->check(CLI::Range(0, 65535))->capture_default_str();
    sub.add_option("--workers", o->workers, "Threads answering requests (model work runs one request at a time)")
        ->check(CLI::Range(1, 256))
        ->capture_default_str();
    sub.add_option("--queue", o->queue, "Connections waiting for a worker; beyond them a request gets 503")
        ->check(CLI::Range(0, 100000))
        ->capture_default_str();
    sub.add_option("--max-upload-mb", *max_upload_mb, "Largest request body (an uploaded photo), in MB")
        ->check(CLI::Range(0.01, 1024.0))
        ->capture_default_str();
    add_device(sub, o->device);
  };
  cmd.run = [o, max_upload_mb](const Common& c) {
    o->seed = c.seed;
    o->max_body_bytes = std::llround(*max_upload_mb * 1e6);
    run_serve(*o);
  };
  return cmd;
}

}  // namespace mel

// The explorer's HTTP side on cpp-httplib; see serve.h. Without cpp-httplib at configure time this
// file builds the stub at its end, which says so.
#include "serve.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "interrupt.h"

#ifdef GLIMPSE_WITH_HTTPLIB
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <vector>

#include "serve_assets.h"
#endif

namespace mel {

#ifdef GLIMPSE_WITH_HTTPLIB

namespace {

struct PoolCounters {
  std::atomic<int> busy{0}, queued{0};
  std::atomic<int64_t> rejected{0};
};

// Set while the accepting thread answers a connection the pool had no room for: the pre-routing
// handler then answers 503 before the request's body is read.
thread_local bool t_overloaded = false;

// A fixed pool of workers with a bounded queue of accepted connections. httplib 0.11's TaskQueue
// cannot refuse a job (enqueue returns nothing, and the job owns the socket), so a connection beyond
// the queue is run at once on the accepting thread with t_overloaded set: it costs the time to read
// the request line and headers and write a 503, and accepting waits meanwhile -- the back-pressure
// wanted. Each connection carries one request (keep-alive off), so a waiting browser never holds a
// worker between requests.
class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(int workers, int queue, PoolCounters& counters)
      : max_queue_(static_cast<size_t>(queue)), counters_(counters) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~BoundedPool() override = default;

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (jobs_.size() < max_queue_) {
        jobs_.push_back(std::move(fn));
        counters_.queued.store(static_cast<int>(jobs_.size()));
        cond_.notify_one();
        return;
      }
    }
    counters_.rejected.fetch_add(1);
    t_overloaded = true;
    fn();
    t_overloaded = false;
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shutdown_ = true;
    }
    cond_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cond_.wait(lock, [this] { return shutdown_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // shut down, and every accepted connection answered
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        counters_.queued.store(static_cast<int>(jobs_.size()));
        counters_.busy.fetch_add(1);
      }
      fn();
      counters_.busy.fetch_sub(1);
    }
  }

  const size_t max_queue_;
  PoolCounters& counters_;
  std::vector<std::thread> threads_;
  std::deque<std::function<void()>> jobs_;
  std::mutex mutex_;
  std::condition_variable cond_;
  bool shutdown_ = false;
};

void send_json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  // Bytes that are not UTF-8 (an id or a file name in a query) become U+FFFD instead of an exception.
  res.set_content(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, {{"error", message}, {"status", status}});
}

Params params_of(const httplib::Request& req) {
  Params p;
  for (const auto& [k, v] : req.params) p.emplace(k, v);  // the first value of a repeated name
  return p;
}

// Runs a handler, mapping its exceptions to answers: ApiError -> its status, glimpse::Error (a bad
// value, an undecodable upload) -> 400, anything else -> 500. The message is the error's own.
template <typename F>
void guarded(httplib::Response& res, F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    send_error(res, e.status(), e.what());
  } catch (const glimpse::Error& e) {
    send_error(res, 400, e.what());
  } catch (const std::exception& e) {
    send_error(res, 500, e.what());
  }
}

}  // namespace

struct ExplorerServer::Impl {
  ServeOptions opt;
  std::unique_ptr<ExplorerApi> api;
  httplib::Server svr;
  PoolCounters counters;
  int port = 0;
  std::thread thread;
  bool started = false;

  void routes() {
    svr.new_task_queue = [this] { return new BoundedPool(opt.workers, opt.queue, counters); };
    svr.set_keep_alive_max_count(1);
    svr.set_read_timeout(5, 0);
    svr.set_write_timeout(10, 0);
    svr.set_payload_max_length(static_cast<size_t>(opt.max_body_bytes));
    svr.set_pre_routing_handler([](const httplib::Request&, httplib::Response& res) {
      if (!t_overloaded) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("Retry-After", "1");
      send_error(res, 503, "the server is busy (every worker taken and the queue full); try again in a moment");
      return httplib::Server::HandlerResponse::Handled;
    });
    // Errors the library raises itself (404 for no route, 413 for a body over the cap, 400) get a
    // JSON body too; a handler's own error body is kept.
    svr.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 413)
        send_error(res, 413,
                   "the request body is larger than the server's limit of " + std::to_string(opt.max_body_bytes) +
                       " bytes (serve --max-upload-mb)");
      else if (res.status == 404)
        send_error(res, 404, "no such page or API route");
      else
        send_error(res, res.status, "the request was refused (HTTP " + std::to_string(res.status) + ")");
    });

    auto json_get = [this](const char* path, nlohmann::json (ExplorerApi::*fn)(const Params&)) {
      svr.Get(path, [this, fn](const httplib::Request& req, httplib::Response& res) {
        guarded(res, [&] { send_json(res, 200, ((*api).*fn)(params_of(req))); });
      });
    };
    svr.Get("/api/info", [this](const httplib::Request&, httplib::Response& res) {
      guarded(res, [&] { send_json(res, 200, api->info()); });
    });
    json_get("/api/images", &ExplorerApi::images);
    auto png_get = [this](const char* path, std::string (ExplorerApi::*fn)(const Params&)) {
      svr.Get(path, [this, fn](const httplib::Request& req, httplib::Response& res) {
        guarded(res, [&] {
          res.set_content(((*api).*fn)(params_of(req)), "image/png");
          res.set_header("Cache-Control", "max-age=3600");
        });
      });
    };
    png_get("/api/photo", &ExplorerApi::photo_png);
    png_get("/api/mask", &ExplorerApi::mask_png);
    // Model work: POST with the photo as the body, or GET / POST naming a data-set image.
    auto model_route = [this](const char* path, nlohmann::json (ExplorerApi::*fn)(const Params&, const std::string&)) {
      auto h = [this, fn](const httplib::Request& req, httplib::Response& res) {
        guarded(res, [&] { send_json(res, 200, ((*api).*fn)(params_of(req), req.body)); });
      };
      svr.Get(path, h);
      svr.Post(path, h);
    };
    model_route("/api/classify", &ExplorerApi::classify);
    model_route("/api/explain", &ExplorerApi::explain);
    model_route("/api/compare", &ExplorerApi::compare);
    model_route("/api/localize", &ExplorerApi::localize);
    model_route("/api/glassbox", &ExplorerApi::glassbox);
    // The page: names looked up in the embedded table (req.path is already percent-decoded, so
    // "/%2e%2e/x" is "/../x", which is no name of the table).
    svr.Get(R"(/(?!api/).*)", [](const httplib::Request& req, httplib::Response& res) {
      const WebAsset* a = find_web_asset(req.path);
      if (!a) return send_error(res, 404, "no such page: " + req.path.substr(0, 200));
      res.set_content(std::string(a->body), std::string(a->type).c_str());
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; "
                     "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'");
      res.set_header("X-Content-Type-Options", "nosniff");
    });
  }
};

bool serve_available(std::string* why) {
  if (why) why->clear();
  return true;
}

ExplorerServer::ExplorerServer(const ServeOptions& o) : impl_(std::make_unique<Impl>()) {
  GLIMPSE_CHECK(o.workers >= 1 && o.workers <= 256, "serve: --workers must be in 1..256, got ", o.workers);
  GLIMPSE_CHECK(o.queue >= 0 && o.queue <= 100000, "serve: --queue must be in 0..100000, got ", o.queue);
  GLIMPSE_CHECK(o.max_body_bytes >= 1024, "serve: the body limit must be at least 1 KiB, got ", o.max_body_bytes);
  GLIMPSE_CHECK(o.port >= 0 && o.port <= 65535, "serve: --port must be in 0..65535, got ", o.port);
  impl_->opt = o;
  impl_->api = std::make_unique<ExplorerApi>(o);
  impl_->routes();
  if (o.port == 0) {
    impl_->port = impl_->svr.bind_to_any_port(o.host);
    GLIMPSE_CHECK(impl_->port > 0, "serve: cannot bind a free port on ", o.host,
                  " (is the address one of this machine?)");
  } else {
    GLIMPSE_CHECK(impl_->svr.bind_to_port(o.host, o.port), "serve: cannot bind ", o.host, ":", o.port,
                  " (in use by another program? try --port 0 for a free one, or another --port)");
    impl_->port = o.port;
  }
}

ExplorerServer::~ExplorerServer() { stop(); }

int ExplorerServer::port() const { return impl_->port; }

std::string ExplorerServer::url() const {
  const std::string& h = impl_->opt.host;
  const std::string host = h.find(':') != std::string::npos ? "[" + h + "]" : (h == "0.0.0.0" ? "127.0.0.1" : h);
  return "http://" + host + ":" + std::to_string(impl_->port) + "/";
}

void ExplorerServer::start() {
  GLIMPSE_CHECK(!impl_->started, "serve: the server was already started");
  impl_->started = true;
  impl_->thread = std::thread([this] { impl_->svr.listen_after_bind(); });
  // listen_after_bind sets is_running before it accepts; wait for it so that stop() cannot come first.
  for (int i = 0; i < 500 && !impl_->svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

void ExplorerServer::stop() {
  if (!impl_->started) return;
  impl_->svr.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->started = false;
}

ExplorerServer::Stats ExplorerServer::stats() const {
  Stats s;
  s.busy = impl_->counters.busy.load();
  s.queued = impl_->counters.queued.load();
  s.rejected = impl_->counters.rejected.load();
  return s;
}

ExplorerApi& ExplorerServer::api() { return *impl_->api; }

#else  // no cpp-httplib

namespace {
const char* kNoServer =
    "this melanoma was built without an HTTP server: cpp-httplib was not found when it was configured. Install it "
    "(Debian: apt-get install libcpp-httplib-dev, or bash scripts/deps.sh) and configure the build again";
}

bool serve_available(std::string* why) {
  if (why) *why = kNoServer;
  return false;
}

struct ExplorerServer::Impl {};
ExplorerServer::ExplorerServer(const ServeOptions&) { GLIMPSE_FAIL("serve: ", kNoServer); }
ExplorerServer::~ExplorerServer() = default;
int ExplorerServer::port() const { return 0; }
std::string ExplorerServer::url() const { return ""; }
void ExplorerServer::start() {}
void ExplorerServer::stop() {}
ExplorerServer::Stats ExplorerServer::stats() const { return {}; }
ExplorerApi& ExplorerServer::api() { GLIMPSE_FAIL("serve: ", kNoServer); }

#endif

void print_serve_command(const std::string& model, const std::string& data) {
  std::string why;
  if (!serve_available(&why)) {
    std::printf("explorer: not in this build (%s)\n", why.c_str());
    return;
  }
  // The binary's own path when it is the melanoma program (not a test linking the same code).
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string bin = !ec && self.filename() == "melanoma" ? self.string() : "melanoma";
  std::printf(
      "explore it in the browser:\n  %s serve --model %s%s\n  (then open http://127.0.0.1:8080/; Ctrl-C stops)\n",
      bin.c_str(), model.c_str(), data.empty() ? "" : (" --data " + data).c_str());
}

void run_serve(const ServeOptions& o) {
  std::string why;
  GLIMPSE_CHECK(serve_available(&why), "serve: ", why);
  // Installed before the server starts, so that a Ctrl-C at any point stops it cleanly.
  InterruptGuard guard;
  ExplorerServer server(o);
  server.start();
  std::printf("serve: %s on %s -- open %s in a browser (Ctrl-C stops)\n", o.model.c_str(),
              o.data.empty() ? "uploads only" : o.data.c_str(), server.url().c_str());
  if (o.host != "127.0.0.1" && o.host != "localhost" && o.host != "::1")
    std::printf("serve: note: bound to %s, so other machines can reach it; the explorer has no login\n",
                o.host.c_str());
  std::fflush(stdout);
  while (!interrupt_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::printf("serve: stopping (signal %d); waiting for the requests under way\n", interrupt_signal());
  std::fflush(stdout);
  server.stop();
  std::printf("serve: stopped\n");
  std::fflush(stdout);
}

}  // namespace mel

// Nothing lost when the process dies or the disk fills up: the `melanoma` binary, run as a user
// runs it, is killed with SIGKILL at random moments of training, stopped with SIGTERM, and made to
// write onto a full filesystem.
//   - After every kill -9 the checkpoint (if one exists yet) loads, and its training curve holds
//     every epoch the checkpoint has finished; after the resumed run ends, the curve holds each
//     epoch exactly once, in order, and no temporary file is left.
//   - SIGTERM stops training with exit status 143, prints the command that resumes, and leaves the
//     checkpoint loadable and no temporary file.
//   - On a full filesystem (a 64 KB tmpfs, mounted when the test runs as root; skipped otherwise),
//     `explain --out` and `train --out` exit with status 1, say the disk is full, and leave neither
//     a truncated file nor a temporary one.
//   - `--max-megapixels` sets the image budget of the run: a photo over it is refused before it is
//     decoded, naming its size and the flag; the same photo under the default budget is explained.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace {

struct Outcome {
  int status = -1;  // exit code, or 128 + signal
  std::string out;  // stdout and stderr together
  double seconds = 0;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs the melanoma binary with `args`; when kill_after_s >= 0, sends `sig` after that many seconds
// (if it is still running).
Outcome melanoma(const std::vector<std::string>& args, const fs::path& log, double kill_after_s = -1,
                 int sig = SIGKILL) {
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    std::string bin = GLIMPSE_MELANOMA_BIN;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  Outcome r;
  int st = 0;
  if (kill_after_s >= 0) {
    const auto deadline = t0 + std::chrono::duration<double>(kill_after_s);
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, &st, WNOHANG) == pid) goto done;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    kill(pid, sig);
  }
  waitpid(pid, &st, 0);
done:
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = slurp(log);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<std::string> temp_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.find(".tmp") != std::string::npos || n.find(".glimpse-write-probe") != std::string::npos) out.push_back(n);
  }
  return out;
}

// The epochs listed in a curve file, in file order.
std::vector<int64_t> curve_epochs(const fs::path& curve) {
  const nlohmann::json j = mel::read_json(curve.string());
  std::vector<int64_t> out;
  for (const auto& e : j.at("epochs")) out.push_back(e.at("epoch").get<int64_t>());
  return out;
}

class CrashSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("glimpse-crash-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "m");
    const Outcome s =
        melanoma({"synth", "--out", (dir_ / "data").string(), "--count", "48", "--size", "32", "--progress", "none"},
                 dir_ / "synth.log");
    ASSERT_EQ(s.status, 0) << s.out;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::vector<std::string> train_args(const std::string& out, int epochs, bool resume) const {
    std::vector<std::string> a = {"train",
                                  "--data",
                                  (dir_ / "data").string(),
                                  "--out",
                                  out,
                                  "--arch",
                                  "small-gap",
                                  "--size",
                                  "16",
                                  "--batch",
                                  "8",
                                  "--epochs",
                                  std::to_string(epochs),
                                  "--threads",
                                  "1",
                                  "--progress",
                                  "none"};
    if (resume) {
      a.push_back("--resume");
      a.push_back(out);
    }
    return a;
  }
  fs::path dir_;
};

TEST_F(CrashSafety, KillNineAtRandomMomentsNeverLosesAnEpoch) {
  const fs::path model = dir_ / "m" / "model.safetensors";
  const fs::path curve = dir_ / "m" / "model.curve.json";
  // One clean epoch first: its duration scales the random kill times to this machine and build.
  const Outcome first = melanoma(train_args(model.string(), 1, false), dir_ / "first.log");
  ASSERT_EQ(first.status, 0) << first.out;
  const double epoch_s = std::max(0.05, first.seconds);

  std::mt19937 rng(20261202);
  std::uniform_real_distribution<double> when(0.0, 3.0 * epoch_s);
  int64_t done = 1;
  for (int k = 0; k < 10; ++k) {
    const double t = when(rng);
    const Outcome r = melanoma(train_args(model.string(), 1000, true), dir_ / ("kill" + std::to_string(k) + ".log"), t);
    SCOPED_TRACE("kill -9 number " + std::to_string(k + 1) + " after " + std::to_string(t) + " s:\n" + r.out);
    // 1000 epochs never finish: the run must still be alive when the kill comes, not have failed.
    EXPECT_EQ(r.status, 128 + SIGKILL) << "the run ended before the kill";
    // Whatever the moment, the checkpoint loads and its curve holds every epoch it finished.
    mel::LoadedModel lm;
    ASSERT_NO_THROW(lm = mel::load_model(model.string()));
    EXPECT_GE(lm.meta.epoch, done) << "an epoch already saved was lost";
    done = lm.meta.epoch;
    std::printf("kill -9 #%d after %.3f s (epoch %.3f s): checkpoint at epoch %lld\n", k + 1, t, epoch_s,
                static_cast<long long>(done));
    const std::vector<int64_t> epochs = curve_epochs(curve);
    for (int64_t e = 1; e <= done; ++e)
      EXPECT_NE(std::find(epochs.begin(), epochs.end(), e), epochs.end()) << "epoch " << e << " missing from the curve";
  }
  // The resumed run that ends normally: removes the orphans of the killed runs, trims nothing it
  // should keep, leaves no temporary file.
  const Outcome last = melanoma(train_args(model.string(), static_cast<int>(done) + 1, true), dir_ / "last.log");
  ASSERT_EQ(last.status, 0) << last.out;
  const mel::LoadedModel lm = mel::load_model(model.string());
  EXPECT_EQ(lm.meta.epoch, done + 1);
  std::vector<int64_t> expected;
  for (int64_t e = 1; e <= done + 1; ++e) expected.push_back(e);
  EXPECT_EQ(curve_epochs(curve), expected);
  EXPECT_TRUE(temp_files(dir_ / "m").empty()) << "left behind: " << ::testing::PrintToString(temp_files(dir_ / "m"));
}

TEST_F(CrashSafety, SigtermStopsWithinAStepAndPrintsTheResumeCommand) {
  const fs::path model = dir_ / "m" / "model.safetensors";
  const Outcome first = melanoma(train_args(model.string(), 1, false), dir_ / "first.log");
  ASSERT_EQ(first.status, 0) << first.out;
  // Stopped in the middle of the second epoch or later.
  const Outcome r = melanoma(train_args(model.string(), 1000, true), dir_ / "term.log", 1.5 * first.seconds, SIGTERM);
  EXPECT_EQ(r.status, 143) << r.out;
  EXPECT_NE(r.out.find("--resume"), std::string::npos) << r.out;
  EXPECT_NO_THROW(mel::load_model(model.string()));
  EXPECT_TRUE(temp_files(dir_ / "m").empty()) << "left behind: " << ::testing::PrintToString(temp_files(dir_ / "m"));
}

TEST_F(CrashSafety, MaxMegapixelsFlagSetsTheImageBudget) {
  const fs::path model = dir_ / "m" / "model.safetensors";
  const Outcome t = melanoma(train_args(model.string(), 1, false), dir_ / "train.log");
  ASSERT_EQ(t.status, 0) << t.out;
  std::string image;  // a 32 x 32 synthetic photo: 1024 pixels
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "data"))
    if (e.path().extension() == ".png" && e.path().string().find("segmentation") == std::string::npos) {
      image = e.path().string();
      break;
    }
  ASSERT_FALSE(image.empty());
  auto explain = [&](const std::vector<std::string>& extra, const char* log) {
    std::vector<std::string> a = {"explain", "--model", model.string(), "--image", image, "--progress", "none"};
    a.insert(a.end(), extra.begin(), extra.end());
    return melanoma(a, dir_ / log);
  };
  const Outcome under = explain({}, "default.log");
  EXPECT_EQ(under.status, 0) << under.out;
  const Outcome over = explain({"--max-megapixels", "0.0005"}, "small.log");  // 500 pixels
  EXPECT_EQ(over.status, 1) << over.out;
  EXPECT_NE(over.out.find("32x32"), std::string::npos) << over.out;
  EXPECT_NE(over.out.find("--max-megapixels"), std::string::npos) << over.out;
}

// A small tmpfs, filled to the last byte, unmounted however the test ends.
class FullDisk {
 public:
  explicit FullDisk(const fs::path& at) : at_(at) {
    fs::create_directories(at_);
    if (mount("glimpse-full", at_.c_str(), "tmpfs", 0, "size=64k") != 0) {
      why_ = std::string("cannot mount a tmpfs (") + std::strerror(errno) + "): run as root to test a full disk";
      return;
    }
    mounted_ = true;
    const int fd = ::open((at_ / "filler").c_str(), O_WRONLY | O_CREAT, 0644);
    std::vector<char> block(4096, 'x');
    while (fd >= 0 && ::write(fd, block.data(), block.size()) > 0) {
    }
    while (fd >= 0 && ::write(fd, block.data(), 1) > 0) {
    }
    if (fd >= 0) ::close(fd);
  }
  ~FullDisk() {
    if (mounted_) umount2(at_.c_str(), MNT_DETACH);
  }
  bool ok() const { return mounted_; }
  const std::string& why() const { return why_; }

 private:
  fs::path at_;
  bool mounted_ = false;
  std::string why_;
};

TEST_F(CrashSafety, FullDiskIsAnErrorWithExitCodeOne) {
  const fs::path model = dir_ / "m" / "model.safetensors";
  const Outcome t = melanoma(train_args(model.string(), 1, false), dir_ / "train.log");
  ASSERT_EQ(t.status, 0) << t.out;
  const fs::path full = dir_ / "full";
  FullDisk disk(full);
  if (!disk.ok()) GTEST_SKIP() << disk.why();

  std::string image;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "data"))
    if (e.path().extension() == ".png" || e.path().extension() == ".jpg") {
      if (e.path().string().find("segmentation") == std::string::npos) {
        image = e.path().string();
        break;
      }
    }
  ASSERT_FALSE(image.empty());
  const Outcome x = melanoma({"explain", "--model", model.string(), "--image", image, "--out",
                              (full / "overlay.png").string(), "--progress", "none"},
                             dir_ / "explain.log");
  EXPECT_EQ(x.status, 1) << x.out;
  EXPECT_NE(x.out.find("full"), std::string::npos) << x.out;
  EXPECT_FALSE(fs::exists(full / "overlay.png")) << "a truncated overlay was left";

  const Outcome tr = melanoma(train_args((full / "model.safetensors").string(), 1, false), dir_ / "train-full.log");
  EXPECT_EQ(tr.status, 1) << tr.out;
  EXPECT_FALSE(fs::exists(full / "model.safetensors"));
  std::vector<std::string> left = temp_files(full);
  EXPECT_TRUE(left.empty()) << "left behind: " << ::testing::PrintToString(left);
}

}  // namespace

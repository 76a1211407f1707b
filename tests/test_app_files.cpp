// The melanoma app's files as untrusted input and as things that must never be lost: every JSON it
// reads back (malformed -> an Error naming the file and the key), the training curve around a
// crash (trimmed to the checkpoint, never blocking a resume), an unwritable --out (found before the
// first epoch), Ctrl-C during training (stops after the step, checkpoint intact, no temporaries),
// and eval/localize on a split whose images are all missing (an error, not "images 0").
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "core/error.h"
#include "interrupt.h"
#include "tests/support.h"

namespace fs = std::filesystem;

namespace {

std::string tmpdir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("glimpse_files_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

void put(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

using glimpse::testing::error_of;

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---- JSON the app reads ----

class AppJson : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = tmpdir("json"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name, const std::string& text) {
    const std::string p = dir_ + "/" + name;
    put(p, text);
    return p;
  }
  // The Error of parse_app_json(kind) on `text`: it must name the file and `key`.
  void expect_error(const std::string& kind, const std::string& text, const std::string& key) {
    const std::string p = file(kind + ".json", text);
    std::string what = "(no error)";
    try {
      mel::parse_app_json(kind, p);
    } catch (const glimpse::Error& e) {
      what = e.what();
    }  // any other exception type fails the test by escaping
    EXPECT_TRUE(has(what, p)) << kind << " " << text << " -> " << what;
    EXPECT_TRUE(has(what, key)) << kind << " " << text << " -> " << what << " (expected the key " << key << ")";
  }
  std::string dir_;
};

TEST_F(AppJson, ReliabilityRoarRowWithoutMetrics) {
  const std::string src =
      std::string(GLIMPSE_SOURCE_DIR) + "/tests/fuzz/corpus/json/roar-rows_without_metrics_min.json";
  ASSERT_TRUE(fs::exists(src)) << src;
  std::string what;
  try {
    mel::parse_app_json("roar", src);
  } catch (const glimpse::Error& e) {
    what = e.what();
  }
  EXPECT_TRUE(has(what, src)) << what;
  EXPECT_TRUE(has(what, "rows[0].metrics")) << what;
}

TEST_F(AppJson, MissingKeysAndWrongTypesNameFileAndKey) {
  expect_error("curve", R"({"epochs":5})", "'epochs'");
  expect_error("curve", R"({"arch":"small-gap"})", "'epochs'");
  expect_error("curve", R"([1,2,3])", "top level");
  expect_error("roar", R"({"rows":[{"method":"cam","metrics":{"accuracy":0.5}}]})", "rows[0].percent");
  expect_error("roar", R"({"rows":[{"method":"cam","percent":10,"metrics":[]}]})", "rows[0].metrics");
  expect_error("roar", R"({"rows":[{"method":"cam","percent":1e300,"metrics":{}}]})", "rows[0].percent");
  expect_error("roar", R"({"percents":[10,"x"],"rows":[]})", "percents[1]");
  expect_error("roar", R"({"rows":{}})", "'rows'");
  expect_error("localize", R"({"images":3})", "'rows'");
  expect_error("localize", R"({"rows":[{"dice_best":0.5}]})", "rows[0].method");
  expect_error("localize", R"({"rows":[{"method":"cam","dice_best":"high"}]})", "rows[0].dice_best");
  expect_error("localize", R"({"images":1e300,"rows":[]})", "'images'");
  expect_error("localize", R"({"rows":[{"method":"cam","images":-1}]})", "rows[0].images");
  expect_error("eval", R"({"count":"many"})", "'count'");
  expect_error("eval", R"({"confusion":[[1,2],[3,"x"]]})", "confusion[1][1]");
  expect_error("eval", R"({"confusion":[[1,2]],"class_names":[1]})", "class_names[0]");
  expect_error("eval", R"({"confusion":5})", "'confusion'");
  expect_error("eval", R"({"auc_mean":0.7,"auc_mean_ci95":[0.6]})", "auc_mean_ci95");
  expect_error("eval", R"({"auc_mean":0.7,"auc_mean_ci95":["low",0.8]})", "auc_mean_ci95[0]");
  expect_error("eval", R"({"melanoma_at_0.5":{"sensitivity":"high"}})", "sensitivity");
  expect_error("eval", R"({"melanoma_at_0.5":{"tp":-1}})", "tp");
  expect_error("eval", R"({"calibration":{"bins":10,"top_label":{"ece":"small"}}})", "ece");
  expect_error("two_stage", R"({"stage1":3})", "'stage1'");
  expect_error("two_stage", R"({"stage1":{"auc_mean":true}})", "stage1.auc_mean");
  expect_error("two_stage", R"({"margin":"wide"})", "'margin'");
}

TEST_F(AppJson, BrokenFilesAreErrorsNamingTheFile) {
  for (const std::string kind : {"curve", "eval", "localize", "two_stage", "roar"}) {
    for (const std::string& text : {std::string(""), std::string("{"), std::string(R"({"a":1e400})"),
                                    std::string(100000, '['), std::string("\xff\xfe{}"), std::string("null")}) {
      const std::string p = file(kind + ".json", text);
      std::string what = "(no error)";
      try {
        mel::parse_app_json(kind, p);
      } catch (const glimpse::Error& e) {
        what = e.what();
      }
      EXPECT_TRUE(has(what, p)) << kind << " on " << text.substr(0, 20) << " -> " << what;
    }
  }
  EXPECT_TRUE(has(error_of([&] { mel::parse_app_json("curve", dir_ + "/absent.json"); }), "absent.json"));
  EXPECT_TRUE(has(error_of([&] { mel::parse_app_json("nope", file("x.json", "{}")); }), "known: curve"));
}

TEST_F(AppJson, WellFormedFilesRender) {
  const std::string curve = mel::parse_app_json(
      "curve", file("c.json", R"({"epochs":[{"epoch":1,"train_loss":1.0,"train_accuracy":0.4,"val_loss":1.1,
        "auc_mean":null},{"epoch":2,"train_loss":0.9,"train_accuracy":0.5}]})"));
  EXPECT_TRUE(has(curve, "<svg"));
  // A curve with one bad epoch record: drawn from the others, the fault shown in the page.
  const std::string partial =
      mel::parse_app_json("curve", file("p.json", R"({"epochs":[{"epoch":1,"train_loss":1.0},{"train_loss":"x"}]})"));
  EXPECT_TRUE(has(partial, "could not be read")) << partial;
  const std::string roar = mel::parse_app_json(
      "roar", file("r.json", R"({"percents":[10,50],"rows":[{"method":"cam","percent":10,"metrics":{"accuracy":0.5,
        "auc_mean":null}},{"method":"cam","percent":50,"metrics":{"accuracy":0.4,"auc_mean":0.6}}]})"));
  EXPECT_TRUE(has(roar, "0.500 / &ndash;")) << roar;
  EXPECT_TRUE(has(mel::parse_app_json("eval", file("e.json", R"({"count":3,"auc_mean":0.75,"confusion":[[1,0],[0,2]],
        "class_names":["a","b"]})")),
                  "0.750"));
  // eval's intervals (a null end is undefined), operating points and calibration, when present.
  const std::string stats = mel::parse_app_json("eval", file("s.json", R"({"count":150,"auc_mean":0.75,
        "auc_mean_ci95":[0.64,0.86],"auc_melanoma":0.8,"auc_melanoma_ci95":[null,0.9],"bootstrap":{"resamples":1000},
        "melanoma_at_0.5":{"threshold":0.5,"sensitivity":0.4,"sensitivity_ci95":[0.233,0.567],"specificity":0.9,
        "specificity_ci95":[0.85,0.95],"tp":12,"fn":18,"tn":108,"fp":12},"calibration":{"bins":10,
        "top_label":{"ece":0.071},"melanoma":{"ece":0.046}}})"));
  EXPECT_TRUE(has(stats, "0.750<br><small>0.640&ndash;0.860</small>")) << stats;
  EXPECT_TRUE(has(stats, "0.800<br><small>&ndash;</small>")) << stats;
  EXPECT_TRUE(has(stats, "1000 resamples")) << stats;
  EXPECT_TRUE(has(stats, "0.400<br><small>0.233&ndash;0.567</small>")) << stats;
  EXPECT_TRUE(has(stats, "12 / 18 / 108 / 12")) << stats;
  EXPECT_TRUE(has(stats, "top label <b>0.071</b>, of P(melanoma) <b>0.046</b>")) << stats;
  // An older eval.json without them renders as before, with no empty sections.
  const std::string plain = mel::parse_app_json("eval", file("o.json", R"({"count":3,"auc_mean":0.75})"));
  EXPECT_FALSE(has(plain, "<small>")) << plain;
  EXPECT_FALSE(has(plain, "operating point")) << plain;
  EXPECT_FALSE(has(plain, "Calibration")) << plain;
  EXPECT_TRUE(has(mel::parse_app_json("localize", file("l.json", R"({"rows":[{"method":"cam","dice_best":0.4,
        "images":2,"seconds":1},{"method":"lrp","error":"boom"}]})")),
                  "failed: boom"));
  EXPECT_TRUE(has(mel::parse_app_json("two_stage", file("t.json", R"({"stage1":{"auc_mean":0.8}})")), "0.800"));
}

TEST(AppCsv, HostileLabelsAreErrorsWithFileAndLine) {
  const std::string dir = tmpdir("csv");
  fs::create_directories(dir + "/images");
  auto open_with = [&](const std::string& csv) {
    put(dir + "/labels.csv", csv);
    return error_of([&] { glimpse::data::Dataset::open(dir, ""); });
  };
  EXPECT_TRUE(has(open_with("image_id,melanoma,seborrheic_keratosis\n../../etc/passwd,0,0\n"), "labels.csv:2"));
  EXPECT_TRUE(has(open_with("image_id,melanoma,seborrheic_keratosis\nA,0,0\nB,1,0" + std::string(100000, ',') + "\n"),
                  "labels.csv:3"));
  EXPECT_TRUE(has(open_with(std::string(5000, ',') + "\n"), "labels.csv:1"));
  // An embedded NUL after a valid flag ("1\0x") is not the flag 1.
  const std::string nul("image_id,melanoma,seborrheic_keratosis\nA,1\0x,0\n", 47);
  ASSERT_EQ(nul.back(), '\n');
  put(dir + "/labels.csv", nul);
  EXPECT_TRUE(has(error_of([&] { glimpse::data::Dataset::open(dir, ""); }), "'melanoma'"));
  // The message quotes at most a short piece of a long field.
  const std::string e = open_with("image_id,melanoma,seborrheic_keratosis\nA," + std::string(100000, '7') + ",0\n");
  EXPECT_TRUE(has(e, "labels.csv:2")) << e.substr(0, 300);
  EXPECT_LT(e.size(), 1000u);
  fs::remove_all(dir);
}

// ---- training: crash and signal safety ----

class AppTraining : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mel::setup_runtime(2, 1);
    mel::set_progress("none");
    dir_ = tmpdir("train");
    mel::SynthOptions s;
    s.out = dir_ + "/data";
    s.count = 24;
    s.size = 32;
    s.seed = 3;
    s.val_fraction = 0.25;
    mel::run_synth(s);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static mel::TrainOptions options(const std::string& out, int epochs) {
    mel::TrainOptions t;
    t.data = dir_ + "/data";
    t.size = 32;
    t.epochs = epochs;
    t.batch = 8;
    t.out = out;
    t.quiet = true;
    return t;
  }
  static std::string dir_;
};
std::string AppTraining::dir_;

std::vector<int64_t> curve_epochs(const std::string& path) {
  std::vector<int64_t> out;
  for (const auto& e : mel::read_curve(path).epochs) out.push_back(e.epoch);
  return out;
}

TEST_F(AppTraining, CurveAheadOfTheCheckpointIsTrimmedOnResume) {
  const std::string ckpt = dir_ + "/ahead.safetensors", curve = dir_ + "/ahead.curve.json";
  mel::train_model(options(ckpt, 1));
  // A kill after the curve write of epoch 2 and before its checkpoint: the curve says 2 epochs.
  put(curve, R"({"epochs":[{"epoch":1,"train_loss":1.0},{"epoch":2,"train_loss":0.5},{"epoch":7,"train_loss":0.1}]})");
  mel::TrainOptions t = options(ckpt, 3);
  t.resume = ckpt;
  const mel::TrainResult r = mel::train_model(t);
  EXPECT_EQ(curve_epochs(curve), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(r.history.size(), 3u);
  EXPECT_DOUBLE_EQ(r.history[0].train_loss, 1.0);  // epoch 1 kept from the file
  EXPECT_NE(r.history[1].train_loss, 0.5);         // epoch 2 retrained, not the stale record
}

TEST_F(AppTraining, MalformedOrMissingCurveNeverBlocksAResume) {
  const std::string ckpt = dir_ + "/badcurve.safetensors", curve = dir_ + "/badcurve.curve.json";
  mel::train_model(options(ckpt, 1));
  for (const std::string& text : {std::string(R"({"epochs":5})"), std::string("{not json"), std::string("")}) {
    put(curve, text);
    mel::TrainOptions t = options(ckpt, mel::load_model(ckpt).meta.epoch + 1);
    t.resume = ckpt;
    const mel::TrainResult r = mel::train_model(t);
    EXPECT_EQ(r.meta.epoch, t.epochs) << text;
    EXPECT_EQ(curve_epochs(curve), std::vector<int64_t>{t.epochs}) << text;  // what could be read: none, + the new
  }
  fs::remove(curve);
  mel::TrainOptions t = options(ckpt, mel::load_model(ckpt).meta.epoch + 1);
  t.resume = ckpt;
  EXPECT_EQ(mel::train_model(t).meta.epoch, t.epochs);
}

TEST_F(AppTraining, StaleTemporariesAreRemovedAtStart) {
  const std::string ckpt = dir_ + "/stale.safetensors";
  // pid 2^22+1 is above Linux's pid_max limit: no such process can be running.
  const std::string orphan = ckpt + ".tmp.4194305.0", curve_orphan = dir_ + "/stale.curve.json.tmp.4194305.3";
  put(orphan, "half a checkpoint");
  put(curve_orphan, "{\"ep");
  mel::train_model(options(ckpt, 1));
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_FALSE(fs::exists(curve_orphan));
}

TEST_F(AppTraining, UnwritableOutFailsBeforeTheFirstEpoch) {
  // A regular file used as a directory fails for root too (chmod does not stop root).
  put(dir_ + "/plainfile", "x");
  const std::string e = error_of([&] { mel::train_model(options(dir_ + "/plainfile/model.safetensors", 1)); });
  EXPECT_TRUE(has(e, "plainfile")) << e;
  EXPECT_FALSE(has(e, "epoch")) << e;

  // A read-only directory. chmod 0555 does not stop root (CI runs as root), a read-only mount
  // does: as root, a read-only tmpfs is mounted there; otherwise chmod is enough.
  const std::string ro = dir_ + "/readonly";
  fs::create_directories(ro);
  bool mounted = false;
  if (::geteuid() == 0) {
    mounted = ::mount("glimpse-ro", ro.c_str(), "tmpfs", MS_RDONLY, "size=16k") == 0;
    if (!mounted)
      GTEST_SKIP() << "running as root and cannot mount a read-only tmpfs (" << std::strerror(errno)
                   << "); the file-as-directory case above ran";
  } else {
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read | fs::perms::others_read);
  }
  struct Restore {
    std::string dir;
    bool mounted;
    ~Restore() {
      if (mounted)
        ::umount2(dir.c_str(), MNT_DETACH);
      else
        fs::permissions(dir, fs::perms::owner_all);
    }
  } restore{ro, mounted};
  ASSERT_NE(::access(ro.c_str(), W_OK), 0) << ro << " is still writable";
  const double t0 = mel::now_s();
  const std::string e2 = error_of([&] { mel::train_model(options(ro + "/model.safetensors", 50)); });
  EXPECT_TRUE(has(e2, ro)) << e2;
  EXPECT_LT(mel::now_s() - t0, 5.0);  // before any training
  EXPECT_FALSE(fs::exists(ro + "/model.safetensors"));
}

TEST_F(AppTraining, SigintStopsAfterTheStepWithTheCheckpointIntact) {
  const std::string ckpt = dir_ + "/stop.safetensors";
  mel::TrainOptions t = options(ckpt, 4);
  int64_t steps_after = -1;
  // The real signal, raised in the middle of epoch 2: the handler only sets the flag.
  t.on_step = [&](int64_t epoch, int64_t s) {
    if (epoch == 2 && s == 1) std::raise(SIGINT);
    if (epoch == 2 && s > 1) steps_after = s;
  };
  int code = 0;
  std::string msg;
  try {
    mel::train_model(t);
  } catch (const mel::Interrupted& e) {
    code = e.exit_code();
    msg = e.what();
  }
  EXPECT_EQ(code, 130);
  EXPECT_EQ(steps_after, -1) << "a step ran after the signal";
  EXPECT_TRUE(has(msg, "interrupted at epoch 2 (step 1/")) << msg;
  EXPECT_TRUE(has(msg, "last checkpoint (epoch 1) is " + ckpt)) << msg;
  EXPECT_TRUE(has(msg, "resume with: melanoma train --resume " + ckpt + " --out " + ckpt)) << msg;
  EXPECT_TRUE(has(msg, "--data " + dir_ + "/data --epochs 4")) << msg;
  // The checkpoint of epoch 1 loads; the curve agrees; no temporaries are left.
  EXPECT_EQ(mel::load_model(ckpt).meta.epoch, 1);
  EXPECT_EQ(curve_epochs(dir_ + "/stop.curve.json"), std::vector<int64_t>{1});
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_FALSE(has(e.path().filename().string(), ".tmp.")) << e.path();
  // The previous handler (the default) is back, and the flag is clear for the next run.
  struct sigaction now = {};
  sigaction(SIGINT, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  EXPECT_FALSE(mel::interrupt_requested());
  // The resume continues from epoch 1 to the end.
  t.on_step = nullptr;
  t.resume = ckpt;
  EXPECT_EQ(mel::train_model(t).meta.epoch, 4);
  EXPECT_EQ(curve_epochs(dir_ + "/stop.curve.json"), (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST_F(AppTraining, SigtermInTheFirstEpochSaysStartAgain) {
  mel::TrainOptions t = options(dir_ + "/term.safetensors", 2);
  t.on_step = [&](int64_t, int64_t) { std::raise(SIGTERM); };
  int code = 0;
  std::string msg;
  try {
    mel::train_model(t);
  } catch (const mel::Interrupted& e) {
    code = e.exit_code();
    msg = e.what();
  }
  EXPECT_EQ(code, 143);
  EXPECT_TRUE(has(msg, "no checkpoint was written yet")) << msg;
  EXPECT_FALSE(fs::exists(dir_ + "/term.safetensors"));
}

TEST_F(AppTraining, EvalAndLocalizeOnAllMissingImagesFail) {
  const std::string ckpt = dir_ + "/evalm.safetensors";
  mel::train_model(options(ckpt, 1));
  // A copy of the data set whose image files are gone (the labels and masks stay).
  const std::string data = dir_ + "/gone";
  fs::copy(dir_ + "/data", data, fs::copy_options::recursive);
  for (const auto& e : fs::directory_iterator(data + "/images")) fs::remove(e.path());
  mel::EvalOptions eo;
  eo.model = ckpt;
  eo.data = data;
  const std::string e = error_of([&] { mel::run_eval(eo); });
  EXPECT_TRUE(has(e, "could be read")) << e;
  mel::LocalizeOptions lo;
  lo.model = ckpt;
  lo.data = data;
  lo.methods = "cam";
  lo.curves = false;
  const std::string e2 = error_of([&] { mel::run_localize(lo); });
  EXPECT_TRUE(has(e2, "could be read")) << e2;
}

}  // namespace

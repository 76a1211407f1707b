// The melanoma app's subcommands as functions (apps/melanoma/commands.h): a tiny end-to-end run of
// the demo on synthetic data (every output file exists and parses), resuming training, and the
// errors for bad input (missing directory, empty split, unknown method, a model for other classes,
// a checkpoint that is not the app's).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "cli.h"
#include "commands.h"
#include "core/io/image.h"
#include "core/io/safetensors.h"
#include "data/data.h"
#include "layers/checkpoint.h"
#include "layers/models.h"
#include "tests/host_stand_in.h"
#include "tests/melanoma_support.h"
#include "tests/support.h"

#ifdef GLIMPSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace fs = std::filesystem;

namespace {

std::string tmpdir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("glimpse_mel_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

using glimpse::testing::error_of;

class MelanomaApp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mel::setup_runtime(2, 1);
    mel::set_progress("none");
    dir_ = tmpdir("suite");
    mel::train_model(glimpse::testing::tiny_training(dir_));
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string dir_;
};
std::string MelanomaApp::dir_;

TEST_F(MelanomaApp, CheckpointAloneRebuildsTheModel) {
  const mel::LoadedModel lm = mel::load_model(dir_ + "/model.safetensors");
  EXPECT_EQ(lm.meta.arch, "small-gap");
  EXPECT_EQ(lm.meta.size, 32);
  EXPECT_EQ(lm.meta.classes, 3);
  EXPECT_EQ(lm.meta.epoch, 1);
  EXPECT_GT(lm.meta.step, 0);
  EXPECT_EQ(lm.meta.class_names.size(), 3u);
  EXPECT_EQ(lm.model->info.input_size, 32);
  const auto curve = mel::read_json(dir_ + "/model.curve.json");
  ASSERT_EQ(curve["epochs"].size(), 1u);
  EXPECT_TRUE(curve["epochs"][0].contains("auc_mean"));
}

TEST_F(MelanomaApp, EvalWithTestTimeAugmentation) {
  mel::EvalOptions e;
  e.model = dir_ + "/model.safetensors";
  e.data = dir_ + "/data";
  e.split = "val";
  const mel::EvalResult plain = mel::run_eval(e);
  e.tta = true;
  e.json = dir_ + "/eval_tta.json";
  const mel::EvalResult tta = mel::run_eval(e);
  ASSERT_EQ(tta.predictions.probs.size(), plain.predictions.probs.size());
  ASSERT_FALSE(tta.predictions.probs.empty());
  double differ = 0;
  for (size_t i = 0; i < tta.predictions.probs.size(); ++i) {
    double total = 0;
    for (size_t c = 0; c < tta.predictions.probs[i].size(); ++c) {
      total += tta.predictions.probs[i][c];
      differ += std::abs(tta.predictions.probs[i][c] - plain.predictions.probs[i][c]);
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
  EXPECT_GT(differ, 0.0);  // the 8 views do not all give the plain view's probabilities
  EXPECT_TRUE(mel::read_json(e.json)["tta"].get<bool>());
}

TEST_F(MelanomaApp, ResumeContinuesEpochsAndCurve) {
  const std::string copy = dir_ + "/resume.safetensors";
  fs::copy_file(dir_ + "/model.safetensors", copy, fs::copy_options::overwrite_existing);
  fs::copy_file(dir_ + "/model.curve.json", dir_ + "/resume.curve.json", fs::copy_options::overwrite_existing);
  const int64_t step1 = mel::load_model(copy).meta.step;
  mel::TrainOptions t;
  t.data = dir_ + "/data";
  t.size = 32;
  t.epochs = 2;
  t.batch = 8;
  t.out = copy;
  t.resume = copy;
  t.quiet = true;
  const mel::TrainResult r = mel::train_model(t);
  EXPECT_EQ(r.meta.epoch, 2);
  EXPECT_EQ(r.history.size(), 2u);
  const mel::LoadedModel lm = mel::load_model(copy);
  EXPECT_EQ(lm.meta.epoch, 2);
  EXPECT_EQ(lm.meta.step, 2 * step1);
  EXPECT_EQ(mel::read_json(dir_ + "/resume.curve.json")["epochs"].size(), 2u);
  // Nothing left to do: a clear error.
  EXPECT_NE(error_of([&] { mel::train_model(t); }).find("already completed 2 epoch"), std::string::npos);
}

// An interrupted run resumed from its last checkpoint ends with the very weights of an
// uninterrupted one: weights, optimizer moments, step count, schedule and the loader's per-epoch
// order all continue. (StepLR here: its period, one epoch, is the same for 1 and 2 planned epochs;
// a cosine schedule is planned over --epochs, so stopping early is not the same run.)
TEST_F(MelanomaApp, ResumeGivesTheSameWeightsAsOneRun) {
  mel::TrainOptions t;
  t.data = dir_ + "/data";
  t.size = 32;
  t.batch = 8;
  t.schedule = "step";
  t.quiet = true;
  t.epochs = 2;
  t.out = dir_ + "/straight.safetensors";
  mel::train_model(t);
  t.epochs = 1;
  t.out = dir_ + "/halves.safetensors";
  mel::train_model(t);
  t.epochs = 2;
  t.resume = t.out;
  mel::train_model(t);
  const mel::LoadedModel a = mel::load_model(dir_ + "/straight.safetensors");
  const mel::LoadedModel b = mel::load_model(dir_ + "/halves.safetensors");
  EXPECT_EQ(b.meta.step, a.meta.step);
  const auto sa = a.model->state(), sb = b.model->state();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_EQ(sa[i].second.to_vector(), sb[i].second.to_vector()) << sa[i].first;
}

TEST_F(MelanomaApp, ExplainWritesOverlayAndRegions) {
  mel::ExplainOptions o;
  o.model = dir_ + "/model.safetensors";
  o.image = dir_ + "/data/images/SYN_0000000.png";
  o.method = "gradcam";
  o.out = dir_ + "/explain/x.png";
  o.json = dir_ + "/explain/x.json";
  o.display = 96;
  const mel::ExplainResult r = mel::run_explain(o);
  const auto img = glimpse::io::load_image(o.out);
  EXPECT_EQ(img.width, 96);
  const auto j = mel::read_json(o.json);
  EXPECT_EQ(j["method"], "gradcam");
  EXPECT_EQ(j["predicted"].get<int64_t>(), r.predicted);
  EXPECT_EQ(j["probabilities"].size(), 3u);
  EXPECT_TRUE(j["regions"].is_array());
  EXPECT_GE(j["regions"].size(), 1u);
}

TEST_F(MelanomaApp, LocalizeTwoMethodsWithBaseline) {
  mel::LocalizeOptions o;
  o.model = dir_ + "/model.safetensors";
  o.data = dir_ + "/data";
  o.methods = "cam,saliency";
  o.curve_steps = 4;
  o.json = dir_ + "/localize.json";
  const mel::LocalizeResult r = mel::run_localize(o);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].method, "centred-gaussian");
  for (const auto& row : r.rows) {
    EXPECT_TRUE(row.error.empty()) << row.method << ": " << row.error;
    EXPECT_GT(row.images, 0);
    EXPECT_GE(row.dice_best, row.dice_fixed - 1e-9);  // the sweep contains 0.5
    EXPECT_GE(row.energy, 0.0);
    EXPECT_LE(row.energy, 1.0);
    EXPECT_GE(row.deletion, 0.0);
    EXPECT_LE(row.insertion, 1.0);
  }
  const auto j = mel::read_json(o.json);
  EXPECT_EQ(j["rows"].size(), 3u);

  // --target by class name: one class's CAM in every image; two classes' CAMs (other rows of the
  // classifier's weights) score differently. An unknown name lists the valid ones.
  o.methods = "cam";
  o.curves = false;
  o.json.clear();
  o.target = "melanoma";
  const mel::LocalizeResult mel_rows = mel::run_localize(o);
  o.target = "nevus";
  const mel::LocalizeResult nev_rows = mel::run_localize(o);
  ASSERT_EQ(mel_rows.rows.size(), 2u);
  ASSERT_EQ(nev_rows.rows.size(), 2u);
  EXPECT_TRUE(mel_rows.rows[1].error.empty()) << mel_rows.rows[1].error;
  EXPECT_NE(mel_rows.rows[1].energy, nev_rows.rows[1].energy);
  o.target = "freckle";
  const std::string e = error_of([&] { mel::run_localize(o); });
  EXPECT_NE(e.find("freckle"), std::string::npos) << e;
  EXPECT_NE(e.find("seborrheic_keratosis"), std::string::npos) << e;
}

TEST_F(MelanomaApp, DemoWritesEveryFile) {
  mel::DemoOptions o;
  o.out = dir_ + "/demo";
  o.count = 24;
  o.synth_size = 32;
  o.size = 32;
  o.epochs = 1;
  o.batch = 8;
  o.methods = "gradcam,saliency";
  o.localize_limit = 4;
  o.explain_count = 1;
  o.gallery = 2;
  mel::run_demo(o);
  for (const char* f : {"model.safetensors", "model.curve.json", "eval.json", "localize.json", "report.html"})
    EXPECT_TRUE(fs::is_regular_file(o.out + "/" + f)) << f;
  EXPECT_TRUE(mel::read_json(o.out + "/eval.json").contains("auc_mean"));
  EXPECT_EQ(mel::read_json(o.out + "/localize.json")["rows"].size(), 3u);
  int pngs = 0, jsons = 0;
  for (const auto& e : fs::directory_iterator(o.out + "/explain")) {
    if (e.path().extension() == ".png") {
      EXPECT_GT(glimpse::io::load_image(e.path().string()).width, 0);
      ++pngs;
    }
    if (e.path().extension() == ".json") {
      EXPECT_TRUE(mel::read_json(e.path().string()).contains("regions"));
      ++jsons;
    }
  }
  EXPECT_EQ(pngs, 1);
  EXPECT_EQ(jsons, 1);
  const std::string html = slurp(o.out + "/report.html");
  EXPECT_NE(html.find("<!DOCTYPE html>"), std::string::npos);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("src='http"), std::string::npos);  // self-contained
}

// The report shows what eval wrote: each score's bootstrap interval, the melanoma operating points,
// the calibration errors and the reliability diagrams (the same pixels as eval's PNGs).
TEST_F(MelanomaApp, ReportShowsEvalIntervalsOperatingPointsAndCalibration) {
  const std::string out = dir_ + "/report_eval";
  mel::EvalOptions e;
  e.model = dir_ + "/model.safetensors";
  e.data = dir_ + "/data";
  e.json = out + "/eval.json";
  e.reliability = out + "/reliability.png";
  e.stats.resamples = 50;
  mel::run_eval(e);
  mel::ReportOptions o;
  o.model = e.model;
  o.data = e.data;
  o.eval_json = e.json;
  o.methods = "cam";
  o.count = 1;
  o.out = out + "/report.html";
  mel::run_report(o);
  const std::string html = slurp(o.out);
  const auto j = mel::read_json(e.json);
  auto cell = [](const nlohmann::json& v, const nlohmann::json& ci) {
    auto f = [](const nlohmann::json& x) { return mel::strf("%.3f", x.get<double>()); };
    return f(v) + "<br><small>" + f(ci[0]) + "&ndash;" + f(ci[1]) + "</small>";
  };
  EXPECT_NE(html.find(cell(j["accuracy"], j["accuracy_ci95"])), std::string::npos);
  const auto& at_half = j["melanoma_at_0.5"];
  EXPECT_NE(html.find(cell(at_half["sensitivity"], at_half["sensitivity_ci95"])), std::string::npos);
  EXPECT_NE(html.find(cell(at_half["specificity"], at_half["specificity_ci95"])), std::string::npos);
  EXPECT_NE(html.find(mel::strf("top label <b>%.3f</b>", j["calibration"]["top_label"]["ece"].get<double>())),
            std::string::npos);
  for (const std::string& png : {e.reliability, mel::sibling(e.reliability, ".top-label.png")})
    EXPECT_NE(html.find(mel::png_base64(glimpse::io::load_image(png))), std::string::npos) << png;
  // A reliability diagram that has gone is a note, not a failed report.
  fs::remove(e.reliability);
  fs::remove(mel::sibling(e.reliability, ".top-label.png"));
  mel::run_report(o);
  EXPECT_NE(slurp(o.out).find("that is not there"), std::string::npos);
}

// --mask-guidance: trains on CE + the CAM-outside-the-mask loss, logs that share per epoch, and
// records the weight in the checkpoint, which localize reports; a data set without masks is refused.
TEST_F(MelanomaApp, MaskGuidanceIsLoggedRecordedAndNeedsMasks) {
  mel::TrainOptions t;
  t.data = dir_ + "/data";
  t.size = 32;
  t.epochs = 1;
  t.batch = 8;
  t.mask_guidance = 2.f;
  t.out = dir_ + "/guided.safetensors";
  t.quiet = true;
  const mel::TrainResult r = mel::train_model(t);
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_GE(r.history[0].train_cam_outside, 0.0);
  EXPECT_LE(r.history[0].train_cam_outside, 1.0);
  EXPECT_EQ(mel::load_model(t.out).meta.mask_guidance, 2.0);
  EXPECT_EQ(mel::load_model(dir_ + "/model.safetensors").meta.mask_guidance, 0.0);
  const nlohmann::json curve = mel::read_json(dir_ + "/guided.curve.json");
  EXPECT_EQ(curve["mask_guidance"].get<double>(), 2.0);
  EXPECT_TRUE(curve["epochs"][0].contains("train_cam_outside"));
  mel::LocalizeOptions lo;
  lo.model = t.out;
  lo.data = t.data;
  lo.methods = "cam";
  lo.curves = false;
  EXPECT_EQ(mel::run_localize(lo).mask_guidance, 2.0);

  // The same images without their masks.
  const std::string bare = dir_ + "/bare";
  fs::create_directories(bare);
  fs::copy(dir_ + "/data/images", bare + "/images", fs::copy_options::recursive);
  fs::copy_file(dir_ + "/data/labels.csv", bare + "/labels.csv");
  t.data = bare;
  t.out = dir_ + "/bare.safetensors";
  EXPECT_NE(error_of([&] { mel::train_model(t); }).find("--mask-guidance needs lesion masks"), std::string::npos);
}

TEST_F(MelanomaApp, BadInputErrorsNameTheValue) {
  EXPECT_NE(error_of([] { mel::open_dataset("/nonexistent/dir", "val"); }).find("/nonexistent/dir"), std::string::npos);
  EXPECT_NE(error_of([&] { mel::open_dataset(dir_ + "/data", "nosuchsplit"); }).find("nosuchsplit"), std::string::npos);
  const std::string unknown = error_of([] { mel::parse_methods("gradcam,nosuchmethod"); });
  EXPECT_NE(unknown.find("nosuchmethod"), std::string::npos);
  EXPECT_NE(unknown.find("integrated-gradients"), std::string::npos);  // lists the known ones
  EXPECT_TRUE(mel::check_method("gradcam++").empty());

  // A plain glimpse checkpoint without the app's metadata.
  auto net = glimpse::make_model("small-gap", 3, 32);
  glimpse::save_checkpoint(*net, dir_ + "/plain.safetensors");
  EXPECT_NE(error_of([&] { mel::load_model(dir_ + "/plain.safetensors"); }).find("arch"), std::string::npos);
  EXPECT_NE(error_of([&] { mel::load_model(dir_ + "/missing.safetensors"); }).find("missing.safetensors"),
            std::string::npos);

  // A model for 5 classes against the 3-class data set.
  mel::ModelMeta meta;
  meta.classes = 5;
  meta.size = 32;
  auto five = glimpse::make_model("small-gap", 5, 32);
  glimpse::save_checkpoint(*five, dir_ + "/five.safetensors", mel::meta_to_map(meta));
  mel::EvalOptions e;
  e.model = dir_ + "/five.safetensors";
  e.data = dir_ + "/data";
  EXPECT_NE(error_of([&] { mel::run_eval(e); }).find("5 classes"), std::string::npos);

  // Metadata that disagrees with the weights (another input size is fine for GAP weights, another
  // class count is not).
  meta.classes = 3;
  glimpse::save_checkpoint(*five, dir_ + "/liar.safetensors", mel::meta_to_map(meta));
  EXPECT_NE(error_of([&] { mel::load_model(dir_ + "/liar.safetensors"); }).find("classifier"), std::string::npos);

  mel::ExplainOptions x;
  x.model = dir_ + "/model.safetensors";
  x.image = dir_ + "/data/images/SYN_0000000.png";
  x.method = "nosuch";
  EXPECT_NE(error_of([&] { mel::run_explain(x); }).find("known methods"), std::string::npos);
  x.method = "cam";
  x.image = dir_ + "/nope.png";
  EXPECT_NE(error_of([&] { mel::run_explain(x); }).find("nope.png"), std::string::npos);
}

// The suite's synthetic ISIC-layout data copied into the class-per-folder layout
// (<root>/<split>/<class name>/<id>.png): its classes then sort alphabetically, melanoma = 0,
// nevus = 1, where the ISIC layout has nevus = 0, melanoma = 1. Returns id -> ISIC label.
std::map<std::string, int64_t> copy_as_class_folders(const std::string& isic, const std::string& root) {
  std::map<std::string, int64_t> truth;
  for (const char* split : {"train", "val"}) {
    const glimpse::data::Dataset ds = glimpse::data::Dataset::open(isic, split);
    for (const auto& s : ds.samples) {
      const fs::path dir = fs::path(root) / split / ds.class_names[static_cast<size_t>(s.label)];
      fs::create_directories(dir);
      fs::copy_file(s.image_path, dir / (s.id + fs::path(s.image_path).extension().string()));
      truth[s.id] = s.label;
    }
  }
  return truth;
}

// Classes are found by name: an ISIC-order model scored on class folders gets the same numbers as
// on the ISIC layout (labels renumbered by name), and a model trained on class folders (melanoma =
// class 0) reports the AUC of its melanoma column. Before, the first scored nevus labels against
// the melanoma column, the second reported the nevus AUC as "melanoma".
TEST_F(MelanomaApp, ClassFolderDataSetsAreScoredByClassName) {
  const std::string root = dir_ + "/folders";
  const std::map<std::string, int64_t> truth = copy_as_class_folders(dir_ + "/data", root);
  mel::EvalOptions e;
  e.model = dir_ + "/model.safetensors";
  e.data = dir_ + "/data";
  e.stats.resamples = 20;
  const mel::EvalResult on_isic = mel::run_eval(e);
  e.data = root;
  const mel::EvalResult on_folders = mel::run_eval(e);
  ASSERT_EQ(on_folders.predictions.labels.size(), on_isic.predictions.labels.size());
  for (size_t i = 0; i < on_folders.predictions.ids.size(); ++i)
    EXPECT_EQ(on_folders.predictions.labels[i], truth.at(on_folders.predictions.ids[i]));  // ISIC order again
  EXPECT_DOUBLE_EQ(on_folders.metrics.accuracy, on_isic.metrics.accuracy);
  EXPECT_DOUBLE_EQ(on_folders.metrics.auc_melanoma, on_isic.metrics.auc_melanoma);
  EXPECT_DOUBLE_EQ(on_folders.metrics.auc_keratosis, on_isic.metrics.auc_keratosis);

  // A model trained on the class folders: its class 0 is melanoma.
  mel::TrainOptions t;
  t.data = root;
  t.size = 32;
  t.epochs = 1;
  t.batch = 8;
  t.out = dir_ + "/folders.safetensors";
  t.quiet = true;
  mel::train_model(t);
  e.model = t.out;
  const mel::EvalResult r = mel::run_eval(e);
  EXPECT_EQ(r.meta.class_names[0], "melanoma");
  EXPECT_EQ(r.metrics.melanoma_class, 0);
  // The melanoma AUC from the probabilities and the ISIC labels (1 = melanoma there), by hand.
  std::vector<double> p_mel;
  std::vector<bool> is_mel;
  for (size_t i = 0; i < r.predictions.ids.size(); ++i) {
    p_mel.push_back(r.predictions.probs[i][0]);
    is_mel.push_back(truth.at(r.predictions.ids[i]) == 1);
  }
  EXPECT_DOUBLE_EQ(r.metrics.auc_melanoma, mel::roc_auc(p_mel, is_mel));
  // explain --target melanoma is class 0 of this model (class 1 of the ISIC one).
  mel::ExplainOptions x;
  x.model = t.out;
  x.image = dir_ + "/data/images/SYN_0000000.png";
  x.target = "melanoma";
  EXPECT_EQ(mel::run_explain(x).target, 0);
}

TEST_F(MelanomaApp, ExplainTargetTakesANameOrAnIndex) {
  mel::ExplainOptions x;
  x.model = dir_ + "/model.safetensors";
  x.image = dir_ + "/data/images/SYN_0000000.png";
  x.method = "cam";
  x.target = "melanoma";
  EXPECT_EQ(mel::run_explain(x).target, 1);
  x.target = "Seborrheic Keratosis";
  const mel::ExplainResult sk = mel::run_explain(x);
  EXPECT_EQ(sk.target, 2);
  EXPECT_EQ(sk.json["target_class"], "seborrheic_keratosis");
  x.target = "0";  // an index, as before
  EXPECT_EQ(mel::run_explain(x).target, 0);
  x.target = "predicted";
  const mel::ExplainResult pred = mel::run_explain(x);
  EXPECT_EQ(pred.target, pred.predicted);
  x.target = "-1";  // the old spelling of "predicted"
  EXPECT_EQ(mel::run_explain(x).target, pred.predicted);
  x.target = "3";
  std::string e = error_of([&] { mel::run_explain(x); });
  EXPECT_NE(e.find("3 classes"), std::string::npos) << e;
  x.target = "freckle";
  e = error_of([&] { mel::run_explain(x); });
  EXPECT_NE(e.find("freckle"), std::string::npos) << e;
  EXPECT_NE(e.find("melanoma (1)"), std::string::npos) << e;
  // Integrated Gradients reports its completeness gap; Grad-CAM has none.
  x.target = "melanoma";
  x.method = "integrated-gradients";
  const mel::ExplainResult ig = mel::run_explain(x);
  ASSERT_TRUE(ig.json.contains("completeness_gap"));
  EXPECT_LT(std::abs(ig.json["completeness_gap"].get<double>()), 0.05);
  x.method = "gradcam";
  EXPECT_FALSE(mel::run_explain(x).json.contains("completeness_gap"));
}

TEST_F(MelanomaApp, EvalWritesIntervalsOperatingPointsAndReliabilityDiagrams) {
  mel::EvalOptions e;
  e.model = dir_ + "/model.safetensors";
  e.data = dir_ + "/data";
  e.split = "";
  e.stats.resamples = 100;
  e.json = dir_ + "/eval_stats.json";
  e.reliability = dir_ + "/rel/reliability.png";
  const mel::EvalResult r = mel::run_eval(e);
  const auto j = mel::read_json(e.json);
  const double auc = j["auc_melanoma"].get<double>();
  EXPECT_LE(j["auc_melanoma_ci95"][0].get<double>(), auc);
  EXPECT_GE(j["auc_melanoma_ci95"][1].get<double>(), auc);
  EXPECT_EQ(j["bootstrap"]["resamples"], 100);
  EXPECT_TRUE(j["melanoma_at_0.5"].contains("sensitivity"));
  EXPECT_DOUBLE_EQ(j["calibration"]["top_label"]["ece"].get<double>(), r.stats.top_label.ece);
  const auto png = glimpse::io::load_image(e.reliability);
  EXPECT_EQ(png.width, 240);
  EXPECT_TRUE(fs::exists(dir_ + "/rel/reliability.top-label.png"));
}

TEST_F(MelanomaApp, PredictWritesACsvRowAndOverlayPerPhoto) {
  const std::string photos = dir_ + "/photos";
  fs::create_directories(photos);
  fs::copy_file(dir_ + "/data/images/SYN_0000000.png", photos + "/a.png");
  fs::copy_file(dir_ + "/data/images/SYN_0000001.png", photos + "/b.PNG");
  { std::ofstream(photos + "/c.jpg") << "not a photo"; }
  { std::ofstream(photos + "/notes.txt") << "ignored"; }
  mel::PredictOptions o;
  o.model = dir_ + "/model.safetensors";
  o.images = photos;
  o.out = dir_ + "/predicted";
  o.explain.display = 64;
  const mel::PredictResult r = mel::run_predict(o);
  EXPECT_EQ(r.images, 3);
  EXPECT_EQ(r.failed, 1);
  // The CSV as the data reader reads it: every row has every field.
  const glimpse::data::CsvTable t = glimpse::data::read_csv(r.csv);
  const std::vector<std::string> header = {"file",    "predicted", "p_nevus", "p_melanoma", "p_seborrheic_keratosis",
                                           "overlay", "error"};
  EXPECT_EQ(t.header, header);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][0], "a.png");
  EXPECT_EQ(t.rows[1][0], "b.PNG");
  EXPECT_EQ(t.rows[2][0], "c.jpg");
  EXPECT_TRUE(t.rows[2][1].empty());
  EXPECT_NE(t.rows[2][6].find("c.jpg"), std::string::npos);
  // The probabilities are explain's for the same photo.
  mel::ExplainOptions x;
  x.model = o.model;
  x.image = photos + "/a.png";
  const mel::ExplainResult one = mel::run_explain(x);
  double total = 0;
  for (size_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(std::stod(t.rows[0][2 + c]), one.probs[c], 1e-6);
    total += std::stod(t.rows[0][2 + c]);
  }
  EXPECT_NEAR(total, 1.0, 1e-5);
  EXPECT_EQ(t.rows[0][1], mel::load_model(o.model).meta.class_names[static_cast<size_t>(one.predicted)]);
  const auto overlay = glimpse::io::load_image(o.out + "/" + t.rows[0][5]);
  EXPECT_EQ(std::max(overlay.width, overlay.height), 64);
  EXPECT_FALSE(fs::exists(o.out + "/c.overlay.png"));
  // An empty folder is an error naming it.
  fs::create_directories(dir_ + "/empty");
  o.images = dir_ + "/empty";
  EXPECT_NE(error_of([&] { mel::run_predict(o); }).find("empty"), std::string::npos);
}

// `sanity` of CAM and guided backprop on the suite's model and 3 images, writing into dir_/<sub>.
mel::SanityOptions sanity_options(const std::string& dir, const std::string& sub) {
  mel::SanityOptions o;
  o.model = dir + "/model.safetensors";
  o.data = dir + "/data";
  o.methods = "cam,guided-backprop";
  o.limit = 3;
  o.json = dir + "/" + sub + "/sanity.json";
  o.figure = dir + "/" + sub + "/sanity.png";
  return o;
}

TEST_F(MelanomaApp, SanityRandomizesFromTheTopAndComparesMaps) {
  const mel::SanityOptions o = sanity_options(dir_, "sanity");
  const mel::SanityResult r = mel::run_sanity(o);
  EXPECT_EQ(r.images, 3);
  ASSERT_FALSE(r.layers.empty());
  EXPECT_EQ(r.layers.front(), "classifier");  // the top first
  ASSERT_EQ(r.rows.size(), 2u);
  for (const auto& row : r.rows) {
    ASSERT_EQ(row.spearman.size(), r.layers.size());
    for (size_t l = 0; l < row.spearman.size(); ++l) {
      EXPECT_LE(std::abs(row.spearman[l]), 1.0 + 1e-12);
      EXPECT_LE(row.ssim[l], 1.0 + 1e-12);
    }
  }
  // CAM = sum_k W[c,k] A_k: a random classifier W must change it.
  EXPECT_LT(r.rows[0].spearman[0], 0.99);
  const auto j = mel::read_json(o.json);
  EXPECT_EQ(j["rows"][1]["method"], "guided-backprop");
  EXPECT_EQ(j["rows"][1]["flagged"].get<bool>(), r.rows[1].flagged);
  const auto fig = glimpse::io::load_image(o.figure);
  EXPECT_EQ(fig.height, 2 * (48 + 2));
  EXPECT_EQ(fig.width, static_cast<int64_t>(r.layers.size() + 1) * (48 + 2));
}

// Data randomization: a copy trained on permuted labels. Guided backprop is the method Adebayo et al.
// (and Nie et al. 2018: it largely reconstructs the image) found nearly independent of what the
// network learned; CAM is a weighted sum with the classifier's weights. So guided backprop's maps
// must stay close to the trained model's (flagged) while CAM's must not.
TEST_F(MelanomaApp, SanityDataRandomizationFlagsGuidedBackpropNotCam) {
  mel::SanityOptions o = sanity_options(dir_, "sanity_data");
  o.data_randomization = true;
  o.data_epochs = 2;
  o.data_batch = 8;
  const mel::SanityResult r = mel::run_sanity(o);
  ASSERT_TRUE(r.data.run);
  EXPECT_EQ(r.data.epochs, 2);
  // A permutation of 18 labels of 3 classes changes most of them; none changed would be no test.
  EXPECT_GT(r.data.labels_changed, 0.3);
  EXPECT_LE(r.data.labels_changed, 1.0);
  ASSERT_EQ(r.data.rows.size(), 2u);
  const mel::SanityRow &cam = r.data.rows[0], &gbp = r.data.rows[1];
  ASSERT_EQ(cam.spearman.size(), 1u);
  std::printf("data randomization: cam %.2f / %.2f, guided-backprop %.2f / %.2f (Spearman / SSIM)\n", cam.spearman[0],
              cam.ssim[0], gbp.spearman[0], gbp.ssim[0]);
  EXPECT_TRUE(gbp.flagged) << "guided backprop's maps changed with random labels: Spearman " << gbp.spearman[0];
  EXPECT_FALSE(cam.flagged) << "CAM's maps did not change with random labels: Spearman " << cam.spearman[0];
  EXPECT_GT(gbp.spearman[0], cam.spearman[0] + 0.3);
  // The JSON carries the same numbers; the figure gains one column (the random-label model's map).
  const auto j = mel::read_json(o.json);
  const auto& d = j.at("data_randomization");
  EXPECT_EQ(d.at("epochs"), 2);
  EXPECT_EQ(d.at("train_split"), "train");
  EXPECT_DOUBLE_EQ(d.at("labels_changed").get<double>(), r.data.labels_changed);
  EXPECT_DOUBLE_EQ(d.at("train_accuracy_permuted").get<double>(), r.data.train_accuracy);
  EXPECT_EQ(d.at("rows")[1].at("method"), "guided-backprop");
  EXPECT_DOUBLE_EQ(d.at("rows")[1].at("spearman").get<double>(), gbp.spearman[0]);
  EXPECT_EQ(d.at("rows")[1].at("flagged"), true);
  const auto fig = glimpse::io::load_image(o.figure);
  EXPECT_EQ(fig.width, static_cast<int64_t>(r.layers.size() + 2) * (48 + 2));
  // Without the option the JSON says it was not run.
  o.data_randomization = false;
  o.figure.clear();
  mel::run_sanity(o);
  EXPECT_TRUE(mel::read_json(o.json).at("data_randomization").is_null());
}

TEST(MelanomaCommon, DihedralIsTheGroupOfTheSquare) {
  // 3x3 plane with distinct values: a flip reverses rows, a quarter turn is numpy's rot90
  // (counter-clockwise): out[i][j] = in[j][S-1-i].
  using glimpse::Tensor;
  Tensor x = Tensor::empty({1, 1, 3, 3});
  for (int i = 0; i < 9; ++i) x.data()[i] = static_cast<float>(i);
  EXPECT_EQ(mel::dihedral(x, 0).to_vector(), x.to_vector());
  EXPECT_EQ(mel::dihedral(x, 1).to_vector(), (std::vector<float>{2, 1, 0, 5, 4, 3, 8, 7, 6}));
  EXPECT_EQ(mel::dihedral(x, 2).to_vector(), (std::vector<float>{2, 5, 8, 1, 4, 7, 0, 3, 6}));
  // Eight different images; quarter turns compose; four of them, or two flips, are the identity.
  std::set<std::vector<float>> seen;
  for (int k = 0; k < 8; ++k) seen.insert(mel::dihedral(x, k).to_vector());
  EXPECT_EQ(seen.size(), 8u);
  EXPECT_EQ(mel::dihedral(mel::dihedral(x, 2), 2).to_vector(), mel::dihedral(x, 4).to_vector());
  EXPECT_EQ(mel::dihedral(mel::dihedral(x, 4), 4).to_vector(), x.to_vector());
  EXPECT_EQ(mel::dihedral(mel::dihedral(x, 1), 1).to_vector(), x.to_vector());
  EXPECT_NE(error_of([&] { mel::dihedral(Tensor::empty({1, 1, 2, 3}), 1); }).find("[1, 1, 2, 3]"), std::string::npos);
}

TEST(MelanomaCommon, PngBase64RoundTripsThroughTheHeader) {
  glimpse::io::Image img(3, 2, 3, 200);
  const std::string b64 = mel::png_base64(img);
  EXPECT_EQ(b64.rfind("iVBORw0KGgo", 0), 0u);  // base64 of the PNG signature
  EXPECT_EQ(b64.size() % 4, 0u);
  EXPECT_EQ(mel::sibling("a/b.safetensors", ".curve.json"), "a/b.curve.json");
}

TEST(MelanomaIsic, OpensTheSharedValidationSetWhenPresent) {
  const std::string isic = glimpse::data::find_isic2017();
  if (isic.empty()) GTEST_SKIP() << "../shared/data/isic2017 not present";
  const auto ds = mel::open_dataset(isic, "val");
  EXPECT_EQ(ds.size(), 150u);
  size_t masks = 0;
  for (const auto& s : ds.samples) masks += !s.mask_path.empty();
  EXPECT_EQ(masks, 150u);
}

// --device: the syntax, and a device that cannot be used failing at once with the reason, before
// any file is read (the paths below do not exist).
TEST(MelanomaDevice, ParseDevice) {
  EXPECT_EQ(mel::parse_device("cpu"), glimpse::Device::cpu());
  EXPECT_EQ(mel::parse_device("cuda"), glimpse::Device::cuda(0));
  EXPECT_EQ(mel::parse_device("cuda:3"), glimpse::Device::cuda(3));
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CUDA", "cuda:0:1", ""})
    EXPECT_FALSE(mel::parse_device(bad)) << bad;
  EXPECT_NE(error_of([] { mel::resolve_device("gpu"); }).find("'gpu' is not a device; use cpu, cuda or cuda:N"),
            std::string::npos);
}

TEST(MelanomaDevice, UnusableCudaFailsAtOnceWithTheReason) {
  std::string spec = "cuda", reason;
#ifdef GLIMPSE_WITH_CUDA
  if (glimpse::cuda::init()) {  // a GPU: ask for one past the last instead
    spec = "cuda:" + std::to_string(glimpse::cuda::device_count());
    reason = "CUDA device(s), cuda:0..cuda:";
  } else {
    reason = "CUDA is unavailable: " + glimpse::cuda::unavailable_reason();
  }
#else
  reason = "CUDA is unavailable: this build has no CUDA backend";
#endif
  const std::string nowhere = "/nonexistent/glimpse";
  mel::TrainOptions t;
  t.data = nowhere;
  t.device = spec;
  mel::EvalOptions e;
  e.model = nowhere + ".safetensors";
  e.data = nowhere;
  e.device = spec;
  mel::ExplainOptions x;
  x.model = e.model;
  x.image = nowhere + ".png";
  x.device = spec;
  mel::LocalizeOptions l;
  l.model = e.model;
  l.data = nowhere;
  l.device = spec;
  for (const std::string& err : {error_of([&] { mel::train_model(t); }), error_of([&] { mel::run_eval(e); }),
                                 error_of([&] { mel::run_explain(x); }), error_of([&] { mel::run_localize(l); })}) {
    EXPECT_NE(err.find("--device " + spec + ": "), std::string::npos) << err;
    EXPECT_NE(err.find(reason), std::string::npos) << err;
  }
}

// The app's inference path (predict: batches moved to the model's device, softmax rows read back)
// with the model on the host stand-in for cuda:0: the same probabilities as on the CPU.
TEST_F(MelanomaApp, PredictWithTheModelOnADevice) {
#ifdef GLIMPSE_WITH_CUDA
  if (glimpse::cuda::init()) GTEST_SKIP() << "a real GPU is registered; the stand-in would replace it";
#endif
  const glimpse::testing::HostStandInScope stand_in(/*with_kernels=*/true);
  ASSERT_TRUE(stand_in.active());
  {
    const mel::LoadedModel lm = mel::load_model(dir_ + "/model.safetensors");
    const glimpse::data::Dataset ds = mel::open_dataset(dir_ + "/data", "val");
    const mel::Predictions cpu = mel::predict(*lm.model, ds, lm.meta.size, lm.meta.preprocess, "cpu", true);
    lm.model->to(glimpse::Device::cuda(0));
    EXPECT_EQ(mel::model_device(*lm.model), glimpse::Device::cuda(0));
    const mel::Predictions dev = mel::predict(*lm.model, ds, lm.meta.size, lm.meta.preprocess, "dev", true);
    EXPECT_EQ(dev.probs, cpu.probs);
    EXPECT_EQ(dev.loss, cpu.loss);
  }  // every stand-in tensor is freed before the stand-in goes
}

}  // namespace

// The command table (apps/melanoma/cli.h) as main.cpp uses it: every entry adds its flags beside
// the common ones without a clash, names are unique, a command line reaches its entry's options,
// and the checks that need several flags run when the entry runs.
namespace {
struct ParsedTable {
  CLI::App app{"melanoma"};
  mel::Common common;
  std::vector<mel::Command> commands = mel::melanoma_commands();
  std::vector<CLI::App*> subs = mel::add_commands(app, commands, common);
  void parse(std::vector<std::string> args) {
    std::reverse(args.begin(), args.end());  // CLI11 takes them last first
    app.parse(args);
  }
};
}  // namespace

TEST(MelanomaCommands, EveryEntryIsASubcommandWithItsOwnAndTheCommonFlags) {
  ParsedTable t;
  std::set<std::string> names;
  for (const auto& c : t.commands) EXPECT_TRUE(names.insert(c.name).second) << "duplicate command " << c.name;
  for (const char* want : {"synth", "train", "eval", "explain", "predict", "sanity", "localize", "two-stage", "roar",
                           "report", "demo", "serve", "export"})
    EXPECT_EQ(names.count(want), 1u) << want;
  for (size_t i = 0; i < t.commands.size(); ++i) {
    EXPECT_NE(t.subs[i]->get_option_no_throw("--threads"), nullptr) << t.commands[i].name;
    EXPECT_EQ(t.subs[i]->get_option_no_throw("--seed") != nullptr, t.commands[i].seeded) << t.commands[i].name;
  }
}

TEST(MelanomaCommands, TheChosenEntryRunsWithItsParsedFlags) {
  {
    ParsedTable t;
    t.parse({"train", "--epochs", "3", "--threads", "1"});
    EXPECT_EQ(t.common.threads, 1);
    // No --data, --synthetic or --resume: refused when the entry runs, naming the flags.
    try {
      mel::run_parsed(t.commands, t.subs, t.common);
      ADD_FAILURE() << "train without data ran";
    } catch (const CLI::ValidationError& e) {
      EXPECT_NE(std::string(e.what()).find("give --data DIR or --synthetic N"), std::string::npos) << e.what();
    }
  }
  {
    ParsedTable t;
    t.parse({"roar", "--percents", "20,40"});
    try {
      mel::run_parsed(t.commands, t.subs, t.common);
      ADD_FAILURE() << "roar without data ran";
    } catch (const CLI::ValidationError& e) {
      EXPECT_NE(std::string(e.what()).find("or --model FILE"), std::string::npos) << e.what();
    }
  }
  {
    ParsedTable t;
    EXPECT_THROW(t.parse({"roar", "--percents", "0"}), CLI::ValidationError);
    ParsedTable u;
    EXPECT_THROW(u.parse({"demo", "--methods", "cam,no-such-method"}), CLI::ValidationError);
    ParsedTable v;
    EXPECT_NO_THROW(v.parse({"demo", "--methods", "cam,gradcam"}));
  }
}

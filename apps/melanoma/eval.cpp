// `melanoma eval`: the ISIC 2017 part-3 scores of a checkpoint on a split -- ROC AUC of melanoma vs
// rest and of seborrheic keratosis vs rest, their mean -- with accuracy and the confusion matrix, and
// how far to trust them (eval_stats.h): 95% bootstrap intervals, sensitivity and specificity of
// melanoma at stated thresholds, calibration with reliability diagrams.
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "core/error.h"
#include "core/io/image.h"

namespace mel {

EvalResult run_eval(const EvalOptions& o) {
  const double t0 = now_s();
  const glimpse::Device device = resolve_device(o.device);  // first: an unusable device fails at once
  EvalResult r;
  LoadedModel lm = load_model(o.model);
  lm.model->to(device);  // predict() moves each batch to the model
  r.meta = lm.meta;
  glimpse::data::Dataset ds = open_dataset(o.data, o.split);
  align_dataset_to_model(lm.meta, ds, o.model);
  glimpse::dist::Communicator& comm = o.comm ? *o.comm : glimpse::dist::local();
  glimpse::data::Dataset part = ds;
  keep_shard(part, comm, static_cast<size_t>(kPredictBatch));
  // A rank whose shard is empty (fewer batches than ranks) still joins the gathering.
  const Predictions mine = part.samples.empty()
                               ? Predictions()
                               : predict(*lm.model, part, lm.meta.size, lm.meta.preprocess, "  eval", o.tta);
  r.predictions = gather_predictions(comm, mine);
  if (comm.rank() != 0) return r;  // rank 0 scores and prints for the job
  // Nothing scored is an error (exit 1), not "images 0, AUC nan"; fewer than listed, a note.
  const size_t scored = r.predictions.labels.size();
  GLIMPSE_CHECK(scored > 0, "eval: none of the ", ds.size(), " image(s) of ", o.data, " [", o.split,
                "] could be read (", ds.missing_images, " listed but missing); nothing to score");
  if (scored < ds.size())
    std::fprintf(stderr, "eval: %zu of %zu image(s) could not be read and are not scored\n", ds.size() - scored,
                 ds.size());
  r.metrics = classification_metrics(r.predictions.probs, r.predictions.labels, lm.meta.class_names);
  r.stats = eval_stats(r.predictions.probs, r.predictions.labels, lm.meta.class_names, o.stats);
  if (!o.reliability.empty()) {
    const bool mel = !r.stats.melanoma.bins.empty();
    if (const std::filesystem::path p(o.reliability); p.has_parent_path()) ensure_dir(p.parent_path().string());
    glimpse::io::save_png(o.reliability, reliability_diagram(mel ? r.stats.melanoma : r.stats.top_label));
    if (mel) glimpse::io::save_png(sibling(o.reliability, ".top-label.png"), reliability_diagram(r.stats.top_label));
  }
  r.seconds = seconds_since(t0);
  std::printf("eval: %s (%s, %lld px, epoch %lld) on %s [%s]%s\n%s%s  (%.1fs)\n", o.model.c_str(), lm.meta.arch.c_str(),
              static_cast<long long>(lm.meta.size), static_cast<long long>(lm.meta.epoch), o.data.c_str(),
              o.split.empty() ? "all" : o.split.c_str(), o.tta ? ", mean over 8 flips/rotations" : "",
              format_metrics(r.metrics, lm.meta.class_names).c_str(), format_eval_stats(r.stats, r.metrics).c_str(),
              r.seconds);
  std::fflush(stdout);
  if (!o.json.empty()) write_json(o.json, eval_to_json(o, r));
  return r;
}

nlohmann::json eval_to_json(const EvalOptions& o, const EvalResult& r) {
  nlohmann::json j = to_json(r.metrics, r.meta.class_names);
  j.update(to_json(r.stats));
  if (!o.reliability.empty()) j["reliability_png"] = o.reliability;
  j["model"] = o.model;
  j["arch"] = r.meta.arch;
  j["input_size"] = r.meta.size;
  j["epoch"] = r.meta.epoch;
  j["data"] = o.data;
  j["split"] = o.split;
  j["tta"] = o.tta;
  j["loss"] = r.predictions.loss;
  j["seconds"] = r.seconds;
  nlohmann::json preds = nlohmann::json::array();
  for (size_t i = 0; i < r.predictions.ids.size(); ++i)
    preds.push_back(
        {{"id", r.predictions.ids[i]}, {"label", r.predictions.labels[i]}, {"probs", r.predictions.probs[i]}});
  j["predictions"] = preds;
  return j;
}

}  // namespace mel

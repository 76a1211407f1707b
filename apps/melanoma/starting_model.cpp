// The 3-class model two-stage and roar start from (commands.h: load_or_train). Under mpirun every
// rank loads --model; without one, rank 0 alone trains it (one process's weights, bit for bit: the
// numbers of the job are those of one process) and the others receive it (shared_model.h).
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "shared_model.h"

namespace mel {

StartingModel load_or_train(const std::string& model_path, const TrainOptions& train, const char* who,
                            glimpse::dist::Communicator& c) {
  StartingModel m;
  m.data_dir = train.data;
  const bool leader = c.rank() == 0;
  if (!model_path.empty()) {
    agreed(c, who, [&] {
      LoadedModel lm = load_model(model_path);
      m.model = lm.model;
      m.meta = lm.meta;
    });
    if (m.data_dir.empty()) m.data_dir = m.meta.data;
    if (leader)
      std::printf("%s: starting model %s (%s, %lld px)\n", who, model_path.c_str(), m.meta.arch.c_str(),
                  static_cast<long long>(m.meta.size));
  } else {
    if (leader) std::printf("%s: training the starting model%s\n", who, c.size() > 1 ? " (on rank 0)" : "");
    std::fflush(stdout);
    LoadedModel trained;
    on_root(c, who, [&] {
      TrainOptions t = train;
      t.comm = nullptr;  // one process's training, whatever the job's size
      TrainResult r = train_model(t);
      trained = {r.model, r.meta};
    });
    const LoadedModel lm = share_model(c, trained);
    m.model = lm.model;
    m.meta = lm.meta;
    m.data_dir = m.meta.data;
  }
  GLIMPSE_CHECK(m.meta.classes == 3 && find_class(m.meta.class_names, kMelanoma) >= 0 &&
                    find_class(m.meta.class_names, kKeratosis) >= 0,
                who,
                ": the ISIC scoring needs a 3-class model with classes melanoma, seborrheic_keratosis and nevus; "
                "this one has ",
                m.meta.classes, " (", m.meta.class_names.empty() ? "" : m.meta.class_names[0],
                m.meta.classes > 1 ? ", " + m.meta.class_names[1] : "", m.meta.classes > 2 ? ", ..." : "", ")");
  agreed(c, who, [&] {
    m.train = open_dataset(m.data_dir, train.train_split);
    m.val = open_dataset(m.data_dir, train.val_split);
    align_dataset_to_model(m.meta, m.train, model_path.empty() ? train.out : model_path);
    align_dataset_to_model(m.meta, m.val, model_path.empty() ? train.out : model_path);
  });
  return m;
}

TrainOptions retraining(const TrainOptions& base, const ModelMeta& meta, const std::string& data,
                        const std::string& out) {
  TrainOptions t = base;
  t.data = data;
  t.synthetic = 0;
  t.resume.clear();
  t.arch = meta.arch;
  t.size = meta.size;
  t.preprocess = {};  // the images were written preprocessed
  t.out = out;
  t.comm = nullptr;  // one process's training, whatever the job's size
  return t;
}

}  // namespace mel

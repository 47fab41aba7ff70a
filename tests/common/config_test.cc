#include "common/config.h"

#include <glob.h>

#include <string>
#include <utility>

#include "common/input_shape.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

constexpr char kGood[] = R"pb(
cluster {
  servers: "127.0.0.1:5000"
  servers: "127.0.0.1:5001"
  num_workers: 2
}
sparse_tables {
  name: "emb"
  dim: 8
}
model {
  type: DNN
  sparse_table: "emb"
  hidden_units: 32
}
data {
  train_files: "train.tsv"
  eval_files: "/abs/eval.tsv"
  batch_size: 256
}
)pb";

absl::StatusOr<JobConfig> Parse(const std::string& text,
                                const ConfigOverrides& o = {}) {
  return ParseJobConfig(text, "job.pbtxt", "/cfg", o);
}

// The message of a refused config.
std::string Error(const std::string& text, const ConfigOverrides& o = {}) {
  auto c = Parse(text, o);
  EXPECT_FALSE(c.ok());
  if (c.ok()) return "";
  EXPECT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument));
  return std::string(c.status().message());
}

std::string Replace(std::string text, const std::string& from,
                    const std::string& to) {
  size_t pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return text.replace(pos, from.size(), to);
}

TEST(ConfigTest, GoodConfigGetsDefaultsAndResolvedPaths) {
  auto c = Parse(kGood);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cluster().shard_num(), 16);
  EXPECT_EQ(c->sparse_tables(0).optimizer().type(), OptimizerConfig::ADAGRAD);
  EXPECT_FLOAT_EQ(c->sparse_tables(0).optimizer().learning_rate(), 0.05f);
  EXPECT_EQ(c->training().mode(), TrainingConfig::ASYNC);
  EXPECT_EQ(c->training().epochs(), 1);
  EXPECT_EQ(c->data().train_files(0), "/cfg/train.tsv");
  EXPECT_EQ(c->data().eval_files(0), "/abs/eval.tsv");
}

TEST(ConfigTest, PipeInputsAreKeptAsWrittenAndNeedACommand) {
  auto c = Parse(Replace(kGood, "train_files: \"train.tsv\"",
                         "train_files: \"pipe:zcat part-*.gz\" "
                         "train_files: \"a.tsv\""));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().train_files(0), "pipe:zcat part-*.gz");  // not /cfg/...
  EXPECT_EQ(c->data().train_files(1), "/cfg/a.tsv");
  EXPECT_THAT(Error(Replace(kGood, "train_files: \"train.tsv\"",
                            "train_files: \"pipe: \"")),
              HasSubstr("data.train_files: 'pipe: ' has no command after "
                        "'pipe:'"));
  EXPECT_THAT(Error(Replace(kGood, "eval_files: \"/abs/eval.tsv\"",
                            "eval_files: \"\"")),
              HasSubstr("data.eval_files: an entry is empty"));
}

TEST(ConfigTest, FollowNeedsOneEpochNoShuffleAndFiles) {
  const std::string follow =
      Replace(kGood, "batch_size: 256",
              "batch_size: 256 follow: true follow_done_file: \"in/_DONE\"");
  auto c = Parse(follow);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().follow_done_file(), "/cfg/in/_DONE");
  EXPECT_EQ(c->data().follow_poll_ms(), 1000);
  EXPECT_THAT(Error(follow + "training { epochs: 2 }"),
              HasSubstr("training.epochs: must be 1 with data.follow"));
  EXPECT_THAT(
      Error(Replace(follow, "follow: true", "follow: true shuffle_buffer: 10")),
      HasSubstr("data.follow: reads files as they arrive and cannot "
                "shuffle"));
  EXPECT_THAT(Error(Replace(follow, "train_files: \"train.tsv\"",
                            "train_files: \"pipe:cat x\"")),
              HasSubstr("data.follow: follows files, not commands"));
  EXPECT_THAT(Error(Replace(follow, "follow: true", "follow_poll_ms: 1")),
              HasSubstr("data.follow_done_file: only applies with "
                        "data.follow"));
  EXPECT_THAT(
      Error(Replace(follow, "follow: true", "follow: true follow_poll_ms: 1")),
      HasSubstr("data.follow_poll_ms: must be in [10, 3600000]"));
}

TEST(ConfigTest, ExportsNeedAFolderAndCheckpoints) {
  const std::string with_export =
      std::string(kGood) +
      "checkpoint { dir: \"ck\" every_steps: 100 } "
      "export { dir: \"pub\" every_minutes: 0.5 delta: true }";
  auto c = Parse(with_export);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->export_().dir(), "/cfg/pub");
  EXPECT_THAT(Error(std::string(kGood) + "export { dir: \"pub\" }"),
              HasSubstr("export: exports follow checkpoints"));
  EXPECT_THAT(Error(Replace(with_export, "dir: \"pub\" ", "")),
              HasSubstr("export.dir: is required"));
  EXPECT_THAT(
      Error(Replace(with_export, "every_minutes: 0.5", "every_minutes: -1")),
      HasSubstr("export.every_minutes: must be in [0, 525600]"));
}

TEST(ConfigTest, EarlyStoppingNeedsAnEvaluationEveryEpoch) {
  const std::string good =
      std::string(kGood) + "training { epochs: 10 early_stopping_patience: 2 }";
  EXPECT_TRUE(Parse(good).ok());
  EXPECT_THAT(Error(Replace(good, "epochs: 10", "eval_every_epoch: false")),
              HasSubstr("training.early_stopping_patience: needs "
                        "training.eval_every_epoch"));
  EXPECT_THAT(Error(Replace(good, "eval_files: \"/abs/eval.tsv\"", "")),
              HasSubstr("needs an evaluation: data.eval_files or "
                        "data.eval_holdout_fraction"));
  EXPECT_THAT(Error(Replace(good, "patience: 2", "patience: -1")),
              HasSubstr("training.early_stopping_patience: must be in"));
}

TEST(ConfigTest, HoldoutFoldsNeedAFractionAndStayInRange) {
  const std::string folds = Replace(kGood, "eval_files: \"/abs/eval.tsv\"",
                                    "eval_holdout_fraction: 0.2 "
                                    "eval_holdout_fold: 4");
  EXPECT_TRUE(Parse(folds).ok());
  EXPECT_THAT(Error(Replace(folds, "fold: 4", "fold: 5")),
              HasSubstr("data.eval_holdout_fold: must be in [0, 4], got 5"));
  EXPECT_THAT(Error(Replace(folds, "eval_holdout_fraction: 0.2", "")),
              HasSubstr("data.eval_holdout_fold: needs "
                        "data.eval_holdout_fraction"));
}

TEST(ConfigTest, UnknownFieldNamesLineAndField) {
  std::string msg = Error(Replace(kGood, "batch_size: 256", "batchsize: 256"));
  EXPECT_THAT(msg, HasSubstr("job.pbtxt:19:"));
  EXPECT_THAT(msg, HasSubstr("no field named \"batchsize\""));
}

TEST(ConfigTest, WrongTypeNamesLine) {
  std::string msg = Error(Replace(kGood, "dim: 8", "dim: \"eight\""));
  EXPECT_THAT(msg, HasSubstr("job.pbtxt:9:"));
  EXPECT_THAT(msg, HasSubstr("integer"));
}

TEST(ConfigTest, UnknownEnumValue) {
  std::string msg = Error(Replace(kGood, "type: DNN", "type: XGBOOST"));
  EXPECT_THAT(msg, HasSubstr("job.pbtxt:1"));
  EXPECT_THAT(msg, HasSubstr("Unknown enumeration value"));
  EXPECT_THAT(msg, HasSubstr("XGBOOST"));
}

TEST(ConfigTest, OutOfRangeValueNamesLineFieldAndValue) {
  EXPECT_EQ(Error(Replace(kGood, "batch_size: 256", "batch_size: 0")),
            "job.pbtxt:19:3: data.batch_size: must be in [1, 1000000], got 0");
}

TEST(ConfigTest, MissingDimIsRequired) {
  EXPECT_EQ(Error(Replace(kGood, "dim: 8", "")),
            "job.pbtxt:7:1: sparse_tables[0].dim: is required");
}

TEST(ConfigTest, ModelMustNameAnExistingTable) {
  EXPECT_EQ(
      Error(Replace(kGood, "sparse_table: \"emb\"", "sparse_table: \"embs\"")),
      "job.pbtxt:13:3: model.sparse_table: no sparse table named "
      "'embs' (tables: emb)");
}

TEST(ConfigTest, DuplicateTableName) {
  std::string text = Replace(kGood, "model {",
                             "sparse_tables { name: \"emb\" dim: 4 }\nmodel {");
  EXPECT_EQ(Error(text),
            "job.pbtxt:11:17: sparse_tables[1].name: 'emb' is already the "
            "name of sparse_tables[0]");
}

TEST(ConfigTest, LrNeedsDimOne) {
  std::string text = Replace(kGood, "type: DNN", "type: LR");
  text = Replace(text, "hidden_units: 32", "");
  EXPECT_EQ(Error(text),
            "job.pbtxt:12:3: model.type: LR needs sparse table 'emb' to have "
            "dim 1, it has 8");
}

// kGood with a second table "small" (dim 4) that slots 0 and 3 read.
std::string TwoTables(const std::string& extra_model = "") {
  std::string text = Replace(kGood, "sparse_tables {",
                             "sparse_tables {\n  name: \"small\"\n  dim: 4\n"
                             "}\nsparse_tables {");
  return Replace(text, "hidden_units: 32",
                 "hidden_units: 32\n  slot_tables { table: \"small\" slots: "
                 "[0, 3] }" +
                     extra_model);
}

TEST(ConfigTest, SlotTablesMapSlotsToTablesOfMixedDims) {
  auto c = Parse(TwoTables());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model().slot_tables(0).table(), "small");
}

TEST(ConfigTest, SlotTablesAreChecked) {
  EXPECT_THAT(
      Error(Replace(TwoTables(), "table: \"small\"", "table: \"nope\"")),
      HasSubstr("model.slot_tables[0].table: no sparse table named "
                "'nope' (tables: small, emb)"));
  EXPECT_THAT(Error(Replace(TwoTables(), "slots: [0, 3]", "slots: [0, 39]")),
              HasSubstr("model.slot_tables[0].slots[1]: slot 39 does not "
                        "exist: the data has 39 sparse slots (0..38)"));
  EXPECT_THAT(Error(TwoTables(" slot_tables { table: \"emb\" slots: [5, 3] }")),
              HasSubstr("model.slot_tables[1].slots[1]: slot 3 is mapped twice "
                        "(also model.slot_tables[0].slots[1])"));
  EXPECT_THAT(Error(Replace(TwoTables(), "slots: [0, 3]", "")),
              HasSubstr("model.slot_tables[0].slots: lists no slot for table "
                        "'small'"));
  // Without a default table every slot needs a mapping.
  EXPECT_THAT(Error(Replace(TwoTables(), "sparse_table: \"emb\"", "")),
              HasSubstr("model.sparse_table: is required: slot 1 is in no "
                        "model.slot_tables entry"));
}

TEST(ConfigTest, FmRefusesTablesOfDifferentDims) {
  std::string text = Replace(TwoTables(), "type: DNN", "type: FM");
  text = Replace(text, "hidden_units: 32", "");
  EXPECT_THAT(Error(text),
              HasSubstr("model.slot_tables[0].table: FM needs one embedding "
                        "width for all its slots: sparse table 'small' has "
                        "dim 4, 'emb' (model.type) has dim 8"));
  // Equal dims are fine.
  EXPECT_TRUE(Parse(Replace(text, "dim: 4", "dim: 8")).ok());
  // LR needs dim 1 of every table.
  text = Replace(TwoTables(), "type: DNN", "type: LR");
  text = Replace(text, "hidden_units: 32", "");
  text = Replace(text, "dim: 8", "dim: 1");
  EXPECT_THAT(Error(text), HasSubstr("model.slot_tables[0].table: LR needs "
                                     "sparse table 'small' to have dim 1, it "
                                     "has 4"));
}

TEST(ConfigTest, NoServersAnywhere) {
  std::string text = Replace(kGood, "servers: \"127.0.0.1:5000\"", "");
  text = Replace(text, "servers: \"127.0.0.1:5001\"", "");
  EXPECT_THAT(Error(text), HasSubstr("cluster.servers: no servers given"));
}

TEST(ConfigTest, BadEndpoint) {
  EXPECT_EQ(Error(Replace(kGood, "127.0.0.1:5001", "127.0.0.1")),
            "job.pbtxt:4:3: cluster.servers[1]: '127.0.0.1' is not host:port "
            "with a port in [1, 65535]");
}

TEST(ConfigTest, RequestLimitsAndRowCapsAreChecked) {
  auto limits = [](const std::string& field) {
    return Replace(kGood, "num_workers: 2",
                   "num_workers: 2 limits { " + field + " }");
  };
  EXPECT_THAT(Error(limits("max_keys_per_request: 100")),
              HasSubstr("cluster.limits.max_keys_per_request"));
  EXPECT_THAT(Error(limits("max_step_jump: 0")),
              HasSubstr("cluster.limits.max_step_jump"));
  EXPECT_THAT(Error(limits("max_concurrent_streams: 0")),
              HasSubstr("cluster.limits.max_concurrent_streams"));
  EXPECT_THAT(Error(limits("rpc_memory_bytes: -1")),
              HasSubstr("cluster.limits.rpc_memory_bytes"));
  EXPECT_THAT(Error(limits("max_checkpoint_requests: 0")),
              HasSubstr("cluster.limits.max_checkpoint_requests"));
  EXPECT_TRUE(
      Parse(limits("max_step_jump: 5000 max_checkpoint_requests: 2")).ok());
  auto parsed = Parse(kGood);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->cluster().limits().max_keys_per_request(), 4194304);
  EXPECT_EQ(parsed->cluster().limits().max_step_jump(), 1000000);
  EXPECT_EQ(parsed->sparse_tables(0).storage().max_rows(), 0);
  EXPECT_TRUE(
      Parse(Replace(kGood, "dim: 8", "dim: 8 storage { max_rows: 1000 }"))
          .ok());
  EXPECT_THAT(Error(Replace(kGood, "dim: 8",
                            "dim: 8 storage { type: TIERED dir: \"/t\" "
                            "max_rows: 1000 }")),
              HasSubstr("sparse_tables[0].storage.max_rows"));
}

TEST(ConfigTest, SecurityFilesResolveAgainstTheConfigsFolder) {
  auto parsed = Parse(Replace(kGood, "num_workers: 2",
                              "num_workers: 2 security { auth_token_file: "
                              "\"token\" admin_token_file: \"admin\" }"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->cluster().security().auth_token_file(), "/cfg/token");
  EXPECT_EQ(parsed->cluster().security().admin_token_file(), "/cfg/admin");
}

TEST(ConfigTest, GenerateExcludesTrainFiles) {
  std::string text =
      Replace(kGood, "batch_size: 256", "generate { output_dir: \"gen\" }");
  EXPECT_THAT(Error(text), HasSubstr("data.generate: cannot be combined"));
}

TEST(ConfigTest, GeneratedDataFillsFiles) {
  std::string text = Replace(kGood, "train_files: \"train.tsv\"", "");
  text = Replace(text, "eval_files: \"/abs/eval.tsv\"",
                 "generate { output_dir: \"gen\" train_rows: 10 }");
  auto c = Parse(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().train_files(0), "/cfg/gen/train.tsv");
  EXPECT_EQ(c->data().eval_files(0), "/cfg/gen/eval.tsv");
  ConfigOverrides o;
  o.data_dir = "/run/data";
  c = Parse(text, o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().train_files(0), "/run/data/train.tsv");
}

TEST(ConfigTest, OverridesReplaceClusterValues) {
  ConfigOverrides o;
  o.servers = SplitEndpoints("h1:1, h2:2,h3:3");
  o.num_workers = 5;
  auto c = Parse(kGood, o);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->cluster().servers_size(), 3);
  EXPECT_EQ(c->cluster().servers(1), "h2:2");
  EXPECT_EQ(c->cluster().num_workers(), 5);
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto c = LoadJobConfig("/nonexistent/job.pbtxt");
  EXPECT_THAT(c, StatusIs(absl::StatusCode::kNotFound,
                          HasSubstr("/nonexistent/job.pbtxt")));
}

TEST(ConfigTest, NegativeLearningRate) {
  std::string text =
      Replace(kGood, "dim: 8", "dim: 8\n  optimizer { learning_rate: -1 }");
  EXPECT_EQ(Error(text),
            "job.pbtxt:10:15: sparse_tables[0].optimizer.learning_rate: must "
            "be a positive number, got -1");
}

// Optimizers (issue 3): ADAM and FTRL with their fields, l1/l2.
TEST(ConfigTest, AdamAndFtrlOptimizersAreAccepted) {
  std::string text = Replace(
      kGood, "dim: 8",
      "dim: 8\n  optimizer { type: ADAM learning_rate: 0.001 beta1: 0.8 "
      "beta2: 0.99 l2: 0.01 weight_bound: 10 }");
  text = Replace(text, "hidden_units: 32",
                 "hidden_units: 32\n  dense_optimizer { type: FTRL "
                 "ftrl_beta: 0.5 l1: 0.25 l2: 2 }");
  auto c = Parse(text);
  ASSERT_TRUE(c.ok()) << c.status();
  const OptimizerConfig& adam = c->sparse_tables(0).optimizer();
  EXPECT_EQ(adam.type(), OptimizerConfig::ADAM);
  EXPECT_FLOAT_EQ(adam.beta1(), 0.8f);
  EXPECT_FLOAT_EQ(adam.beta2(), 0.99f);
  EXPECT_FLOAT_EQ(adam.l2(), 0.01f);
  EXPECT_FLOAT_EQ(adam.weight_bound(), 10.0f);
  const OptimizerConfig& ftrl = c->model().dense_optimizer();
  EXPECT_EQ(ftrl.type(), OptimizerConfig::FTRL);
  EXPECT_FLOAT_EQ(ftrl.ftrl_beta(), 0.5f);
  EXPECT_FLOAT_EQ(ftrl.l1(), 0.25f);
  EXPECT_FLOAT_EQ(ftrl.l2(), 2.0f);
}

TEST(ConfigTest, NewOptimizerFieldsHaveDocumentedDefaults) {
  auto c = Parse(kGood);
  ASSERT_TRUE(c.ok()) << c.status();
  const OptimizerConfig& o = c->sparse_tables(0).optimizer();
  EXPECT_FLOAT_EQ(o.beta1(), 0.9f);
  EXPECT_FLOAT_EQ(o.beta2(), 0.999f);
  EXPECT_FLOAT_EQ(o.epsilon(), 1e-6f);
  EXPECT_FLOAT_EQ(o.ftrl_beta(), 1.0f);
  EXPECT_EQ(o.l1(), 0.0f);
  EXPECT_EQ(o.l2(), 0.0f);
}

TEST(ConfigTest, BadOptimizerFieldsNameFieldAndValue) {
  struct Case {
    const char* optimizer;
    const char* message;
  };
  const Case cases[] = {
      {"type: ADAM beta1: 1",
       "job.pbtxt:10:26: sparse_tables[0].optimizer.beta1: must be in [0, 1), "
       "got 1"},
      {"type: ADAM beta2: -0.5",
       "job.pbtxt:10:26: sparse_tables[0].optimizer.beta2: must be in [0, 1), "
       "got -0.5"},
      {"type: FTRL ftrl_beta: -1",
       "job.pbtxt:10:26: sparse_tables[0].optimizer.ftrl_beta: must be >= 0, "
       "got -1"},
      {"type: FTRL l1: -0.5",
       "job.pbtxt:10:26: sparse_tables[0].optimizer.l1: must be >= 0, got "
       "-0.5"},
      {"type: SGD l2: inf",
       "job.pbtxt:10:25: sparse_tables[0].optimizer.l2: must be >= 0, got "
       "inf"},
      {"type: TYPE_UNSPECIFIED",
       "job.pbtxt:10:15: sparse_tables[0].optimizer.type: must be SGD, "
       "ADAGRAD, ADAM or FTRL"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Error(Replace(
                  kGood, "dim: 8",
                  std::string("dim: 8\n  optimizer { ") + c.optimizer + " }")),
              c.message);
  }
}

// Learning-rate schedules (issue 16): accepted, and each bad field named
// with its path.
TEST(ConfigTest, ScheduleFieldsAreAccepted) {
  std::string text = Replace(
      kGood, "dim: 8",
      "dim: 8\n  optimizer { warmup_steps: 100 decay: COSINE decay_steps: "
      "1000 min_learning_rate: 0.001 }");
  text = Replace(text, "hidden_units: 32",
                 "hidden_units: 32\n  dense_optimizer { type: FTRL decay: "
                 "EXPONENTIAL decay_steps: 10 decay_rate: 0.9 "
                 "min_learning_rate: 0.01 }");
  auto c = Parse(text);
  ASSERT_TRUE(c.ok()) << c.status();
  const OptimizerConfig& o = c->sparse_tables(0).optimizer();
  EXPECT_EQ(o.warmup_steps(), 100);
  EXPECT_EQ(o.decay(), OptimizerConfig::COSINE);
  EXPECT_EQ(o.decay_steps(), 1000);
  EXPECT_FLOAT_EQ(o.min_learning_rate(), 0.001f);
  EXPECT_EQ(c->model().dense_optimizer().decay(), OptimizerConfig::EXPONENTIAL);
}

TEST(ConfigTest, BadScheduleFieldsNameFieldAndValue) {
  struct Case {
    const char* optimizer;
    const char* message;
  };
  const Case cases[] = {
      {"warmup_steps: -1",
       "sparse_tables[0].optimizer.warmup_steps: must be in [0, 10000000000], "
       "got -1"},
      {"decay: COSINE",
       "sparse_tables[0].optimizer.decay_steps: must be in [1, 10000000000] "
       "with decay COSINE, got 0"},
      {"decay: EXPONENTIAL decay_steps: 10 decay_rate: 1.5",
       "sparse_tables[0].optimizer.decay_rate: must be in (0, 1] with decay "
       "EXPONENTIAL, got 1.5"},
      {"decay: INVERSE_SQRT decay_steps: 10 min_learning_rate: 1",
       "sparse_tables[0].optimizer.min_learning_rate: must be in [0, "
       "learning_rate 0.05], got 1"},
      {"type: FTRL decay: COSINE decay_steps: 10",
       "sparse_tables[0].optimizer.min_learning_rate: must be > 0 for FTRL "
       "with decay COSINE (FTRL divides by the learning rate)"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Error(Replace(kGood, "dim: 8",
                              std::string("dim: 8\n  optimizer { ") +
                                  c.optimizer + " }")),
                HasSubstr(c.message));
  }
}

TEST(ConfigTest, L2ByFrequencyIsForSparseTablesWithL2) {
  auto ok =
      Parse(Replace(kGood, "dim: 8",
                    "dim: 8\n  optimizer { l2: 0.01 l2_by_frequency: true }"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->sparse_tables(0).optimizer().l2_by_frequency());
  EXPECT_THAT(
      Error(Replace(kGood, "dim: 8",
                    "dim: 8\n  optimizer { l2_by_frequency: true }")),
      HasSubstr("sparse_tables[0].optimizer.l2_by_frequency: needs l2 > 0"));
  EXPECT_THAT(Error(Replace(kGood, "hidden_units: 32",
                            "hidden_units: 32\n  dense_optimizer { l2: 0.1 "
                            "l2_by_frequency: true }")),
              HasSubstr("model.dense_optimizer.l2_by_frequency: applies to "
                        "sparse tables only"));
}

TEST(ConfigTest, DropoutIsARateForHiddenLayers) {
  auto ok = Parse(
      Replace(kGood, "hidden_units: 32", "hidden_units: 32\n  dropout: 0.2"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_FLOAT_EQ(ok->model().dropout(), 0.2f);
  EXPECT_THAT(Error(Replace(kGood, "hidden_units: 32",
                            "hidden_units: 32\n  dropout: 1")),
              HasSubstr("model.dropout: must be in [0, 1), got 1"));
  EXPECT_THAT(Error(Replace(kGood, "hidden_units: 32", "dropout: 0.5")),
              HasSubstr("model.dropout: applies to hidden layers "
                        "(hidden_units), this DNN model has none"));
}

TEST(ConfigTest, EveryShippedConfigLoads) {
  const char* src = std::getenv("PS_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "PS_SOURCE_DIR not set";
  glob_t found;
  ASSERT_EQ(
      glob((std::string(src) + "/configs/*.pbtxt").c_str(), 0, nullptr, &found),
      0);
  // Every model on generated data, Criteo and MovieLens; the Kubernetes
  // example's job.
  EXPECT_GE(found.gl_pathc, 18u);
  ASSERT_EQ(glob((std::string(src) + "/scripts/deploy/k8s/*.pbtxt").c_str(),
                 GLOB_APPEND, nullptr, &found),
            0);
  EXPECT_GE(found.gl_pathc, 19u);
  for (size_t i = 0; i < found.gl_pathc; ++i) {
    ConfigOverrides o;
    o.servers = {"127.0.0.1:1"};
    o.data_dir = "/tmp/ps_config_test";
    auto c = LoadJobConfig(found.gl_pathv[i], o);
    EXPECT_TRUE(c.ok()) << found.gl_pathv[i] << ": " << c.status();
  }
  globfree(&found);
}

// Data formats (issue 6): SLOT, MOVIELENS, shuffling.
std::string WithData(const std::string& fields) {
  return Replace(kGood, "batch_size: 256", "batch_size: 256\n" + fields);
}

TEST(ConfigTest, SlotFormatNeedsNumSlots) {
  EXPECT_EQ(Error(WithData("  format: SLOT")),
            "job.pbtxt:16:1: data.num_slots: is required for format SLOT");
  EXPECT_EQ(Error(WithData("  format: SLOT\n  num_slots: 0")),
            "job.pbtxt:21:3: data.num_slots: must be in [1, 100000], got 0");
  EXPECT_EQ(Error(WithData("  format: SLOT\n  num_slots: 3\n  num_dense: -1")),
            "job.pbtxt:22:3: data.num_dense: must be in [0, 100000], got -1");
  auto c = Parse(WithData("  format: SLOT\n  num_slots: 3\n  num_dense: 2"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(InputShapeOf(c->data()).num_slots, 3);
  EXPECT_EQ(InputShapeOf(c->data()).num_dense, 2);
}

TEST(ConfigTest, FormatFieldsOfOtherFormatsAreRefused) {
  EXPECT_EQ(Error(WithData("  num_slots: 3")),
            "job.pbtxt:20:3: data.num_slots: only applies to format SLOT");
  EXPECT_EQ(Error(WithData("  format: MOVIELENS\n  num_dense: 0")),
            "job.pbtxt:21:3: data.num_dense: only applies to format SLOT");
  EXPECT_EQ(Error(WithData("  movielens_user_file: \"u.user\"")),
            "job.pbtxt:20:3: data.movielens_user_file: only applies to "
            "format MOVIELENS");
  EXPECT_EQ(Error(WithData("  format: SLOT\n  num_slots: 1\n"
                           "  movielens_item_file: \"u.item\"")),
            "job.pbtxt:22:3: data.movielens_item_file: only applies to "
            "format MOVIELENS");
  EXPECT_EQ(Error(WithData("  format: MOVIELENS\n  movielens_item_file: \"\"")),
            "job.pbtxt:21:3: data.movielens_item_file: must not be empty");
}

TEST(ConfigTest, MovieLensSideFilesResolvedLikeTrainFiles) {
  auto c =
      Parse(WithData("  format: MOVIELENS\n"
                     "  movielens_user_file: \"ml/u.user\"\n"
                     "  movielens_item_file: \"/data/u.item\""));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().movielens_user_file(), "/cfg/ml/u.user");
  EXPECT_EQ(c->data().movielens_item_file(), "/data/u.item");
  EXPECT_EQ(InputShapeOf(c->data()).num_slots, 8);
  EXPECT_EQ(InputShapeOf(c->data()).num_dense, 0);
  c = Parse(WithData("  format: MOVIELENS"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->data().has_movielens_user_file());
  EXPECT_EQ(InputShapeOf(c->data()).num_slots, 2);
}

TEST(ConfigTest, ShuffleBufferRange) {
  EXPECT_EQ(Error(WithData("  shuffle_buffer: -1")),
            "job.pbtxt:20:3: data.shuffle_buffer: must be in [0, 10000000], "
            "got -1");
  auto c = Parse(WithData("  shuffle_buffer: 10000\n  shuffle_seed: 5"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().shuffle_buffer(), 10000);
  EXPECT_EQ(c->data().shuffle_seed(), 5u);
}

TEST(ConfigTest, EvalHoldoutReplacesEvalFiles) {
  EXPECT_EQ(Error(WithData("  eval_holdout_fraction: 0.1")),
            "job.pbtxt:20:3: data.eval_holdout_fraction: holds out "
            "train_files lines for evaluation, so it cannot be combined with "
            "data.eval_files or data.generate");
  const std::string one_file =
      Replace(kGood, "  eval_files: \"/abs/eval.tsv\"\n", "");
  EXPECT_EQ(Error(Replace(one_file, "batch_size: 256",
                          "batch_size: 256\n  eval_holdout_fraction: 0.7")),
            "job.pbtxt:19:3: data.eval_holdout_fraction: must be in [0, 0.5], "
            "got 0.7");
  auto c = Parse(Replace(one_file, "batch_size: 256",
                         "batch_size: 256\n  format: AVAZU\n"
                         "  eval_holdout_fraction: 0.1"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().eval_holdout_fraction(), 0.1);
  EXPECT_EQ(InputShapeOf(c->data()).num_slots, 23);
  EXPECT_EQ(InputShapeOf(c->data()).num_dense, 0);
}

TEST(ConfigTest, GeneratedDataIsCriteoOnly) {
  std::string text = Replace(kGood, "  train_files: \"train.tsv\"\n", "");
  text = Replace(text, "  eval_files: \"/abs/eval.tsv\"\n",
                 "  format: MOVIELENS\n  generate { output_dir: \"gen\" }\n");
  EXPECT_EQ(Error(text),
            "job.pbtxt:18:3: data.generate: generates CRITEO data, so "
            "data.format must be CRITEO");
}

TEST(ConfigTest, ShippedMovieLensConfigsLoad) {
  const char* src = std::getenv("PS_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "PS_SOURCE_DIR not set";
  for (const char* name : {"movielens_dnn.pbtxt", "movielens_lr.pbtxt"}) {
    ConfigOverrides o;
    o.servers = {"127.0.0.1:1"};
    auto c = LoadJobConfig(std::string(src) + "/configs/" + name, o);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    EXPECT_EQ(c->data().format(), DataConfig::MOVIELENS) << name;
    EXPECT_EQ(InputShapeOf(c->data()).num_slots, 8) << name;
  }
}

// The models of ModelConfig.Type and their options.
std::string WithModel(const std::string& model_lines) {
  return Replace(kGood,
                 "  type: DNN\n  sparse_table: \"emb\"\n  hidden_units: 32\n",
                 model_lines);
}

TEST(ConfigTest, NewModelTypesAndOptionsLoad) {
  auto wd = Parse(WithModel(
      "  type: WIDE_DEEP\n  sparse_table: \"emb\"\n  hidden_units: 16\n"
      "  activation: TANH\n  wide_slots: 0\n  wide_slots: 38\n"
      "  deep_slots: 5\n"));
  ASSERT_TRUE(wd.ok()) << wd.status();
  EXPECT_EQ(wd->model().wide_slots_size(), 2);
  EXPECT_EQ(wd->model().activation(), ModelConfig::TANH);
  auto dcn = Parse(
      WithModel("  type: DCN\n  sparse_table: \"emb\"\n  cross_layers: 0\n"));
  ASSERT_TRUE(dcn.ok()) << dcn.status();
  EXPECT_EQ(dcn->model().cross_layers(), 0);
  auto fm = Parse(WithModel("  type: FM\n  sparse_table: \"emb\"\n"));
  ASSERT_TRUE(fm.ok()) << fm.status();
  EXPECT_EQ(fm->model().cross_layers(), 2);  // the default, unused
  auto deepfm = Parse(Replace(kGood, "type: DNN", "type: DEEPFM"));
  ASSERT_TRUE(deepfm.ok()) << deepfm.status();
}

TEST(ConfigTest, FmNeedsDimTwo) {
  std::string text = Replace(kGood, "type: DNN", "type: FM");
  text = Replace(text, "hidden_units: 32", "");
  text = Replace(text, "dim: 8", "dim: 1");
  EXPECT_EQ(Error(text),
            "job.pbtxt:12:3: model.type: FM needs sparse table 'emb' to have "
            "dim >= 2 (1 linear weight + embedding), it has 1");
}

TEST(ConfigTest, WideDeepAndDeepFmNeedDimTwo) {
  std::string text = Replace(kGood, "dim: 8", "dim: 1");
  EXPECT_EQ(Error(Replace(text, "type: DNN", "type: WIDE_DEEP")),
            "job.pbtxt:12:3: model.type: WIDE_DEEP needs sparse table 'emb' "
            "to have dim >= 2 (1 linear weight + embedding), it has 1");
  EXPECT_EQ(Error(Replace(text, "type: DNN", "type: DEEPFM")),
            "job.pbtxt:12:3: model.type: DEEPFM needs sparse table 'emb' to "
            "have dim >= 2 (1 linear weight + embedding), it has 1");
}

TEST(ConfigTest, FmRejectsHiddenUnits) {
  EXPECT_EQ(Error(Replace(kGood, "type: DNN", "type: FM")),
            "job.pbtxt:14:3: model.hidden_units: must be empty for FM");
}

TEST(ConfigTest, SlotListsOnlyApplyToWideDeep) {
  EXPECT_EQ(Error(Replace(kGood, "hidden_units: 32",
                          "hidden_units: 32\n  deep_slots: 3")),
            "job.pbtxt:15:3: model.deep_slots: only applies to model type "
            "WIDE_DEEP, this model is DNN");
  std::string fm = Replace(kGood, "type: DNN", "type: FM");
  EXPECT_EQ(Error(Replace(fm, "hidden_units: 32", "wide_slots: 3")),
            "job.pbtxt:14:3: model.wide_slots: only applies to model type "
            "WIDE_DEEP, this model is FM");
}

TEST(ConfigTest, SlotOutOfRangeNamesTheDataSlotCount) {
  const std::string wd = Replace(kGood, "type: DNN", "type: WIDE_DEEP");
  // LOG_BUCKET Criteo: 39 slots.
  EXPECT_EQ(Error(Replace(wd, "hidden_units: 32",
                          "hidden_units: 32\n  wide_slots: 0\n"
                          "  wide_slots: 39")),
            "job.pbtxt:16:3: model.wide_slots[1]: slot 39 does not exist: "
            "the data has 39 sparse slots (0..38)");
  EXPECT_EQ(Error(Replace(wd, "hidden_units: 32",
                          "hidden_units: 32\n  wide_slots: -1")),
            "job.pbtxt:15:3: model.wide_slots[0]: slot -1 does not exist: "
            "the data has 39 sparse slots (0..38)");
  // NORMALIZE Criteo: 26 slots (+ 13 dense features).
  std::string normalized = Replace(
      wd, "batch_size: 256", "batch_size: 256\n  int_features: NORMALIZE");
  EXPECT_EQ(Error(Replace(normalized, "hidden_units: 32",
                          "hidden_units: 32\n  deep_slots: 26")),
            "job.pbtxt:15:3: model.deep_slots[0]: slot 26 does not exist: "
            "the data has 26 sparse slots (0..25)");
}

TEST(ConfigTest, SlotListedTwice) {
  EXPECT_EQ(Error(Replace(Replace(kGood, "type: DNN", "type: WIDE_DEEP"),
                          "hidden_units: 32",
                          "hidden_units: 32\n  deep_slots: 4\n"
                          "  deep_slots: 2\n  deep_slots: 4")),
            "job.pbtxt:17:3: model.deep_slots[2]: slot 4 is listed twice "
            "(also deep_slots[0])");
}

TEST(ConfigTest, CrossLayersOnlyForDcnAndInRange) {
  EXPECT_EQ(Error(Replace(kGood, "hidden_units: 32",
                          "hidden_units: 32\n  cross_layers: 3")),
            "job.pbtxt:15:3: model.cross_layers: only applies to model type "
            "DCN, this model is DNN");
  EXPECT_EQ(Error(Replace(Replace(kGood, "type: DNN", "type: DCN"),
                          "hidden_units: 32",
                          "hidden_units: 32\n  cross_layers: 65")),
            "job.pbtxt:15:3: model.cross_layers: must be in [0, 64], got 65");
}

TEST(ConfigTest, FwFmOptionsAreChecked) {
  const std::string fwfm = Replace(kGood, "type: DNN", "type: FWFM");
  EXPECT_EQ(Error(fwfm),
            "job.pbtxt:14:3: model.hidden_units: must be empty "
            "for FWFM");
  EXPECT_EQ(Error(Replace(Replace(fwfm, "hidden_units: 32", ""), "type: FWFM",
                          "type: FWFM\n  field_weight_init: nan")),
            "job.pbtxt:13:3: model.field_weight_init: must be in [-10, 10], "
            "got nan");
  EXPECT_TRUE(Parse(Replace(fwfm, "hidden_units: 32", "")).ok());
  EXPECT_EQ(Error(Replace(kGood, "hidden_units: 32",
                          "hidden_units: 32\n  field_weight_init: 0.5")),
            "job.pbtxt:15:3: model.field_weight_init: only applies to model "
            "type FWFM, this model is DNN");
}

TEST(ConfigTest, ShippedModelConfigsLoad) {
  const char* src = std::getenv("PS_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "PS_SOURCE_DIR not set";
  const std::pair<const char*, ModelConfig::Type> configs[] = {
      {"criteo_fm.pbtxt", ModelConfig::FM},
      {"criteo_wide_deep.pbtxt", ModelConfig::WIDE_DEEP},
      {"criteo_deepfm.pbtxt", ModelConfig::DEEPFM},
      {"criteo_dcn.pbtxt", ModelConfig::DCN},
      {"generated_fm.pbtxt", ModelConfig::FM},
      {"generated_wide_deep.pbtxt", ModelConfig::WIDE_DEEP},
      {"generated_deepfm.pbtxt", ModelConfig::DEEPFM},
      {"generated_dcn.pbtxt", ModelConfig::DCN},
      {"generated_fwfm.pbtxt", ModelConfig::FWFM},
  };
  for (const auto& [name, type] : configs) {
    ConfigOverrides o;
    o.servers = {"127.0.0.1:1"};
    o.data_dir = "/tmp/ps_config_test";
    auto c = LoadJobConfig(std::string(src) + "/configs/" + name, o);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    EXPECT_EQ(c->model().type(), type) << name;
  }
}

}  // namespace
}  // namespace ps

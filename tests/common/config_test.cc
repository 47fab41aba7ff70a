#include "common/config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

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
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
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
  EXPECT_EQ(Error(Replace(kGood, "sparse_table: \"emb\"",
                          "sparse_table: \"embs\"")),
            "job.pbtxt:13:3: model.sparse_table: no sparse table named "
            "'embs' (tables: emb)");
}

TEST(ConfigTest, DuplicateTableName) {
  std::string text =
      Replace(kGood, "model {", "sparse_tables { name: \"emb\" dim: 4 }\nmodel {");
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
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/job.pbtxt"));
}

TEST(ConfigTest, NegativeLearningRate) {
  std::string text = Replace(kGood, "dim: 8",
                             "dim: 8\n  optimizer { learning_rate: -1 }");
  EXPECT_EQ(Error(text),
            "job.pbtxt:10:15: sparse_tables[0].optimizer.learning_rate: must "
            "be a positive number, got -1");
}

TEST(ConfigTest, EveryShippedConfigLoads) {
  const char* src = std::getenv("PS_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "PS_SOURCE_DIR not set";
  for (const char* name : {"criteo_dnn.pbtxt", "generated_dnn.pbtxt"}) {
    ConfigOverrides o;
    o.servers = {"127.0.0.1:1"};
    o.data_dir = "/tmp/ps_config_test";
    auto c = LoadJobConfig(std::string(src) + "/configs/" + name, o);
    EXPECT_TRUE(c.ok()) << name << ": " << c.status();
  }
}

}  // namespace
}  // namespace ps

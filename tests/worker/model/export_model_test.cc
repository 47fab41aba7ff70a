// Exports for serving (common/export_format.h): predictions from an export
// equal the model's own forward pass on the same rows; threshold and delta
// exports; damaged files and wrong bases are refused naming the file.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/checksummed_file.h"
#include "common/config.h"
#include "common/export_format.h"
#include "common/hash.h"
#include "common/initializer.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"
#include "worker/data/data_reader.h"
#include "worker/model/model.h"
#include "worker/model/predict.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

constexpr char kDnn[] = R"pb(
  cluster { servers: "127.0.0.1:5000" }
  sparse_tables { name: "emb" dim: 4 }
  model { type: DNN sparse_table: "emb" hidden_units: 8 hidden_units: 3 }
  data { format: SLOT num_slots: 3 num_dense: 2 train_files: "/t.txt" }
)pb";

// kDnn with rows of 2 floats.
constexpr char kDnnDim2[] = R"pb(
  cluster { servers: "127.0.0.1:5000" }
  sparse_tables { name: "emb" dim: 2 }
  model { type: DNN sparse_table: "emb" hidden_units: 8 hidden_units: 3 }
  data { format: SLOT num_slots: 3 num_dense: 2 train_files: "/t.txt" }
)pb";

constexpr char kFm[] = R"pb(
  cluster { servers: "127.0.0.1:5000" }
  sparse_tables { name: "emb" dim: 5 }
  sparse_tables { name: "unused" dim: 2 }
  model { type: FM sparse_table: "emb" pooling: MEAN }
  data { format: SLOT num_slots: 3 num_dense: 2 train_files: "/t.txt" }
)pb";

JobConfig MustParse(const char* text) {
  auto c = ParseJobConfig(text, "job.pbtxt", "");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : JobConfig();
}

std::unique_ptr<Backend> Cpu() {
  auto b = Backend::CreateCpu(BackendOptions{});
  EXPECT_TRUE(b.ok()) << b.status();
  return std::move(b).value();
}

// A "trained" model: rows for raw values 0..59 of every slot, random dense.
struct Trained {
  JobConfig config;
  ModelSpec spec;
  std::map<uint64_t, std::vector<float>> rows;
  std::vector<float> dense;
};

Trained MakeTrained(const char* text, uint32_t seed) {
  Trained t;
  t.config = MustParse(text);
  t.spec = MakeModelSpec(t.config);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  for (int slot = 0; slot < 3; ++slot) {
    for (int v = 0; v < 60; ++v) {
      std::vector<float> row(t.spec.emb_dim);
      for (float& x : row) x = u(rng);
      t.rows[FeatureKey(0, slot, v)] = row;
    }
  }
  t.dense.resize(t.spec.dense_size);
  for (float& x : t.dense) x = u(rng);
  return t;
}

// Writes `t` as an export; rows in 3 AddRows calls, scores = key % 10.
absl::StatusOr<FileDigest> Export(const Trained& t, const std::string& path,
                                  int64_t step, ExportOptions options = {}) {
  ASSIGN_OR_RETURN(auto w, ExportWriter::Create(path, t.config, step, options));
  RETURN_IF_ERROR(w->BeginTable("emb"));
  std::vector<uint64_t> keys;
  std::vector<float> values;
  std::vector<float> scores;
  int n = 0;
  for (const auto& [key, row] : t.rows) {
    keys.push_back(key);
    values.insert(values.end(), row.begin(), row.end());
    scores.push_back(static_cast<float>(key % 10));
    if (++n % 70 == 0) {
      RETURN_IF_ERROR(w->AddRows(keys, values, scores));
      keys.clear();
      values.clear();
      scores.clear();
    }
  }
  RETURN_IF_ERROR(w->AddRows(keys, values, scores));
  RETURN_IF_ERROR(w->EndTable());
  RETURN_IF_ERROR(w->SetDense(t.dense));
  return w->Close();
}

class ExportModelTest : public testing_util::TempDirTest {
 protected:
  // SLOT lines over raw values 0..79 (60..79 are not in the model).
  std::string WriteData(int lines) {
    std::mt19937 rng(7);
    std::string text;
    for (int i = 0; i < lines; ++i) {
      absl::StrAppend(&text, i % 2);
      for (int slot = 0; slot < 3; ++slot) {
        for (int k = 0; k < 1 + i % 3; ++k) {
          absl::StrAppend(&text, " ", slot, ":", rng() % 80);
        }
      }
      absl::StrAppend(&text, " d0:", (i % 7) * 0.25, " d1:", i % 5);
      text += "\n";
    }
    return Write("data.txt", text);
  }

  static std::vector<float> ReadProbs(const std::string& path) {
    std::ifstream in(path);
    std::vector<float> out;
    std::string line;
    while (std::getline(in, line))
      out.push_back(std::strtof(line.c_str(), nullptr));
    return out;
  }

  // The model's own forward pass over `data` with rows from t.rows.
  static std::vector<float> Reference(const Trained& t,
                                      const std::string& data) {
    auto backend = Cpu();
    Model model(t.spec, PoolModeOf(t.config.model().pooling()), backend.get());
    ReaderOptions o;
    o.files = {data};
    o.batch_size = 13;
    o.data = t.config.data();
    auto reader = DataReader::Open(o);
    EXPECT_TRUE(reader.ok()) << reader.status();
    std::vector<float> probs;
    Batch b;
    StepResult r;
    while (*(*reader)->Next(&b)) {
      UniqueKeys u = Deduplicate(b);
      std::vector<float> rows;
      for (uint64_t key : u.unique_keys) {
        // A key the export lacks scores with its initial row, as the
        // servers would have served it.
        auto it = t.rows.find(key);
        std::vector<float> row(t.spec.emb_dim);
        for (int d = 0; d < t.spec.emb_dim; ++d) {
          row[d] = it != t.rows.end()
                       ? it->second[d]
                       : InitialWeight(t.config.sparse_tables(0).initializer(),
                                       t.config.model().init_seed(), key, d);
        }
        rows.insert(rows.end(), row.begin(), row.end());
      }
      EXPECT_TRUE(
          model.Predict(b, u.key_index, u.unique_keys.size(), rows, t.dense, &r)
              .ok());
      probs.insert(probs.end(), r.probs.begin(), r.probs.end());
    }
    return probs;
  }
};

TEST_F(ExportModelTest, PredictionsEqualTheModelsForwardPass) {
  for (const char* text : {kDnn, kFm}) {
    Trained t = MakeTrained(text, 3);
    // Lines held out of training are scored too.
    t.config.mutable_data()->set_eval_holdout_fraction(0.3);
    const std::string dir = dir_ + "/export";
    std::filesystem::create_directories(dir);
    ASSERT_TRUE(Export(t, ExportPath(dir, 100), 100).ok());
    auto model = ExportedModel::LoadDir(dir);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->step(), 100);
    EXPECT_EQ((*model)->num_rows((*model)->TableIndex("emb")), 180);

    const std::string data = WriteData(101);
    const std::string out = dir_ + "/probs.txt";
    auto backend = Cpu();
    auto lines = PredictFile(**model, data, out, backend.get(), 16);
    ASSERT_TRUE(lines.ok()) << lines.status();
    EXPECT_EQ(*lines, 101);
    const std::vector<float> got = ReadProbs(out);
    const std::vector<float> want = Reference(t, data);
    ASSERT_EQ(got.size(), 101u);
    ASSERT_EQ(want.size(), 101u);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], want[i], 1e-6) << "line " << i + 1;
    }
    // Not all the same: the rows matter.
    EXPECT_NE(*std::min_element(got.begin(), got.end()),
              *std::max_element(got.begin(), got.end()));
    std::filesystem::remove_all(dir);
  }
}

TEST_F(ExportModelTest, ThresholdKeepsOnlyRowsScoredHighEnough) {
  Trained t = MakeTrained(kDnn, 4);
  ExportOptions o;
  o.min_score = 7;  // scores are key % 10: keeps 7, 8, 9
  ASSERT_TRUE(Export(t, dir_ + "/x.psx", 5, o).ok());
  auto model = ExportedModel::LoadFile(dir_ + "/x.psx");
  ASSERT_TRUE(model.ok()) << model.status();
  int64_t want = 0;
  for (const auto& [key, row] : t.rows) {
    const float* got = (*model)->Row(0, key);
    if (key % 10 >= 7) {
      ++want;
      ASSERT_NE(got, nullptr);
      EXPECT_EQ(std::vector<float>(got, got + row.size()), row);
    } else {
      EXPECT_EQ(got, nullptr);
    }
  }
  EXPECT_EQ((*model)->num_rows(0), want);
  EXPECT_GT(want, 0);
}

TEST_F(ExportModelTest, DeltaListsOnlyChangesAndRebuildsTheModel) {
  const std::string dir = dir_ + "/export";
  std::filesystem::create_directories(dir);
  Trained t = MakeTrained(kDnn, 5);
  ASSERT_TRUE(Export(t, ExportPath(dir, 10), 10).ok());
  auto base = ExportedModel::LoadFile(ExportPath(dir, 10));
  ASSERT_TRUE(base.ok()) << base.status();

  auto it = t.rows.begin();
  for (int i = 0; i < 3; ++i, ++it) it->second[1] += 1.0f;      // 3 changed
  t.rows.erase(it);                                             // 1 removed
  t.rows[FeatureKey(0, 1, 500)] = std::vector<float>(4, 0.5f);  // 2 new
  t.rows[FeatureKey(0, 2, 501)] = std::vector<float>(4, -0.5f);
  t.dense[0] = 42;
  ExportOptions delta;
  delta.base = base->get();
  auto w = ExportWriter::Create(ExportPath(dir, 20), t.config, 20, delta);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->BeginTable("emb").ok());
  for (const auto& [key, row] : t.rows) {
    ASSERT_TRUE((*w)->AddRows({key}, row).ok());
  }
  ASSERT_TRUE((*w)->EndTable().ok());
  ASSERT_TRUE((*w)->SetDense(t.dense).ok());
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_EQ((*w)->rows_written(), 5);
  EXPECT_EQ((*w)->rows_deleted(), 1);
  // About 175 fewer rows of 8 + 16 bytes than the base (config and dense
  // alike; the row blocks' counts differ).
  EXPECT_LT(std::filesystem::file_size(ExportPath(dir, 20)) + 4000,
            std::filesystem::file_size(ExportPath(dir, 10)));

  auto model = ExportedModel::LoadDir(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->step(), 20);
  EXPECT_EQ((*model)->dense(), t.dense);
  EXPECT_EQ((*model)->num_rows(0), static_cast<int64_t>(t.rows.size()));
  for (const auto& [key, row] : t.rows) {
    const float* got = (*model)->Row(0, key);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(std::vector<float>(got, got + 4), row);
  }

  // The delta alone, or on another base, is refused.
  auto alone = ExportedModel::LoadFile(ExportPath(dir, 20));
  EXPECT_THAT(alone, StatusIs(absl::StatusCode::kFailedPrecondition,
                              HasSubstr("is a DELTA")));
  auto other = ExportedModel::LoadFile(ExportPath(dir, 10));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->ApplyDelta(ExportPath(dir, 20)).ok());
  absl::Status s = (*other)->ApplyDelta(ExportPath(dir, 20));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("DELTA over step 10, but the model "
                                    "loaded is of step 20")));
}

// Found with the export_reader fuzz target (tests/fuzz/): a delta whose
// config gives a table another dim than its base's was applied, leaving rows of
// the old dim under a config of the new one; predict then sized its row buffer
// by the config and Lookup wrote past it.
TEST_F(ExportModelTest, DeltaOfOtherTablesIsRefused) {
  Trained a = MakeTrained(kDnn, 8);
  Trained b = MakeTrained(kDnnDim2, 8);
  ASSERT_TRUE(Export(a, dir_ + "/a.psx", 10).ok());
  ASSERT_TRUE(Export(b, dir_ + "/b.psx", 10).ok());
  // A delta of b over b's export of step 10 (a's step too).
  auto base_b = ExportedModel::LoadFile(dir_ + "/b.psx");
  ASSERT_TRUE(base_b.ok()) << base_b.status();
  ExportOptions options;
  options.base = base_b->get();
  const std::string delta = dir_ + "/delta.psx";
  auto w = ExportWriter::Create(delta, b.config, 20, options);
  ASSERT_TRUE(w.ok()) << w.status();
  // No rows changed: nothing in the file but the config says the dim.
  ASSERT_TRUE((*w)->SetDense(b.dense).ok());
  ASSERT_TRUE((*w)->Close().ok());

  auto model = ExportedModel::LoadFile(dir_ + "/a.psx");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT((*model)->ApplyDelta(delta),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("sparse table 0 is 'emb' of dim 2, its "
                                 "base's is 'emb' of dim 4")));
  EXPECT_EQ((*model)->step(), 10);
  EXPECT_EQ((*model)->config().sparse_tables(0).dim(), 4);
  EXPECT_EQ((*model)->dense(), a.dense);
}

// Found with the export_reader fuzz target (tests/fuzz/): a 400-byte export
// whose config has three hidden layers of 65536 units claimed its 8.6 G
// dense floats, and the reader allocated 34 GB before reading one.
TEST_F(ExportModelTest, DenseVectorLargerThanTheFileIsRefusedUnallocated) {
  constexpr char kHuge[] = R"pb(
    cluster { servers: "127.0.0.1:5000" }
    sparse_tables { name: "emb" dim: 4 }
    model {
      type: DNN
      sparse_table: "emb"
      hidden_units: [ 32768, 32768 ]
    }
    data { format: SLOT num_slots: 3 num_dense: 2 train_files: "/t.txt" }
  )pb";
  const JobConfig config = MustParse(kHuge);
  const int64_t dense = MakeModelSpec(config).dense_size;
  // Just under the configs' bound of 2^31 dense parameters: 4 GiB.
  ASSERT_GT(dense, int64_t{1} << 30);
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(config, &text));
  const std::string path = dir_ + "/huge.psx";
  auto file = ChecksummedWriter::Create(path, "PSEXPORT", 1);
  ASSERT_TRUE(file.ok()) << file.status();
  for (uint64_t v : {uint64_t{1}, uint64_t{5}, uint64_t{0}}) {
    ASSERT_TRUE((*file)->AppendU64(v).ok());  // FULL, step 5, no base
  }
  ASSERT_TRUE(AppendString(file->get(), text).ok());
  ASSERT_TRUE((*file)->AppendU64(0).ok());  // no tables
  ASSERT_TRUE((*file)->AppendU64(dense).ok());
  ASSERT_TRUE((*file)->AppendFloats(std::vector<float>(16, 1)).ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_THAT(ExportedModel::LoadFile(path),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("dense parameters do not fit in the rest of "
                                 "the file (64 bytes)")));
}

TEST_F(ExportModelTest, DamagedExportIsRefusedNamingTheFile) {
  Trained t = MakeTrained(kDnn, 6);
  const std::string path = dir_ + "/x.psx";
  ASSERT_TRUE(Export(t, path, 1).ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
  auto model = ExportedModel::LoadFile(path);
  EXPECT_THAT(model, StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)));
  EXPECT_THAT(ExportedModel::LoadDir(dir_ + "/none"),
              StatusIs(absl::StatusCode::kNotFound));
}

// A crash while an export is written leaves no partial export-<step>.psx:
// the newest complete export still loads, the next delta export builds on
// it, and predict scores with it.
TEST_F(ExportModelTest, UnfinishedExportsBreakNeitherDeltasNorPredict) {
  const std::string dir = dir_ + "/export";
  std::filesystem::create_directories(dir);
  Trained t = MakeTrained(kDnn, 9);
  ASSERT_TRUE(Export(t, ExportPath(dir, 10), 10).ok());

  // An export being written (the process dies here) is not yet in place.
  auto writing = ExportWriter::Create(ExportPath(dir, 20), t.config, 20);
  ASSERT_TRUE(writing.ok()) << writing.status();
  ASSERT_TRUE((*writing)->BeginTable("emb").ok());
  ASSERT_TRUE((*writing)->AddRows({7}, std::vector<float>(4, 1.0f)).ok());
  EXPECT_FALSE(std::filesystem::exists(ExportPath(dir, 20)));
  EXPECT_TRUE(std::filesystem::exists(ExportTempPath(ExportPath(dir, 20))));
  auto loaded = ExportedModel::LoadDir(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->step(), 10);
  // An abandoned writer removes its file.
  writing->reset();
  EXPECT_FALSE(std::filesystem::exists(ExportTempPath(ExportPath(dir, 20))));

  // What a crash leaves: a partial temporary file of a later step.
  const std::string full = ExportPath(dir, 10);
  std::filesystem::copy_file(full, ExportTempPath(ExportPath(dir, 30)));
  std::filesystem::resize_file(ExportTempPath(ExportPath(dir, 30)),
                               std::filesystem::file_size(full) / 2);

  // The next delta export builds on the newest complete one.
  t.rows.begin()->second[0] += 1.0f;
  auto base = ExportedModel::LoadDir(dir);
  ASSERT_TRUE(base.ok()) << base.status();
  ExportOptions delta;
  delta.base = base->get();
  ASSERT_TRUE(Export(t, ExportPath(dir, 40), 40, delta).ok());
  auto model = ExportedModel::LoadDir(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->step(), 40);
  const float* row = (*model)->Row(0, t.rows.begin()->first);
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row[0], t.rows.begin()->second[0]);

  // And predict scores with it.
  const std::string data = WriteData(20);
  auto backend = Cpu();
  auto lines =
      PredictFile(**model, data, dir_ + "/probs.txt", backend.get(), 16);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, 20);
  const std::vector<float> got = ReadProbs(dir_ + "/probs.txt");
  const std::vector<float> want = Reference(t, data);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6);
}

TEST_F(ExportModelTest, WriterRefusesWrongShapes) {
  Trained t = MakeTrained(kDnn, 7);
  auto w = ExportWriter::Create(dir_ + "/x.psx", t.config, 1);
  ASSERT_TRUE(w.ok());
  EXPECT_THAT((*w)->BeginTable("nope"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_TRUE((*w)->BeginTable("emb").ok());
  EXPECT_THAT((*w)->AddRows({1, 2}, std::vector<float>(7)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_TRUE((*w)->EndTable().ok());
  EXPECT_THAT((*w)->BeginTable("emb"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*w)->SetDense(std::vector<float>(3)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT((*w)->Close(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(ExportModelTest, MalformedDataLineFailsAndLeavesNoOutput) {
  Trained t = MakeTrained(kDnn, 8);
  const std::string path = dir_ + "/x.psx";
  ASSERT_TRUE(Export(t, path, 1).ok());
  auto model = ExportedModel::LoadFile(path);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string data = Write("bad.txt", "1 0:1 1:2 2:3\n1 0:x\n");
  auto backend = Cpu();
  const std::string out = dir_ + "/probs.txt";
  auto lines = PredictFile(**model, data, out, backend.get());
  ASSERT_FALSE(lines.ok());
  EXPECT_THAT(lines.status().message(), HasSubstr(data + ":2"));
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}

}  // namespace
}  // namespace ps

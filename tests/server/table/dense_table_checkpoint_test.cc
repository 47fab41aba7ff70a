// DenseTable::Save / Load (server/table/dense_table.h): values and optimizer
// state survive a round trip, and a file of another table, layout or
// optimizer, or a damaged one, is refused naming the file.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/table/dense_table.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::ReadFile;
using testing_util::StatusIs;
using testing_util::TempDir;

OptimizerConfig Optimizer(OptimizerConfig::Type type) {
  OptimizerConfig c;
  c.set_type(type);
  c.set_learning_rate(0.1f);
  return c;
}

std::unique_ptr<DenseTable> Make(const std::string& name,
                                 const DenseBlocks& blocks, int rank,
                                 OptimizerConfig::Type type) {
  auto t = DenseTable::Create(name, blocks, rank, Optimizer(type),
                              [](int64_t i) { return 0.25f * i; });
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::vector<float> Pull(const DenseTable& t) {
  std::vector<float> v;
  t.Pull(&v);
  return v;
}

class DenseTableCheckpointTest : public ::testing::Test {
 protected:
  TempDir dir_;
  const std::string path_ = dir_.Path("dense.bin");
};

TEST_F(DenseTableCheckpointTest, RoundTripRestoresValuesAndAdamState) {
  const DenseBlocks blocks{11, 4, 2};
  auto a = Make("model", blocks, 0, OptimizerConfig::ADAM);
  ASSERT_NE(a, nullptr);
  const std::vector<float> g1 = {1, -2, 3, 0.5f, -1, 2, 0};
  ASSERT_EQ(a->local_size(), 7);
  ASSERT_TRUE(a->Push(g1, /*step=*/1).ok());
  ASSERT_TRUE(a->Push(g1, /*step=*/1).ok());
  auto digest = a->Save(path_);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(digest->size,
            static_cast<int64_t>(std::filesystem::file_size(path_)));

  auto b = Make("model", blocks, 0, OptimizerConfig::ADAM);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(Pull(*a), Pull(*b));
  ASSERT_TRUE(b->Load(path_).ok());
  EXPECT_EQ(Pull(*a), Pull(*b));
  // The state came along: the same next push gives bit-identical values
  // (Adam's moments and step count differ from a fresh table's).
  const std::vector<float> g2 = {-3, 1, 0.25f, 2, 2, -1, 1};
  ASSERT_TRUE(a->Push(g2, /*step=*/1).ok());
  ASSERT_TRUE(b->Push(g2, /*step=*/1).ok());
  EXPECT_EQ(Pull(*a), Pull(*b));
}

TEST_F(DenseTableCheckpointTest, OtherTableLayoutOrOptimizerIsRefused) {
  const DenseBlocks blocks{11, 4, 2};
  auto a = Make("model", blocks, 0, OptimizerConfig::ADAGRAD);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->Save(path_).ok());

  auto other_name = Make("wide", blocks, 0, OptimizerConfig::ADAGRAD);
  absl::Status s = other_name->Load(path_);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kFailedPrecondition,
                  AllOf(HasSubstr(path_),
                        HasSubstr("holds dense table 'model', not 'wide'"))));

  auto other_rank = Make("model", blocks, 1, OptimizerConfig::ADAGRAD);
  s = other_rank->Load(path_);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("server rank: 1 here, 0 in the file")));

  auto bigger =
      Make("model", DenseBlocks{12, 4, 2}, 0, OptimizerConfig::ADAGRAD);
  s = bigger->Load(path_);
  EXPECT_THAT(s.message(), HasSubstr("global size: 12 here, 11 in the file"));

  auto sgd = Make("model", blocks, 0, OptimizerConfig::SGD);
  const std::vector<float> before = Pull(*sgd);
  s = sgd->Load(path_);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("optimizer state floats")));
  EXPECT_EQ(Pull(*sgd), before);  // nothing changed
}

TEST_F(DenseTableCheckpointTest, DamagedFileIsRefusedAndNothingChanges) {
  const DenseBlocks blocks{11, 4, 1};
  auto a = Make("model", blocks, 0, OptimizerConfig::ADAGRAD);
  ASSERT_TRUE(a->Push(std::vector<float>(11, 1.0f), /*step=*/1).ok());
  ASSERT_TRUE(a->Save(path_).ok());
  auto b = Make("model", blocks, 0, OptimizerConfig::ADAGRAD);
  const std::vector<float> fresh = Pull(*b);

  const std::string data = ReadFile(path_);
  std::string flipped = data;
  flipped[data.size() - 30] ^= 0x40;  // inside the state floats
  std::ofstream(path_, std::ios::binary | std::ios::trunc) << flipped;
  absl::Status s = b->Load(path_);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kDataLoss,
                  AllOf(HasSubstr("checksum mismatch"), HasSubstr(path_))));
  EXPECT_EQ(Pull(*b), fresh);

  std::ofstream(path_, std::ios::binary | std::ios::trunc)
      << data.substr(0, data.size() / 2);
  s = b->Load(path_);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
  EXPECT_EQ(Pull(*b), fresh);

  std::filesystem::remove(path_);
  EXPECT_THAT(b->Load(path_), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace ps

// Durable pushes (durability.wal): a server that goes away with its tables
// in memory and starts again on the same folders restores its log's base,
// replays the log and keeps its incarnation, so no acknowledged push is lost
// and none is applied twice; a checkpoint starts the log afresh; an
// explicit --resume_from drops it; a damaged base is refused by name.
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "common/checkpoint.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/service/ps_handler.h"
#include "server/service/ps_server.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wire_requests.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::IsOk;
using testing_util::StatusIs;
using testing_util::TempDir;

constexpr int kDim = 4;

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = SmallJobConfig(1, 1, kDim, 4);
    config_.mutable_checkpoint()->set_dir(dir_.path() + "/ckpt");
    config_.mutable_durability()->set_wal(true);
    config_.mutable_durability()->set_wal_sync_ms(0);
    for (uint64_t k = 1; k <= 50; ++k) keys_.push_back(k * 7919);
  }

  absl::StatusOr<std::unique_ptr<PsServer>> Start(
      const std::string& resume_from = "") {
    PsServerOptions o;
    o.config = config_;
    o.listen_address = "127.0.0.1:0";
    o.resume_from = resume_from;
    return PsServer::Start(o);
  }

  // A push of every key, gradient depending on the step.
  void Push(PsServer& s, int64_t step, bool expect_repeat = false) {
    std::vector<float> grads;
    for (size_t i = 0; i < keys_.size() * kDim; ++i) {
      grads.push_back(0.01f * static_cast<float>((i * 13 + step) % 17) - 0.08f);
    }
    PushResponse r;
    ASSERT_THAT(
        s.handler()->Push(SparsePushRequest(0, kDim, keys_, grads, step), &r),
        IsOk());
    EXPECT_EQ(r.duplicate(), expect_repeat) << "step " << step;
  }

  std::map<uint64_t, std::vector<float>> Rows(PsServer& s) {
    auto rows = s.handler()->DumpSparse(0);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *rows : std::map<uint64_t, std::vector<float>>();
  }

  // Writes server 0's part of a checkpoint at `step` and commits it.
  void Checkpoint(PsServer& s, int64_t step) {
    ASSERT_THAT(SaveAndCommit({s.handler()}, config_, step), IsOk());
  }

  TempDir dir_;
  JobConfig config_;
  std::vector<uint64_t> keys_;
};

TEST_F(WalTest, ARestartedServerReplaysEveryAcknowledgedPush) {
  std::map<uint64_t, std::vector<float>> before;
  uint64_t incarnation = 0;
  {
    auto s = Start();
    ASSERT_TRUE(s.ok()) << s.status();
    for (int step = 1; step <= 6; ++step) Push(**s, step);
    before = Rows(**s);
    incarnation = (*s)->handler()->incarnation();
  }  // the process ends; its tables were only in memory
  auto s = Start();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Rows(**s), before);
  EXPECT_EQ((*s)->handler()->incarnation(), incarnation);
  EXPECT_EQ((*s)->handler()->PushCountsOf(0).applied, 6);
  // The worker's retry of its last push is a repeat; the next step applies.
  Push(**s, 6, /*expect_repeat=*/true);
  Push(**s, 7);
}

TEST_F(WalTest, ACheckpointStartsTheLogAfreshAndIsItsBase) {
  std::map<uint64_t, std::vector<float>> before;
  {
    auto s = Start();
    ASSERT_TRUE(s.ok()) << s.status();
    for (int step = 1; step <= 3; ++step) Push(**s, step);
    Checkpoint(**s, 3);
    for (int step = 4; step <= 5; ++step) Push(**s, step);
    before = Rows(**s);
  }
  auto s = Start();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Rows(**s), before);
  EXPECT_EQ((*s)->handler()->PushCountsOf(0).applied, 5);
  EXPECT_EQ((*s)->handler()->PushCountsOf(0).last_step, 5);
}

TEST_F(WalTest, ResumeFromElsewhereDropsTheLogAndTakesANewIncarnation) {
  std::map<uint64_t, std::vector<float>> at_checkpoint;
  uint64_t incarnation = 0;
  std::string checkpoint;
  {
    auto s = Start();
    ASSERT_TRUE(s.ok()) << s.status();
    Push(**s, 1);
    Checkpoint(**s, 1);
    at_checkpoint = Rows(**s);
    Push(**s, 2);
    incarnation = (*s)->handler()->incarnation();
    auto opened = OpenLatest(config_.checkpoint().dir());
    ASSERT_TRUE(opened.ok());
    checkpoint = opened->dir;
  }
  auto s = Start(checkpoint);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Rows(**s), at_checkpoint);
  EXPECT_NE((*s)->handler()->incarnation(), incarnation);
}

TEST_F(WalTest, ABaseWhoseCheckpointFolderIsGoneStartsANewIncarnation) {
  uint64_t incarnation = 0;
  std::string checkpoint;
  {
    auto s = Start();
    ASSERT_TRUE(s.ok()) << s.status();
    Push(**s, 1);
    Checkpoint(**s, 1);
    Push(**s, 2);
    incarnation = (*s)->handler()->incarnation();
    auto opened = OpenLatest(config_.checkpoint().dir());
    ASSERT_TRUE(opened.ok());
    checkpoint = opened->dir;
  }
  // As when the coordinator clears an uncommitted folder to take that step
  // again after a rollback.
  std::filesystem::remove_all(checkpoint);
  auto s = Start();
  ASSERT_TRUE(s.ok()) << s.status();
  // Not the log's state: a new incarnation, so the workers roll back.
  EXPECT_NE((*s)->handler()->incarnation(), incarnation);
  EXPECT_TRUE(Rows(**s).empty());
}

TEST_F(WalTest, ADamagedBaseIsRefusedByName) {
  { ASSERT_TRUE(Start().ok()); }
  const std::string base = dir_.path() + "/ckpt/wal/server-0/BASE";
  std::ofstream(base, std::ios::trunc) << "not a base";
  EXPECT_THAT(
      Start().status(),
      StatusIs(absl::StatusCode::kDataLoss,
               HasSubstr("server-0/BASE': not a write-ahead log base")));
}

}  // namespace
}  // namespace ps

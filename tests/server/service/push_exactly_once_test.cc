// Exactly-once pushes (proto/ps.proto PushRequest, server/service/
// push_ledger.h): a repeated (worker, step, part) is acknowledged and not
// applied, a cancelled push is not applied, the record survives a
// checkpoint, a request for another server incarnation is refused, and a
// push is checked whole before any table is touched.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/checkpoint.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/service/ps_handler.h"
#include "server/service/push_ledger.h"
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

// --- PushLedger alone

TEST(PushLedgerTest, EachStepAndPartAppliesOnce) {
  PushLedger ledger;
  const PushLedger::Kind sparse{true, false, false};
  EXPECT_EQ(ledger.Claim({0, 5, 0}), PushLedger::Verdict::kApply);
  ledger.Finish({0, 5, 0}, true, sparse);
  EXPECT_EQ(ledger.Claim({0, 5, 0}), PushLedger::Verdict::kDuplicate);
  // Another part, step or worker is another push.
  EXPECT_EQ(ledger.Claim({0, 5, 1}), PushLedger::Verdict::kApply);
  ledger.Finish({0, 5, 1}, true, sparse);
  EXPECT_EQ(ledger.Claim({1, 5, 0}), PushLedger::Verdict::kApply);
  ledger.Finish({1, 5, 0}, true, sparse);
  const auto counts = ledger.Counts();
  EXPECT_EQ(counts.at(0).applied, 2);
  EXPECT_EQ(counts.at(0).sparse_gradients, 2);
  EXPECT_EQ(counts.at(0).duplicates, 1);
  EXPECT_EQ(counts.at(0).last_step, 5);
  EXPECT_EQ(counts.at(1).applied, 1);
}

TEST(PushLedgerTest, ARefusedPushMayBeAppliedByItsRetry) {
  PushLedger ledger;
  EXPECT_EQ(ledger.Claim({0, 1, 0}), PushLedger::Verdict::kApply);
  ledger.Finish({0, 1, 0}, /*applied=*/false, {});
  EXPECT_EQ(ledger.Claim({0, 1, 0}), PushLedger::Verdict::kApply);
  ledger.Finish({0, 1, 0}, true, {});
  EXPECT_EQ(ledger.Counts().at(0).applied, 1);
}

TEST(PushLedgerTest, StepsBelowTheWindowCountAsApplied) {
  PushLedger ledger;
  const int64_t top = 3 * PushLedger::kWindowSteps;
  EXPECT_EQ(ledger.Claim({0, top, 0}), PushLedger::Verdict::kApply);
  ledger.Finish({0, top, 0}, true, {});
  // A worker sends step s + window only once every server acknowledged s.
  EXPECT_EQ(ledger.Claim({0, top - PushLedger::kWindowSteps, 0}),
            PushLedger::Verdict::kDuplicate);
  // Within the window, an unseen step is new.
  EXPECT_EQ(ledger.Claim({0, top - PushLedger::kWindowSteps + 1, 0}),
            PushLedger::Verdict::kApply);
  ledger.Finish({0, top - PushLedger::kWindowSteps + 1, 0}, true, {});
}

TEST(PushLedgerTest, MergedStepsThatOverlapDifferentlyConflict) {
  PushLedger ledger;
  // An earlier run pushed steps 3..5 merged, then 6 alone.
  ASSERT_EQ(ledger.Claim({0, 5, 0, 3}), PushLedger::Verdict::kApply);
  ledger.Finish({0, 5, 0, 3}, true, {});
  ASSERT_EQ(ledger.Claim({0, 6, 0}), PushLedger::Verdict::kApply);
  ledger.Finish({0, 6, 0}, true, {});
  // The same pushes again are repeats; another part of 3..5 applies.
  EXPECT_EQ(ledger.Claim({0, 5, 0, 3}), PushLedger::Verdict::kDuplicate);
  EXPECT_EQ(ledger.Claim({0, 6, 0}), PushLedger::Verdict::kDuplicate);
  EXPECT_EQ(ledger.Claim({0, 5, 1, 3}), PushLedger::Verdict::kApply);
  ledger.Finish({0, 5, 1, 3}, true, {});
  // A restarted run that pushes 3 alone, or 4..6, would apply a step twice.
  int64_t first = 0, last = 0;
  EXPECT_EQ(ledger.Claim({0, 3, 0}, &first, &last),
            PushLedger::Verdict::kConflict);
  EXPECT_EQ(first, 3);
  EXPECT_EQ(last, 5);
  EXPECT_EQ(ledger.Claim({0, 6, 1, 4}), PushLedger::Verdict::kConflict);
  EXPECT_EQ(ledger.Claim({0, 5, 0, 4}), PushLedger::Verdict::kConflict);
  // Past them, a merged push is new.
  EXPECT_EQ(ledger.Claim({0, 9, 0, 7}), PushLedger::Verdict::kApply);
  ledger.Finish({0, 9, 0, 7}, true, {});
  // The ranges survive a checkpoint.
  PushLedger copy;
  ASSERT_THAT(copy.Merge(ledger.Snapshot()), IsOk());
  EXPECT_EQ(copy.Claim({0, 8, 0}), PushLedger::Verdict::kConflict);
  EXPECT_EQ(copy.Claim({0, 9, 0, 7}), PushLedger::Verdict::kDuplicate);
}

TEST(PushLedgerTest, ARetryWaitsForItsOriginalStillBeingApplied) {
  PushLedger ledger;
  ASSERT_EQ(ledger.Claim({0, 7, 0}), PushLedger::Verdict::kApply);
  std::atomic<int> verdict{-1};
  std::thread retry([&] {
    verdict = ledger.Claim({0, 7, 0}) == PushLedger::Verdict::kDuplicate;
  });
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(verdict.load(), -1) << "the retry decided before the original";
  ledger.Finish({0, 7, 0}, true, {});
  retry.join();
  EXPECT_EQ(verdict.load(), 1);
}

TEST(PushLedgerTest, SnapshotMergesBackAndRefusesAnotherWindow) {
  PushLedger ledger;
  for (int64_t step : {3, 4, 9}) {
    ASSERT_EQ(ledger.Claim({2, step, 0}), PushLedger::Verdict::kApply);
    ledger.Finish({2, step, 0}, true, {false, true, true});
  }
  const PushLedgerSnapshot snap = ledger.Snapshot();
  PushLedger copy;
  ASSERT_THAT(copy.Merge(snap), IsOk());
  EXPECT_EQ(copy.Claim({2, 4, 0}), PushLedger::Verdict::kDuplicate);
  EXPECT_EQ(copy.Claim({2, 5, 0}), PushLedger::Verdict::kApply);
  EXPECT_EQ(copy.Counts().at(2).dense_deltas, 3);

  PushLedgerSnapshot bad = snap;
  bad.set_window_steps(10);
  EXPECT_THAT(PushLedger().Merge(bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("window of 10 steps")));
  bad = snap;
  bad.mutable_workers(0)->add_steps(1);
  EXPECT_THAT(PushLedger().Merge(bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("4 steps but 3 parts")));
}

// --- PsHandler: one server, table "emb" (dim 4, SGD lr 0.5, zero rows)

class ExactlyOnceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = SmallJobConfig(1, 1, kDim, 4);
    config_.mutable_checkpoint()->set_dir(dir_.path() + "/ckpt");
    auto h = PsHandler::Create(config_, 0);
    ASSERT_TRUE(h.ok()) << h.status();
    handler_ = std::move(h).value();
  }

  std::vector<float> Rows(PsHandler& h) {
    PullResponse response;
    EXPECT_THAT(h.Pull(SparsePullRequest(0, kDim, keys_), &response), IsOk());
    return PulledRows(response);
  }

  PushRequest Push(int64_t step, float grad = 1.0f) {
    return SparsePushRequest(
        0, kDim, keys_, std::vector<float>(keys_.size() * kDim, grad), step);
  }

  TempDir dir_;
  JobConfig config_;
  std::unique_ptr<PsHandler> handler_;
  const std::vector<uint64_t> keys_ = {11, 12, 13};
};

TEST_F(ExactlyOnceTest, ARepeatedPushIsAcknowledgedNotApplied) {
  PushResponse first;
  ASSERT_THAT(handler_->Push(Push(1), &first), IsOk());
  EXPECT_FALSE(first.duplicate());
  EXPECT_EQ(Rows(*handler_), std::vector<float>(12, -0.5f));

  // The answer was lost; the worker re-sends the same request.
  PushResponse again;
  ASSERT_THAT(handler_->Push(Push(1), &again), IsOk());
  EXPECT_TRUE(again.duplicate());
  EXPECT_EQ(Rows(*handler_), std::vector<float>(12, -0.5f));

  // The next step applies.
  ASSERT_THAT(handler_->Push(Push(2), &again), IsOk());
  EXPECT_FALSE(again.duplicate());
  EXPECT_EQ(Rows(*handler_), std::vector<float>(12, -1.0f));
  const PushCounts c = handler_->PushCountsOf(0);
  EXPECT_EQ(c.applied, 2);
  EXPECT_EQ(c.duplicates, 1);
  EXPECT_EQ(c.last_step, 2);
}

TEST_F(ExactlyOnceTest, AResponseNamesTheServerAndItsIncarnation) {
  PushResponse response;
  ASSERT_THAT(handler_->Push(Push(1), &response), IsOk());
  EXPECT_EQ(response.header().server_rank(), 0);
  EXPECT_NE(response.header().server_incarnation(), 0u);
  EXPECT_EQ(response.header().server_incarnation(), handler_->incarnation());
  // Another process (or a restart) has another incarnation.
  auto other = PsHandler::Create(config_, 0);
  ASSERT_TRUE(other.ok());
  EXPECT_NE((*other)->incarnation(), handler_->incarnation());
}

TEST_F(ExactlyOnceTest, ACancelledPushIsNotAppliedAndItsRetryIs) {
  PushResponse response;
  EXPECT_THAT(handler_->Push(Push(1), &response, [] { return true; }),
              StatusIs(absl::StatusCode::kCancelled,
                       HasSubstr("worker 0 step 1 cancelled")));
  EXPECT_EQ(Rows(*handler_), std::vector<float>(12, 0.0f));
  ASSERT_THAT(handler_->Push(Push(1), &response, [] { return false; }), IsOk());
  EXPECT_FALSE(response.duplicate());
  EXPECT_EQ(Rows(*handler_), std::vector<float>(12, -0.5f));
}

TEST_F(ExactlyOnceTest, ARequestForAnotherIncarnationIsRefusedUnapplied) {
  PushRequest push = Push(1);
  push.mutable_header()->set_server_incarnation(handler_->incarnation() + 1);
  PushResponse response;
  EXPECT_THAT(handler_->Push(push, &response),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("server 0 restarted: worker 0 expects")));
  EXPECT_EQ(response.header().server_incarnation(), handler_->incarnation());
  PullRequest pull = SparsePullRequest(0, kDim, keys_);
  pull.mutable_header()->set_server_incarnation(7);
  PullResponse rows;
  EXPECT_THAT(handler_->Pull(pull, &rows),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Rows(*handler_), std::vector<float>(12, 0.0f));
  // The right one is served.
  push.mutable_header()->set_server_incarnation(handler_->incarnation());
  EXPECT_THAT(handler_->Push(push, &response), IsOk());
}

TEST_F(ExactlyOnceTest, SparseAndDensePartsAreCheckedBeforeEitherApplies) {
  // One request with the sparse rows and this server's dense blocks; the
  // dense part is one float short, so the sparse part must not land.
  PushRequest push = Push(1);
  const int64_t dense = 26 * kDim + 14;
  DenseSegment* seg = push.add_dense();
  seg->set_table_id(0);
  seg->set_num_values(dense);
  push.set_dense_grads(std::string((dense - 1) * sizeof(float), '\0'));
  PushResponse response;
  EXPECT_THAT(handler_->Push(push, &response),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dense table 'model' push")));
  EXPECT_EQ(Rows(*handler_), std::vector<float>(12, 0.0f));
  EXPECT_EQ(handler_->PushCountsOf(0).applied, 0);
  // Whole, it applies both, once.
  push.set_dense_grads(std::string(dense * sizeof(float), '\0'));
  ASSERT_THAT(handler_->Push(push, &response), IsOk());
  EXPECT_EQ(Rows(*handler_), std::vector<float>(12, -0.5f));
  const PushCounts c = handler_->PushCountsOf(0);
  EXPECT_EQ(c.sparse_gradients, 1);
  EXPECT_EQ(c.dense_gradients, 1);
  EXPECT_EQ(c.applied, 1);
}

TEST_F(ExactlyOnceTest, APushOverlappingAnEarlierRunsMergeIsRefused) {
  PushRequest merged = Push(5);
  merged.set_merged_steps(2);  // steps 3..5
  PushResponse response;
  ASSERT_THAT(handler_->Push(merged, &response), IsOk());
  PushRequest alone = Push(4);
  EXPECT_THAT(handler_->Push(alone, &response),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("the push of worker 0 steps 4..4 overlaps "
                                 "its steps 3..5 applied before")));
  EXPECT_EQ(Rows(*handler_), std::vector<float>(12, -0.5f));
  merged.set_merged_steps(9);
  EXPECT_THAT(handler_->Push(merged, &response),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("9 steps merged before step 5")));
}

TEST_F(ExactlyOnceTest, APartOutsideItsPushIsRefused) {
  PushRequest push = Push(1);
  push.set_part(2);
  push.set_parts(2);
  PushResponse response;
  EXPECT_THAT(
      handler_->Push(push, &response),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("part 2 of 2")));
  push = Push(-3);
  EXPECT_THAT(
      handler_->Push(push, &response),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("step -3")));
}

TEST_F(ExactlyOnceTest, TheRecordSurvivesACheckpoint) {
  PushResponse response;
  ASSERT_THAT(handler_->Push(Push(1), &response), IsOk());
  ASSERT_THAT(handler_->Push(Push(2), &response), IsOk());
  ASSERT_THAT(SaveAndCommit({handler_.get()}, config_, 2), IsOk());

  auto opened = OpenLatest(config_.checkpoint().dir());
  ASSERT_TRUE(opened.ok()) << opened.status();
  RestoreFrom restore{opened->dir, opened->manifest};
  auto resumed = PsHandler::Create(config_, 0, &restore);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(Rows(**resumed), std::vector<float>(12, -1.0f));
  // A step the checkpoint holds is not applied again; a later one is.
  ASSERT_THAT((*resumed)->Push(Push(2), &response), IsOk());
  EXPECT_TRUE(response.duplicate());
  ASSERT_THAT((*resumed)->Push(Push(3), &response), IsOk());
  EXPECT_FALSE(response.duplicate());
  EXPECT_EQ(Rows(**resumed), std::vector<float>(12, -1.5f));
  // The counters came back with the rows.
  EXPECT_EQ((*resumed)->PushCountsOf(0).applied, 3);
}

TEST_F(ExactlyOnceTest, AConfigWithMoreStepsInFlightThanTheWindowIsRefused) {
  JobConfig c = config_;
  c.mutable_training()->set_max_inflight_pushes(1000);
  c.mutable_training()->set_max_merged_steps(10);
  EXPECT_THAT(PsHandler::Create(c, 0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("must stay below 4096")));
}

}  // namespace
}  // namespace ps

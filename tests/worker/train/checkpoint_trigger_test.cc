// worker/train/checkpoint_trigger.h: which step boundaries arrive at a
// checkpoint, with which id.
#include "worker/train/checkpoint_trigger.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(CheckpointTriggerTest, EveryStepsSchedulesIdZero) {
  CheckpointTrigger trigger(3);
  EXPECT_FALSE(trigger.Due(0).has_value());
  EXPECT_FALSE(trigger.Due(1).has_value());
  EXPECT_FALSE(trigger.Due(2).has_value());
  EXPECT_EQ(trigger.Due(3), 0);
  trigger.Arrived(0, kT0);
  EXPECT_FALSE(trigger.Due(4).has_value());
  EXPECT_EQ(trigger.Due(6), 0);
}

TEST(CheckpointTriggerTest, WithoutEveryStepsOnlyRoundsArrive) {
  CheckpointTrigger trigger(0);
  for (int step = 0; step < 10; ++step) {
    EXPECT_FALSE(trigger.Due(step).has_value()) << step;
  }
  trigger.SetPending(0, kT0);
  EXPECT_FALSE(trigger.Due(3).has_value());
}

TEST(CheckpointTriggerTest, NewRoundArrivesOnce) {
  CheckpointTrigger trigger(0);
  trigger.SetPending(4, kT0);
  EXPECT_EQ(trigger.Due(7), 4);
  EXPECT_EQ(trigger.Due(8), 4);  // until it arrived
  trigger.Arrived(4, kT0 + absl::Seconds(1));
  EXPECT_EQ(trigger.last_id(), 4);
  EXPECT_FALSE(trigger.Due(9).has_value());
  // The round is still reported by a heartbeat sent after the arrival
  // (the coordinator has not closed it yet): not again.
  trigger.SetPending(4, kT0 + absl::Seconds(2));
  EXPECT_FALSE(trigger.Due(10).has_value());
  // A newer one is joined.
  trigger.SetPending(5, kT0 + absl::Seconds(3));
  EXPECT_EQ(trigger.Due(11), 5);
}

TEST(CheckpointTriggerTest, RoundBeatsEveryStepsAtTheSameStep) {
  CheckpointTrigger trigger(5);
  trigger.SetPending(2, kT0);
  EXPECT_EQ(trigger.Due(5), 2);
}

TEST(CheckpointTriggerTest, AnswersAskedBeforeTheArrivalReturnedAreIgnored) {
  CheckpointTrigger trigger(10);
  // A scheduled arrival (id 0) completes round 8; a heartbeat sent while it
  // waited reports round 8 after it returned.
  EXPECT_EQ(trigger.Due(10), 0);
  trigger.Arrived(0, kT0 + absl::Seconds(5));
  trigger.SetPending(8, kT0 + absl::Seconds(4));
  EXPECT_FALSE(trigger.Due(11).has_value());
  // A heartbeat that saw round 8 while the arrival waited: it was that
  // round.
  CheckpointTrigger other(10);
  EXPECT_EQ(other.Due(10), 0);
  other.SetPending(8, kT0 + absl::Seconds(4));
  EXPECT_EQ(other.Due(10), 8);  // (the arrival in flight is for it)
  other.Arrived(0, kT0 + absl::Seconds(5));
  EXPECT_EQ(other.last_id(), 8);
  EXPECT_FALSE(other.Due(11).has_value());
}

}  // namespace
}  // namespace ps

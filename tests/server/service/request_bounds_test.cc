// What one bad or hostile request can make a server do (PsHandler, issue
// "hardening"): every bound is checked before anything is allocated or
// applied, and each refusal names the bound and leaves the tables as they
// were.
//  - a pull with more keys than cluster.limits.max_keys_per_request, or
//    whose answer would pass cluster.max_message_bytes, is refused and
//    creates no row;
//  - a MEMORY table's storage.max_rows cap refuses pulls and pushes that
//    would pass it;
//  - a push's step must stay within max_step_jump of the server's step and
//    below 10^10: a step of 2^40 or INT64_MAX neither moves the table's
//    step nor triggers its scheduled shrink;
//  - gradients and deltas past 2^50 are refused; delta adds that overflow
//    are clipped, so saving still works;
//  - checkpoints are written only under checkpoint.dir, never through a
//    symbolic link;
//  - a refused TIERED resume leaves the live table as it was.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/ps_handler.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wire_requests.h"

namespace ps {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::StatusIs;
using testing_util::TempDir;

constexpr int kDim = 4;

std::vector<uint64_t> Keys(uint64_t first, size_t n) {
  std::vector<uint64_t> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = first + i;
  return keys;
}

class RequestBoundsTest : public ::testing::Test {
 protected:
  JobConfig Config() {
    JobConfig c = SmallJobConfig(1, 1, kDim, 64);
    c.mutable_checkpoint()->set_dir(temp_.path() + "/ckpt");
    return c;
  }
  std::unique_ptr<PsHandler> Handler(const JobConfig& c) {
    auto h = PsHandler::Create(c, 0);
    EXPECT_TRUE(h.ok()) << h.status();
    return h.ok() ? std::move(h).value() : nullptr;
  }
  absl::Status Pull(PsHandler& h, const std::vector<uint64_t>& keys) {
    PullResponse response;
    return h.Pull(SparsePullRequest(0, kDim, keys), &response);
  }
  absl::Status Push(PsHandler& h, const std::vector<uint64_t>& keys, float grad,
                    int64_t step, bool delta = false) {
    std::vector<float> grads(keys.size() * kDim, grad);
    PushResponse response;
    return h.Push(SparsePushRequest(0, kDim, keys, grads, step, 0, delta),
                  &response);
  }
  absl::Status Save(PsHandler& h, const std::string& dir) {
    SaveCheckpointRequest request;
    request.set_dir(dir);
    request.set_step(1);
    SaveCheckpointResponse response;
    return h.SaveCheckpoint(request, &response);
  }
  int64_t TableStep(PsHandler& h) {
    StatsResponse stats;
    h.Stats(&stats);
    return stats.sparse_tables(0).step();
  }

  TempDir temp_;
};

TEST_F(RequestBoundsTest, APullWithTooManyKeysIsRefusedAndCreatesNoRow) {
  JobConfig c = Config();
  c.mutable_cluster()->mutable_limits()->set_max_keys_per_request(1000);
  auto h = Handler(c);
  ASSERT_NE(h, nullptr);
  EXPECT_OK(Pull(*h, Keys(1, 1000)));
  EXPECT_EQ(h->SparseRows()[0], 1000);
  EXPECT_THAT(Pull(*h, Keys(5000, 1001)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("1001 keys"),
                             HasSubstr("max_keys_per_request 1000"))));
  EXPECT_THAT(Push(*h, Keys(5000, 1001), 0.5f, 1),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("max_keys_per_request")));
  EXPECT_EQ(h->SparseRows()[0], 1000);
}

TEST_F(RequestBoundsTest, APullWhoseAnswerPassesTheMessageLimitIsRefused) {
  JobConfig c = Config();
  // 16 KiB answers: 1024 rows of dim 4.
  c.mutable_cluster()->set_max_message_bytes(16 << 10);
  auto h = Handler(c);
  ASSERT_NE(h, nullptr);
  EXPECT_OK(Pull(*h, Keys(1, 1000)));
  EXPECT_THAT(Pull(*h, Keys(2000, 1100)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("17600 bytes"),
                             HasSubstr("max_message_bytes 16384"))));
  EXPECT_EQ(h->SparseRows()[0], 1000);
}

TEST_F(RequestBoundsTest, AMemoryTablesRowCapRefusesNewRowsOnly) {
  JobConfig c = Config();
  c.mutable_sparse_tables(0)->mutable_storage()->set_max_rows(100);
  auto h = Handler(c);
  ASSERT_NE(h, nullptr);
  EXPECT_OK(Pull(*h, Keys(1, 90)));
  EXPECT_THAT(
      Pull(*h, Keys(50, 71)),  // 30 of them new: 120 rows
      StatusIs(absl::StatusCode::kResourceExhausted,
               AllOf(HasSubstr("table 'emb'"), HasSubstr("holds 90"),
                     HasSubstr("max_rows 100"), HasSubstr("would add 30"))));
  EXPECT_THAT(Push(*h, Keys(1000, 20), 0.5f, 1),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("max_rows 100")));
  EXPECT_EQ(h->SparseRows()[0], 90);
  // Rows it has, and new ones up to the cap, still work.
  EXPECT_OK(Pull(*h, Keys(1, 90)));
  EXPECT_OK(Push(*h, Keys(81, 20), 0.5f, 2));
  EXPECT_EQ(h->SparseRows()[0], 100);
}

TEST_F(RequestBoundsTest, AStepFarAheadIsRefusedAndWipesNothing) {
  JobConfig c = Config();
  // Rows unseen for more than 10 steps go at the shrink every 100 steps.
  AccessorConfig* a = c.mutable_sparse_tables(0)->mutable_accessor();
  a->set_max_unseen_steps(10);
  a->set_shrink_every_steps(100);
  c.mutable_cluster()->mutable_limits()->set_max_step_jump(1000);
  auto h = Handler(c);
  ASSERT_NE(h, nullptr);
  ASSERT_OK(Push(*h, Keys(1, 50), 0.5f, 5));
  for (int64_t step :
       {int64_t{1} << 40, std::numeric_limits<int64_t>::max(), int64_t{1006}}) {
    EXPECT_THAT(Push(*h, Keys(1, 1), 0.5f, step),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(absl::StrCat("step ", step)),
                               HasSubstr("at step 5"),
                               HasSubstr("max_step_jump 1000"))))
        << step;
  }
  EXPECT_EQ(TableStep(*h), 5);
  EXPECT_EQ(h->SparseRows()[0], 50);
  // Within the jump: applied, and steps move on from there.
  EXPECT_OK(Push(*h, Keys(1, 1), 0.5f, 1005));
  EXPECT_EQ(TableStep(*h), 1005);
  EXPECT_OK(Push(*h, Keys(1, 1), 0.5f, 2005));
  // A rank the job does not have cannot push at all.
  std::vector<float> grads(kDim, 0.0f);
  std::vector<uint64_t> one = {1};
  PushResponse response;
  EXPECT_THAT(
      h->Push(SparsePushRequest(0, kDim, one, grads, 2006, 7), &response),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("push of worker 7: the job has 1 workers")));
}

TEST_F(RequestBoundsTest, NoStepReachesTheCheckpointFoldersLimit) {
  JobConfig c = Config();
  c.mutable_cluster()->mutable_limits()->set_max_step_jump(
      std::numeric_limits<int64_t>::max());
  auto h = Handler(c);
  ASSERT_NE(h, nullptr);
  EXPECT_THAT(
      Push(*h, Keys(1, 1), 0.5f, kMaxCheckpointStep),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("below 10^10")));
  EXPECT_OK(Push(*h, Keys(1, 1), 0.5f, kMaxCheckpointStep - 1));
  EXPECT_OK(Save(*h, temp_.path() + "/ckpt/ckpt-9999999999"));
}

TEST_F(RequestBoundsTest, HugeGradientsAreRefusedAndDeltaAddsStayFinite) {
  JobConfig c = Config();
  auto h = Handler(c);
  ASSERT_NE(h, nullptr);
  EXPECT_THAT(
      Push(*h, Keys(1, 2), 1e20f, 1),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("table 'emb' push"), HasSubstr("2^50"))));
  EXPECT_THAT(Push(*h, Keys(1, 2), 1e20f, 1, /*delta=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2^50")));
  // Deltas below the bound cannot add up past FLT_MAX in a test's time:
  // the add itself clips (sparse and dense delta adds use it).
  const float big = std::numeric_limits<float>::max() * 0.75f;
  EXPECT_EQ(AddClipped(big, big), std::numeric_limits<float>::max());
  EXPECT_EQ(AddClipped(-big, -big), -std::numeric_limits<float>::max());
  EXPECT_EQ(AddClipped(1.0f, 2.0f), 3.0f);
  EXPECT_OK(Push(*h, Keys(1, 2), 1e15f, 1, /*delta=*/true));
  const int64_t dense = h->DumpDense(0)->size();
  std::vector<float> huge(dense, 1e16f);
  PushResponse response;
  EXPECT_THAT(
      h->Push(DensePushRequest(0, huge, 2, 0, true), &response),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("dense table 'model'"), HasSubstr("2^50"))));
  EXPECT_OK(Save(*h, temp_.path() + "/ckpt/ckpt-0000000001"));
}

TEST_F(RequestBoundsTest, CheckpointsAreWrittenOnlyUnderTheCheckpointDir) {
  JobConfig c = Config();
  auto h = Handler(c);
  ASSERT_NE(h, nullptr);
  ASSERT_OK(Pull(*h, Keys(1, 10)));
  const std::string outside = temp_.path() + "/elsewhere";
  EXPECT_THAT(Save(*h, outside),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("not under the job's checkpoint.dir")));
  EXPECT_THAT(Save(*h, temp_.path() + "/ckpt/../elsewhere"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(Save(*h, temp_.path() + "/ckpt"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(Save(*h, "/etc/ps-would-be-here"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // A folder inside that is a link to one outside.
  std::filesystem::create_directories(temp_.path() + "/ckpt");
  std::filesystem::create_directories(outside);
  std::filesystem::create_directory_symlink(outside,
                                            temp_.path() + "/ckpt/linked");
  EXPECT_THAT(Save(*h, temp_.path() + "/ckpt/linked"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_TRUE(std::filesystem::is_empty(outside));
  // A file of the checkpoint that is a link: not followed.
  const std::string dir = temp_.path() + "/ckpt/ckpt-0000000001";
  std::filesystem::create_directories(dir + "/server-0");
  const std::string target = outside + "/victim";
  { std::ofstream(target) << "keep me"; }
  std::filesystem::create_symlink(target, dir + "/server-0/dense-model.bin");
  EXPECT_THAT(Save(*h, dir), StatusIs(absl::StatusCode::kPermissionDenied,
                                      HasSubstr("symbolic link")));
  std::ifstream in(target);
  std::string kept;
  std::getline(in, kept);
  EXPECT_EQ(kept, "keep me");
  // A relative name is under checkpoint.dir; a proper folder works.
  EXPECT_OK(Save(*h, "ckpt-0000000002"));
  EXPECT_TRUE(
      std::filesystem::exists(temp_.path() + "/ckpt/ckpt-0000000002/server-0"));
  // A job without checkpoint.dir writes nowhere.
  JobConfig none = SmallJobConfig(1, 1, kDim, 64);
  auto h2 = Handler(none);
  ASSERT_NE(h2, nullptr);
  EXPECT_THAT(Save(*h2, temp_.path() + "/ckpt/ckpt-0000000003"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no checkpoint.dir")));
}

// A relative checkpoint.dir (a config loaded by a relative path) is relative
// to the working directory, and so are the folders server 0's coordinator
// names under it: they are not joined to the root a second time.
TEST_F(RequestBoundsTest, ARelativeCheckpointDirTakesTheCoordinatorsFolders) {
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(temp_.path());
  JobConfig c = Config();
  c.mutable_checkpoint()->set_dir("rel/ckpt");
  {
    auto h = Handler(c);
    ASSERT_NE(h, nullptr);
    ASSERT_OK(Pull(*h, Keys(1, 10)));
    EXPECT_OK(Save(*h, "rel/ckpt/ckpt-0000000001"));
    EXPECT_OK(Save(*h, "ckpt-0000000002"));  // a bare name: under the root
    EXPECT_THAT(Save(*h, "rel/elsewhere"),   // rel/ckpt/rel/elsewhere
                StatusIs(absl::StatusCode::kOk));
    EXPECT_THAT(Save(*h, "../elsewhere"),
                StatusIs(absl::StatusCode::kPermissionDenied));
  }
  std::filesystem::current_path(cwd);
  const std::string root = temp_.path() + "/rel/ckpt";
  EXPECT_TRUE(std::filesystem::exists(root + "/ckpt-0000000001/server-0"));
  EXPECT_TRUE(std::filesystem::exists(root + "/ckpt-0000000002/server-0"));
  EXPECT_FALSE(std::filesystem::exists(root + "/rel/ckpt"));
  EXPECT_FALSE(std::filesystem::exists(temp_.path() + "/rel/elsewhere"));
}

TEST_F(RequestBoundsTest, ARefusedTieredResumeLeavesTheLiveTableAsItWas) {
  JobConfig c = Config();
  SparseStorageConfig* storage = c.mutable_sparse_tables(0)->mutable_storage();
  storage->set_type(SparseStorageConfig::TIERED);
  storage->set_dir(temp_.path() + "/live");
  storage->set_memory_budget_bytes(1 << 20);
  int64_t rows_before = 0;
  {
    auto h = Handler(c);
    ASSERT_NE(h, nullptr);
    ASSERT_OK(Push(*h, Keys(1, 200), 0.5f, 1));
    ASSERT_OK(SaveAndCommit({h.get()}, c, 1));
    ASSERT_OK(Push(*h, Keys(1000, 300), 0.5f, 2));  // after the checkpoint
    rows_before = *h->ExactRows(0);
  }
  EXPECT_EQ(rows_before, 500);
  // The same job with another dim cannot use that checkpoint.
  JobConfig other = c;
  other.mutable_sparse_tables(0)->set_dim(kDim + 1);
  auto opened = OpenLatest(c.checkpoint().dir());
  ASSERT_OK(opened.status());
  RestoreFrom restore{opened->dir, opened->manifest};
  EXPECT_FALSE(PsHandler::Create(other, 0, &restore).ok());
  auto h = Handler(c);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(*h->ExactRows(0), rows_before);
}

}  // namespace
}  // namespace ps

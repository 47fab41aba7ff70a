// PsHandler on a two-server job built in code: packed-bytes round trips of
// Pull and Push (proto/ps.proto) and every refusal (unknown table, bad sizes,
// foreign keys, non-finite values) with its exact message, nothing of a
// refused request applied.
#include "server/service/ps_handler.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/config.h"
#include "common/hash.h"
#include "common/model_spec.h"
#include "common/packing.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wire_requests.h"

namespace ps {
namespace {

using testing_util::StatusIs;

constexpr int kDim = 4;

// Two servers; sparse table "emb" (dim 4, SGD lr 0.5, zero rows); a DNN with
// no hidden layer over 26 slots x 4 + 13 dense inputs: 118 dense floats in
// blocks of 4, 60 on server 0 and 58 on server 1. Dense SGD lr 0.25.
JobConfig MakeConfig() {
  return SmallJobConfig(/*num_servers=*/2, /*num_workers=*/1, kDim,
                        /*dense_block_size=*/4);
}

// `n` keys that server `rank` of `num_servers` owns.
std::vector<uint64_t> KeysOf(int rank, int num_servers, int n) {
  std::vector<uint64_t> keys;
  for (uint64_t k = 1; static_cast<int>(keys.size()) < n; ++k) {
    if (ServerForKey(k, num_servers) == rank) keys.push_back(k);
  }
  return keys;
}

std::vector<float> Unpack(const std::string& bytes) {
  auto view = ViewPacked<float>(bytes, "test");
  EXPECT_TRUE(view.ok()) << view.status();
  return view.ok() ? std::vector<float>(view->begin(), view->end())
                   : std::vector<float>();
}

class PsHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = MakeConfig();
    for (int rank = 0; rank < 2; ++rank) {
      auto h = PsHandler::Create(config_, rank);
      ASSERT_TRUE(h.ok()) << h.status();
      handlers_.push_back(std::move(h).value());
    }
  }

  std::vector<float> PullSparse(int rank, const std::vector<uint64_t>& keys) {
    PullResponse response;
    absl::Status s =
        handlers_[rank]->Pull(SparsePullRequest(0, kDim, keys), &response);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(response.values().size(), keys.size() * kDim * sizeof(float));
    return Unpack(response.values());
  }

  // A push of its own step (a server applies each worker's step once).
  absl::Status PushSparse(int rank, uint32_t table,
                          const std::vector<uint64_t>& keys,
                          const std::vector<float>& grads) {
    return Push(rank, SparsePushRequest(table, kDim, keys, grads, NextStep()));
  }

  absl::Status Push(int rank, const PushRequest& request) {
    PushResponse response;
    absl::Status s = handlers_[rank]->Push(request, &response);
    EXPECT_FALSE(response.duplicate());
    return s;
  }

  int64_t NextStep() { return ++step_; }

  JobConfig config_;
  std::vector<std::unique_ptr<PsHandler>> handlers_;
  int64_t step_ = 0;
};

TEST_F(PsHandlerTest, ConfigBuiltHereIsValid) {
  // The handler REQUIRES a validated config: this one passes validation.
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(config_, &text));
  auto parsed = ParseJobConfig(text, "job.pbtxt", "");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(handlers_[0]->rank(), 0);
  EXPECT_EQ(handlers_[1]->rank(), 1);
  EXPECT_EQ(handlers_[0]->num_servers(), 2);
}

TEST_F(PsHandlerTest, SparseRoundTrip) {
  const std::vector<uint64_t> keys = KeysOf(0, 2, 3);
  EXPECT_EQ(PullSparse(0, keys), std::vector<float>(3 * kDim, 0.0f));
  EXPECT_EQ(handlers_[0]->SparseRows(), std::vector<int64_t>{3});
  EXPECT_EQ(handlers_[1]->SparseRows(), std::vector<int64_t>{0});

  std::vector<float> grads;
  for (int i = 0; i < 3 * kDim; ++i) grads.push_back(static_cast<float>(i - 5));
  ASSERT_TRUE(PushSparse(0, 0, keys, grads).ok());
  // SGD lr 0.5 from zero rows; values come back in request key order.
  const std::vector<uint64_t> reordered = {keys[2], keys[0]};
  std::vector<float> expected;
  for (int i = 0; i < kDim; ++i)
    expected.push_back(-0.5f * grads[2 * kDim + i]);
  for (int i = 0; i < kDim; ++i) expected.push_back(-0.5f * grads[i]);
  EXPECT_EQ(PullSparse(0, reordered), expected);

  // Server 1 holds its own keys.
  const std::vector<uint64_t> keys1 = KeysOf(1, 2, 2);
  ASSERT_TRUE(PushSparse(1, 0, keys1, std::vector<float>(2 * kDim, 2.0f)).ok());
  EXPECT_EQ(PullSparse(1, keys1), std::vector<float>(2 * kDim, -1.0f));
  EXPECT_EQ(handlers_[1]->SparseRows(), std::vector<int64_t>{2});
}

TEST_F(PsHandlerTest, EmptyPullIsFine) {
  EXPECT_TRUE(PullSparse(0, {}).empty());
}

TEST_F(PsHandlerTest, UnknownSparseTable) {
  PullResponse response;
  absl::Status s =
      handlers_[0]->Pull(SparsePullRequest(7, kDim, {}), &response);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "sparse table 7 does not exist on server 0 (has 0 'emb')"));

  s = PushSparse(1, 1, KeysOf(1, 2, 1), std::vector<float>(kDim, 1.0f));
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "sparse table 1 does not exist on server 1 (has 0 'emb')"));
  EXPECT_EQ(handlers_[1]->SparseRows(), std::vector<int64_t>{0});
}

TEST_F(PsHandlerTest, KeyBytesNotAMultipleOfEight) {
  // The keys of every segment travel in one buffer: its error names no table.
  PullRequest pull = SparsePullRequest(0, kDim, KeysOf(0, 2, 1));
  pull.set_keys(std::string(12, '\0'));
  PullResponse response;
  absl::Status s = handlers_[0]->Pull(pull, &response);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "pull keys: 12 bytes is not a multiple of 8"));

  PushRequest push = SparsePushRequest(0, kDim, KeysOf(0, 2, 1),
                                       std::vector<float>(kDim, 1.0f), 1);
  push.set_keys(std::string(12, '\0'));
  s = Push(0, push);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "push keys: 12 bytes is not a multiple of 8"));
  EXPECT_EQ(handlers_[0]->SparseRows(), std::vector<int64_t>{0});
}

TEST_F(PsHandlerTest, GradientSizeMismatch) {
  const std::vector<uint64_t> keys = KeysOf(0, 2, 2);
  // Too few gradient floats for the segment.
  absl::Status s = PushSparse(0, 0, keys, std::vector<float>(7, 1.0f));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "table 'emb' push: 2 keys of dim 4 (table dim 4) do "
                          "not fit the request's 2 keys and 7 gradient floats "
                          "left"));
  // Too many: the segments do not name them all.
  s = PushSparse(0, 0, keys, std::vector<float>(9, 1.0f));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "push: segments name 2 keys and 8 gradient floats, "
                          "the request carries 2 and 9"));
  // A segment that expects another row width.
  PushRequest push =
      SparsePushRequest(0, kDim, keys, std::vector<float>(2 * kDim, 1.0f), 1);
  push.mutable_sparse(0)->set_dim(kDim + 1);
  s = Push(0, push);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "table 'emb' push: 2 keys of dim 5 (table dim 4) do "
                          "not fit the request's 2 keys and 8 gradient floats "
                          "left"));

  push = SparsePushRequest(0, kDim, keys, {}, 2);
  push.set_grads(std::string(30, '\0'));
  s = Push(0, push);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "push gradients: 30 bytes is not a multiple of 4"));
  EXPECT_EQ(handlers_[0]->SparseRows(), std::vector<int64_t>{0});
}

TEST_F(PsHandlerTest, NonFiniteGradientIsRefusedAndNothingApplied) {
  const std::vector<uint64_t> keys = KeysOf(0, 2, 2);
  std::vector<float> grads(2 * kDim, 1.0f);
  grads[5] = std::numeric_limits<float>::quiet_NaN();
  absl::Status s = PushSparse(0, 0, keys, grads);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "table 'emb' push: value 5 is nan (not finite)"));
  EXPECT_EQ(handlers_[0]->SparseRows(), std::vector<int64_t>{0});
  EXPECT_EQ(PullSparse(0, keys), std::vector<float>(2 * kDim, 0.0f));
}

TEST_F(PsHandlerTest, KeyOfTheOtherServerIsRefused) {
  const uint64_t mine = KeysOf(0, 2, 1)[0];
  const uint64_t theirs = KeysOf(1, 2, 1)[0];
  const std::string expected =
      "table 'emb': key " + std::to_string(theirs) +
      " belongs to server 1, not to server 0 (workers disagree on the number "
      "of servers?)";

  const std::vector<uint64_t> keys = {mine, theirs};
  PullResponse response;
  absl::Status s =
      handlers_[0]->Pull(SparsePullRequest(0, kDim, keys), &response);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, expected));
  EXPECT_EQ(handlers_[0]->SparseRows(), std::vector<int64_t>{0});

  s = PushSparse(0, 0, keys, std::vector<float>(2 * kDim, 1.0f));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, expected));
  // Not even the key that belongs here was updated.
  EXPECT_EQ(PullSparse(0, {mine}), std::vector<float>(kDim, 0.0f));
}

TEST_F(PsHandlerTest, PullDenseGivesThisServersBlocksAndTableSize) {
  const ModelSpec spec = MakeModelSpec(config_);
  ASSERT_EQ(spec.dense_size, 118);
  const DenseBlocks blocks{118, 4, 2};
  for (int rank = 0; rank < 2; ++rank) {
    PullResponse response;
    ASSERT_TRUE(handlers_[rank]->Pull(DensePullRequest(0), &response).ok());
    ASSERT_EQ(response.dense_table_sizes_size(), 1);
    EXPECT_EQ(response.dense_table_sizes(0), 118u);
    ASSERT_EQ(response.dense_size(), 1);
    EXPECT_EQ(response.dense(0).table_id(), 0u);
    EXPECT_EQ(response.dense(0).num_values(), rank == 0 ? 60u : 58u);
    EXPECT_TRUE(response.values().empty());
    std::vector<float> values = PulledDense(response);
    ASSERT_EQ(values.size(), rank == 0 ? 60u : 58u);
    size_t j = 0;
    for (const auto& [begin, end] : blocks.RangesOf(rank)) {
      for (int64_t i = begin; i < end; ++i, ++j) {
        EXPECT_EQ(values[j], DenseInitValue(spec, 1, i)) << "index " << i;
      }
    }
  }
}

TEST_F(PsHandlerTest, PushDenseAppliesSgd) {
  const PullRequest pull = DensePullRequest(0);
  PullResponse before;
  ASSERT_TRUE(handlers_[1]->Pull(pull, &before).ok());
  std::vector<float> grads(58);
  for (size_t i = 0; i < grads.size(); ++i)
    grads[i] = static_cast<float>(i % 3);
  ASSERT_TRUE(Push(1, DensePushRequest(0, grads, NextStep())).ok());
  PullResponse after;
  ASSERT_TRUE(handlers_[1]->Pull(pull, &after).ok());
  std::vector<float> w0 = PulledDense(before);
  std::vector<float> w1 = PulledDense(after);
  ASSERT_EQ(w1.size(), 58u);
  for (size_t i = 0; i < w1.size(); ++i) {
    EXPECT_EQ(w1[i], w0[i] - 0.25f * grads[i]) << i;
  }
}

TEST_F(PsHandlerTest, PushDenseWrongSizeOrNonFinite) {
  // Server 0 holds 60 floats: 58 is server 1's share.
  absl::Status s =
      Push(0, DensePushRequest(0, std::vector<float>(58, 1.0f), NextStep()));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "dense table 'model' push: 58 values, server 0 "
                          "holds 60 (58 left in the request)"));

  // The segment is right, the payload short.
  PushRequest push =
      DensePushRequest(0, std::vector<float>(60, 1.0f), NextStep());
  push.set_dense_grads(
      Pack(absl::Span<const float>(std::vector<float>(58, 1.0f))));
  s = Push(0, push);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "dense table 'model' push: 60 values, server 0 "
                          "holds 60 (58 left in the request)"));

  push.set_dense_grads(std::string(6, '\0'));
  s = Push(0, push);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "dense gradients: 6 bytes is not a multiple of 4"));

  std::vector<float> grads(60, 1.0f);
  grads[59] = std::numeric_limits<float>::infinity();
  s = Push(0, DensePushRequest(0, grads, NextStep()));
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "dense table 'model' push: value 59 is inf (not finite)"));

  // Nothing was applied.
  PullResponse response;
  ASSERT_TRUE(handlers_[0]->Pull(DensePullRequest(0), &response).ok());
  const ModelSpec spec = MakeModelSpec(config_);
  EXPECT_EQ(PulledDense(response)[0], DenseInitValue(spec, 1, 0));
  EXPECT_EQ(PulledDense(response)[59], DenseInitValue(spec, 1, 115));
}

TEST_F(PsHandlerTest, UnknownDenseTable) {
  PullResponse response;
  absl::Status s = handlers_[0]->Pull(DensePullRequest(1), &response);
  EXPECT_THAT(
      s, StatusIs(
             absl::StatusCode::kInvalidArgument,
             "dense table 1 does not exist on server 0 (has 1 dense tables)"));

  s = Push(1, DensePushRequest(3, {}, NextStep()));
  EXPECT_THAT(
      s, StatusIs(
             absl::StatusCode::kInvalidArgument,
             "dense table 3 does not exist on server 1 (has 1 dense tables)"));
}

TEST(PsHandlerCreateTest, RankOutOfRange) {
  const JobConfig config = MakeConfig();
  for (int rank : {2, -1}) {
    auto h = PsHandler::Create(config, rank);
    ASSERT_FALSE(h.ok());
    EXPECT_THAT(h, StatusIs(absl::StatusCode::kInvalidArgument,
                            "server rank " + std::to_string(rank) +
                                " is out of range: the job has 2 servers"));
  }
}

TEST(PsHandlerCreateTest, BadTableIsRefused) {
  JobConfig config = MakeConfig();
  config.mutable_sparse_tables(0)->set_dim(0);
  auto h = PsHandler::Create(config, 0);
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h, StatusIs(absl::StatusCode::kInvalidArgument,
                          "table 'emb': dim must be in [1, 4096], got 0"));
}

TEST(PsHandlerCreateTest, TwoTablesAreListedInErrors) {
  JobConfig config = MakeConfig();
  SparseTableConfig* second = config.add_sparse_tables();
  second->set_name("wide");
  second->set_dim(1);
  auto h = PsHandler::Create(config, 0);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*h)->SparseRows(), (std::vector<int64_t>{0, 0}));
  PullResponse response;
  absl::Status s = (*h)->Pull(SparsePullRequest(2, kDim, {}), &response);
  EXPECT_EQ(
      s.message(),
      "sparse table 2 does not exist on server 0 (has 0 'emb', 1 'wide')");
  // Table 1 has dim 1: a pull that expects another dim is refused.
  const std::vector<uint64_t> keys = KeysOf(0, 2, 2);
  s = (*h)->Pull(SparsePullRequest(1, kDim, keys), &response);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "table 'wide': pull expects dim 4, the table has "
                          "dim 1"));
  response.Clear();
  ASSERT_TRUE((*h)->Pull(SparsePullRequest(1, 1, keys), &response).ok());
  EXPECT_EQ(response.values().size(), 2 * sizeof(float));
  EXPECT_EQ((*h)->SparseRows(), (std::vector<int64_t>{0, 2}));
}

}  // namespace
}  // namespace ps

// PsHandler on a two-server job built in code: packed-bytes round trips and
// every refusal (unknown table, bad sizes, foreign keys, non-finite values)
// with its exact message, nothing of a refused request applied.
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
    PullSparseRequest request;
    request.set_table_id(0);
    request.set_keys(Pack(absl::Span<const uint64_t>(keys)));
    PullSparseResponse response;
    absl::Status s = handlers_[rank]->PullSparse(request, &response);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(response.dim(), static_cast<uint32_t>(kDim));
    return Unpack(response.values());
  }

  absl::Status PushSparse(int rank, uint32_t table,
                          const std::vector<uint64_t>& keys,
                          const std::vector<float>& grads) {
    PushSparseRequest request;
    request.set_table_id(table);
    request.set_keys(Pack(absl::Span<const uint64_t>(keys)));
    request.set_grads(Pack(absl::Span<const float>(grads)));
    return handlers_[rank]->PushSparse(request);
  }

  JobConfig config_;
  std::vector<std::unique_ptr<PsHandler>> handlers_;
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
  PullSparseRequest pull;
  pull.set_table_id(7);
  PullSparseResponse response;
  absl::Status s = handlers_[0]->PullSparse(pull, &response);
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
  PullSparseRequest pull;
  pull.set_table_id(0);
  pull.set_keys(std::string(12, '\0'));
  PullSparseResponse response;
  absl::Status s = handlers_[0]->PullSparse(pull, &response);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "table 'emb' pull keys: 12 bytes is not a multiple of 8"));

  PushSparseRequest push;
  push.set_table_id(0);
  push.set_keys(std::string(12, '\0'));
  push.set_grads(Pack(absl::Span<const float>(std::vector<float>(kDim, 1.0f))));
  s = handlers_[0]->PushSparse(push);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "table 'emb' push keys: 12 bytes is not a multiple of 8"));
  EXPECT_EQ(handlers_[0]->SparseRows(), std::vector<int64_t>{0});
}

TEST_F(PsHandlerTest, GradientSizeMismatch) {
  const std::vector<uint64_t> keys = KeysOf(0, 2, 2);
  absl::Status s = PushSparse(0, 0, keys, std::vector<float>(7, 1.0f));
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "table 'emb' push: 2 keys x dim 4 needs 8 floats, got 7"));

  PushSparseRequest push;
  push.set_table_id(0);
  push.set_keys(Pack(absl::Span<const uint64_t>(keys)));
  push.set_grads(std::string(30, '\0'));
  s = handlers_[0]->PushSparse(push);
  EXPECT_THAT(
      s,
      StatusIs(absl::StatusCode::kInvalidArgument,
               "table 'emb' push gradients: 30 bytes is not a multiple of 4"));
  EXPECT_EQ(handlers_[0]->SparseRows(), std::vector<int64_t>{0});
}

TEST_F(PsHandlerTest, NonFiniteGradientIsRefusedAndNothingApplied) {
  const std::vector<uint64_t> keys = KeysOf(0, 2, 2);
  std::vector<float> grads(2 * kDim, 1.0f);
  grads[5] = std::numeric_limits<float>::quiet_NaN();
  absl::Status s = PushSparse(0, 0, keys, grads);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "table 'emb' push gradient: value 5 is nan (not finite)"));
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

  PullSparseRequest pull;
  pull.set_table_id(0);
  const std::vector<uint64_t> keys = {mine, theirs};
  pull.set_keys(Pack(absl::Span<const uint64_t>(keys)));
  PullSparseResponse response;
  absl::Status s = handlers_[0]->PullSparse(pull, &response);
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
    PullDenseRequest request;
    request.set_table_id(0);
    PullDenseResponse response;
    ASSERT_TRUE(handlers_[rank]->PullDense(request, &response).ok());
    EXPECT_EQ(response.table_size(), 118u);
    std::vector<float> values = Unpack(response.values());
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
  PullDenseRequest pull;
  PullDenseResponse before;
  ASSERT_TRUE(handlers_[1]->PullDense(pull, &before).ok());
  std::vector<float> grads(58);
  for (size_t i = 0; i < grads.size(); ++i)
    grads[i] = static_cast<float>(i % 3);
  PushDenseRequest push;
  push.set_grads(Pack(absl::Span<const float>(grads)));
  ASSERT_TRUE(handlers_[1]->PushDense(push).ok());
  PullDenseResponse after;
  ASSERT_TRUE(handlers_[1]->PullDense(pull, &after).ok());
  std::vector<float> w0 = Unpack(before.values());
  std::vector<float> w1 = Unpack(after.values());
  ASSERT_EQ(w1.size(), 58u);
  for (size_t i = 0; i < w1.size(); ++i) {
    EXPECT_EQ(w1[i], w0[i] - 0.25f * grads[i]) << i;
  }
}

TEST_F(PsHandlerTest, PushDenseWrongSizeOrNonFinite) {
  PushDenseRequest push;
  push.set_grads(Pack(absl::Span<const float>(std::vector<float>(58, 1.0f))));
  absl::Status s = handlers_[0]->PushDense(push);
  EXPECT_THAT(
      s, StatusIs(
             absl::StatusCode::kInvalidArgument,
             "dense table 'model' push: this server holds 60 floats, got 58"));

  push.set_grads(std::string(6, '\0'));
  s = handlers_[0]->PushDense(push);
  EXPECT_THAT(
      s, StatusIs(
             absl::StatusCode::kInvalidArgument,
             "dense table 'model' gradients: 6 bytes is not a multiple of 4"));

  std::vector<float> grads(60, 1.0f);
  grads[59] = std::numeric_limits<float>::infinity();
  push.set_grads(Pack(absl::Span<const float>(grads)));
  s = handlers_[0]->PushDense(push);
  EXPECT_THAT(
      s,
      StatusIs(absl::StatusCode::kInvalidArgument,
               "dense table 'model' gradient: value 59 is inf (not finite)"));

  // Nothing was applied.
  PullDenseRequest pull;
  PullDenseResponse response;
  ASSERT_TRUE(handlers_[0]->PullDense(pull, &response).ok());
  const ModelSpec spec = MakeModelSpec(config_);
  EXPECT_EQ(Unpack(response.values())[0], DenseInitValue(spec, 1, 0));
  EXPECT_EQ(Unpack(response.values())[59], DenseInitValue(spec, 1, 115));
}

TEST_F(PsHandlerTest, UnknownDenseTable) {
  PullDenseRequest pull;
  pull.set_table_id(1);
  PullDenseResponse response;
  absl::Status s = handlers_[0]->PullDense(pull, &response);
  EXPECT_THAT(
      s, StatusIs(
             absl::StatusCode::kInvalidArgument,
             "dense table 1 does not exist on server 0 (has 1 dense tables)"));

  PushDenseRequest push;
  push.set_table_id(3);
  s = handlers_[1]->PushDense(push);
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
  PullSparseRequest pull;
  pull.set_table_id(2);
  PullSparseResponse response;
  absl::Status s = (*h)->PullSparse(pull, &response);
  EXPECT_EQ(
      s.message(),
      "sparse table 2 does not exist on server 0 (has 0 'emb', 1 'wide')");
  // Table 1 has dim 1.
  pull.set_table_id(1);
  const std::vector<uint64_t> keys = KeysOf(0, 2, 2);
  pull.set_keys(Pack(absl::Span<const uint64_t>(keys)));
  ASSERT_TRUE((*h)->PullSparse(pull, &response).ok());
  EXPECT_EQ(response.dim(), 1u);
  EXPECT_EQ(response.values().size(), 2 * sizeof(float));
  EXPECT_EQ((*h)->SparseRows(), (std::vector<int64_t>{0, 2}));
}

}  // namespace
}  // namespace ps

// PsClient::PullSparseAndDense against two real servers: the rows and the
// dense vector it returns are those of PullSparse and PullDense, also when
// every key belongs to one server (the other then answers a dense-only
// request) and when there are no keys at all.
#include <memory>
#include <numeric>
#include <vector>

#include "common/hash.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/ps_server.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

constexpr int kDim = 3;

class CombinedPullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = SmallJobConfig(2, 1, kDim, 8);
    for (int s = 0; s < 2; ++s) {
      servers_.push_back(StartServer(config_, s));
      ASSERT_NE(servers_.back(), nullptr);
      config_.mutable_cluster()->set_servers(s, Endpoint(*servers_.back()));
    }
    PsClientOptions options = PsClientOptions::FromConfig(config_, 0);
    options.connect_timeout_sec = 5;
    auto client = PsClient::Connect(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(client).value();
    blocks_ = DenseBlocks{MakeModelSpec(config_).dense_size, 8, 2};
    ASSERT_GT(blocks_.size, 16);  // spans both servers
    // Distinct values everywhere: one SGD step from zero rows and a zero
    // dense vector.
    for (uint64_t k = 1; k <= 40; ++k) keys_.push_back(k * 7919);
    std::vector<float> grads(keys_.size() * kDim);
    std::iota(grads.begin(), grads.end(), 1.0f);
    std::vector<float> dense_grad(blocks_.size);
    std::iota(dense_grad.begin(), dense_grad.end(), 0.5f);
    client_->PushAsync(0, kDim, keys_, grads, 0, blocks_, dense_grad, 1);
    ASSERT_TRUE(client_->WaitPushes(0).ok());
  }

  // PullSparse then PullDense: what the combined pull must return.
  void Separately(const std::vector<uint64_t>& keys, std::vector<float>* rows,
                  std::vector<float>* dense) {
    rows->assign(keys.size() * kDim, -7.0f);
    dense->assign(blocks_.size, -7.0f);
    ASSERT_TRUE(
        client_->PullSparse(0, kDim, keys, absl::MakeSpan(*rows), 2).ok());
    ASSERT_TRUE(client_->PullDense(0, blocks_, absl::MakeSpan(*dense), 2).ok());
  }

  void ExpectCombinedMatches(const std::vector<uint64_t>& keys) {
    std::vector<float> rows, dense;
    Separately(keys, &rows, &dense);
    std::vector<float> got_rows(keys.size() * kDim, -9.0f);
    std::vector<float> got_dense(blocks_.size, -9.0f);
    const SparsePull pull{0, kDim, keys, absl::MakeSpan(got_rows)};
    const DensePull dense_pull{0, &blocks_, absl::MakeSpan(got_dense)};
    absl::Status s = client_->PullSparseAndDense(absl::MakeConstSpan(&pull, 1),
                                                 dense_pull, 2);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(got_rows, rows);
    EXPECT_EQ(got_dense, dense);
  }

  JobConfig config_;
  std::vector<std::unique_ptr<PsServer>> servers_;
  std::unique_ptr<PsClient> client_;
  DenseBlocks blocks_;
  std::vector<uint64_t> keys_;
};

TEST_F(CombinedPullTest, KeysOfBothServersGiveTheRowsAndTheDenseVector) {
  ExpectCombinedMatches(keys_);
}

TEST_F(CombinedPullTest, KeysOfOneServerStillGiveTheWholeDenseVector) {
  std::vector<uint64_t> server0;
  for (uint64_t key : keys_) {
    if (ServerForKey(key, 2) == 0) server0.push_back(key);
  }
  ASSERT_FALSE(server0.empty());
  ASSERT_LT(server0.size(), keys_.size());
  ExpectCombinedMatches(server0);
}

TEST_F(CombinedPullTest, NoKeysGiveTheDenseVector) {
  ExpectCombinedMatches({});
}

TEST_F(CombinedPullTest, AWrongDenseBufferIsRefused) {
  std::vector<float> rows(keys_.size() * kDim), dense(blocks_.size - 1);
  const SparsePull pull{0, kDim, keys_, absl::MakeSpan(rows)};
  const DensePull dense_pull{0, &blocks_, absl::MakeSpan(dense)};
  EXPECT_THAT(
      client_->PullSparseAndDense(absl::MakeConstSpan(&pull, 1), dense_pull, 2),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("for a dense table of")));
}

}  // namespace
}  // namespace ps

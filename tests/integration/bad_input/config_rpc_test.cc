// The configs and rpc categories of the bad-input corpus: job configs through
// LoadJobConfig, requests through a PsHandler.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/hash.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "proto/config.pb.h"
#include "proto/ps.pb.h"
#include "server/service/ps_handler.h"
#include "tests/integration/bad_input/corpus.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wire_requests.h"

namespace ps {
namespace bad_input {
namespace {

TEST(BadInputTest, Configs) {
  auto cases = ReadCases("configs", 0);
  ASSERT_TRUE(cases.ok()) << cases.status();
  const std::string dir = CategoryDir("configs");
  for (const Case& c : *cases) {
    SCOPED_TRACE(c.where());
    const TreeState before = Snapshot(dir);
    // The case's name is its file.
    absl::StatusOr<JobConfig> config = LoadJobConfig(dir + "/" + c.name);
    EXPECT_EQ(Mismatch(c, config.status()), "");
    // Nothing made or changed (data.generate writes nothing at load).
    EXPECT_EQ(TreeDiff(before, Snapshot(dir)), "") << c.where();
  }
}

constexpr int kDim = 4;
constexpr uint64_t kIncarnation = 0x1234;

// The handler the rpc cases describe (rpc/cases.txt): server 0 of 2, with
// limits small enough for a request file to pass them.
JobConfig RpcJobConfig() {
  JobConfig c = SmallJobConfig(/*num_servers=*/2, /*num_workers=*/2, kDim,
                               /*dense_block_size=*/8);
  c.mutable_cluster()->set_max_message_bytes(400);
  c.mutable_cluster()->mutable_limits()->set_max_keys_per_request(16);
  c.mutable_cluster()->mutable_limits()->set_max_step_jump(100);
  c.mutable_sparse_tables(0)->mutable_storage()->set_max_rows(40);
  return c;
}

// The first `n` keys server 0 of 2 owns, from 1 up.
std::vector<uint64_t> OwnedKeys(int n) {
  std::vector<uint64_t> keys;
  for (uint64_t k = 1; static_cast<int>(keys.size()) < n; ++k) {
    if (ServerForKey(k, 2) == 0) keys.push_back(k);
  }
  return keys;
}

// A handler in the state rpc/cases.txt describes.
std::unique_ptr<PsHandler> RpcHandler() {
  auto created = PsHandler::Create(RpcJobConfig(), 0, nullptr, kIncarnation);
  EXPECT_TRUE(created.ok()) << created.status();
  if (!created.ok()) return nullptr;
  std::unique_ptr<PsHandler> h = std::move(created).value();
  const std::vector<uint64_t> held = OwnedKeys(30);
  for (size_t at = 0; at < held.size(); at += 16) {
    std::vector<uint64_t> chunk(held.begin() + at,
                                held.begin() + std::min(at + 16, held.size()));
    PullResponse pulled;
    EXPECT_OK(h->Pull(SparsePullRequest(0, kDim, chunk), &pulled));
  }
  PullResponse dense;
  EXPECT_OK(h->Pull(DensePullRequest(0), &dense));
  const std::vector<float> dense_grads(PulledDense(dense).size(), 0.125f);
  PushResponse pushed;
  EXPECT_OK(h->Push(DensePushRequest(0, dense_grads, /*step=*/9), &pushed));
  const std::vector<uint64_t> four(held.begin(), held.begin() + 4);
  EXPECT_OK(h->Push(
      SparsePushRequest(0, kDim, four, std::vector<float>(4 * kDim, 0.25f),
                        /*step=*/10),
      &pushed));
  const std::vector<uint64_t> two(held.begin(), held.begin() + 2);
  EXPECT_OK(h->Push(
      SparsePushRequest(0, kDim, two, std::vector<float>(2 * kDim, 0.25f),
                        /*step=*/5, /*worker=*/1),
      &pushed));
  return h;
}

// Everything a request could change on a handler.
struct HandlerState {
  std::vector<int64_t> rows;
  int64_t exact_rows = 0;
  std::map<uint64_t, std::vector<float>> sparse;
  std::vector<float> dense;
  std::map<int, std::string> pushes;  // PushCounts as text
  uint64_t incarnation = 0;

  bool operator==(const HandlerState& o) const {
    return rows == o.rows && exact_rows == o.exact_rows && sparse == o.sparse &&
           dense == o.dense && pushes == o.pushes &&
           incarnation == o.incarnation;
  }
};

HandlerState StateOf(const PsHandler& h) {
  HandlerState s;
  s.rows = h.SparseRows();
  s.exact_rows = h.ExactRows(0).value_or(-1);
  s.sparse = h.DumpSparse(0).value_or(s.sparse);
  s.dense = h.DumpDense(0).value_or(s.dense);
  for (const auto& [rank, counts] : h.AllPushCounts()) {
    s.pushes[rank] = absl::StrCat(
        counts.sparse_gradients, " ", counts.sparse_deltas, " ",
        counts.dense_gradients, " ", counts.dense_deltas, " ",
        counts.duplicates, " ", counts.applied, " ", counts.last_step);
  }
  s.incarnation = h.incarnation();
  return s;
}

TEST(BadInputTest, RpcRequests) {
  // The rows the corpus's comments name are the ones this test holds.
  ASSERT_EQ(OwnedKeys(3), (std::vector<uint64_t>{2, 4, 5}));
  auto cases = ReadCases("rpc", 0);
  ASSERT_TRUE(cases.ok()) << cases.status();
  const std::string dir = CategoryDir("rpc");
  for (const Case& c : *cases) {
    SCOPED_TRACE(c.where());
    auto text = ReadAll(dir + "/" + c.name);
    ASSERT_TRUE(text.ok()) << text.status();
    std::unique_ptr<PsHandler> h = RpcHandler();
    ASSERT_NE(h, nullptr);
    const HandlerState before = StateOf(*h);
    absl::Status status;
    if (absl::StartsWith(c.name, "pull_") || c.name == "control_pull.pbtxt") {
      PullRequest request;
      ASSERT_TRUE(
          google::protobuf::TextFormat::ParseFromString(*text, &request))
          << c.where() << ": not a PullRequest";
      PullResponse response;
      status = h->Pull(request, &response);
    } else {
      PushRequest request;
      ASSERT_TRUE(
          google::protobuf::TextFormat::ParseFromString(*text, &request))
          << c.where() << ": not a PushRequest";
      PushResponse response;
      status = h->Push(request, &response);
      EXPECT_FALSE(response.duplicate()) << c.where();
    }
    EXPECT_EQ(Mismatch(c, status), "");
    if (!c.control()) {
      EXPECT_TRUE(StateOf(*h) == before)
          << c.where() << ": the refused request changed the handler";
    }
  }
}

}  // namespace
}  // namespace bad_input
}  // namespace ps

#include "tests/bench/load_honest.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/rpc_security.h"
#include "proto/ps.grpc.pb.h"
#include "tests/testing/wire_requests.h"

namespace ps {
namespace load {

KeyUniverse::KeyUniverse(int64_t size, int num_servers)
    : zipf_(size, bench::kZipfExponent), by_server_(num_servers) {
  keys_.reserve(size);
  index_.reserve(size);
  for (int64_t i = 0; i < size; ++i) {
    const uint64_t key = bench::UniverseKey(static_cast<uint64_t>(i));
    keys_.push_back(key);
    index_[key] = i;
    by_server_[ServerForKey(key, num_servers)].push_back(key);
  }
}

int64_t KeyUniverse::IndexOf(uint64_t key) const {
  auto it = index_.find(key);
  return it == index_.end() ? -1 : it->second;
}

int64_t KeyUniverse::Draw(bool zipf, std::mt19937_64& rng) const {
  if (zipf) return zipf_(rng);
  return std::uniform_int_distribution<int64_t>(0, size() - 1)(rng);
}

namespace {

float MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<float, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

HonestClient::HonestClient(const LoadOptions& options,
                           const KeyUniverse& universe,
                           const std::vector<std::string>& endpoints, int rank,
                           uint64_t seed)
    : options_(options), universe_(universe), rank_(rank), rng_(seed) {
  // Its own connection per server, as a separate worker process has
  // (channels with equal arguments would otherwise share one).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  for (const std::string& endpoint : endpoints) {
    channels_.push_back(RpcSecurity::None()->Channel(endpoint, args));
    stubs_.push_back(PsService::NewStub(channels_.back()));
  }
  result_.k_sum.assign(universe.size(), 0);
  result_.k_abs.assign(universe.size(), 0);
  result_.applied.assign(endpoints.size(), 0);
}

bool HonestClient::Connect(absl::Duration timeout) {
  const auto deadline =
      std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
  for (const auto& channel : channels_) {
    if (!channel->WaitForConnected(deadline)) return false;
  }
  return true;
}

ClientResult HonestClient::Run(const std::atomic<bool>& stop) {
  const int servers = static_cast<int>(stubs_.size());
  std::vector<std::vector<int64_t>> indexes(servers);
  std::vector<std::vector<uint64_t>> keys(servers);
  std::vector<std::vector<int>> multiples(servers);
  int64_t step = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    DrawBatch(&indexes, &keys);
    for (int s = 0; s < servers; ++s) {
      if (!keys[s].empty()) Pull(s, keys[s]);
    }
    ++step;
    for (int s = 0; s < servers; ++s) {
      if (!keys[s].empty()) Push(s, step, indexes[s], keys[s], &multiples[s]);
    }
  }
  return std::move(result_);
}

void HonestClient::DrawBatch(std::vector<std::vector<int64_t>>* indexes,
                             std::vector<std::vector<uint64_t>>* keys) {
  for (auto& v : *indexes) v.clear();
  for (auto& v : *keys) v.clear();
  seen_.clear();
  const int want = static_cast<int>(
      std::min<int64_t>(options_.batch_keys, universe_.size() / 2));
  while (static_cast<int>(seen_.size()) < want) {
    const int64_t i = universe_.Draw(options_.zipf, rng_);
    if (!seen_.insert(i).second) continue;
    const uint64_t key = universe_.key(i);
    const int s = ServerForKey(key, options_.num_servers);
    (*indexes)[s].push_back(i);
    (*keys)[s].push_back(key);
  }
}

void HonestClient::Pull(int server, const std::vector<uint64_t>& keys) {
  PullRequest request =
      SparsePullRequest(/*table=*/0, options_.dim, keys, rank_);
  PullResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(options_.rpc_timeout));
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = stubs_[server]->Pull(&context, request, &response);
  result_.pull_ms.push_back(MillisSince(start));
  ++result_.pulls;
  const size_t want = keys.size() * options_.dim * sizeof(float);
  if (!status.ok()) {
    Error(absl::StrCat("pull from server ", server, ": ", status.error_code(),
                       " ", status.error_message()));
  } else if (response.values().size() != want) {
    Error(absl::StrCat("pull from server ", server, ": ",
                       response.values().size(), " bytes, expected ", want));
  } else {
    result_.keys_pulled += static_cast<int64_t>(keys.size());
  }
}

void HonestClient::Push(int server, int64_t step,
                        const std::vector<int64_t>& indexes,
                        const std::vector<uint64_t>& keys,
                        std::vector<int>* multiples) {
  const int dim = options_.dim;
  multiples->resize(keys.size());
  grads_.resize(keys.size() * dim);
  std::uniform_int_distribution<int> pick(-kMaxMultiple, kMaxMultiple);
  for (size_t j = 0; j < keys.size(); ++j) {
    const int k = pick(rng_);
    (*multiples)[j] = k;
    for (int d = 0; d < dim; ++d) {
      grads_[j * dim + d] = static_cast<float>(k * (d + 1)) * kGradUnit;
    }
  }
  PushRequest request =
      SparsePushRequest(/*table=*/0, dim, keys, grads_, step, rank_);
  PushResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(options_.rpc_timeout));
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = stubs_[server]->Push(&context, request, &response);
  result_.push_ms.push_back(MillisSince(start));
  ++result_.pushes;
  if (!status.ok()) {
    Error(absl::StrCat("push of step ", step, " to server ", server, ": ",
                       status.error_code(), " ", status.error_message()));
    return;
  }
  if (response.duplicate()) {
    Error(absl::StrCat("push of step ", step, " to server ", server,
                       " acknowledged as a repeat (never sent before)"));
    return;
  }
  ++result_.applied[server];
  result_.keys_pushed += static_cast<int64_t>(keys.size());
  for (size_t j = 0; j < keys.size(); ++j) {
    result_.k_sum[indexes[j]] += (*multiples)[j];
    result_.k_abs[indexes[j]] += std::abs((*multiples)[j]);
  }
}

void HonestClient::Error(std::string what) {
  ++result_.errors;
  if (result_.first_errors.size() < 3) {
    result_.first_errors.push_back(absl::StrCat("client ", rank_, ": ", what));
  }
}

}  // namespace load
}  // namespace ps

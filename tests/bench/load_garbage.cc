#include "tests/bench/load_garbage.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/stub_options.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <limits>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/rpc_security.h"
#include "proto/ps.pb.h"
#include "tests/testing/wire_requests.h"

namespace ps {
namespace load {

namespace {

constexpr char kPull[] = "/ps.PsService/Pull";
constexpr char kPush[] = "/ps.PsService/Push";

enum Kind : int {
  kRandomPull,
  kRandomPush,
  kUnknownMethod,
  kPullUnknownTable,
  kPullWrongDim,
  kPullCountPastKeys,
  kPullCountsOverflow,
  kPullForeignKeys,
  kPullRaggedKeys,
  kPullOtherIncarnation,
  kPullTooManyKeys,
  kPushNan,
  kPushInf,
  kPushUnknownTable,
  kPushWrongDim,
  kPushCountPastKeys,
  kPushForeignKeys,
  kPushFewGrads,
  kPushShowsCount,
  kPushDenseSize,
  kPushOtherIncarnation,
  kPushNegativeStep,
  kPushZeroParts,
  kPushMergedPastStep,
  kPushStep2e40,
  kPushStepMax,
  kPushStepRatchet,
  kPushTooManyKeys,
  kNumKinds
};

constexpr const char* kKindNames[] = {
    "random_bytes_pull",
    "random_bytes_push",
    "unknown_method",
    "pull_unknown_table",
    "pull_wrong_dim",
    "pull_count_2^32-1",
    "pull_counts_sum_2^32",
    "pull_foreign_keys",
    "pull_ragged_keys",
    "pull_old_incarnation",
    "pull_too_many_keys",
    "push_nan",
    "push_inf",
    "push_unknown_table",
    "push_wrong_dim",
    "push_count_2^32-1",
    "push_foreign_keys",
    "push_few_grads",
    "push_shows_count",
    "push_dense_size",
    "push_old_incarnation",
    "push_negative_step",
    "push_zero_parts",
    "push_merged_past_step",
    "push_step_2^40",
    "push_step_int64_max",
    "push_step_ratchet",
    "push_too_many_keys",
};
static_assert(std::size(kKindNames) == kNumKinds, "a name for every kind");

bool IsBig(int kind) {
  return kind == kPullTooManyKeys || kind == kPushTooManyKeys;
}

// An incarnation no server has (theirs are random 64-bit ids).
constexpr uint64_t kOtherIncarnation = 0x5EED;
constexpr int kKeysPerRequest = 16;

grpc::ByteBuffer Body(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

grpc::ByteBuffer Body(const google::protobuf::Message& message) {
  return Body(message.SerializeAsString());
}

}  // namespace

GarbageClient::GarbageClient(const LoadOptions& load,
                             const GarbageOptions& options,
                             const KeyUniverse& universe,
                             const std::vector<std::string>& endpoints)
    : load_(load),
      options_(options),
      universe_(universe),
      ratchet_(new std::atomic<int64_t>[endpoints.size()]()) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // An oversized pull a server answers must arrive, to be counted accepted.
  args.SetMaxReceiveMessageSize(-1);
  for (const std::string& endpoint : endpoints) {
    channels_.push_back(RpcSecurity::None()->Channel(endpoint, args));
    stubs_.push_back(std::make_unique<grpc::GenericStub>(channels_.back()));
  }
  if (!options_.big) return;
  const int64_t n = options_.max_keys_per_request + 1;
  for (int s = 0; s < static_cast<int>(endpoints.size()); ++s) {
    const std::vector<uint64_t>& own = universe_.KeysOf(s);
    std::vector<uint64_t> keys(n);
    for (int64_t i = 0; i < n; ++i) keys[i] = own[i % own.size()];
    big_pull_.push_back(
        Body(SparsePullRequest(0, load_.dim, keys, options_.rank)));
    std::vector<float> zeros(static_cast<size_t>(n) * load_.dim, 0.0f);
    PushRequest tail = SparsePushRequest(0, load_.dim, keys, zeros, 0);
    tail.clear_header();
    big_push_tail_.emplace_back(tail.SerializeAsString());
  }
}

bool GarbageClient::Connect(absl::Duration timeout) {
  const auto deadline =
      std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
  for (const auto& channel : channels_) {
    if (!channel->WaitForConnected(deadline)) return false;
  }
  return true;
}

std::vector<uint64_t> GarbageClient::OwnKeys(int server,
                                             std::mt19937_64& rng) const {
  const std::vector<uint64_t>& own = universe_.KeysOf(server);
  const size_t at = rng() % (own.size() - kKeysPerRequest);
  return {own.begin() + at, own.begin() + at + kKeysPerRequest};
}

std::vector<uint64_t> GarbageClient::ForeignKeys(int server,
                                                 std::mt19937_64& rng) const {
  return OwnKeys((server + 1) % static_cast<int>(stubs_.size()), rng);
}

grpc::ByteBuffer GarbageClient::RandomBody(bool push,
                                           std::mt19937_64& rng) const {
  std::string bytes;
  while (true) {
    bytes.resize(rng() % 1025);
    for (char& c : bytes) c = static_cast<char>(rng());
    PushRequest parsed;
    if (!push || !parsed.ParseFromString(bytes) ||
        parsed.header().worker_rank() < 0 ||
        parsed.header().worker_rank() >= options_.honest_clients) {
      return Body(bytes);
    }
  }
}

GarbageClient::Call GarbageClient::Make(int kind, int server, int64_t step,
                                        std::mt19937_64& rng) const {
  const int dim = load_.dim;
  const int rank = options_.rank;
  switch (kind) {
    case kRandomPull:
      return {kPull, RandomBody(false, rng)};
    case kRandomPush:
      return {kPush, RandomBody(true, rng)};
    case kUnknownMethod:
      return {"/ps.PsService/Nope", RandomBody(false, rng)};
    case kPullTooManyKeys:
      return {kPull, big_pull_[server]};
    case kPushTooManyKeys: {
      PushRequest head;
      head.mutable_header()->set_worker_rank(rank);
      head.mutable_header()->set_step(step);
      grpc::Slice slices[2] = {grpc::Slice(head.SerializeAsString()),
                               big_push_tail_[server]};
      return {kPush, grpc::ByteBuffer(slices, 2)};
    }
    default:
      break;
  }
  const std::vector<uint64_t> keys =
      kind == kPullForeignKeys || kind == kPushForeignKeys
          ? ForeignKeys(server, rng)
          : OwnKeys(server, rng);
  if (kind < kPushNan) {
    PullRequest r = SparsePullRequest(0, dim, keys, rank);
    SparseSegment* seg = r.mutable_sparse(0);
    switch (kind) {
      case kPullUnknownTable:
        seg->set_table_id(7);
        break;
      case kPullWrongDim:
        seg->set_dim(dim + 1);
        break;
      case kPullCountPastKeys:
        seg->set_num_keys(std::numeric_limits<uint32_t>::max());
        break;
      case kPullCountsOverflow:
        seg->set_num_keys(uint32_t{1} << 31);
        *r.add_sparse() = *seg;
        r.clear_keys();
        break;
      case kPullRaggedKeys:
        r.mutable_keys()->append("\x01\x02\x03", 3);
        break;
      case kPullOtherIncarnation:
        r.mutable_header()->set_server_incarnation(kOtherIncarnation);
        break;
      default:  // kPullForeignKeys: as built
        break;
    }
    return {kPull, Body(r)};
  }
  // Pushes the servers must refuse carry gradients that would show in the
  // conservation check if applied; those of bounds a server may lack
  // (steps far ahead) carry zeros.
  std::vector<float> grads(keys.size() * dim, 1.0f);
  if (kind == kPushStep2e40 || kind == kPushStepMax ||
      kind == kPushStepRatchet) {
    std::fill(grads.begin(), grads.end(), 0.0f);
  }
  if (kind == kPushNan || kind == kPushInf) {
    grads[rng() % grads.size()] = kind == kPushNan
                                      ? std::nanf("")
                                      : std::numeric_limits<float>::infinity();
  }
  PushRequest r = SparsePushRequest(0, dim, keys, grads, step, rank);
  SparseSegment* seg = r.mutable_sparse(0);
  switch (kind) {
    case kPushUnknownTable:
      seg->set_table_id(9);
      break;
    case kPushWrongDim:
      seg->set_dim(2 * dim);
      r.mutable_grads()->append(std::string(r.grads()));
      break;
    case kPushCountPastKeys:
      seg->set_num_keys(std::numeric_limits<uint32_t>::max());
      break;
    case kPushFewGrads:
      r.mutable_grads()->resize(r.grads().size() - sizeof(float));
      break;
    case kPushShowsCount:
      r.set_shows(Pack<float>(std::vector<float>(keys.size() - 1, 1.0f)));
      break;
    case kPushDenseSize: {
      DenseSegment* dense = r.add_dense();
      dense->set_table_id(0);
      dense->set_num_values(uint64_t{1} << 40);
      r.set_dense_grads(Pack<float>(std::vector<float>(4, 1.0f)));
      break;
    }
    case kPushOtherIncarnation:
      r.mutable_header()->set_server_incarnation(kOtherIncarnation);
      break;
    case kPushNegativeStep:
      r.mutable_header()->set_step(-step);
      break;
    case kPushZeroParts:
      r.set_parts(0);
      break;
    case kPushMergedPastStep:
      r.set_merged_steps(static_cast<uint32_t>(step % 1000 + 1));
      r.mutable_header()->set_step(step % 1000);
      break;
    case kPushStep2e40:
      r.mutable_header()->set_step((int64_t{1} << 40) + step);
      break;
    case kPushStepMax:
      r.mutable_header()->set_step(std::numeric_limits<int64_t>::max() - step);
      break;
    case kPushStepRatchet: {
      const int64_t to = ratchet_[server].load() + options_.max_step_jump;
      r.mutable_header()->set_step(to);
      return {kPush, Body(r), to};
    }
    default:  // kPushNan, kPushInf, kPushForeignKeys: as built
      break;
  }
  return {kPush, Body(r)};
}

void GarbageClient::Loop(int thread, const std::atomic<bool>& stop,
                         GarbageResult* out) {
  std::mt19937_64 rng(0x6A7BA6E + thread);
  const int servers = static_cast<int>(stubs_.size());
  int kind = thread * 7;
  while (!stop.load(std::memory_order_relaxed)) {
    kind = (kind + 1) % kNumKinds;
    if (IsBig(kind) && !options_.big) continue;
    const int server = static_cast<int>(rng() % servers);
    Call call = Make(kind, server, next_step_.fetch_add(1), rng);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMilliseconds(load_.rpc_timeout));
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Notification done;
    stubs_[server]->UnaryCall(&context, call.method, grpc::StubOptions(),
                              &call.body, &response, [&](grpc::Status s) {
                                status = std::move(s);
                                done.Notify();
                              });
    done.WaitForNotification();
    ++out->requests;
    if (status.ok() && call.ratchet_step >= 0) {
      int64_t at = ratchet_[server].load();
      while (at < call.ratchet_step &&
             !ratchet_[server].compare_exchange_weak(at, call.ratchet_step)) {
      }
    }
    GarbageKindResult& k = out->by_kind[kKindNames[kind]];
    ++k.requests;
    k.accepted += status.ok() ? 1 : 0;
    const std::string code = absl::StatusCodeToString(
        static_cast<absl::StatusCode>(status.error_code()));
    ++out->by_code[code];
    if (!status.ok() && k.first_refusal.empty()) {
      k.first_refusal =
          absl::StrCat(code, ": ", status.error_message().substr(0, 300));
    }
  }
}

GarbageResult GarbageClient::Run(const std::atomic<bool>& stop) {
  std::vector<GarbageResult> parts(options_.threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < options_.threads; ++t) {
    threads.emplace_back(
        [this, t, &stop, &parts] { Loop(t, stop, &parts[t]); });
  }
  for (std::thread& t : threads) t.join();
  GarbageResult all;
  for (const GarbageResult& p : parts) {
    all.requests += p.requests;
    for (const auto& [name, k] : p.by_kind) {
      all.by_kind[name].requests += k.requests;
      all.by_kind[name].accepted += k.accepted;
      if (all.by_kind[name].first_refusal.empty()) {
        all.by_kind[name].first_refusal = k.first_refusal;
      }
    }
    for (const auto& [code, n] : p.by_code) all.by_code[code] += n;
  }
  return all;
}

}  // namespace load
}  // namespace ps

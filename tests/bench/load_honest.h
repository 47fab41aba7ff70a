// The honest clients of the load benchmark (tests/bench/load_bench.cc).
//
// Each client is a worker of its own: its own rank, step counter, and gRPC
// channel and PsService stub per server. It loops: draw a batch of distinct
// keys from a fixed universe, split it by ServerForKey, Pull the rows from
// each server, then Push gradients for the same keys at the next step, until
// told to stop. Every call is timed.
//
// Gradients are exact in float: the gradient of a key at dim d is
// k * (d + 1) * 2^-10 for a small integer k drawn per key and push, so every
// partial sum on a server is exact while the sum of |k| over a key's pushes
// times dim stays below 2^24 (LoadCheck verifies that bound). A client
// records, per key, the sum of the k it pushed and the servers acknowledged;
// with SGD at learning rate lr from zero rows, a server's row of a key must
// then be exactly -lr * (sum over clients) * (d + 1) * 2^-10 at dim d.
//
// HonestClient is not thread-safe: one thread per client. KeyUniverse is
// immutable after construction and shared by every thread.
#ifndef PS_TESTS_BENCH_LOAD_HONEST_H_
#define PS_TESTS_BENCH_LOAD_HONEST_H_

#include <grpcpp/channel.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "proto/ps.grpc.pb.h"
#include "tests/bench/bench_keys.h"

namespace ps {
namespace load {

// The unit of every gradient (2^-10).
inline constexpr float kGradUnit = 1.0f / 1024;
// Gradient multiples are drawn from [-kMaxMultiple, kMaxMultiple].
inline constexpr int kMaxMultiple = 4;

struct LoadOptions {
  int num_servers = 2;
  int dim = 8;                // the table's row width
  int64_t universe = 100000;  // keys the clients draw from
  int batch_keys = 128;       // distinct keys per step, all servers
  bool zipf = true;           // Zipf(1.1) over key ranks; else uniform
  absl::Duration rpc_timeout = absl::Seconds(30);
};

// The keys the clients use: key i is bench::UniverseKey(i).
class KeyUniverse {
 public:
  KeyUniverse(int64_t size, int num_servers);

  int64_t size() const { return static_cast<int64_t>(keys_.size()); }
  uint64_t key(int64_t index) const { return keys_[index]; }
  // The index of `key`, or -1 when it is not in the universe.
  int64_t IndexOf(uint64_t key) const;
  // The universe's keys that server `server` holds.
  const std::vector<uint64_t>& KeysOf(int server) const {
    return by_server_[server];
  }
  // A random index: Zipf(bench::kZipfExponent) over ranks, or uniform.
  int64_t Draw(bool zipf, std::mt19937_64& rng) const;

 private:
  bench::ZipfSampler zipf_;
  std::vector<uint64_t> keys_;
  absl::flat_hash_map<uint64_t, int64_t> index_;
  std::vector<std::vector<uint64_t>> by_server_;
};

// What one client did.
struct ClientResult {
  int64_t pulls = 0;
  int64_t pushes = 0;
  int64_t keys_pulled = 0;
  int64_t keys_pushed = 0;
  // Calls answered with a non-OK status or a malformed answer, and pushes
  // acknowledged as repeats (each push of a client has a new step).
  int64_t errors = 0;
  std::vector<std::string> first_errors;  // up to 3
  std::vector<float> pull_ms;             // per call
  std::vector<float> push_ms;
  // Per universe index: the sum of the multiples k this client pushed and
  // the servers acknowledged, and the sum of |k|.
  std::vector<int32_t> k_sum;
  std::vector<int32_t> k_abs;
  // Per server: the pushes it acknowledged as applied.
  std::vector<int64_t> applied;
};

// Client `rank` against `endpoints` (by server rank); `seed` makes its keys
// and gradients reproducible.
class HonestClient {
 public:
  HonestClient(const LoadOptions& options, const KeyUniverse& universe,
               const std::vector<std::string>& endpoints, int rank,
               uint64_t seed);

  // Waits until every channel is connected; false after `timeout`.
  bool Connect(absl::Duration timeout);
  // Pulls and pushes until `stop` is set. REQUIRES: called once.
  ClientResult Run(const std::atomic<bool>& stop);

 private:
  // A batch of distinct keys, split by server.
  void DrawBatch(std::vector<std::vector<int64_t>>* indexes,
                 std::vector<std::vector<uint64_t>>* keys);
  void Pull(int server, const std::vector<uint64_t>& keys);
  void Push(int server, int64_t step, const std::vector<int64_t>& indexes,
            const std::vector<uint64_t>& keys, std::vector<int>* multiples);
  void Error(std::string what);

  const LoadOptions& options_;
  const KeyUniverse& universe_;
  const int rank_;
  std::mt19937_64 rng_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<PsService::Stub>> stubs_;
  absl::flat_hash_set<int64_t> seen_;
  std::vector<float> grads_;
  ClientResult result_;
};

}  // namespace load
}  // namespace ps

#endif  // PS_TESTS_BENCH_LOAD_HONEST_H_

// The hostile client of the load benchmark (tests/bench/load_bench.cc): one
// client (one gRPC channel per server) whose threads send, back to back,
// requests no worker sends, through grpc::GenericStub so that any bytes can
// go out:
//  - random bytes as the body of /ps.PsService/Pull and /Push, and calls of
//    a method the service does not have;
//  - well-formed requests with one thing wrong each: an unknown table, a
//    wrong dim, keys of the other server, a key count that does not match
//    the keys (up to 2^32 - 1, or two segments summing past it), packed
//    bytes of a ragged length, NaN or Inf gradients, too few gradients,
//    shows of another count, a dense segment of the wrong size, another
//    server incarnation, a negative step, zero parts, more merged steps
//    than the step, steps far ahead (2^40 and INT64_MAX), and, with
//    `big`, one more key than the servers' max_keys_per_request (repeating
//    the server's keys: a pull of 4 M keys, a push of 4 M zero gradients);
//  - and one valid kind: pushes that each move the server's step as far as
//    max_step_jump allows ("push_step_ratchet").
//
// The step-ahead, ratchet and oversized pushes carry zero gradients, so
// that a server that applies them changes no row and the honest clients'
// conservation check still holds; the counts of accepted requests per kind
// show which bounds a server lacks.
//
// Its well-formed requests name worker rank options.rank. A random body
// that parses as a push naming an honest client's rank is drawn again:
// impersonating a worker is what the auth token prevents, not what this
// client tests.
//
// GarbageClient::Run is called once, from one thread; it starts its own.
#ifndef PS_TESTS_BENCH_LOAD_GARBAGE_H_
#define PS_TESTS_BENCH_LOAD_GARBAGE_H_

#include <grpcpp/channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tests/bench/load_honest.h"

namespace ps {
namespace load {

struct GarbageOptions {
  int threads = 4;  // calls in flight at once
  // The worker rank on its well-formed requests; ranks below
  // honest_clients are the honest clients'.
  int rank = 64;
  int honest_clients = 64;
  // Also the requests of max_keys_per_request + 1 keys (about 34 MB for a
  // pull, 168 MB for a push of dim 8).
  bool big = true;
  // The servers' bound (cluster.limits.max_keys_per_request, default).
  int64_t max_keys_per_request = int64_t{1} << 22;
  // The servers' cluster.limits.max_step_jump (default).
  int64_t max_step_jump = 1000000;
};

struct GarbageKindResult {
  int64_t requests = 0;
  int64_t accepted = 0;       // answered OK
  std::string first_refusal;  // "CODE: message" of the first refusal
};

struct GarbageResult {
  int64_t requests = 0;
  std::map<std::string, GarbageKindResult> by_kind;
  std::map<std::string, int64_t> by_code;  // gRPC status code name -> calls
};

class GarbageClient {
 public:
  GarbageClient(const LoadOptions& load, const GarbageOptions& options,
                const KeyUniverse& universe,
                const std::vector<std::string>& endpoints);

  // Waits until every channel is connected; false after `timeout`.
  bool Connect(absl::Duration timeout);
  // Sends garbage from options.threads threads until `stop` is set.
  GarbageResult Run(const std::atomic<bool>& stop);

 private:
  struct Call {
    std::string method;
    grpc::ByteBuffer body;
    int64_t ratchet_step = -1;  // a ratchet push's step
  };
  // The `kind`-th request for `server`; `step` numbers the pushes.
  Call Make(int kind, int server, int64_t step, std::mt19937_64& rng) const;
  // A random body; for pushes, never one naming an honest client's rank.
  grpc::ByteBuffer RandomBody(bool push, std::mt19937_64& rng) const;
  // Some of `server`'s keys, and of the other server's.
  std::vector<uint64_t> OwnKeys(int server, std::mt19937_64& rng) const;
  std::vector<uint64_t> ForeignKeys(int server, std::mt19937_64& rng) const;
  void Loop(int thread, const std::atomic<bool>& stop, GarbageResult* out);

  const LoadOptions& load_;
  const GarbageOptions options_;
  const KeyUniverse& universe_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  // Per server, with options.big: the oversized pull and the oversized
  // push's fields after its header (a call prepends a header of its own).
  std::vector<grpc::ByteBuffer> big_pull_;
  std::vector<grpc::Slice> big_push_tail_;
  std::atomic<int64_t> next_step_{1};
  // Per server: the step of its last ratchet push answered OK.
  std::unique_ptr<std::atomic<int64_t>[]> ratchet_;
};

}  // namespace load
}  // namespace ps

#endif  // PS_TESTS_BENCH_LOAD_GARBAGE_H_

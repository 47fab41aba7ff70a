// A worker's connection to every parameter server and to the coordinator.
//
// Sparse pulls and pushes are split by owning server (common/hash.h
// ServerForKey) into one request per server, sent to all servers in
// parallel. Pushes are asynchronous: PushAsync returns once the requests are
// sent; WaitPushes(n) blocks until at most n pushes are in flight and returns
// the first error any finished push had. Errors name the server and its
// endpoint. Pull/Push calls come from one thread; the coordinator calls may
// come from others (the heartbeat thread, say).
//
// A server that does not answer (UNAVAILABLE: gone, refusing connections)
// is retried with backoff (worker/client/retry.h: 100 ms doubling up to 5 s)
// for up to server_retry_sec, with a WARNING naming the server, by pulls,
// pushes (the failed RPC is re-sent; the push still counts once) and
// coordinator calls except Heartbeat; after that the call fails with
// UNAVAILABLE naming the server. Other errors are not retried. A push a server
// applied but could not acknowledge before it died is applied again by the
// re-send.
#ifndef PS_WORKER_CLIENT_PS_CLIENT_H_
#define PS_WORKER_CLIENT_PS_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model_spec.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"

namespace ps {

struct PsClientOptions {
  std::vector<std::string> servers;
  int worker_rank = 0;
  int num_workers = 1;
  int64_t max_message_bytes = 256 << 20;
  int rpc_timeout_ms = 60000;
  // How long Connect waits for every server to accept connections.
  int connect_timeout_sec = 60;
  // How long a call keeps retrying a server that does not answer, from its
  // first failure; 0: no retries. Default: 300.
  int server_retry_sec = 300;
  // TLS and the auth token (loaded by Connect as a client: its errors are
  // Connect's). Default: none.
  SecurityConfig security;
  // The colocated fast path (common/local_socket.h): servers whose address
  // is a loopback one are reached through their Unix-domain socket in this
  // folder instead of TCP. "" (default): TCP to every server.
  std::string local_socket_dir;

  static PsClientOptions FromConfig(const JobConfig& config, int worker_rank);
};

// What the coordinator answers a registering worker.
struct ResumeInfo {
  // Where to continue (the job resumed from a checkpoint, or this worker
  // rejoins after a restart); unset: from the beginning.
  std::optional<DataPosition> position;
  int64_t step = 0;          // the step counter to continue from
  std::string resumed_from;  // the checkpoint folder; "" when none
  int64_t generation = 0;    // job-wide rollbacks before this registration
};

// Whether `status` means the job must roll back: a server restarted (its
// answer came from, or it refused a request for, another incarnation), or
// refused a push that overlaps one applied from an earlier run of this
// worker.
bool IsServerRestart(const absl::Status& status);
// Whether `status` ended a call because the job rolls (or rolled) back.
bool IsRollback(const absl::Status& status);
// Whether the coordinator refused a call because it declared this worker
// dead (silent past worker_timeout_ms): it must register again, as a
// restarted worker.
bool IsFenced(const absl::Status& status);

struct StepGateResult {
  int64_t slowest_step = 0;
  // > 0: a checkpoint round is open; arrive with this id at the next step
  // boundary.
  int64_t checkpoint_pending = 0;
};

// One sparse table's part of a pull: values (keys.size() * dim floats)
// receive the rows of `keys` in table `table`.
struct SparsePull {
  uint32_t table = 0;
  int dim = 0;
  absl::Span<const uint64_t> keys;
  absl::Span<float> values;
};

// The dense table of a combined pull (PsClient::PullSparseAndDense): the
// whole vector of `table`, laid out by `blocks`, into `out` (blocks->size
// floats).
struct DensePull {
  uint32_t table = 0;
  const DenseBlocks* blocks = nullptr;
  absl::Span<float> out;
};

// One sparse table's part of a push: the gradients (or GEO deltas) of its
// distinct `keys` (keys.size() * dim floats); shows / clicks: per key, the
// examples holding it and the positive ones among them (empty: the servers
// count 1 show, 0 clicks; sent only when every table of the push has them).
struct SparsePush {
  uint32_t table = 0;
  int dim = 0;
  absl::Span<const uint64_t> keys;
  absl::Span<const float> values;
  absl::Span<const float> shows;
  absl::Span<const float> clicks;
};

class PsClient {
 public:
  // Connects to every server, waiting up to connect_timeout_sec; Unavailable
  // naming the servers that did not answer.
  static absl::StatusOr<std::unique_ptr<PsClient>> Connect(
      const PsClientOptions& options);
  virtual ~PsClient() = default;

  virtual int num_servers() const = 0;

  // Pulls the rows of several sparse tables at once: one request per server
  // carries every table's keys it owns (several requests when they exceed
  // the chunk limits of key_chunks.h). Rows are created on the servers if
  // new. InvalidArgument when a table's values do not hold keys x dim
  // floats.
  virtual absl::Status PullSparse(absl::Span<const SparsePull> tables,
                                  int64_t step) = 0;
  // values (keys.size() * dim floats) = rows of `keys` in sparse table
  // `table`.
  absl::Status PullSparse(uint32_t table, int dim,
                          absl::Span<const uint64_t> keys,
                          absl::Span<float> values, int64_t step) {
    const SparsePull pull{table, dim, keys, values};
    return PullSparse(absl::MakeConstSpan(&pull, 1), step);
  }
  // PullSparse and PullDense in one: the dense table travels in the requests
  // of the rows (a server owning none of the keys gets one for its dense
  // blocks alone), so both cost one round trip per server instead of two.
  // The errors of both. Default: the two calls one after the other.
  virtual absl::Status PullSparseAndDense(absl::Span<const SparsePull> tables,
                                          const DensePull& dense,
                                          int64_t step) {
    absl::Status sparse = PullSparse(tables, step);
    if (!sparse.ok()) return sparse;
    return PullDense(dense.table, *dense.blocks, dense.out, step);
  }

  // Sends the gradients of several sparse tables and of the dense table
  // (`dense_grad`, the whole vector laid out by `blocks`; empty to skip) as
  // one asynchronous push, one request per server (or more past the chunk
  // limits). The spans are copied.
  virtual void PushAsync(absl::Span<const SparsePush> tables,
                         uint32_t dense_table, const DenseBlocks& blocks,
                         absl::Span<const float> dense_grad, int64_t step) = 0;
  // One sparse table's gradients of distinct `keys` (keys.size() * dim
  // floats), as above.
  void PushAsync(uint32_t sparse_table, int dim,
                 absl::Span<const uint64_t> keys, absl::Span<const float> grads,
                 uint32_t dense_table, const DenseBlocks& blocks,
                 absl::Span<const float> dense_grad, int64_t step,
                 absl::Span<const float> shows = {},
                 absl::Span<const float> clicks = {}) {
    const SparsePush push{sparse_table, dim, keys, grads, shows, clicks};
    PushAsync(absl::MakeConstSpan(&push, 1), dense_table, blocks, dense_grad,
              step);
  }
  // As PushAsync, for GEO: the values are parameter deltas that the servers
  // add to the rows and to the dense table as they are.
  virtual void PushDeltasAsync(absl::Span<const SparsePush> tables,
                               uint32_t dense_table, const DenseBlocks& blocks,
                               absl::Span<const float> dense_delta,
                               int64_t step) = 0;
  void PushDeltasAsync(uint32_t sparse_table, int dim,
                       absl::Span<const uint64_t> keys,
                       absl::Span<const float> deltas, uint32_t dense_table,
                       const DenseBlocks& blocks,
                       absl::Span<const float> dense_delta, int64_t step) {
    const SparsePush push{sparse_table, dim, keys, deltas, {}, {}};
    PushDeltasAsync(absl::MakeConstSpan(&push, 1), dense_table, blocks,
                    dense_delta, step);
  }
  // Blocks until at most `max_in_flight` pushes are in flight. Returns the
  // first error any push had; once a push failed, every later call returns
  // that error (the worker must stop: an update was lost).
  virtual absl::Status WaitPushes(int max_in_flight) = 0;
  // Pushes sent and not yet answered.
  virtual int InFlightPushes() = 0;

  // out (blocks.size floats) = the whole dense table, gathered from all
  // servers.
  virtual absl::Status PullDense(uint32_t table, const DenseBlocks& blocks,
                                 absl::Span<float> out, int64_t step) = 0;

  // Coordinator (server 0).
  // Registers this worker; FailedPrecondition when the coordinator's server
  // count differs from the config's. Waits up to connect_timeout_sec for
  // server 0.
  virtual absl::StatusOr<ResumeInfo> Register() = 0;
  // Tells the coordinator this worker is alive at `step` (one attempt, no
  // retries: the caller beats again). Returns the open checkpoint round's
  // id, 0 when none.
  virtual absl::StatusOr<int64_t> Heartbeat(int64_t step) = 0;
  // This worker is at a checkpoint cut: `step` steps done, every push of
  // them acknowledged, `position` where its next example is. checkpoint_id:
  // the pending id from Heartbeat / StepGate, or 0 for a checkpoint that
  // checkpoint.every_steps schedules at `step`. Blocks (up to an hour) until
  // the checkpoint is complete; returns its folder.
  virtual absl::StatusOr<std::string> CheckpointArrive(
      int64_t step, const DataPosition& position, int64_t checkpoint_id) = 0;
  // Blocks (up to an hour) until every worker reached barrier `name`;
  // returns whether all workers arrived with has_more == false. `step` and
  // `position`: where this worker stands (its pushes all acknowledged), for
  // a checkpoint taken while it waits.
  virtual absl::StatusOr<bool> Barrier(const std::string& name, bool has_more,
                                       int64_t step,
                                       const DataPosition& position) = 0;
  absl::StatusOr<bool> Barrier(const std::string& name, bool has_more) {
    return Barrier(name, has_more, 0, DataPosition());
  }
  // This worker is done: `status` "ok" or the error that ended it; `step`
  // and `position` where it ended.
  virtual absl::Status Finish(int64_t examples, const std::string& status,
                              int64_t step, const DataPosition& position) = 0;
  absl::Status Finish(int64_t examples, const std::string& status) {
    return Finish(examples, status, 0, DataPosition());
  }
  // A server restarted (`reason`): asks the coordinator to roll the job back
  // to its newest checkpoint, unless it did since `generation`; returns the
  // new generation once every server reloaded. The worker then registers
  // again. Default: Unimplemented.
  virtual absl::StatusOr<int64_t> Recover(int64_t generation,
                                          const std::string& reason) {
    return absl::UnimplementedError("Recover");
  }
  // After Finish: blocks until the job ends (false) or rolls back (true:
  // register again and train on). A coordinator that is gone counts as the
  // end. Default: false at once.
  virtual absl::StatusOr<bool> WaitJobEnd(int64_t generation) { return false; }
  // BOUNDED mode: blocks (up to an hour) until `step` is at most `staleness`
  // steps ahead of every worker that still has data (or a checkpoint round
  // is open). done = true: this worker has no more data and holds nobody
  // back.
  virtual absl::StatusOr<StepGateResult> StepGate(int64_t step, bool done,
                                                  int staleness) = 0;
};

}  // namespace ps

#endif  // PS_WORKER_CLIENT_PS_CLIENT_H_

// The data-plane logic of one parameter server, free of gRPC: owns this
// server's shard of every sparse table and its blocks of every dense table,
// and validates and applies requests. Sparse table t is
// config.sparse_tables(t); dense table 0 holds the model's dense parameters
// (common/model_spec.h).
//
// Every request is checked before anything is applied: an unknown table, a
// payload whose size does not match, a key that belongs to another server or
// a non-finite gradient gives InvalidArgument naming the table and the sizes;
// a request that expects another incarnation of this server gives
// FailedPrecondition. Pushes are applied exactly once (push_ledger.h).
// All methods are thread-safe.
#ifndef PS_SERVER_SERVICE_PS_HANDLER_H_
#define PS_SERVER_SERVICE_PS_HANDLER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/thread_pool.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "proto/ps.pb.h"
#include "server/service/push_ledger.h"
#include "server/storage/record_log.h"
#include "server/table/dense_table.h"
#include "server/table/sparse_table.h"

namespace ps {

// A verified checkpoint to restore the tables from (common/checkpoint.h).
struct RestoreFrom {
  std::string dir;
  Manifest manifest;
};

class PsHandler {
 public:
  // REQUIRES: config validated. InvalidArgument when rank is out of range.
  // With `restore`, every table starts as the checkpoint holds it: sparse
  // rows (resharded when the checkpoint has another server count: each
  // server keeps the rows ServerForKey routes to it), dense values and all
  // optimizer state; a TIERED table's RocksDB directory is replaced (and
  // left as it was when the restore fails). Errors name the checkpoint file
  // and the problem.
  // `incarnation`: the server's incarnation; 0 picks a new random one.
  static absl::StatusOr<std::unique_ptr<PsHandler>> Create(
      const JobConfig& config, int rank, const RestoreFrom* restore = nullptr,
      uint64_t incarnation = 0);

  // Durable pushes (durability.wal). Replays every record of `log` (pushes
  // this server acknowledged since the state it was created from) through
  // Push, the ledger skipping those that state holds, then appends every
  // push it applies to `log` before acknowledging it. At each
  // SaveCheckpoint the checkpoint becomes the log's base (WalBase, written
  // atomically to `base_path`) and the log starts afresh. REQUIRES: called
  // once, before serving. DataLoss naming the record for a log that does not
  // replay.
  absl::Status AttachWal(std::unique_ptr<RecordLog> log, std::string base_path);
  // Writes `base` to `path` atomically.
  static absl::Status WriteWalBase(const std::string& path,
                                   const WalBase& base);
  // Reads a WalBase; NotFound when there is none.
  static absl::StatusOr<WalBase> ReadWalBase(const std::string& path);

  int rank() const { return rank_; }
  int num_servers() const { return num_servers_; }

  // Chosen at random by Create (nonzero); in every response header.
  uint64_t incarnation() const { return incarnation_.load(); }

  // A job-wide rollback: replaces every table by its state in `restore`
  // (fresh tables when null), with an empty push ledger, and takes a new
  // incarnation, so requests made against the old state are refused.
  // Requests wait meanwhile. On error the server holds no tables (every
  // request fails naming the table) and the error names the checkpoint.
  absl::Status Reload(const RestoreFrom* restore);

  // Rows of every sparse segment (created if new) and this server's blocks
  // of every dense table requested.
  absl::Status Pull(const PullRequest& request, PullResponse* response);
  // Applies the push unless this server applied (worker, step, part)
  // before: then response->duplicate() is set and nothing is applied.
  // `cancelled` (may be empty) is asked once the push is claimed and
  // checked, before anything is applied: when it returns true the result is
  // Cancelled and nothing is applied (the client gave up on the call and
  // may re-send it).
  absl::Status Push(const PushRequest& request, PushResponse* response,
                    const std::function<bool()>& cancelled = nullptr);

  // Shrinks the named tables (every table when none is named), logging what
  // each removed. NotFound naming an unknown table (nothing shrunk then).
  absl::Status Shrink(const ShrinkRequest& request, ShrinkResponse* response);

  // Writes this server's tables into checkpoint folder request.dir (under
  // server-<rank>/) and lists the files with sizes and checksums. Pulls and
  // pushes wait meanwhile, so the files are one consistent state. The folder
  // must be under the job's checkpoint.dir (CheckpointFolder); files are
  // created without following symbolic links. FailedPrecondition naming the
  // table and key when a row is not finite (nothing is committed then).
  absl::Status SaveCheckpoint(const SaveCheckpointRequest& request,
                              SaveCheckpointResponse* response);
  // `dir` (relative to checkpoint.dir, or absolute) resolved, symbolic links
  // included, when it is a folder under the job's checkpoint.dir:
  // PermissionDenied naming both when it is not (or is the root itself),
  // FailedPrecondition when the job has no checkpoint.dir.
  absl::StatusOr<std::string> CheckpointFolder(const std::string& dir) const;
  // A folder a Reload may read: the checkpoint this server was created from
  // (which --resume_from may have named anywhere), or else CheckpointFolder.
  absl::StatusOr<std::string> ReloadFolder(const std::string& dir) const;

  // Rows stored per sparse table, for logs and tests (TIERED: approximate).
  std::vector<int64_t> SparseRows() const;
  // The exact number of rows of sparse table `table` (a scan of every tier).
  absl::StatusOr<int64_t> ExactRows(size_t table) const;
  // Every stored row of sparse table `table` by key, whole (weights, then
  // the rule's state and accessor counters), and this server's blocks of
  // dense table `table`: for tests and tools comparing two servers' states.
  absl::StatusOr<std::map<uint64_t, std::vector<float>>> DumpSparse(
      size_t table) const;
  absl::StatusOr<std::vector<float>> DumpDense(size_t table) const;
  // The accepted push requests of worker `rank` (zeros when none).
  PushCounts PushCountsOf(int rank) const;
  // The accepted push requests of every worker that pushed, by rank.
  std::map<int, PushCounts> AllPushCounts() const;

  // Fills `response` (cleared first) with a snapshot of every table's
  // counters and the push counts. Takes the tables' locks briefly; never
  // reads the disk beyond RocksDB's key estimate.
  void Stats(StatsResponse* response) const;

 private:
  PsHandler(int rank, int num_servers, uint64_t incarnation)
      : rank_(rank), num_servers_(num_servers), incarnation_(incarnation) {}

  // Creates every table of config_ (from `restore` when not null) and an
  // empty ledger. REQUIRES: apply_mu_ held exclusively, no tables.
  // When a restore fails, the TIERED tables' live RocksDB folders are as
  // they were before it (and no table is open).
  absl::Status BuildTables(const RestoreFrom* restore);
  // BuildTables' work. A restore moves each TIERED table's live RocksDB
  // folder aside (if any) before replacing it and appends the folder to
  // `set_aside`: when the restore fails, BuildTables removes the new folders
  // and puts the old ones back; when it succeeds, deletes the old ones.
  absl::Status BuildTablesMovingAside(const RestoreFrom* restore,
                                      std::vector<std::string>* set_aside);

  absl::StatusOr<SparseTable*> FindSparse(uint32_t table_id) const;
  absl::StatusOr<DenseTable*> FindDense(uint32_t table_id) const;
  absl::Status CheckKeysOwned(const SparseTable& table,
                              absl::Span<const uint64_t> keys) const;
  // ResourceExhausted when `keys` passes cluster.limits.max_keys_per_request.
  absl::Status CheckKeyCount(size_t keys, absl::string_view what) const;
  // FailedPrecondition when `header` expects another incarnation.
  absl::Status CheckIncarnation(const RequestHeader& header) const;
  void FillHeader(ResponseHeader* header) const;
  // Applies a checked push (every table, then the scheduled shrinks).
  struct CheckedPush;
  absl::Status CheckPush(const PushRequest& request, CheckedPush* out) const;
  // The sparse and the dense segments of a push (CheckPush's parts).
  absl::Status CheckSparsePush(const PushRequest& request,
                               CheckedPush* out) const;
  absl::Status CheckDensePush(const PushRequest& request,
                              CheckedPush* out) const;
  absl::Status Apply(const PushRequest& request, const CheckedPush& push);

  // Runs a table's scheduled shrink when `step` passed its next multiple of
  // accessor.shrink_every_steps (one caller runs it, the others go on).
  void MaybeShrink(size_t table_id, int64_t step);

  // Adds the push ledgers of `restore` (this server's when `same` server
  // count, every server's otherwise).
  absl::Status RestoreLedger(const RestoreFrom& restore, bool same);
  // Loads every table from `restore` (see Create).
  absl::Status Restore(const JobConfig& config, const RestoreFrom& restore);

  const int rank_;
  const int num_servers_;
  std::atomic<uint64_t> incarnation_;
  // The highest step of an applied push (or of the checkpoint restored):
  // a push's step may pass it by cluster.limits.max_step_jump at most.
  std::atomic<int64_t> max_step_{0};
  // Sparse rows pulled and pushed since start (StatsResponse).
  std::atomic<int64_t> rows_pulled_{0};
  std::atomic<int64_t> rows_pushed_{0};
  JobConfig config_;
  // Held shared by data requests, exclusively by SaveCheckpoint.
  mutable absl::Mutex apply_mu_;
  // Per sparse table: accessor.shrink_every_steps, and the step of its next
  // scheduled shrink (0: none).
  std::vector<int64_t> shrink_every_;
  std::vector<std::unique_ptr<std::atomic<int64_t>>> next_shrink_;
  // Per sparse table: whether Create restored it by RocksDB files.
  std::vector<bool> restored_by_files_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<std::unique_ptr<SparseTable>> sparse_;
  std::vector<std::unique_ptr<DenseTable>> dense_;
  std::unique_ptr<PushLedger> ledger_;
  // The checkpoint folder Create restored from ("" : none).
  std::string created_from_;
  // The job config as text, for the WalBase manifest.
  std::string config_text_;
  // durability.wal: the log and its BASE file (set once by AttachWal).
  std::unique_ptr<RecordLog> wal_;
  std::string wal_base_path_;
};

}  // namespace ps

#endif  // PS_SERVER_SERVICE_PS_HANDLER_H_

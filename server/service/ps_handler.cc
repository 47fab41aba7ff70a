#include "server/service/ps_handler.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <system_error>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checkpoint.h"
#include "common/checksummed_file.h"
#include "common/hash.h"
#include "common/incarnation.h"
#include "common/model_spec.h"
#include "common/optimizer.h"
#include "common/packing.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "google/protobuf/text_format.h"
#include "server/table/table_snapshot.h"

namespace ps {

namespace {

constexpr char kPushLedgerMagic[] = "PSLEDGR1";

// The push ledger's file in a checkpoint folder.
std::string PushLedgerFile(int rank) {
  return absl::StrCat("server-", rank, "/push_ledger.bin");
}

// `status` with `prefix` before its message, same code.
absl::Status Prefixed(absl::string_view prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

}  // namespace

namespace {

// Where a live TIERED folder waits while a restore replaces it.
constexpr char kSetAsideSuffix[] = ".before-restore";

// Replaces the RocksDB directory of TIERED table `options` for a restore:
// moved aside if there is one (its path appended to `set_aside` either
// way), then, when the checkpoint has this table's rows of this very server
// (same server count) as a RocksDB checkpoint, filled with its files (SST
// files hard-linked, the small others copied, so the checkpoint is never
// changed). Returns whether the files restored the table.
absl::StatusOr<bool> PrepareTieredRestore(const SparseTableOptions& options,
                                          const RestoreFrom& restore,
                                          std::vector<std::string>* set_aside) {
  const std::string live = SparseTable::StorageDir(options);
  std::error_code ec;
  // A copy left by a restore that crashed half-way goes first.
  std::filesystem::remove_all(live + kSetAsideSuffix, ec);
  if (!ec && std::filesystem::exists(live, ec)) {
    std::filesystem::rename(live, live + kSetAsideSuffix, ec);
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("table '", options.name, "': cannot move '", live,
                     "' aside for the restore: ", ec.message()));
  }
  set_aside->push_back(live);
  const std::string source =
      absl::StrCat(restore.dir, "/",
                   SparseSnapshotDir(options.rank, options.name), "/rocksdb");
  if (restore.manifest.num_servers() != options.num_servers ||
      !std::filesystem::exists(source, ec)) {
    return false;
  }
  std::filesystem::create_directories(live, ec);
  for (const auto& entry : std::filesystem::directory_iterator(source, ec)) {
    const std::filesystem::path to =
        std::filesystem::path(live) / entry.path().filename();
    if (entry.path().extension() == ".sst") {
      std::filesystem::create_hard_link(entry.path(), to, ec);
      if (!ec) continue;
      ec.clear();  // another file system: copy instead
    }
    std::filesystem::copy_file(entry.path(), to, ec);
    if (ec) break;
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("table '", options.name, "': cannot restore '", source,
                     "' into '", live, "': ", ec.message()));
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PsHandler>> PsHandler::Create(
    const JobConfig& config, int rank, const RestoreFrom* restore,
    uint64_t incarnation) {
  const int num_servers = config.cluster().servers_size();
  if (rank < 0 || rank >= num_servers) {
    return absl::InvalidArgumentError(
        absl::StrCat("server rank ", rank, " is out of range: the job has ",
                     num_servers, " servers"));
  }
  const TrainingConfig& tr = config.training();
  const int64_t in_flight =
      int64_t{tr.max_inflight_pushes()} * (tr.max_merged_steps() + 1);
  if (in_flight >= PushLedger::kWindowSteps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training.max_inflight_pushes ", tr.max_inflight_pushes(),
        " x (max_merged_steps ", tr.max_merged_steps(), " + 1) = ", in_flight,
        " steps in flight: must stay below ", PushLedger::kWindowSteps,
        " (the servers' exactly-once window)"));
  }
  std::unique_ptr<PsHandler> handler(new PsHandler(
      rank, num_servers, incarnation != 0 ? incarnation : NewIncarnationId()));
  handler->config_ = config;
  handler->config_text_ = RecordedJobConfig(config);
  if (restore != nullptr) handler->created_from_ = restore->dir;
  // Large pushes and pulls split their sub-shard groups over the cores; the
  // calling (gRPC) thread takes part.
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  handler->pool_ = std::make_unique<ThreadPool>(std::max(0, cores - 1));
  absl::WriterMutexLock hold(&handler->apply_mu_);
  RETURN_IF_ERROR(handler->BuildTables(restore));
  return handler;
}

absl::Status PsHandler::BuildTables(const RestoreFrom* restore) {
  std::vector<std::string> set_aside;
  const absl::Status built = BuildTablesMovingAside(restore, &set_aside);
  std::error_code ec;
  if (built.ok()) {
    for (const std::string& live : set_aside) {
      std::filesystem::remove_all(live + kSetAsideSuffix, ec);
    }
    return absl::OkStatus();
  }
  // The tables hold their new folders open: close them before the live
  // folders go back.
  sparse_.clear();
  dense_.clear();
  for (const std::string& live : set_aside) {
    std::filesystem::remove_all(live, ec);
    if (!ec && std::filesystem::exists(live + kSetAsideSuffix, ec)) {
      std::filesystem::rename(live + kSetAsideSuffix, live, ec);
    }
    if (ec) {
      LOG(ERROR) << "server " << rank_ << ": cannot put the live table folder '"
                 << live << kSetAsideSuffix
                 << "' back after a failed restore: " << ec.message();
    }
  }
  return built;
}

absl::Status PsHandler::BuildTablesMovingAside(
    const RestoreFrom* restore, std::vector<std::string>* set_aside) {
  const JobConfig& config = config_;
  const int rank = rank_;
  const int num_servers = num_servers_;
  // Before anything is cleared: a TIERED table's live RocksDB folder is
  // replaced by the restore, so a checkpoint this job cannot use must be
  // refused while that folder is still intact.
  if (restore != nullptr) {
    RETURN_IF_ERROR(
        CheckCheckpointCompatible(restore->manifest, restore->dir, config));
  }
  max_step_.store(restore != nullptr ? restore->manifest.global_step() : 0);
  ledger_ = std::make_unique<PushLedger>();
  for (int t = 0; t < config.sparse_tables_size(); ++t) {
    const SparseTableConfig& tc = config.sparse_tables(t);
    SparseTableOptions options;
    options.name = tc.name();
    options.table_id = static_cast<uint32_t>(t);
    options.dim = tc.dim();
    options.shard_num = config.cluster().shard_num();
    options.optimizer = tc.optimizer();
    options.initializer = tc.initializer();
    options.init_seed = config.model().init_seed();
    options.storage = tc.storage();
    options.rank = rank;
    options.num_servers = num_servers;
    options.has_accessor = tc.has_accessor();
    options.accessor = tc.accessor();
    // SparseTable::Create names the table in its own errors but passes the
    // rule's through as they are: check the rule here to name the table.
    absl::Status rule = OptimizerRule::Create(options.optimizer).status();
    if (!rule.ok()) {
      return Prefixed(absl::StrCat("table '", tc.name(), "': "), rule);
    }
    bool restored_by_files = false;
    if (restore != nullptr &&
        tc.storage().type() == SparseStorageConfig::TIERED) {
      ASSIGN_OR_RETURN(restored_by_files,
                       PrepareTieredRestore(options, *restore, set_aside));
    }
    ASSIGN_OR_RETURN(auto table, SparseTable::Create(options));
    table->SetThreadPool(pool_.get());
    restored_by_files_.push_back(restored_by_files);
    sparse_.push_back(std::move(table));
    const int64_t every =
        tc.has_accessor() ? tc.accessor().shrink_every_steps() : 0;
    shrink_every_.push_back(every);
    next_shrink_.push_back(std::make_unique<std::atomic<int64_t>>(every));
  }
  const ModelSpec spec = MakeModelSpec(config);
  DenseBlocks blocks{spec.dense_size, config.cluster().dense_block_size(),
                     num_servers};
  const uint64_t seed = config.model().init_seed();
  auto dense = DenseTable::Create(
      "model", blocks, rank, config.model().dense_optimizer(),
      [&](int64_t i) { return DenseInitValue(spec, seed, i); });
  if (!dense.ok()) return Prefixed("dense table 'model': ", dense.status());
  dense_.push_back(std::move(dense).value());
  if (restore != nullptr) RETURN_IF_ERROR(Restore(config, *restore));
  return absl::OkStatus();
}

absl::Status PsHandler::Reload(const RestoreFrom* restore) {
  absl::WriterMutexLock hold(&apply_mu_);
  // The old tables go first: a TIERED table's RocksDB folder is reopened.
  sparse_.clear();
  dense_.clear();
  shrink_every_.clear();
  next_shrink_.clear();
  restored_by_files_.clear();
  absl::Status built = BuildTables(restore);
  // Whatever the outcome, no request made against the old state applies.
  incarnation_.store(NewIncarnationId());
  if (!built.ok()) {
    sparse_.clear();
    dense_.clear();
    return Prefixed(absl::StrCat("server ", rank_, ": reload: "), built);
  }
  if (wal_ != nullptr) {
    WalBase base;
    base.set_server_incarnation(incarnation_.load());
    if (restore != nullptr) {
      base.set_checkpoint_dir(restore->dir);
      *base.mutable_manifest() = restore->manifest;
    }
    RETURN_IF_ERROR(WriteWalBase(wal_base_path_, base));
    RETURN_IF_ERROR(wal_->Reset());
  }
  LOG(INFO) << "server " << rank_ << ": reloaded "
            << (restore != nullptr ? restore->dir : std::string("fresh tables"))
            << ", incarnation " << absl::StrCat(absl::Hex(incarnation_.load()));
  return absl::OkStatus();
}

absl::Status PsHandler::Restore(const JobConfig& config,
                                const RestoreFrom& restore) {
  RETURN_IF_ERROR(
      CheckCheckpointCompatible(restore.manifest, restore.dir, config));
  const int old_servers = restore.manifest.num_servers();
  const bool same = old_servers == num_servers_;
  for (size_t t = 0; t < sparse_.size(); ++t) {
    SparseTable& table = *sparse_[t];
    table.RaiseStep(restore.manifest.global_step());
    if (restored_by_files_[t]) {
      LOG(INFO) << "server " << rank_ << " table '" << table.name()
                << "': restored from " << restore.dir << " by hard links, "
                << table.size() << " rows";
      continue;
    }
    int64_t rows = 0;
    for (int s = 0; s < old_servers; ++s) {
      if (same && s != rank_) continue;
      const std::string dir =
          absl::StrCat(restore.dir, "/", SparseSnapshotDir(s, table.name()));
      RETURN_IF_ERROR(ReadTableSnapshot(
          dir, table,
          [&](uint64_t key) {
            return same || ServerForKey(key, num_servers_) == rank_;
          },
          [&](absl::Span<const uint64_t> keys, absl::Span<const float> values) {
            rows += static_cast<int64_t>(keys.size());
            return table.PutRows(keys, values);
          }));
    }
    LOG(INFO) << "server " << rank_ << " table '" << table.name()
              << "': restored " << rows << " rows from " << restore.dir
              << (same ? ""
                       : absl::StrCat(" (resharded from ", old_servers,
                                      " servers to ", num_servers_, ")"));
  }
  RETURN_IF_ERROR(RestoreLedger(restore, same));
  for (const auto& dense : dense_) {
    if (same) {
      RETURN_IF_ERROR(dense->Load(absl::StrCat(
          restore.dir, "/", DenseSnapshotFile(rank_, dense->name()))));
    } else {
      std::vector<std::string> paths;
      for (int s = 0; s < old_servers; ++s) {
        paths.push_back(absl::StrCat(restore.dir, "/",
                                     DenseSnapshotFile(s, dense->name())));
      }
      RETURN_IF_ERROR(dense->LoadResharded(paths));
    }
  }
  return absl::OkStatus();
}

absl::Status PsHandler::RestoreLedger(const RestoreFrom& restore, bool same) {
  for (int s = 0; s < restore.manifest.num_servers(); ++s) {
    if (same && s != rank_) continue;
    const std::string rel = PushLedgerFile(s);
    bool listed = false;
    for (const CheckpointFile& f : restore.manifest.files()) {
      listed = listed || f.path() == rel;
    }
    // A checkpoint written before pushes were numbered: nothing to keep.
    if (!listed) continue;
    const std::string path = absl::StrCat(restore.dir, "/", rel);
    ASSIGN_OR_RETURN(std::string bytes,
                     ReadChecksummedFile(path, kPushLedgerMagic, 1));
    PushLedgerSnapshot snapshot;
    if (!snapshot.ParseFromString(bytes)) {
      return absl::DataLossError(
          absl::StrCat("'", path, "': not a push ledger"));
    }
    absl::Status merged = ledger_->Merge(snapshot);
    if (!merged.ok()) return Prefixed(absl::StrCat("'", path, "': "), merged);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PsHandler::ExactRows(size_t table) const {
  absl::ReaderMutexLock hold(&apply_mu_);
  ASSIGN_OR_RETURN(SparseTable * t, FindSparse(static_cast<uint32_t>(table)));
  int64_t rows = 0;
  RETURN_IF_ERROR(t->ForEachRow([&](uint64_t, const float*) { ++rows; }));
  return rows;
}

absl::Status PsHandler::AttachWal(std::unique_ptr<RecordLog> log,
                                  std::string base_path) {
  int64_t records = 0;
  int64_t repeats = 0;
  RETURN_IF_ERROR(log->Replay([&](absl::string_view bytes) {
    PushRequest request;
    if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(absl::StrCat(
          "write-ahead log record ", records + 1, " is not a push request"));
    }
    // Logged as received; this process may have a new incarnation.
    request.mutable_header()->set_server_incarnation(0);
    PushResponse response;
    absl::Status status = Push(request, &response);
    if (!status.ok()) {
      return Prefixed(absl::StrCat("write-ahead log record ", records + 1,
                                   " does not apply: "),
                      status);
    }
    ++records;
    repeats += response.duplicate() ? 1 : 0;
    return absl::OkStatus();
  }));
  LOG(INFO) << "server " << rank_ << ": replayed " << records
            << " pushes from the write-ahead log (" << repeats
            << " already in its base)";
  wal_ = std::move(log);
  wal_base_path_ = std::move(base_path);
  return absl::OkStatus();
}

absl::Status PsHandler::WriteWalBase(const std::string& path,
                                     const WalBase& base) {
  return WriteFileAtomically(path, base.SerializeAsString());
}

absl::StatusOr<WalBase> PsHandler::ReadWalBase(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("no '", path, "'"));
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return absl::InternalError(absl::StrCat("cannot read '", path, "'"));
  }
  WalBase base;
  if (!base.ParseFromString(bytes) || !base.has_server_incarnation()) {
    return absl::DataLossError(
        absl::StrCat("'", path, "': not a write-ahead log base"));
  }
  return base;
}

absl::StatusOr<std::map<uint64_t, std::vector<float>>> PsHandler::DumpSparse(
    size_t table) const {
  absl::ReaderMutexLock hold(&apply_mu_);
  ASSIGN_OR_RETURN(SparseTable * t, FindSparse(static_cast<uint32_t>(table)));
  std::map<uint64_t, std::vector<float>> rows;
  const int stride = t->stride();
  RETURN_IF_ERROR(t->ForEachRow([&](uint64_t key, const float* row) {
    rows[key].assign(row, row + stride);
  }));
  return rows;
}

absl::StatusOr<std::vector<float>> PsHandler::DumpDense(size_t table) const {
  absl::ReaderMutexLock hold(&apply_mu_);
  ASSIGN_OR_RETURN(DenseTable * t, FindDense(static_cast<uint32_t>(table)));
  std::vector<float> values;
  t->Pull(&values);
  return values;
}

absl::StatusOr<std::string> PsHandler::CheckpointFolder(
    const std::string& dir) const {
  if (dir.empty()) {
    return absl::InvalidArgumentError("no checkpoint folder named");
  }
  if (!config_.has_checkpoint() || config_.checkpoint().dir().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("server ", rank_,
                     " has no checkpoint.dir: it writes and reads "
                     "checkpoints only under the job's checkpoint.dir"));
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  // Symbolic links in the parts that exist are resolved, so a link inside
  // the root that points elsewhere is judged by where it points.
  const fs::path root =
      fs::weakly_canonical(fs::absolute(config_.checkpoint().dir()), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat(
        "checkpoint.dir '", config_.checkpoint().dir(), "': ", ec.message()));
  }
  // A relative name: from the working directory when that lands under the
  // root (server 0's coordinator names folders as checkpoint.dir/ckpt-N,
  // and a relative checkpoint.dir is relative to the working directory),
  // else from the root (`ps_ctl` may name just ckpt-N).
  auto under_root = [&root](const fs::path& p) {
    const fs::path rel = p.lexically_relative(root);
    return !(rel.empty() || rel == "." || *rel.begin() == "..");
  };
  fs::path target = fs::weakly_canonical(fs::absolute(dir), ec);
  if (!ec && fs::path(dir).is_relative() && !under_root(target)) {
    target = fs::weakly_canonical(root / dir, ec);
  }
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint folder '", dir, "': ", ec.message()));
  }
  if (!under_root(target)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "checkpoint folder '", dir, "' (", target.string(),
        ") is not under the job's checkpoint.dir '", root.string(),
        "': server ", rank_, " writes and reads checkpoints only there"));
  }
  return target.string();
}

absl::StatusOr<std::string> PsHandler::ReloadFolder(
    const std::string& dir) const {
  if (!created_from_.empty() && dir == created_from_) return dir;
  return CheckpointFolder(dir);
}

absl::Status PsHandler::SaveCheckpoint(const SaveCheckpointRequest& request,
                                       SaveCheckpointResponse* response) {
  response->Clear();
  ASSIGN_OR_RETURN(const std::string dir, CheckpointFolder(request.dir()));
  absl::WriterMutexLock hold(&apply_mu_);
  response->set_server_incarnation(incarnation_.load());
  const absl::Time start = absl::Now();
  for (const auto& table : sparse_) {
    ASSIGN_OR_RETURN(
        std::vector<CheckpointFile> written,
        SaveTableSnapshot(
            *table, dir,
            absl::StrCat(dir, "/", SparseSnapshotDir(rank_, table->name()))));
    for (CheckpointFile& f : written) *response->add_files() = std::move(f);
  }
  for (const auto& dense : dense_) {
    const std::string rel = DenseSnapshotFile(rank_, dense->name());
    ASSIGN_OR_RETURN(FileDigest digest,
                     dense->Save(absl::StrCat(dir, "/", rel)));
    CheckpointFile* f = response->add_files();
    f->set_path(rel);
    f->set_size(digest.size);
    f->set_crc32(digest.crc32);
  }
  {
    const std::string rel = PushLedgerFile(rank_);
    ASSIGN_OR_RETURN(
        FileDigest digest,
        WriteChecksummedFile(absl::StrCat(dir, "/", rel), kPushLedgerMagic, 1,
                             ledger_->Snapshot().SerializeAsString()));
    CheckpointFile* f = response->add_files();
    f->set_path(rel);
    f->set_size(digest.size);
    f->set_crc32(digest.crc32);
  }
  if (wal_ != nullptr) {
    // The base first: a crash before the reset leaves records the new base
    // holds, which the ledger skips on replay.
    WalBase base;
    base.set_server_incarnation(incarnation_.load());
    base.set_checkpoint_dir(dir);
    Manifest* m = base.mutable_manifest();
    m->set_global_step(request.step());
    m->set_num_servers(num_servers_);
    m->set_job_config(config_text_);
    *m->mutable_files() = response->files();
    RETURN_IF_ERROR(WriteWalBase(wal_base_path_, base));
    RETURN_IF_ERROR(wal_->Reset());
  }
  LOG(INFO) << "server " << rank_ << ": saved " << response->files_size()
            << " checkpoint files into " << dir << " at step " << request.step()
            << " in " << absl::ToDoubleSeconds(absl::Now() - start) << " s";
  return absl::OkStatus();
}

absl::StatusOr<SparseTable*> PsHandler::FindSparse(uint32_t table_id) const {
  if (table_id >= sparse_.size()) {
    std::vector<std::string> have;
    for (size_t t = 0; t < sparse_.size(); ++t) {
      have.push_back(absl::StrCat(t, " '", sparse_[t]->name(), "'"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("sparse table ", table_id, " does not exist on server ",
                     rank_, " (has ", absl::StrJoin(have, ", "), ")"));
  }
  return sparse_[table_id].get();
}

absl::StatusOr<DenseTable*> PsHandler::FindDense(uint32_t table_id) const {
  if (table_id >= dense_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense table ", table_id, " does not exist on server ",
                     rank_, " (has ", dense_.size(), " dense tables)"));
  }
  return dense_[table_id].get();
}

absl::Status PsHandler::CheckKeysOwned(const SparseTable& table,
                                       absl::Span<const uint64_t> keys) const {
  if (num_servers_ == 1) return absl::OkStatus();
  for (uint64_t key : keys) {
    int owner = ServerForKey(key, num_servers_);
    if (owner != rank_) {
      return absl::InvalidArgumentError(
          absl::StrCat("table '", table.name(), "': key ", key,
                       " belongs to server ", owner, ", not to server ", rank_,
                       " (workers disagree on the ", "number of servers?)"));
    }
  }
  return absl::OkStatus();
}

absl::Status PsHandler::CheckIncarnation(const RequestHeader& header) const {
  if (header.server_incarnation() == 0 ||
      header.server_incarnation() == incarnation_.load()) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "server ", rank_, " restarted: worker ", header.worker_rank(),
      " expects incarnation ", absl::Hex(header.server_incarnation()),
      ", this is incarnation ", absl::Hex(incarnation_.load()),
      " (its tables are not the state the worker trained against)"));
}

absl::Status PsHandler::CheckKeyCount(size_t keys,
                                      absl::string_view what) const {
  const int64_t limit = config_.cluster().limits().max_keys_per_request();
  if (static_cast<int64_t>(keys) <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat(what, ": ", keys,
                   " keys in one request, over "
                   "cluster.limits.max_keys_per_request ",
                   limit, " (server ", rank_, ")"));
}

void PsHandler::FillHeader(ResponseHeader* header) const {
  header->set_server_rank(rank_);
  header->set_server_incarnation(incarnation_.load());
}

absl::Status PsHandler::Pull(const PullRequest& request,
                             PullResponse* response) {
  response->Clear();
  FillHeader(response->mutable_header());
  RETURN_IF_ERROR(CheckIncarnation(request.header()));
  absl::ReaderMutexLock hold(&apply_mu_);
  ASSIGN_OR_RETURN(auto keys,
                   ViewPacked<uint64_t>(request.keys(), "pull keys"));
  std::vector<SparseTable*> tables;
  size_t total_keys = 0;
  size_t total_floats = 0;
  for (const SparseSegment& seg : request.sparse()) {
    ASSIGN_OR_RETURN(SparseTable * table, FindSparse(seg.table_id()));
    if (seg.dim() != static_cast<uint32_t>(table->dim())) {
      return absl::InvalidArgumentError(
          absl::StrCat("table '", table->name(), "': pull expects dim ",
                       seg.dim(), ", the table has dim ", table->dim()));
    }
    tables.push_back(table);
    total_keys += seg.num_keys();
    total_floats += static_cast<size_t>(seg.num_keys()) * table->dim();
  }
  if (total_keys != keys.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pull: segments name ", total_keys, " keys, the request ",
                     "carries ", keys.size()));
  }
  RETURN_IF_ERROR(CheckKeyCount(keys.size(), "pull"));
  rows_pulled_.fetch_add(static_cast<int64_t>(keys.size()),
                         std::memory_order_relaxed);
  size_t dense_floats = 0;
  for (uint32_t id : request.dense_tables()) {
    ASSIGN_OR_RETURN(DenseTable * table, FindDense(id));
    dense_floats += static_cast<size_t>(table->local_size());
  }
  const size_t reply_bytes = (total_floats + dense_floats) * sizeof(float);
  if (reply_bytes >
      static_cast<size_t>(config_.cluster().max_message_bytes())) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "pull of worker ", request.header().worker_rank(),
        ": the answer would "
        "be ",
        reply_bytes, " bytes, over cluster.max_message_bytes ",
        config_.cluster().max_message_bytes(), " (send fewer keys per pull)"));
  }
  {
    size_t at = 0;
    for (int i = 0; i < request.sparse_size(); ++i) {
      const size_t n = request.sparse(i).num_keys();
      RETURN_IF_ERROR(CheckKeysOwned(*tables[i], keys.subspan(at, n)));
      RETURN_IF_ERROR(tables[i]->CheckRoom(keys.subspan(at, n)));
      at += n;
    }
  }
  // resize() zero-fills, then Pull overwrites every byte. Measured: the fill
  // costs about 0.2 ms per 4 MiB. Abseil's STLStringResizeUninitialized is a
  // plain resize() with libstdc++, and building the bytes by append would
  // need the rows in key order, while Pull visits them by sub-shard.
  std::string* values = response->mutable_values();
  values->resize(total_floats * sizeof(float));
  float* out = reinterpret_cast<float*>(values->data());
  size_t key_at = 0;
  for (int i = 0; i < request.sparse_size(); ++i) {
    SparseTable& table = *tables[i];
    const size_t n = request.sparse(i).num_keys();
    auto seg_keys = keys.subspan(key_at, n);
    RETURN_IF_ERROR(table.Pull(seg_keys, absl::MakeSpan(out, n * table.dim())));
    key_at += n;
    out += n * table.dim();
  }
  std::vector<float> dense_values;
  for (uint32_t id : request.dense_tables()) {
    ASSIGN_OR_RETURN(DenseTable * table, FindDense(id));
    table->Pull(&dense_values);
    DenseSegment* seg = response->add_dense();
    seg->set_table_id(id);
    seg->set_num_values(dense_values.size());
    response->add_dense_table_sizes(table->global_size());
    response->mutable_dense_values()->append(
        reinterpret_cast<const char*>(dense_values.data()),
        dense_values.size() * sizeof(float));
  }
  return absl::OkStatus();
}

// A push, checked: its tables and the views of every segment's payload.
struct PsHandler::CheckedPush {
  struct Sparse {
    SparseTable* table;
    absl::Span<const uint64_t> keys;
    absl::Span<const float> grads, shows, clicks;
  };
  struct Dense {
    DenseTable* table;
    absl::Span<const float> grads;
  };
  std::vector<Sparse> sparse;
  std::vector<Dense> dense;
};

absl::Status PsHandler::CheckSparsePush(const PushRequest& request,
                                        CheckedPush* out) const {
  ASSIGN_OR_RETURN(auto keys,
                   ViewPacked<uint64_t>(request.keys(), "push keys"));
  ASSIGN_OR_RETURN(auto grads,
                   ViewPacked<float>(request.grads(), "push gradients"));
  ASSIGN_OR_RETURN(auto shows,
                   ViewPacked<float>(request.shows(), "push shows"));
  ASSIGN_OR_RETURN(auto clicks,
                   ViewPacked<float>(request.clicks(), "push clicks"));
  size_t key_at = 0;
  size_t grad_at = 0;
  for (const SparseSegment& seg : request.sparse()) {
    ASSIGN_OR_RETURN(SparseTable * table, FindSparse(seg.table_id()));
    const std::string what = absl::StrCat("table '", table->name(), "' push");
    const size_t n = seg.num_keys();
    const size_t floats = n * table->dim();
    if (seg.dim() != static_cast<uint32_t>(table->dim()) ||
        key_at + n > keys.size() || grad_at + floats > grads.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": ", n, " keys of dim ", seg.dim(), " (table dim ",
          table->dim(), ") do not fit the request's ", keys.size() - key_at,
          " keys and ", grads.size() - grad_at, " gradient floats left"));
    }
    CheckedPush::Sparse s{
        table, keys.subspan(key_at, n), grads.subspan(grad_at, floats), {}, {}};
    for (auto [counts, view, name] :
         {std::make_tuple(shows, &s.shows, "shows"),
          std::make_tuple(clicks, &s.clicks, "clicks")}) {
      if (counts.empty()) continue;
      if (counts.size() != keys.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "push: ", counts.size(), " ", name, " for ", keys.size(), " keys"));
      }
      *view = counts.subspan(key_at, n);
    }
    RETURN_IF_ERROR(CheckKeysOwned(*table, s.keys));
    RETURN_IF_ERROR(CheckUpdate(s.grads, what));
    RETURN_IF_ERROR(table->CheckRoom(s.keys));
    out->sparse.push_back(s);
    key_at += n;
    grad_at += floats;
  }
  if (key_at != keys.size() || grad_at != grads.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("push: segments name ", key_at, " keys and ", grad_at,
                     " gradient floats, the request carries ", keys.size(),
                     " and ", grads.size()));
  }
  return absl::OkStatus();
}

absl::Status PsHandler::CheckDensePush(const PushRequest& request,
                                       CheckedPush* out) const {
  ASSIGN_OR_RETURN(auto dense,
                   ViewPacked<float>(request.dense_grads(), "dense gradients"));
  size_t dense_at = 0;
  for (const DenseSegment& seg : request.dense()) {
    ASSIGN_OR_RETURN(DenseTable * table, FindDense(seg.table_id()));
    const std::string what =
        absl::StrCat("dense table '", table->name(), "' push");
    if (seg.num_values() != static_cast<uint64_t>(table->local_size()) ||
        dense_at + seg.num_values() > dense.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": ", seg.num_values(), " values, server ", rank_,
                       " holds ", table->local_size(), " (",
                       dense.size() - dense_at, " left in the request)"));
    }
    CheckedPush::Dense d{table, dense.subspan(dense_at, seg.num_values())};
    RETURN_IF_ERROR(CheckUpdate(d.grads, what));
    out->dense.push_back(d);
    dense_at += seg.num_values();
  }
  if (dense_at != dense.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("push: dense segments name ", dense_at,
                     " values, the request carries ", dense.size()));
  }
  return absl::OkStatus();
}

absl::Status PsHandler::CheckPush(const PushRequest& request,
                                  CheckedPush* out) const {
  const RequestHeader& h = request.header();
  if (h.step() < 0 || request.parts() < 1 ||
      request.part() >= request.parts()) {
    return absl::InvalidArgumentError(
        absl::StrCat("push of worker ", h.worker_rank(), ": step ", h.step(),
                     " part ", request.part(), " of ", request.parts(),
                     " (needs step >= 0 and part < parts)"));
  }
  if (h.worker_rank() < 0 ||
      h.worker_rank() >= config_.cluster().num_workers()) {
    return absl::InvalidArgumentError(
        absl::StrCat("push of worker ", h.worker_rank(), ": the job has ",
                     config_.cluster().num_workers(), " workers"));
  }
  // A push's step is measured against the worker's own last step (its
  // first, against the highest step this server applied): one worker cannot
  // move the tables' step -- and with it the rows' age that scheduled
  // shrinks go by -- by more than max_step_jump per push.
  const int64_t own = ledger_->MaxStep(h.worker_rank());
  const int64_t base = own >= 0 ? own : max_step_.load();
  const int64_t jump = config_.cluster().limits().max_step_jump();
  if (h.step() >= kMaxCheckpointStep || h.step() - base > jump) {
    return absl::InvalidArgumentError(absl::StrCat(
        "push of worker ", h.worker_rank(), ": step ", h.step(),
        " is too far ahead: ",
        own >= 0 ? absl::StrCat("the worker's last push on server ", rank_,
                                " was at step ", own)
                 : absl::StrCat("server ", rank_, " is at step ", base),
        ", and a push may be at most cluster.limits.max_step_jump ", jump,
        " past it (and below 10^10)"));
  }
  if (request.merged_steps() > h.step()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "push of worker ", h.worker_rank(), ": ", request.merged_steps(),
        " steps merged before step ", h.step()));
  }
  ASSIGN_OR_RETURN(auto keys,
                   ViewPacked<uint64_t>(request.keys(), "push keys"));
  RETURN_IF_ERROR(CheckKeyCount(keys.size(), "push"));
  RETURN_IF_ERROR(CheckSparsePush(request, out));
  return CheckDensePush(request, out);
}

absl::Status PsHandler::Apply(const PushRequest& request,
                              const CheckedPush& push) {
  PushInfo info;
  info.step = request.header().step();
  for (const CheckedPush::Sparse& s : push.sparse) {
    info.shows = s.shows;
    info.clicks = s.clicks;
    const std::string what = absl::StrCat("table '", s.table->name(), "': ");
    absl::Status st = request.is_delta()
                          ? s.table->AddDeltas(s.keys, s.grads, info)
                          : s.table->Push(s.keys, s.grads, info);
    if (!st.ok()) return Prefixed(what, st);
    rows_pushed_.fetch_add(static_cast<int64_t>(s.keys.size()),
                           std::memory_order_relaxed);
  }
  for (const CheckedPush::Dense& d : push.dense) {
    RETURN_IF_ERROR(request.is_delta() ? d.table->AddDeltas(d.grads)
                                       : d.table->Push(d.grads, info.step));
  }
  return absl::OkStatus();
}

absl::Status PsHandler::Push(const PushRequest& request, PushResponse* response,
                             const std::function<bool()>& cancelled) {
  response->Clear();
  {
    absl::ReaderMutexLock hold(&apply_mu_);
    FillHeader(response->mutable_header());
    RETURN_IF_ERROR(CheckIncarnation(request.header()));
    CheckedPush push;
    RETURN_IF_ERROR(CheckPush(request, &push));
    const int64_t step = request.header().step();
    const PushLedger::Key key{request.header().worker_rank(), step,
                              request.part(), step - request.merged_steps()};
    int64_t applied_first = 0;
    int64_t applied_last = 0;
    switch (ledger_->Claim(key, &applied_first, &applied_last)) {
      case PushLedger::Verdict::kDuplicate:
        response->set_duplicate(true);
        return absl::OkStatus();
      case PushLedger::Verdict::kConflict:
        return absl::FailedPreconditionError(absl::StrCat(
            "server ", rank_, ": the push of worker ", key.worker, " steps ",
            key.first_step(), "..", step, " overlaps its steps ", applied_first,
            "..", applied_last,
            " applied before (the worker restarted and merged its steps "
            "otherwise): the job must roll back"));
      case PushLedger::Verdict::kApply:
        break;
    }
    const PushLedger::Kind kind{!push.sparse.empty(), !push.dense.empty(),
                                request.is_delta()};
    if (cancelled && cancelled()) {
      ledger_->Finish(key, /*applied=*/false, kind);
      return absl::CancelledError(
          absl::StrCat("push of worker ", key.worker, " step ", key.step,
                       " cancelled by the client before it was applied"));
    }
    absl::Status applied = Apply(request, push);
    // A push that failed half-way (a disk tier error) is not recorded: the
    // worker stops on the error, and the job resumes from a checkpoint.
    if (applied.ok() && wal_ != nullptr) {
      absl::Status logged = wal_->Append(request.SerializeAsString());
      if (!logged.ok()) {
        // Applied but not durable: this server must not acknowledge it, and
        // no retry may be acknowledged as a repeat. INTERNAL is not retried:
        // the worker stops, the job resumes from a checkpoint.
        ledger_->Finish(key, true, kind);
        return absl::InternalError(absl::StrCat(
            "server ", rank_, ": write-ahead log: ", logged.message()));
      }
    }
    ledger_->Finish(key, applied.ok(), kind);
    RETURN_IF_ERROR(applied);
    for (int64_t seen = max_step_.load();
         step > seen && !max_step_.compare_exchange_weak(seen, step);) {
    }
    for (const SparseSegment& seg : request.sparse()) {
      MaybeShrink(seg.table_id(), sparse_[seg.table_id()]->step());
    }
  }
  return absl::OkStatus();
}

void PsHandler::MaybeShrink(size_t table_id, int64_t step) {
  std::atomic<int64_t>& next = *next_shrink_[table_id];
  int64_t due = next.load();
  if (due <= 0 || step < due) return;
  SparseTable& table = *sparse_[table_id];
  const int64_t every = shrink_every_[table_id];
  // Steps stay below 10^10 (CheckPush), `every` is any positive int64.
  int64_t following = 0;
  if (__builtin_mul_overflow(step / every + 1, every, &following)) {
    following = std::numeric_limits<int64_t>::max();
  }
  // Claim this shrink; a concurrent caller that lost the race goes on.
  if (!next.compare_exchange_strong(due, following)) return;
  absl::StatusOr<int64_t> removed = table.Shrink();
  if (!removed.ok()) {
    LOG(ERROR) << "server " << rank_ << " table '" << table.name()
               << "': scheduled shrink at step " << step
               << " failed: " << removed.status();
    return;
  }
  LOG(INFO) << "server " << rank_ << " table '" << table.name()
            << "': scheduled shrink at step " << step << " removed " << *removed
            << " rows, " << table.size() << " left";
}

absl::Status PsHandler::Shrink(const ShrinkRequest& request,
                               ShrinkResponse* response) {
  response->Clear();
  response->set_server_rank(rank_);
  // Not while a checkpoint is written.
  absl::ReaderMutexLock hold(&apply_mu_);
  std::vector<SparseTable*> tables;
  for (const std::string& name : request.tables()) {
    SparseTable* found = nullptr;
    for (const auto& t : sparse_) {
      if (t->name() == name) found = t.get();
    }
    if (found == nullptr) {
      std::vector<std::string> have;
      for (const auto& t : sparse_) have.push_back(t->name());
      return absl::NotFoundError(absl::StrCat("shrink: no sparse table '", name,
                                              "' on server ", rank_, " (has ",
                                              absl::StrJoin(have, ", "), ")"));
    }
    tables.push_back(found);
  }
  if (request.tables().empty()) {
    for (const auto& t : sparse_) tables.push_back(t.get());
  }
  for (SparseTable* table : tables) {
    absl::StatusOr<int64_t> removed = table->Shrink();
    if (!removed.ok()) {
      return Prefixed(absl::StrCat("shrink of table '", table->name(), "': "),
                      removed.status());
    }
    ShrinkResult* out = response->add_tables();
    out->set_table(table->name());
    out->set_removed(*removed);
    out->set_rows_left(table->size());
    out->set_step(table->step());
    LOG(INFO) << "server " << rank_ << " table '" << table->name()
              << "': shrink at step " << table->step() << " removed "
              << *removed << " rows, " << out->rows_left() << " left";
  }
  return absl::OkStatus();
}

std::vector<int64_t> PsHandler::SparseRows() const {
  absl::ReaderMutexLock hold(&apply_mu_);
  std::vector<int64_t> rows;
  for (const auto& t : sparse_) rows.push_back(t->size());
  return rows;
}

PushCounts PsHandler::PushCountsOf(int rank) const {
  absl::ReaderMutexLock hold(&apply_mu_);
  const std::map<int, PushCounts> all = ledger_->Counts();
  auto it = all.find(rank);
  return it == all.end() ? PushCounts() : it->second;
}

std::map<int, PushCounts> PsHandler::AllPushCounts() const {
  absl::ReaderMutexLock hold(&apply_mu_);
  return ledger_->Counts();
}

void PsHandler::Stats(StatsResponse* response) const {
  response->Clear();
  response->set_server_rank(rank_);
  absl::ReaderMutexLock hold(&apply_mu_);
  for (size_t t = 0; t < sparse_.size(); ++t) {
    const SparseTable& table = *sparse_[t];
    const StorageStats s = table.stats();
    SparseTableStats* out = response->add_sparse_tables();
    out->set_table_id(static_cast<uint32_t>(t));
    out->set_name(table.name());
    out->set_dim(static_cast<uint32_t>(table.dim()));
    out->set_rows_in_memory(s.rows_in_memory);
    out->set_rows_on_disk(s.rows_on_disk);
    out->set_rows(table.size());
    out->set_memory_bytes(table.memory_bytes());
    out->set_hits(s.hits);
    out->set_misses(s.misses);
    out->set_evictions(s.evictions);
    out->set_write_backs(s.write_backs);
    out->set_pending_admissions(s.pending_admissions);
    out->set_admitted(s.admitted);
    out->set_dropped_pushes(s.dropped_pushes);
    out->set_shrunk(s.shrunk);
    out->set_step(table.step());
  }
  for (size_t t = 0; t < dense_.size(); ++t) {
    DenseTableStats* out = response->add_dense_tables();
    out->set_table_id(static_cast<uint32_t>(t));
    out->set_name(dense_[t]->name());
    out->set_floats_held(dense_[t]->local_size());
  }
  for (const auto& [worker, c] : ledger_->Counts()) {
    WorkerPushStats* out = response->add_pushes();
    out->set_worker_rank(worker);
    out->set_sparse_gradients(c.sparse_gradients);
    out->set_sparse_deltas(c.sparse_deltas);
    out->set_dense_gradients(c.dense_gradients);
    out->set_dense_deltas(c.dense_deltas);
    out->set_duplicates(c.duplicates);
    out->set_applied(c.applied);
    out->set_last_step(c.last_step);
  }
  response->set_server_incarnation(incarnation_.load());
  response->set_rows_pulled(rows_pulled_.load(std::memory_order_relaxed));
  response->set_rows_pushed(rows_pushed_.load(std::memory_order_relaxed));
}

}  // namespace ps

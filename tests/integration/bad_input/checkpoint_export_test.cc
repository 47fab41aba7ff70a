// The checkpoints and exports categories of the bad-input corpus: a valid
// checkpoint or export is written with the real code, edited as the case
// says, then opened as a resuming server or a predicting worker would.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/checkpoint.h"
#include "common/checksummed_file.h"
#include "common/export_format.h"
#include "common/hash.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "server/service/ps_handler.h"
#include "tests/integration/bad_input/corpus.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wire_requests.h"

namespace ps {
namespace bad_input {
namespace {

constexpr int kDim = 4;
constexpr int kServers = 2;
constexpr char kManifestMagic[] = "PSMANIFE";

// checkpoints/cases.txt's job: 2 servers, table 'emb' of dim 4 (Adagrad),
// MEMORY or TIERED under `dir`/live, checkpoints in `dir`/ckpt.
JobConfig CheckpointJob(const std::string& dir, bool tiered) {
  JobConfig c = SmallJobConfig(kServers, 1, kDim, /*dense_block_size=*/8);
  SparseTableConfig* t = c.mutable_sparse_tables(0);
  t->mutable_optimizer()->set_type(OptimizerConfig::ADAGRAD);
  if (tiered) {
    t->mutable_storage()->set_type(SparseStorageConfig::TIERED);
    t->mutable_storage()->set_dir(dir + "/live");
    t->mutable_storage()->set_memory_budget_bytes(32 << 10);
  }
  c.mutable_checkpoint()->set_dir(dir + "/ckpt");
  return c;
}

// Pushes gradients for 50 keys of each server at `step`.
void PushRows(const std::vector<std::unique_ptr<PsHandler>>& handlers,
              int64_t step) {
  for (int r = 0; r < kServers; ++r) {
    std::vector<uint64_t> keys;
    for (uint64_t k = 1; keys.size() < 50; ++k) {
      if (ServerForKey(k + step, kServers) == r) keys.push_back(k + step);
    }
    PushResponse response;
    EXPECT_OK(handlers[r]->Push(
        SparsePushRequest(0, kDim, keys,
                          std::vector<float>(keys.size() * kDim, 0.5f), step),
        &response));
  }
}

// The live rows of each server, by rank (TIERED: they outlive the handler).
using LiveRows = std::vector<std::map<uint64_t, std::vector<float>>>;

LiveRows RowsOf(const std::vector<std::unique_ptr<PsHandler>>& handlers) {
  LiveRows rows;
  for (const auto& h : handlers) {
    auto dump = h->DumpSparse(0);
    EXPECT_TRUE(dump.ok()) << dump.status();
    rows.push_back(dump.value_or(LiveRows::value_type()));
  }
  return rows;
}

// Writes ckpt-0000000010 and ckpt-0000000020 (LATEST), then trains on so the
// live tables differ from both. Returns the live rows.
LiveRows WriteCheckpoints(const JobConfig& job) {
  std::vector<std::unique_ptr<PsHandler>> handlers;
  for (int r = 0; r < kServers; ++r) {
    auto h = PsHandler::Create(job, r);
    EXPECT_TRUE(h.ok()) << h.status();
    if (!h.ok()) return {};
    handlers.push_back(std::move(h).value());
  }
  std::vector<PsHandler*> raw;
  for (const auto& h : handlers) raw.push_back(h.get());
  PushRows(handlers, 5);
  EXPECT_OK(SaveAndCommit(raw, job, 10));
  PushRows(handlers, 15);
  EXPECT_OK(SaveAndCommit(raw, job, 20));
  PushRows(handlers, 25);
  return RowsOf(handlers);
}

// Rewrites `dir`/MANIFEST from `manifest`, sealed as CommitCheckpoint does.
absl::Status WriteManifest(const std::string& dir, const Manifest& manifest) {
  return WriteChecksummedFile(dir + "/MANIFEST", kManifestMagic,
                              kCheckpointFormatVersion,
                              manifest.SerializeAsString())
      .status();
}

// The checkpoint-only steps (see checkpoints/cases.txt); others go to
// ApplyEdit. `job` is the config the resume uses, `open` the folder opened
// explicitly ("" = LATEST).
absl::Status ApplyCheckpointStep(const std::string& root,
                                 const std::string& step, JobConfig* job,
                                 std::string* open) {
  std::vector<std::string> words =
      absl::StrSplit(step, absl::MaxSplits(' ', 2), absl::SkipEmpty());
  const std::string& verb = words[0];
  if (verb == "restamp" && words.size() == 2) {
    const std::string dir = root + "/" + words[1];
    auto manifest = ReadManifest(dir);
    if (!manifest.ok()) return manifest.status();
    for (CheckpointFile& f : *manifest->mutable_files()) {
      auto described = DescribeCheckpointFile(dir, f.path());
      if (!described.ok()) return described.status();
      f = *described;
    }
    return WriteManifest(dir, *manifest);
  }
  if (verb == "manifest" && words.size() == 3) {
    const std::string dir = root + "/" + words[1];
    auto manifest = ReadManifest(dir);
    if (!manifest.ok()) return manifest.status();
    if (!google::protobuf::TextFormat::MergeFromString(words[2], &*manifest)) {
      return absl::InvalidArgumentError("manifest text does not parse");
    }
    return WriteManifest(dir, *manifest);
  }
  if (verb == "open" && words.size() == 2) {
    *open = words[1];
    return absl::OkStatus();
  }
  if (verb == "job" && words.size() == 2) {
    std::vector<std::string> kv = absl::StrSplit(words[1], '=');
    int n = 0;
    if (kv.size() == 2 && kv[0] == "dim" && absl::SimpleAtoi(kv[1], &n)) {
      job->mutable_sparse_tables(0)->set_dim(n);
    } else if (kv.size() == 2 && kv[0] == "table") {
      job->mutable_sparse_tables(0)->set_name(kv[1]);
      job->mutable_model()->set_sparse_table(kv[1]);
    } else if (kv.size() == 2 && kv[0] == "hidden" &&
               absl::SimpleAtoi(kv[1], &n)) {
      job->mutable_model()->add_hidden_units(n);
    } else if (kv.size() == 2 && kv[0] == "model") {
      ModelConfig::Type type;
      if (!ModelConfig::Type_Parse(kv[1], &type)) {
        return absl::InvalidArgumentError("unknown model type");
      }
      job->mutable_model()->set_type(type);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("job step '", step, "'"));
    }
    return absl::OkStatus();
  }
  return ApplyEdit(root, step);
}

// Resumes every server as server_main does: OpenLatest (or OpenCheckpoint
// of `open`), then PsHandler::Create with the checkpoint, rank by rank. The
// first error, and the rank whose restore failed (-1: none did).
absl::Status Resume(const std::string& root, const std::string& open,
                    const JobConfig& job, int* failed_rank) {
  *failed_rank = -1;
  auto opened =
      open.empty() ? OpenLatest(root) : OpenCheckpoint(root + "/" + open);
  if (!opened.ok()) return opened.status();
  const RestoreFrom restore{opened->dir, opened->manifest};
  for (int r = 0; r < job.cluster().servers_size(); ++r) {
    auto h = PsHandler::Create(job, r, &restore);
    if (!h.ok()) {
      *failed_rank = r;
      return h.status();
    }
  }
  return absl::OkStatus();
}

TEST(BadInputTest, Checkpoints) {
  auto cases = ReadCases("checkpoints", 2);
  ASSERT_TRUE(cases.ok()) << cases.status();
  // The checkpoints (and live TIERED tables) are written once per storage
  // kind, and each case works on a copy: commits fsync, copies need not.
  const testing_util::TempDir templates[2];
  LiveRows live_rows[2];
  for (int tiered = 0; tiered < 2; ++tiered) {
    live_rows[tiered] =
        WriteCheckpoints(CheckpointJob(templates[tiered].path(), tiered));
    ASSERT_EQ(live_rows[tiered].size(), static_cast<size_t>(kServers));
  }
  for (const Case& c : *cases) {
    SCOPED_TRACE(c.where());
    ASSERT_TRUE(c.columns[0] == "MEMORY" || c.columns[0] == "TIERED")
        << c.where() << ": storage must be MEMORY or TIERED";
    const bool tiered = c.columns[0] == "TIERED";
    testing_util::TempDir dir;
    std::error_code ec;
    std::filesystem::copy(templates[tiered].path(), dir.path(),
                          std::filesystem::copy_options::recursive, ec);
    ASSERT_FALSE(ec) << ec.message();
    const JobConfig written = CheckpointJob(dir.path(), tiered);
    const LiveRows& live = live_rows[tiered];
    const std::string root = written.checkpoint().dir();
    JobConfig job = written;
    std::string open;
    for (const std::string& step : SplitSteps(c.columns[1])) {
      ASSERT_OK(ApplyCheckpointStep(root, step, &job, &open))
          << c.where() << ": step '" << step << "'";
    }
    const TreeState before = Snapshot(root);
    int failed_rank = -1;
    EXPECT_EQ(Mismatch(c, Resume(root, open, job, &failed_rank)), "");
    // The checkpoints are as they were: a resume reads, never repairs.
    EXPECT_EQ(TreeDiff(before, Snapshot(root)), "") << c.where();
    if (c.control() || !tiered) continue;
    // A refused resume leaves the live TIERED tables it did not reach, and
    // the one it failed on, as they were.
    for (int r = std::max(failed_rank, 0); r < kServers; ++r) {
      auto h = PsHandler::Create(written, r);
      ASSERT_TRUE(h.ok()) << c.where() << ": " << h.status();
      auto rows = (*h)->DumpSparse(0);
      ASSERT_TRUE(rows.ok()) << rows.status();
      EXPECT_EQ(rows->size(), live[r].size())
          << c.where() << ": server " << r << "'s live rows changed";
      EXPECT_TRUE(*rows == live[r])
          << c.where() << ": server " << r << "'s live rows changed";
    }
  }
}

// exports/cases.txt's model: SmallJobConfig's DNN, one server, dim 4.
JobConfig ExportJob() { return SmallJobConfig(1, 1, kDim, 8); }

// Writes export-0000000010.psx (FULL, 8 rows) and export-0000000020.psx (a
// DELTA over it: 2 rows changed, 1 added, 1 deleted) into `dir`.
void WriteExports(const std::string& dir) {
  const JobConfig job = ExportJob();
  const int64_t dense_size = 26 * kDim + 14;
  std::vector<uint64_t> keys = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> rows(keys.size() * kDim);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = 0.25f * i;
  auto full = ExportWriter::Create(ExportPath(dir, 10), job, 10);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_OK((*full)->BeginTable("emb"));
  ASSERT_OK((*full)->AddRows(keys, rows));
  ASSERT_OK((*full)->EndTable());
  ASSERT_OK((*full)->SetDense(std::vector<float>(dense_size, 0.5f)));
  ASSERT_OK((*full)->Close().status());
  auto base = ExportedModel::LoadFile(ExportPath(dir, 10));
  ASSERT_TRUE(base.ok()) << base.status();
  ExportOptions options;
  options.base = base->get();
  auto delta = ExportWriter::Create(ExportPath(dir, 20), job, 20, options);
  ASSERT_TRUE(delta.ok()) << delta.status();
  ASSERT_OK((*delta)->BeginTable("emb"));
  keys = {1, 2, 3, 4, 5, 6, 7, 9};  // 8 deleted, 9 added
  rows[0] = rows[5] = -1.0f;        // 1 and 2 changed
  ASSERT_OK((*delta)->AddRows(keys, rows));
  ASSERT_OK((*delta)->EndTable());
  ASSERT_OK((*delta)->SetDense(std::vector<float>(dense_size, 0.75f)));
  ASSERT_OK((*delta)->Close().status());
}

// What a loaded model holds, to show a refused delta changed nothing.
std::string Describe(const ExportedModel& m) {
  std::string out = absl::StrCat("step ", m.step(), " rows ", m.num_rows(0));
  for (uint64_t key : m.Keys(0)) {
    const float* row = m.Row(0, key);
    absl::StrAppend(&out, " ", key, ":", row[0], ",", row[kDim - 1]);
  }
  absl::StrAppend(&out, " dense ", m.dense().size(), " ", m.dense().front());
  return out;
}

TEST(BadInputTest, Exports) {
  auto cases = ReadCases("exports", 2);
  ASSERT_TRUE(cases.ok()) << cases.status();
  for (const Case& c : *cases) {
    SCOPED_TRACE(c.where());
    testing_util::TempDir scratch;
    const std::string dir = scratch.Path("exports");
    std::filesystem::create_directories(dir);
    WriteExports(dir);
    for (const std::string& step : SplitSteps(c.columns[0])) {
      ASSERT_OK(ApplyEdit(dir, step)) << c.where() << ": step '" << step << "'";
    }
    const TreeState before = Snapshot(dir);
    std::vector<std::string> load =
        absl::StrSplit(c.columns[1], ' ', absl::SkipEmpty());
    absl::Status status;
    if (!load.empty() && load.size() <= 2 && load[0] == "dir") {
      status =
          ExportedModel::LoadDir(load.size() == 1 ? dir : dir + "/" + load[1])
              .status();
    } else if (load.size() == 2 && load[0] == "file") {
      status = ExportedModel::LoadFile(dir + "/" + load[1]).status();
    } else if (load.size() == 2 && load[0] == "delta") {
      auto model = ExportedModel::LoadFile(ExportPath(dir, 10));
      ASSERT_TRUE(model.ok()) << c.where() << ": " << model.status();
      const std::string held = Describe(**model);
      status = (*model)->ApplyDelta(dir + "/" + load[1]);
      if (!status.ok()) {
        EXPECT_EQ(Describe(**model), held)
            << c.where() << ": the refused delta changed the model";
      }
    } else {
      FAIL() << c.where()
             << ": load must be 'dir [NAME]', 'file NAME' or 'delta NAME'";
    }
    EXPECT_EQ(Mismatch(c, status), "");
    EXPECT_EQ(TreeDiff(before, Snapshot(dir)), "") << c.where();
  }
}

}  // namespace
}  // namespace bad_input
}  // namespace ps

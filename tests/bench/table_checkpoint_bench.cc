// Checkpoint and restore time of a whole server (PsHandler) holding one
// sparse table of N rows (default 10 M) of dim 16 with Adagrad state, on
// MEMORY and on TIERED storage, printed as JSON lines:
//   {"storage": "memory", "rows": ..., "bytes": ..., "save_sec": ...,
//    "save_MBps": ..., "verify_sec": ..., "restore_sec": ...,
//    "restore_MBps": ..., "restored_rows": ...}
// save = SaveCheckpoint (pushes held) + CommitCheckpoint; verify = OpenLatest
// (every file's checksum); restore = a new PsHandler from the checkpoint.
//
//   table_checkpoint_bench [--rows N] [--dir D] [--storage memory|tiered|both]
// D (default a temp folder) is removed at the end. Run by scripts/bench.sh
// --checkpoint.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint.h"
#include "glog/logging.h"
#include "google/protobuf/text_format.h"
#include "server/service/ps_handler.h"

namespace ps {
namespace {

constexpr int kDim = 16;
constexpr int64_t kBatch = 65536;

JobConfig Config(const std::string& root, bool tiered,
                 const std::string& live) {
  JobConfig c;
  c.mutable_cluster()->add_servers("127.0.0.1:1");
  c.mutable_cluster()->set_num_workers(1);
  c.mutable_cluster()->set_shard_num(16);
  SparseTableConfig* t = c.add_sparse_tables();
  t->set_name("emb");
  t->set_dim(kDim);
  t->mutable_optimizer()->set_type(OptimizerConfig::ADAGRAD);
  t->mutable_initializer()->set_type(InitializerConfig::UNIFORM);
  t->mutable_initializer()->set_scale(0.01f);
  if (tiered) {
    t->mutable_storage()->set_type(SparseStorageConfig::TIERED);
    t->mutable_storage()->set_dir(live);
    t->mutable_storage()->set_memory_budget_bytes(int64_t{256} << 20);
  }
  ModelConfig* m = c.mutable_model();
  m->set_type(ModelConfig::DNN);
  m->set_sparse_table("emb");
  m->add_hidden_units(64);
  c.mutable_data()->add_train_files("/none");
  c.mutable_checkpoint()->set_dir(root + "/ckpt");
  return c;
}

int64_t DirBytes(const std::string& dir) {
  int64_t bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) bytes += static_cast<int64_t>(e.file_size());
  }
  return bytes;
}

int Run(const std::string& root, bool tiered, int64_t rows) {
  const JobConfig c = Config(root, tiered, root + "/live");
  auto handler = PsHandler::Create(c, 0);
  CHECK(handler.ok()) << handler.status();
  std::vector<uint64_t> keys(kBatch);
  std::vector<float> grads(kBatch * kDim, 0.01f);
  // One push of step 1 in parts of kBatch keys (a server applies each part
  // of a step once).
  const int64_t parts = (rows + kBatch - 1) / kBatch;
  for (int64_t begin = 0; begin < rows; begin += kBatch) {
    const int64_t n = std::min(kBatch, rows - begin);
    for (int64_t j = 0; j < n; ++j) {
      keys[j] = static_cast<uint64_t>(begin + j) * 0x9E3779B97F4A7C15ull;
    }
    PushRequest r;
    r.mutable_header()->set_step(1);
    r.set_part(static_cast<uint32_t>(begin / kBatch));
    r.set_parts(static_cast<uint32_t>(parts));
    SparseSegment* seg = r.add_sparse();
    seg->set_table_id(0);
    seg->set_num_keys(static_cast<uint32_t>(n));
    seg->set_dim(kDim);
    r.set_keys(std::string(reinterpret_cast<const char*>(keys.data()), n * 8));
    r.set_grads(
        std::string(reinterpret_cast<const char*>(grads.data()), n * kDim * 4));
    PushResponse response;
    absl::Status s = (*handler)->Push(r, &response);
    CHECK(s.ok()) << s;
    CHECK(!response.duplicate()) << "part " << r.part() << " applied twice";
  }

  absl::Time start = absl::Now();
  auto dir = PrepareCheckpointDir(c.checkpoint().dir(), 1);
  CHECK(dir.ok()) << dir.status();
  SaveCheckpointRequest req;
  req.set_dir(*dir);
  req.set_step(1);
  SaveCheckpointResponse resp;
  absl::Status s = (*handler)->SaveCheckpoint(req, &resp);
  CHECK(s.ok()) << s;
  Manifest m;
  m.set_global_step(1);
  m.set_num_servers(1);
  google::protobuf::TextFormat::PrintToString(c, m.mutable_job_config());
  for (const CheckpointFile& f : resp.files()) *m.add_files() = f;
  CHECK(CommitCheckpoint(c.checkpoint().dir(), m).ok());
  const double save_sec = absl::ToDoubleSeconds(absl::Now() - start);
  const int64_t bytes = DirBytes(*dir);

  start = absl::Now();
  auto opened = OpenLatest(c.checkpoint().dir());
  CHECK(opened.ok()) << opened.status();
  const double verify_sec = absl::ToDoubleSeconds(absl::Now() - start);

  handler->reset();  // the live table closes (tiered: flushed) first
  start = absl::Now();
  RestoreFrom restore{opened->dir, opened->manifest};
  auto back = PsHandler::Create(c, 0, &restore);
  CHECK(back.ok()) << back.status();
  const double restore_sec = absl::ToDoubleSeconds(absl::Now() - start);
  auto restored = (*back)->ExactRows(0);
  CHECK(restored.ok()) << restored.status();
  const double mb = static_cast<double>(bytes) / (1 << 20);
  std::printf(
      "{\"storage\": \"%s\", \"rows\": %lld, \"bytes\": %lld, "
      "\"save_sec\": %.3f, \"save_MBps\": %.1f, \"verify_sec\": %.3f, "
      "\"restore_sec\": %.3f, \"restore_MBps\": %.1f, \"restored_rows\": "
      "%lld}\n",
      tiered ? "tiered" : "memory", static_cast<long long>(rows),
      static_cast<long long>(bytes), save_sec, mb / save_sec, verify_sec,
      restore_sec, mb / restore_sec, static_cast<long long>(*restored));
  std::fflush(stdout);
  return *restored == rows ? 0 : 1;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  google::InitGoogleLogging(argv[0]);
  int64_t rows = 10'000'000;
  std::string dir =
      absl::StrCat(std::filesystem::temp_directory_path().string(),
                   "/table_ckpt_bench_", getpid());
  std::string storage = "both";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--rows") {
      rows = std::atoll(argv[i + 1]);
    } else if (flag == "--dir") {
      dir = argv[i + 1];
    } else if (flag == "--storage") {
      storage = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  int rc = 0;
  for (bool tiered : {false, true}) {
    if (storage != "both" && storage != (tiered ? "tiered" : "memory"))
      continue;
    const std::string root = dir + (tiered ? "/tiered" : "/memory");
    std::filesystem::remove_all(root);
    rc |= ps::Run(root, tiered, rows);
    std::filesystem::remove_all(root);
  }
  std::filesystem::remove_all(dir);
  return rc;
}

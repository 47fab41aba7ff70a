// Writes the binary seeds of the fuzz corpora with the real writers:
//   make_seeds OUT   (e.g. build/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus)
// fills OUT/<target>/ for checksummed_file, checkpoint_manifest, rows_bin,
// export_reader, gzip_reader, ps_pull and ps_push. The text seeds (lines,
// configs, HTTP requests) are files in the corpus, written by hand. Run it
// again after a format changes; its output is deterministic.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/checksummed_file.h"
#include "common/export_format.h"
#include "common/model_spec.h"
#include "common/packing.h"
#include "glog/logging.h"
#include "proto/checkpoint.pb.h"
#include "proto/ps.pb.h"
#include "server/table/sparse_table.h"
#include "server/table/table_snapshot.h"
#include "tests/fuzz/fuzz_jobs.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/rows_fuzz.h"
#include "tests/testing/wire_requests.h"

namespace ps {
namespace fuzz {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CHECK(in) << path;
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// The payload of a checksummed file.
std::string Payload(const std::string& file) {
  CHECK_GE(file.size(), kChecksummedHeaderBytes + kChecksummedFooterBytes);
  return file.substr(
      kChecksummedHeaderBytes,
      file.size() - kChecksummedHeaderBytes - kChecksummedFooterBytes);
}

class Seeds {
 public:
  explicit Seeds(std::string root) : root_(std::move(root)) {}

  // Writes OUT/<target>/<name>.
  void Put(const std::string& target, const std::string& name,
           absl::string_view bytes) {
    const std::string dir = root_ + "/" + target;
    std::filesystem::create_directories(dir);
    WriteFileOrDie(dir + "/" + name, bytes);
  }
  // Where a writer may put its files first.
  std::string Scratch(const std::string& name) { return ScratchPath(name); }

 private:
  const std::string root_;
};

void ChecksummedFiles(Seeds& seeds) {
  const std::string path = seeds.Scratch("c.bin");
  auto writer = ChecksummedWriter::Create(path, "PSFUZZ01", 1);
  CHECK(writer.ok());
  CHECK(AppendString(writer->get(), "hello").ok());
  CHECK((*writer)->AppendU64(7).ok());
  CHECK((*writer)->AppendFloats(std::vector<float>{1, 2.5f, -3}).ok());
  CHECK(AppendString(writer->get(), "").ok());
  CHECK((*writer)->Close().ok());
  const std::string file = ReadAll(path);
  seeds.Put("checksummed_file", "mixed.bin", file);
  seeds.Put("checksummed_file", "truncated.bin",
            file.substr(0, file.size() - 5));
  std::string flipped = file;
  flipped[20] ^= 1;
  seeds.Put("checksummed_file", "bad-crc.bin", flipped);
  CHECK(WriteChecksummedFile(path, "PSFUZZ01", 2, "abc").ok());
  seeds.Put("checksummed_file", "v2.bin", ReadAll(path));
  CHECK(WriteChecksummedFile(path, "PSFUZZ01", 3, "").ok());
  seeds.Put("checksummed_file", "v3.bin", ReadAll(path));
  CHECK(WriteChecksummedFile(path, "PSOTHER1", 1, "x").ok());
  seeds.Put("checksummed_file", "other-magic.bin", ReadAll(path));
}

void Manifests(Seeds& seeds) {
  const std::string root = seeds.Scratch("ckpt");
  auto dir = PrepareCheckpointDir(root, 1);
  CHECK(dir.ok()) << dir.status();
  std::filesystem::create_directories(*dir + "/server-0");
  // As checkpoint_manifest_fuzzer.cc's folder holds.
  WriteFileOrDie(*dir + "/server-0/a.bin", "rows");
  auto file = DescribeCheckpointFile(*dir, "server-0/a.bin");
  CHECK(file.ok()) << file.status();
  Manifest m;
  m.set_global_step(1);
  m.set_num_servers(1);
  m.set_hash_seed(3);
  m.set_created_unix_micros(1700000000000000);
  m.set_job_config(RecordedJobConfig(ParsedJob(kCheckpointJob)));
  *m.add_files() = *file;
  DataPosition* p = m.add_worker_positions();
  p->set_worker_rank(0);
  p->set_file_index(0);
  p->set_file("train.tsv");
  p->set_offset(123);
  m.add_worker_steps(1);
  CHECK(CommitCheckpoint(root, m).ok());
  const std::string manifest = ReadAll(*dir + "/MANIFEST");
  seeds.Put("checkpoint_manifest", "MANIFEST", manifest);
  seeds.Put("checkpoint_manifest", "manifest.payload", Payload(manifest));
  seeds.Put("checkpoint_manifest", "LATEST", ReadAll(root + "/LATEST"));
  seeds.Put("checkpoint_manifest", "LATEST-other", "ckpt-0000000002\n");
}

void RowsBin(Seeds& seeds) {
  auto table = SparseTable::Create(RowsTableOptions());
  CHECK(table.ok()) << table.status();
  const std::vector<uint64_t> keys = {1, 2, 4, 5};
  std::vector<float> grads(keys.size() * 3, 0.5f);
  PushInfo info;
  info.step = 3;
  CHECK((*table)->Push(keys, grads, info).ok());
  const std::string ckpt = seeds.Scratch("rows-ckpt");
  const std::string dir = ckpt + "/" + SparseSnapshotDir(0, "emb");
  CHECK(SaveTableSnapshot(**table, ckpt, dir).ok());
  const std::string file = ReadAll(dir + "/rows.bin");
  seeds.Put("rows_bin", "rows.bin", file);
  seeds.Put("rows_bin", "rows.payload", Payload(file));
  seeds.Put("rows_bin", "truncated.payload",
            Payload(file).substr(0, file.size() - 40));
}

void Exports(Seeds& seeds) {
  const std::string base_path = seeds.Scratch("export-base.psx");
  WriteBaseExport(base_path);
  const std::string base = ReadAll(base_path);
  seeds.Put("export_reader", "full.psx", base);
  seeds.Put("export_reader", "full.payload", Payload(base));

  auto model = ExportedModel::LoadFile(base_path);
  CHECK(model.ok()) << model.status();
  ExportOptions options;
  options.base = model->get();
  const JobConfig config = ParsedJob(kExportJob);
  const std::string delta_path = seeds.Scratch("export-delta.psx");
  auto writer = ExportWriter::Create(delta_path, config, 9, options);
  CHECK(writer.ok()) << writer.status();
  CHECK((*writer)->BeginTable("emb").ok());
  // Row 1 unchanged, row 2 changed, row 7 new, row 3 dropped.
  CHECK((*writer)
            ->AddRows(std::vector<uint64_t>{1, 2, 7},
                      std::vector<float>{0.5f, -1, 1, 1, 4, 4})
            .ok());
  CHECK((*writer)->EndTable().ok());
  const int64_t dense = MakeModelSpec(config).dense_size;
  CHECK((*writer)->SetDense(std::vector<float>(dense, -2)).ok());
  CHECK((*writer)->Close().ok());
  const std::string delta = ReadAll(delta_path);
  seeds.Put("export_reader", "delta.psx", delta);
  seeds.Put("export_reader", "delta.payload", Payload(delta));
}

void Gzip(Seeds& seeds) {
  const std::string path = seeds.Scratch("g.gz");
  auto gz = [&](const std::vector<std::string>& members) {
    std::string out;
    for (const std::string& text : members) {
      gzFile f = gzopen(path.c_str(), "wb9");
      CHECK(f != nullptr);
      CHECK_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())),
               static_cast<int>(text.size()));
      CHECK_EQ(gzclose(f), Z_OK);
      out += ReadAll(path);
    }
    return out;
  };
  const std::string lines = "1\t2\t\t4\n0\t\t7\t8\nlast line without newline";
  seeds.Put("gzip_reader", "lines.gz", gz({lines}));
  seeds.Put("gzip_reader", "members.gz", gz({"a\nb", "c\n\nd\n"}));
  const std::string one = gz({lines});
  seeds.Put("gzip_reader", "truncated.gz", one.substr(0, one.size() / 2));
  std::string corrupt = one;
  corrupt[corrupt.size() - 6] ^= 0x40;  // the trailer's crc
  seeds.Put("gzip_reader", "bad-crc.gz", corrupt);
  seeds.Put("gzip_reader", "empty.gz", gz({""}));
  seeds.Put("gzip_reader", "plain.gz", "not gzip\nat all\n");
}

void Requests(Seeds& seeds) {
  const std::vector<uint64_t> emb = {1, 2, 3, 1ull << 63};
  const std::vector<uint64_t> wide = {9};
  PullRequest both = SparsePullRequest(0, 4, emb);
  SparseSegment* seg = both.add_sparse();
  seg->set_table_id(1);
  seg->set_num_keys(1);
  seg->set_dim(1);
  both.mutable_keys()->append(Pack<uint64_t>(wide));
  both.add_dense_tables(0);
  seeds.Put("ps_pull", "sparse-and-dense", both.SerializeAsString());
  seeds.Put("ps_pull", "dense", DensePullRequest(0).SerializeAsString());
  seeds.Put("ps_pull", "wrong-dim",
            SparsePullRequest(0, 8, emb).SerializeAsString());
  PullRequest short_keys = SparsePullRequest(1, 1, wide);
  short_keys.mutable_sparse(0)->set_num_keys(3);
  seeds.Put("ps_pull", "key-count", short_keys.SerializeAsString());
  PullRequest stale = SparsePullRequest(0, 4, emb);
  stale.mutable_header()->set_server_incarnation(42);
  seeds.Put("ps_pull", "incarnation", stale.SerializeAsString());

  const JobConfig job = ParsedJob(kHandlerJob);
  const int64_t dense = MakeModelSpec(job).dense_size;
  const std::vector<float> emb_grads(emb.size() * 4, 0.25f);
  PushRequest push = SparsePushRequest(0, 4, emb, emb_grads, 3);
  push.set_shows(Pack<float>(std::vector<float>(emb.size(), 2)));
  push.set_clicks(Pack<float>(std::vector<float>(emb.size(), 1)));
  seeds.Put("ps_push", "sparse", push.SerializeAsString());
  PushRequest mixed = SparsePushRequest(1, 1, wide, std::vector<float>{-1}, 12);
  DenseSegment* d = mixed.add_dense();
  d->set_table_id(0);
  d->set_num_values(dense);
  mixed.set_dense_grads(Pack<float>(std::vector<float>(dense, 0.5f)));
  mixed.set_merged_steps(2);
  seeds.Put("ps_push", "sparse-and-dense-merged", mixed.SerializeAsString());
  seeds.Put("ps_push", "dense-delta",
            DensePushRequest(0, std::vector<float>(dense, 1e-3f), 4, 1,
                             /*is_delta=*/true)
                .SerializeAsString());
  PushRequest part = SparsePushRequest(0, 4, emb, emb_grads, 20, 1, true);
  part.set_part(1);
  part.set_parts(2);
  seeds.Put("ps_push", "delta-part", part.SerializeAsString());
  std::vector<float> nan = emb_grads;
  nan[5] = std::numeric_limits<float>::quiet_NaN();
  seeds.Put("ps_push", "nan",
            SparsePushRequest(0, 4, emb, nan, 5).SerializeAsString());
}

}  // namespace
}  // namespace fuzz
}  // namespace ps

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  ps::fuzz::QuietLogs();
  ps::fuzz::Seeds seeds(argv[1]);
  ps::fuzz::ChecksummedFiles(seeds);
  ps::fuzz::Manifests(seeds);
  ps::fuzz::RowsBin(seeds);
  ps::fuzz::Exports(seeds);
  ps::fuzz::Gzip(seeds);
  ps::fuzz::Requests(seeds);
  std::printf("seeds written under %s\n", argv[1]);
  return 0;
}

// Checkpoint file-layer benchmarks (Google Benchmark), single-threaded, on
// a file the size of a 10 M-row table of dim 16 saved with its keys
// (10 M x (8 + 16 * 4) bytes = 720 MB):
//
//   BM_ChecksummedWrite     ChecksummedWriter: append the payload in 16 MiB
//                           pieces, footer, fsync (what a dense table or a
//                           memory-table dump costs per byte).
//   BM_ChecksummedReadCached / BM_ChecksummedReadCold
//                           ChecksummedReader: read the payload in 16 MiB
//                           pieces and check the crc32; Cold drops the
//                           file's pages from the page cache first
//                           (posix_fadvise DONTNEED), so it reads the disk.
//   BM_DigestFileCached     DigestFile: size + crc32 of a whole file (what
//                           describing and verifying a hard-linked RocksDB
//                           file costs).
//
// bytes_per_second is payload bytes per wall-clock second. Files live in
// $TMPDIR (default /tmp). Run by hand:
//   build/tests/checkpoint_bench --benchmark_min_time=0
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/checksummed_file.h"
#include "glog/logging.h"

namespace ps {
namespace {

constexpr int64_t kRows = 10'000'000;
constexpr int64_t kRowBytes = 8 + 16 * 4;
constexpr int64_t kPayloadBytes = kRows * kRowBytes;
constexpr size_t kPiece = size_t{16} << 20;
constexpr char kMagic[] = "PSBENCH1";

std::string BenchPath() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/ps_checkpoint_bench_" +
         std::to_string(getpid()) + ".bin";
}

const std::vector<char>& Piece() {
  static const std::vector<char>* piece = [] {
    auto* p = new std::vector<char>(kPiece);
    uint64_t x = 88172645463325252ULL;
    for (char& c : *p) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c = static_cast<char>(x);
    }
    return p;
  }();
  return *piece;
}

void WriteFile(const std::string& path) {
  auto w = ChecksummedWriter::Create(path, kMagic, 1);
  CHECK(w.ok()) << w.status();
  const std::vector<char>& piece = Piece();
  for (int64_t done = 0; done < kPayloadBytes;) {
    const size_t n = static_cast<size_t>(
        std::min<int64_t>(piece.size(), kPayloadBytes - done));
    CHECK((*w)->Append(absl::string_view(piece.data(), n)).ok());
    done += static_cast<int64_t>(n);
  }
  auto digest = (*w)->Close();
  CHECK(digest.ok()) << digest.status();
}

void DropCache(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  CHECK_GE(fd, 0);
  CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  close(fd);
}

void ReadFile(const std::string& path) {
  auto r = ChecksummedReader::Open(path, kMagic, 1);
  CHECK(r.ok()) << r.status();
  std::vector<char> buf(kPiece);
  while ((*r)->remaining() > 0) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(buf.size(), (*r)->remaining()));
    CHECK((*r)->Read(buf.data(), n).ok());
  }
  absl::Status finish = (*r)->Finish();
  CHECK(finish.ok()) << finish;
}

void BM_ChecksummedWrite(benchmark::State& state) {
  const std::string path = BenchPath();
  Piece();
  for (auto _ : state) WriteFile(path);
  unlink(path.c_str());
  state.SetBytesProcessed(state.iterations() * kPayloadBytes);
}
BENCHMARK(BM_ChecksummedWrite)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

void BM_ChecksummedReadCached(benchmark::State& state) {
  const std::string path = BenchPath();
  WriteFile(path);
  ReadFile(path);  // warm the page cache
  for (auto _ : state) ReadFile(path);
  unlink(path.c_str());
  state.SetBytesProcessed(state.iterations() * kPayloadBytes);
}
BENCHMARK(BM_ChecksummedReadCached)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

void BM_ChecksummedReadCold(benchmark::State& state) {
  const std::string path = BenchPath();
  WriteFile(path);
  for (auto _ : state) {
    state.PauseTiming();
    DropCache(path);
    state.ResumeTiming();
    ReadFile(path);
  }
  unlink(path.c_str());
  state.SetBytesProcessed(state.iterations() * kPayloadBytes);
}
BENCHMARK(BM_ChecksummedReadCold)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

void BM_DigestFileCached(benchmark::State& state) {
  const std::string path = BenchPath();
  WriteFile(path);
  for (auto _ : state) {
    auto digest = DigestFile(path);
    CHECK(digest.ok());
    benchmark::DoNotOptimize(digest->crc32);
  }
  unlink(path.c_str());
  state.SetBytesProcessed(state.iterations() * kPayloadBytes);
}
BENCHMARK(BM_DigestFileCached)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

}  // namespace
}  // namespace ps

BENCHMARK_MAIN();

// RecordLog (server/storage/record_log.h) append benchmarks (Google
// Benchmark): what logging each push costs the server.
//
//   BM_Append/bytes:B/sync_ms:S   one thread appends records of B bytes;
//                                 S = 10: group commit (a background
//                                 fdatasync every 10 ms), S = 0: an
//                                 fdatasync before every Append returns.
//   BM_AppendThreads/.../threads:4  four threads append at once into one
//                                 log (with S = 0 they share fdatasyncs).
//
// bytes_per_second is record bytes per wall-clock second. The log lives in
// $TMPDIR (default /tmp), which must be a real disk for the fdatasync to
// mean anything; it is Reset (untimed) every 256 MiB to bound its size.
// Run by hand:
//   build/tests/record_log_bench
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "benchmark/benchmark.h"
#include "glog/logging.h"
#include "server/storage/record_log.h"

namespace ps {
namespace {

constexpr int64_t kResetBytes = int64_t{256} << 20;

std::string MakeDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") +
                     "/ps_record_log_bench_XXXXXX";
  CHECK(mkdtemp(tmpl.data()) != nullptr) << tmpl;
  return tmpl;
}

std::string Record(size_t n) {
  std::string s(n, '\0');
  uint64_t x = 88172645463325252ULL;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

// The log the threads of one run share; made and dropped by thread 0.
std::unique_ptr<RecordLog> shared_log;
std::string shared_dir;

void BM_Append(benchmark::State& state) {
  const std::string record = Record(static_cast<size_t>(state.range(0)));
  if (state.thread_index() == 0) {
    shared_dir = MakeDir();
    RecordLogOptions options;
    options.dir = shared_dir;
    options.sync_ms = static_cast<int>(state.range(1));
    absl::StatusOr<std::unique_ptr<RecordLog>> log = RecordLog::Open(options);
    CHECK(log.ok()) << log.status();
    shared_log = std::move(*log);
  }
  for (auto _ : state) {
    const absl::Status status = shared_log->Append(record);
    CHECK(status.ok()) << status;
    if (state.thread_index() == 0 && shared_log->bytes() > kResetBytes) {
      state.PauseTiming();
      CHECK(shared_log->Reset().ok());
      state.ResumeTiming();
    }
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
  if (state.thread_index() == 0) {
    shared_log.reset();
    std::error_code ignored;
    std::filesystem::remove_all(shared_dir, ignored);
  }
}
BENCHMARK(BM_Append)
    ->ArgNames({"bytes", "sync_ms"})
    ->Args({64 << 10, 10})
    ->Args({1 << 20, 10})
    ->Args({64 << 10, 0})
    ->Args({1 << 20, 0})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK(BM_Append)
    ->Name("BM_AppendThreads")
    ->ArgNames({"bytes", "sync_ms"})
    ->Args({64 << 10, 10})
    ->Args({64 << 10, 0})
    ->Threads(4)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace ps

BENCHMARK_MAIN();

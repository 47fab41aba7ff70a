// Input pipeline benchmark: DataReader over a generated Criteo file (200 000
// rows, written once to a temporary folder), batches of 512, for 1, 2 and 4
// parser threads. Counter examples/s; bytes/s is the file's text.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "benchmark/benchmark.h"
#include "worker/data_reader.h"
#include "worker/datagen.h"

namespace ps {
namespace {

struct Data {
  std::string dir;
  std::string file;
  int64_t bytes = 0;
  int64_t rows = 0;
};

const Data& GeneratedData() {
  static const Data data = [] {
    Data d;
    char pattern[] = "/tmp/reader_bench.XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      std::perror("reader_bench: mkdtemp");
      std::exit(1);
    }
    d.dir = pattern;
    GeneratorConfig gen;
    gen.set_output_dir(d.dir);
    gen.set_seed(1);
    gen.set_train_rows(200000);
    gen.set_eval_rows(1);
    auto report = GenerateCriteoData(gen);
    if (!report.ok()) {
      std::fprintf(stderr, "reader_bench: %s\n",
                   std::string(report.status().message()).c_str());
      std::exit(1);
    }
    d.file = report->train_file;
    d.rows = report->train_rows;
    d.bytes = static_cast<int64_t>(std::filesystem::file_size(d.file));
    std::atexit([] { std::filesystem::remove_all(GeneratedData().dir); });
    return d;
  }();
  return data;
}

void BM_ReadCriteo(benchmark::State& state) {
  const Data& data = GeneratedData();
  ReaderOptions options;
  options.files = {data.file};
  options.batch_size = 512;
  options.threads = static_cast<int>(state.range(0));
  int64_t examples = 0;
  for (auto _ : state) {
    auto reader = DataReader::Open(options);
    if (!reader.ok()) {
      state.SkipWithError(std::string(reader.status().message()).c_str());
      return;
    }
    Batch batch;
    while (true) {
      auto more = (*reader)->Next(&batch);
      if (!more.ok()) {
        state.SkipWithError(std::string(more.status().message()).c_str());
        return;
      }
      if (!*more) break;
      examples += batch.size();
    }
  }
  if (examples != data.rows * state.iterations()) {
    state.SkipWithError("the reader lost or repeated examples");
    return;
  }
  state.counters["examples/s"] =
      benchmark::Counter(static_cast<double>(examples),
                         benchmark::Counter::kIsRate);
  state.SetBytesProcessed(data.bytes * state.iterations());
}
BENCHMARK(BM_ReadCriteo)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ps

BENCHMARK_MAIN();

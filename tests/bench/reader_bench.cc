// Input pipeline benchmark: DataReader over a generated Criteo file (200 000
// rows, written once to a temporary folder), batches of 512, for 1, 2 and 4
// parser threads: BM_ReadCriteo reads it plain, BM_ReadCriteoGzip as 4 .gz
// files of a quarter each, BM_ReadCriteoOneGzip as one .gz file. Counter
// examples/s; bytes/s is the text's.
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "tools/datagen/datagen.h"
#include "worker/data/data_reader.h"

namespace ps {
namespace {

struct Data {
  std::string dir;
  std::string file;
  std::vector<std::string> gzip_files;  // the same lines, in 4 parts
  std::string gzip_file;                // the same lines, in one
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
    std::ifstream in(d.file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    // Parts 0..3 hold a quarter each; part 4, named whole.gz, all.
    for (int part = 0; part < 5; ++part) {
      const bool whole = part == 4;
      std::string path =
          d.dir + (whole ? std::string("/whole.gz")
                         : "/part-" + std::to_string(part) + ".gz");
      gzFile out = gzopen(path.c_str(), "wb1");
      if (out == nullptr) {
        std::fprintf(stderr, "reader_bench: cannot write %s\n", path.c_str());
        std::exit(1);
      }
      const size_t first = whole ? 0 : lines.size() * part / 4;
      const size_t last = whole ? lines.size() : lines.size() * (part + 1) / 4;
      for (size_t i = first; i < last; ++i) {
        gzwrite(out, lines[i].data(), static_cast<unsigned>(lines[i].size()));
        gzputc(out, '\n');
      }
      if (gzclose(out) != Z_OK) {
        std::fprintf(stderr, "reader_bench: cannot close %s\n", path.c_str());
        std::exit(1);
      }
      (whole ? d.gzip_file : d.gzip_files.emplace_back()) = path;
    }
    std::atexit([] { std::filesystem::remove_all(GeneratedData().dir); });
    return d;
  }();
  return data;
}

void ReadAll(benchmark::State& state, const std::vector<std::string>& files) {
  const Data& data = GeneratedData();
  ReaderOptions options;
  options.files = files;
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
  state.counters["examples/s"] = benchmark::Counter(
      static_cast<double>(examples), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(data.bytes * state.iterations());
}
void BM_ReadCriteo(benchmark::State& state) {
  ReadAll(state, {GeneratedData().file});
}
BENCHMARK(BM_ReadCriteo)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ReadCriteoGzip(benchmark::State& state) {
  ReadAll(state, GeneratedData().gzip_files);
}
BENCHMARK(BM_ReadCriteoGzip)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ReadCriteoOneGzip(benchmark::State& state) {
  ReadAll(state, {GeneratedData().gzip_file});
}
BENCHMARK(BM_ReadCriteoOneGzip)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ps

BENCHMARK_MAIN();

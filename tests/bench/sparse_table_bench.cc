// In-process sparse table benchmarks (Google Benchmark), single-threaded:
//
//   BM_RawFlatHashMap/zipf:Z       the yardstick: absl::flat_hash_map<key,
//                                  row index> over a contiguous arena of
//                                  64-float (256 B) rows; each key's row is
//                                  looked up and copied out (libc memmove).
//   BM_RawFlatHashMapAdagrad/dim:D/zipf:Z
//                                  the push yardstick: the same map over
//                                  rows of [weights | Adagrad state], each
//                                  updated in place.
//   BM_RawFlatHashMapInlineCopy/zipf:Z
//                                  the same with an inlined constant-size
//                                  copy (measured at 5.5-7 M rows/s per thread
//                                  on the 2-core machine).
//   BM_SparsePull/dim:D/zipf:Z     SparseTable::Pull
//   (server/table/sparse_table.h). BM_SparsePushAdagrad/dim:D/zipf:Z
//                                  SparseTable::Push with the Adagrad rule.
//   BM_StoragePull/storage:S/dim:D/zipf:Z, BM_StoragePushAdagrad/...
//                                  the same over a 256K-key table on storage
//                                  S: 0 memory, 1 tiered with the whole
//                                  table in its memory budget, 2 tiered with
//                                  the table 10x its budget (RocksDB in a
//                                  temp dir), 3 the same with PLAIN tables.
//                                  Counters: hit_rate (tiered),
//                                  static_best_hit_rate (10x over: that
//                                  of the top-ranked keys that fit),
//                                  overhead_B_per_row (memory bytes per row
//                                  beyond the row's floats).
//   BM_KvMultiGet/format:F         the floor of a tiered miss: KvStore::
//                                  MultiGet (server/storage/kv_storage.h) of
//                                  1700 sorted random keys (a Zipf batch's
//                                  misses at 10x over budget) from a 256K-row
//                                  RocksDB of 128-byte rows (dim 16 Adagrad),
//                                  reopened so the rows sit in one table
//                                  file and the memtable is empty: the
//                                  cheapest state a tiered table's disk tier
//                                  can be in. F: 0 BLOCK_BASED, 1 PLAIN.
//
// Every table holds 1M keys before timing; batches are 4096 distinct keys
// (tests/bench/bench_keys.h), uniform (zipf:0) or Zipf(1.1) (zipf:1), built
// outside the timed loop. items_per_second is rows per second; bytes_per_second
// counts the rows' weights (dim floats each). Run by scripts/bench.sh.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "benchmark/benchmark.h"
#include "glog/logging.h"
#include "server/storage/kv_storage.h"
#include "server/storage/tiered_storage.h"
#include "server/table/sparse_table.h"
#include "tests/bench/bench_keys.h"

namespace ps {
namespace {

using bench::KeyBatches;
using bench::KeyDist;

constexpr int64_t kUniverse = 1 << 20;  // keys prefilled in every table
constexpr int kBatch = 4096;            // distinct keys per call
constexpr int kNumBatches = 256;        // 1M lookups before batches repeat
// Passes over the Zipf batches before a tiered table 10x over its budget is
// measured (its hit rate settles within two).
constexpr int kWarmupCycles = 2;
constexpr int kRawDim = 64;                    // 256 B rows in the baseline
constexpr int64_t kStorageUniverse = 1 << 18;  // keys of BM_Storage* tables

// The baseline: what a lookup-and-copy costs with nothing but a hash map
// and an arena.
struct RawTable {
  absl::flat_hash_map<uint64_t, uint32_t> index;
  std::vector<float> arena;  // kUniverse rows of kRawDim floats
};

// Lazily built inputs shared by the benchmarks of one process, so a
// --benchmark_filter run builds only what it needs.
class BenchInputs {
 public:
  ~BenchInputs() {
    storage_tables_.clear();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  const KeyBatches& Batches(KeyDist dist, int64_t universe = kUniverse) {
    auto& slot =
        batches_[universe == kUniverse ? 0 : 1][dist == KeyDist::kZipf ? 1 : 0];
    if (slot == nullptr) {
      slot = std::make_unique<KeyBatches>(bench::MakeKeyBatches(
          universe, dist, kBatch, kNumBatches, /*seed=*/42));
    }
    return *slot;
  }

  // An Adagrad table of `dim` on `storage` (0 memory, 1 tiered holding the
  // whole table in memory, 2 tiered with the table 10x its budget) holding
  // every key of the kStorageUniverse universe, pushed once.
  SparseTable& StorageTable(int storage, int dim) {
    auto& table = storage_tables_[{storage, dim}];
    if (table != nullptr) return *table;
    SparseTableOptions options;
    options.name = absl::StrCat("bench_s", storage, "_d", dim);
    options.dim = dim;
    options.optimizer.set_type(OptimizerConfig::ADAGRAD);
    options.optimizer.set_learning_rate(0.05f);
    options.initializer.set_type(InitializerConfig::UNIFORM);
    options.initializer.set_scale(0.01f);
    // Adagrad: dim weights + dim accumulators, plus index and metadata.
    const int64_t table_bytes = kStorageUniverse * (2 * dim * 4 + 40);
    if (storage > 0) {
      if (dir_.empty()) {
        dir_ = absl::StrCat(std::filesystem::temp_directory_path().string(),
                            "/sparse_table_bench_", getpid());
        std::filesystem::remove_all(dir_);
      }
      options.storage.set_type(SparseStorageConfig::TIERED);
      options.storage.set_dir(dir_);
      options.storage.set_memory_budget_bytes(storage == 1 ? 2 * table_bytes
                                                           : table_bytes / 10);
      if (storage == 3) {
        options.storage.mutable_rocksdb()->set_table_format(
            RocksDbConfig::PLAIN);
      }
    }
    auto created = SparseTable::Create(options);
    CHECK(created.ok()) << created.status();
    table = std::move(created).value();
    std::vector<uint64_t> keys(kBatch);
    std::vector<float> grads(static_cast<size_t>(kBatch) * dim, 1e-3f);
    for (int64_t begin = 0; begin < kStorageUniverse; begin += kBatch) {
      for (int j = 0; j < kBatch; ++j) keys[j] = bench::UniverseKey(begin + j);
      absl::Status status = table->Push(keys, grads);
      CHECK(status.ok()) << status;
    }
    return *table;
  }

  const RawTable& Raw() {
    if (raw_ == nullptr) {
      raw_ = std::make_unique<RawTable>();
      raw_->index.reserve(kUniverse);
      raw_->arena.resize(static_cast<size_t>(kUniverse) * kRawDim);
      for (int64_t r = 0; r < kUniverse; ++r) {
        raw_->index.emplace(bench::UniverseKey(r), static_cast<uint32_t>(r));
        for (int i = 0; i < kRawDim; ++i) {
          raw_->arena[r * kRawDim + i] = static_cast<float>(r + i);
        }
      }
    }
    return *raw_;
  }

  // Every key of the universe with a row of [weights | Adagrad state] of
  // `dim` floats each (RawAdagrad's table).
  RawTable& RawRows(int dim) {
    auto& raw = raw_rows_[dim];
    if (raw == nullptr) {
      raw = std::make_unique<RawTable>();
      raw->index.reserve(kUniverse);
      raw->arena.resize(static_cast<size_t>(kUniverse) * 2 * dim);
      for (int64_t r = 0; r < kUniverse; ++r) {
        raw->index.emplace(bench::UniverseKey(r), static_cast<uint32_t>(r));
        for (int i = 0; i < dim; ++i) {
          raw->arena[(r * 2) * dim + i] = 0.01f;
          raw->arena[(r * 2 + 1) * dim + i] = 0.1f;
        }
      }
    }
    return *raw;
  }

  // An Adagrad table of `dim` holding every key of the universe.
  SparseTable& Table(int dim) {
    auto& table = tables_[dim];
    if (table == nullptr) {
      SparseTableOptions options;
      options.name = absl::StrCat("bench", dim);
      options.dim = dim;
      options.optimizer.set_type(OptimizerConfig::ADAGRAD);
      options.optimizer.set_learning_rate(0.05f);
      options.initializer.set_type(InitializerConfig::UNIFORM);
      options.initializer.set_scale(0.01f);
      auto created = SparseTable::Create(options);
      CHECK(created.ok()) << created.status();
      table = std::move(created).value();
      std::vector<uint64_t> keys(kBatch);
      std::vector<float> values(static_cast<size_t>(kBatch) * dim);
      for (int64_t begin = 0; begin < kUniverse; begin += kBatch) {
        for (int j = 0; j < kBatch; ++j)
          keys[j] = bench::UniverseKey(begin + j);
        absl::Status status = table->Pull(keys, absl::MakeSpan(values));
        CHECK(status.ok()) << status;
      }
      CHECK_EQ(table->size(), kUniverse);
    }
    return *table;
  }

 private:
  std::unique_ptr<KeyBatches> batches_[2][2];  // [universe][dist]
  std::unique_ptr<RawTable> raw_;
  std::map<int, std::unique_ptr<RawTable>> raw_rows_;
  std::string dir_;  // RocksDB directories of tiered tables
  std::map<std::pair<int, int>, std::unique_ptr<SparseTable>> storage_tables_;
  std::map<int, std::unique_ptr<SparseTable>> tables_;
};

KeyDist DistArg(const benchmark::State& state, int i) {
  return state.range(i) != 0 ? KeyDist::kZipf : KeyDist::kUniform;
}

void ReportRows(benchmark::State& state, int64_t rows, int dim, KeyDist dist) {
  state.SetItemsProcessed(rows);
  state.SetBytesProcessed(rows * dim * static_cast<int64_t>(sizeof(float)));
  state.SetLabel(bench::KeyDistName(dist));
}

// Looks up every key of a batch and copies its 256 B row out. With
// `inline_copy` the copy is a constant-size memcpy, which g++ -O2 inlines as
// SSE moves; otherwise its size is opaque, so it calls libc's memmove (AVX2 /
// AVX-512 where the CPU has it), as SparseTable::Pull's std::copy does. The
// second is usually the faster (measured here: ~6 M rows/s inlined, 6-11 M
// via libc, noisier) and is the yardstick scripts/bench.sh compares with.
template <bool inline_copy>
void RawLookups(benchmark::State& state, BenchInputs* inputs) {
  const KeyDist dist = DistArg(state, 0);
  const KeyBatches& batches = inputs->Batches(dist);
  const RawTable& raw = inputs->Raw();
  std::vector<float> out(static_cast<size_t>(kBatch) * kRawDim);
  size_t row_bytes = kRawDim * sizeof(float);
  benchmark::DoNotOptimize(row_bytes);
  size_t b = 0;
  int64_t rows = 0;
  for (auto _ : state) {
    const std::vector<uint64_t>& keys = batches[b];
    float* dst = out.data();
    for (uint64_t key : keys) {
      auto it = raw.index.find(key);
      if (it == raw.index.end()) {
        state.SkipWithError("raw baseline: key missing");
        return;
      }
      const float* row =
          raw.arena.data() + static_cast<size_t>(it->second) * kRawDim;
      if (inline_copy) {
        std::memcpy(dst, row, kRawDim * sizeof(float));
      } else {
        std::memcpy(dst, row, row_bytes);
      }
      dst += kRawDim;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
    rows += static_cast<int64_t>(keys.size());
    if (++b == batches.size()) b = 0;
  }
  ReportRows(state, rows, kRawDim, dist);
}

// The push baseline: a raw absl::flat_hash_map over an arena of rows
// [weights | Adagrad accumulators] of `dim` floats each, for every key of the
// universe; each key of a batch is looked up and its row updated in place
// (g2 += g^2; w -= lr * g / (sqrt(g2) + eps)), the loop g++ vectorizes.
void RawAdagrad(benchmark::State& state, BenchInputs* inputs) {
  const int dim = static_cast<int>(state.range(0));
  const KeyDist dist = DistArg(state, 1);
  const KeyBatches& batches = inputs->Batches(dist);
  RawTable& raw = inputs->RawRows(dim);
  const auto& index = raw.index;
  std::vector<float>& arena = raw.arena;
  std::vector<float> grads(static_cast<size_t>(kBatch) * dim);
  for (size_t i = 0; i < grads.size(); ++i) {
    grads[i] = 1e-3f * static_cast<float>(static_cast<int>(i % 17) - 8);
  }
  constexpr float kLr = 0.05f;
  constexpr float kEps = 1e-8f;
  size_t b = 0;
  int64_t rows = 0;
  for (auto _ : state) {
    const std::vector<uint64_t>& keys = batches[b];
    const float* g = grads.data();
    for (uint64_t key : keys) {
      auto it = index.find(key);
      if (it == index.end()) {
        state.SkipWithError("raw baseline: key missing");
        return;
      }
      float* w = arena.data() + static_cast<size_t>(it->second) * 2 * dim;
      float* g2 = w + dim;
      for (int i = 0; i < dim; ++i) {
        g2[i] += g[i] * g[i];
        w[i] -= kLr * g[i] / (std::sqrt(g2[i]) + kEps);
      }
      g += dim;
    }
    benchmark::DoNotOptimize(arena.data());
    benchmark::ClobberMemory();
    rows += static_cast<int64_t>(keys.size());
    if (++b == batches.size()) b = 0;
  }
  ReportRows(state, rows, dim, dist);
}

// Fails the benchmark when the timed loop created rows (a key outside the
// prefilled universe would measure inserts, not lookups).
void CheckNoNewRows(benchmark::State& state, const SparseTable& table) {
  if (table.size() != kUniverse) {
    state.SkipWithError(absl::StrCat("table grew to ", table.size(),
                                     " rows during the benchmark")
                            .c_str());
  }
}

void BM_SparsePull(benchmark::State& state, BenchInputs* inputs) {
  const int dim = static_cast<int>(state.range(0));
  const KeyDist dist = DistArg(state, 1);
  const KeyBatches& batches = inputs->Batches(dist);
  SparseTable& table = inputs->Table(dim);
  std::vector<float> values(static_cast<size_t>(kBatch) * dim);
  size_t b = 0;
  int64_t rows = 0;
  for (auto _ : state) {
    const std::vector<uint64_t>& keys = batches[b];
    absl::Status status =
        table.Pull(keys, absl::MakeSpan(values.data(), keys.size() * dim));
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(values.data());
    benchmark::ClobberMemory();
    rows += static_cast<int64_t>(keys.size());
    if (++b == batches.size()) b = 0;
  }
  ReportRows(state, rows, dim, dist);
  CheckNoNewRows(state, table);
}

void BM_SparsePushAdagrad(benchmark::State& state, BenchInputs* inputs) {
  const int dim = static_cast<int>(state.range(0));
  const KeyDist dist = DistArg(state, 1);
  const KeyBatches& batches = inputs->Batches(dist);
  SparseTable& table = inputs->Table(dim);
  // Small gradients of both signs, so weights stay bounded however long the
  // benchmark runs.
  std::vector<float> grads(static_cast<size_t>(kBatch) * dim);
  for (size_t i = 0; i < grads.size(); ++i) {
    grads[i] = 1e-3f * static_cast<float>(static_cast<int>(i % 17) - 8);
  }
  size_t b = 0;
  int64_t rows = 0;
  for (auto _ : state) {
    const std::vector<uint64_t>& keys = batches[b];
    absl::Status status =
        table.Push(keys, absl::MakeConstSpan(grads.data(), keys.size() * dim));
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    rows += static_cast<int64_t>(keys.size());
    if (++b == batches.size()) b = 0;
  }
  ReportRows(state, rows, dim, dist);
  CheckNoNewRows(state, table);
}

// Pull (kPush false) or Adagrad push of batches of the 256K-key universe
// on storage state.range(0).
template <bool kPush>
void StorageOp(benchmark::State& state, BenchInputs* inputs) {
  const int storage = static_cast<int>(state.range(0));
  const int dim = static_cast<int>(state.range(1));
  const KeyDist dist = DistArg(state, 2);
  const KeyBatches& batches = inputs->Batches(dist, kStorageUniverse);
  SparseTable& table = inputs->StorageTable(storage, dim);
  std::vector<float> values(static_cast<size_t>(kBatch) * dim);
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = 1e-3f * static_cast<float>(static_cast<int>(i % 17) - 8);
  }
  if (storage >= 2 && dist == KeyDist::kZipf) {
    // Measure the eviction policy's steady state, not how fast it leaves
    // the prefill's arbitrary memory tier: pull every batch a few times.
    for (int cycle = 0; cycle < kWarmupCycles; ++cycle) {
      for (const auto& keys : batches) {
        absl::Status status =
            table.Pull(keys, absl::MakeSpan(values.data(), keys.size() * dim));
        if (!status.ok()) {
          state.SkipWithError(status.ToString().c_str());
          return;
        }
      }
    }
  }
  const StorageStats before = table.stats();
  size_t b = 0;
  int64_t rows = 0;
  for (auto _ : state) {
    const std::vector<uint64_t>& keys = batches[b];
    const size_t n = keys.size() * dim;
    absl::Status status =
        kPush ? table.Push(keys, absl::MakeConstSpan(values.data(), n))
              : table.Pull(keys, absl::MakeSpan(values.data(), n));
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(values.data());
    benchmark::ClobberMemory();
    rows += static_cast<int64_t>(keys.size());
    if (++b == batches.size()) b = 0;
  }
  ReportRows(state, rows, dim, dist);
  const StorageStats after = table.stats();
  const double lookups = static_cast<double>(after.hits + after.misses -
                                             before.hits - before.misses);
  if (lookups > 0) {
    state.counters["hit_rate"] = (after.hits - before.hits) / lookups;
  }
  if (storage >= 2) {
    // The yardstick of the eviction policy, for a memory tier of the same
    // size.
    state.counters["static_best_hit_rate"] =
        bench::StaticBestHitRate(batches, after.memory_capacity_rows);
  }
  if (storage == 0) {
    const double floats_bytes =
        static_cast<double>(after.rows_in_memory) * 2 * dim * sizeof(float);
    state.counters["overhead_B_per_row"] =
        (after.memory_bytes - floats_bytes) / after.rows_in_memory;
  }
}

void BM_KvMultiGet(benchmark::State& state) {
  constexpr int kRowBytes = 2 * 16 * sizeof(float);
  constexpr size_t kKeysPerCall = 1700;
  const bool plain = state.range(0) != 0;
  const std::string dir =
      absl::StrCat(std::filesystem::temp_directory_path().string(),
                   "/kv_multiget_bench_", getpid());
  std::filesystem::remove_all(dir);
  RocksDbConfig config;
  if (plain) config.set_table_format(RocksDbConfig::PLAIN);
  {
    auto kv = OpenRocksDbKv(dir, config);
    CHECK(kv.ok()) << kv.status();
    const std::string value(kRowBytes, 'v');
    std::vector<std::pair<std::string, std::string>> puts;
    for (int64_t r = 0; r < kStorageUniverse; ++r) {
      puts.emplace_back(EncodeRowKey(bench::UniverseKey(r)), value);
      if (puts.size() == 4096) {
        std::sort(puts.begin(), puts.end());
        CHECK((*kv)->Write(puts).ok());
        puts.clear();
      }
    }
  }  // closed: reopening writes the memtable to a table file
  auto kv = OpenRocksDbKv(dir, config);
  CHECK(kv.ok()) << kv.status();
  std::mt19937_64 rng(7);
  std::vector<std::vector<std::string>> calls(64);
  for (auto& keys : calls) {
    for (size_t i = 0; i < kKeysPerCall; ++i) {
      keys.push_back(
          EncodeRowKey(bench::UniverseKey(rng() % kStorageUniverse)));
    }
    std::sort(keys.begin(), keys.end());
  }
  std::vector<std::string> values;
  std::vector<bool> found;
  size_t c = 0;
  int64_t keys_read = 0;
  for (auto _ : state) {
    absl::Status s = (*kv)->MultiGet(calls[c], &values, &found);
    if (!s.ok() || !found[0]) {
      state.SkipWithError(s.ok() ? "key not found" : s.ToString().c_str());
      break;
    }
    keys_read += static_cast<int64_t>(calls[c].size());
    if (++c == calls.size()) c = 0;
  }
  state.SetItemsProcessed(keys_read);
  state.counters["ns_per_key"] = benchmark::Counter(
      static_cast<double>(keys_read),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  kv->reset();
  std::filesystem::remove_all(dir);
}

void RegisterAll(BenchInputs* inputs) {
  benchmark::RegisterBenchmark("BM_KvMultiGet", BM_KvMultiGet)
      ->ArgName("format")
      ->DenseRange(0, 1);
  benchmark::RegisterBenchmark("BM_StoragePull", StorageOp<false>, inputs)
      ->ArgNames({"storage", "dim", "zipf"})
      ->ArgsProduct({{0, 1, 2, 3}, {16, 64}, {0, 1}});
  benchmark::RegisterBenchmark("BM_StoragePushAdagrad", StorageOp<true>, inputs)
      ->ArgNames({"storage", "dim", "zipf"})
      ->ArgsProduct({{0, 1, 2, 3}, {16, 64}, {0, 1}});
  benchmark::RegisterBenchmark("BM_RawFlatHashMap", RawLookups<false>, inputs)
      ->ArgName("zipf")
      ->DenseRange(0, 1);
  benchmark::RegisterBenchmark("BM_RawFlatHashMapInlineCopy", RawLookups<true>,
                               inputs)
      ->ArgName("zipf")
      ->DenseRange(0, 1);
  benchmark::RegisterBenchmark("BM_RawFlatHashMapAdagrad", RawAdagrad, inputs)
      ->ArgNames({"dim", "zipf"})
      ->ArgsProduct({{8, 16, 64}, {0, 1}});
  for (auto [name, fn] :
       {std::make_pair("BM_SparsePull", &BM_SparsePull),
        std::make_pair("BM_SparsePushAdagrad", &BM_SparsePushAdagrad)}) {
    benchmark::RegisterBenchmark(name, fn, inputs)
        ->ArgNames({"dim", "zipf"})
        ->ArgsProduct({{8, 16, 64}, {0, 1}});
  }
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // Inputs outlive every benchmark and are freed before exit.
  auto inputs = std::make_unique<ps::BenchInputs>();
  ps::RegisterAll(inputs.get());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

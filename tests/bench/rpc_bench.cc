// Parameter-server benchmarks over gRPC on loopback (Google Benchmark): one
// real PsServer (server/service/ps_server.h) on 127.0.0.1 and one PsClient
// (worker/client/ps_client.h) in the same process, wall-clock time.
//
//   BM_GrpcRawBytes                 the yardstick: PullDense of the model's
//                                   dense table, one ~4 MiB message per call.
//   BM_GrpcPullSparse/dim:D/keys:K/zipf:Z
//                                   PullSparse of K distinct keys; dim 64 x
//                                   16384 keys is a 4 MiB response, the same
//                                   size as the yardstick's.
//   BM_GrpcPushSparse/dim:D/keys:K/zipf:Z
//                                   PushAsync + WaitPushes(0) (Adagrad).
//
// Sparse tables hold 1M keys before timing; key batches come from
// tests/bench/bench_keys.h. items_per_second is rows per second;
// bytes_per_second counts the rows' values only (not keys or framing).
// Run by scripts/bench.sh.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "benchmark/benchmark.h"
#include "common/config.h"
#include "common/model_spec.h"
#include "glog/logging.h"
#include "server/service/ps_handler.h"
#include "server/service/ps_server.h"
#include "tests/bench/bench_keys.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace {

using bench::KeyBatches;
using bench::KeyDist;

constexpr int64_t kUniverse = 1 << 20;  // keys prefilled in every table
constexpr int kPrefillBatch = 1 << 16;
// Distinct keys per benchmark input: batches repeat after this many keys.
constexpr int64_t kKeysPerInput = 1 << 19;

// Sparse table t has dim kDims[t]. The model (DNN on 39 slots of the dim 16
// table, one hidden layer of 1680) has 624 * 1680 + 1680 + 1680 + 1 =
// 1,051,681 dense floats: a 4.01 MiB PullDense response, held in one block.
constexpr int kDims[] = {16, 64};
constexpr char kConfig[] = R"pb(
  cluster {
    servers: "127.0.0.1:1"  # placeholder: the server binds port 0
    num_workers: 1
    dense_block_size: 4194304
  }
  sparse_tables {
    name: "emb16"
    dim: 16
    optimizer { type: ADAGRAD learning_rate: 0.05 }
    initializer { type: UNIFORM scale: 0.01 }
  }
  sparse_tables {
    name: "emb64"
    dim: 64
    optimizer { type: ADAGRAD learning_rate: 0.05 }
    initializer { type: UNIFORM scale: 0.01 }
  }
  model {
    type: DNN
    sparse_table: "emb16"
    hidden_units: 1680
    dense_optimizer { type: ADAGRAD learning_rate: 0.01 }
  }
  data { format: CRITEO generate { output_dir: "unused" } }
  training { mode: ASYNC }
)pb";

uint32_t TableOfDim(int dim) { return dim == kDims[0] ? 0 : 1; }

// One server, one client and the key batches, built on first use so a
// --benchmark_filter run builds only what it needs.
class Cluster {
 public:
  ~Cluster() {
    client_.reset();
    if (server_ != nullptr) server_->Shutdown();
  }

  PsClient& Client() {
    if (client_ == nullptr) Start();
    return *client_;
  }
  const DenseBlocks& dense_blocks() {
    if (client_ == nullptr) Start();
    return blocks_;
  }

  // Batches of `batch_size` distinct keys, kKeysPerInput keys in all.
  const KeyBatches& Batches(KeyDist dist, int batch_size) {
    auto& slot = batches_[{dist, batch_size}];
    if (slot == nullptr) {
      const int n =
          static_cast<int>(std::max<int64_t>(1, kKeysPerInput / batch_size));
      slot = std::make_unique<KeyBatches>(
          bench::MakeKeyBatches(kUniverse, dist, batch_size, n, /*seed=*/7));
    }
    return *slot;
  }

  // Rows the server holds in sparse table `dim`.
  int64_t Rows(int dim) {
    return server_->handler()->SparseRows()[TableOfDim(dim)];
  }

  // Makes sure sparse table `dim` holds every key of the universe.
  void Prefill(int dim) {
    PsClient& client = Client();
    if (!prefilled_[dim]) {
      std::vector<uint64_t> keys(kPrefillBatch);
      std::vector<float> values(static_cast<size_t>(kPrefillBatch) * dim);
      for (int64_t begin = 0; begin < kUniverse; begin += kPrefillBatch) {
        for (int j = 0; j < kPrefillBatch; ++j) {
          keys[j] = bench::UniverseKey(begin + j);
        }
        absl::Status status = client.PullSparse(
            TableOfDim(dim), dim, keys, absl::MakeSpan(values), /*step=*/0);
        CHECK(status.ok()) << status;
      }
      CHECK_EQ(Rows(dim), kUniverse);
      prefilled_[dim] = true;
    }
  }

 private:
  void Start() {
    auto config = ParseJobConfig(kConfig, "rpc_bench", "");
    CHECK(config.ok()) << config.status();
    PsServerOptions server_options;
    server_options.config = *config;
    server_options.listen_address = "127.0.0.1:0";
    auto server = PsServer::Start(server_options);
    CHECK(server.ok()) << server.status();
    server_ = std::move(server).value();

    PsClientOptions client_options = PsClientOptions::FromConfig(*config, 0);
    client_options.servers = {absl::StrCat("127.0.0.1:", server_->port())};
    auto client = PsClient::Connect(client_options);
    CHECK(client.ok()) << client.status();
    client_ = std::move(client).value();

    const ModelSpec spec = MakeModelSpec(*config);
    blocks_ =
        DenseBlocks{spec.dense_size, config->cluster().dense_block_size(), 1};
  }

  std::unique_ptr<PsServer> server_;
  std::unique_ptr<PsClient> client_;
  DenseBlocks blocks_;
  std::map<int, bool> prefilled_;
  std::map<std::pair<KeyDist, int>, std::unique_ptr<KeyBatches>> batches_;
};

void BM_GrpcRawBytes(benchmark::State& state, Cluster* cluster) {
  PsClient& client = cluster->Client();
  const DenseBlocks& blocks = cluster->dense_blocks();
  std::vector<float> out(blocks.size);
  for (auto _ : state) {
    absl::Status status =
        client.PullDense(/*table=*/0, blocks, absl::MakeSpan(out), /*step=*/0);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(out.data());
  }
  const int64_t bytes = blocks.size * static_cast<int64_t>(sizeof(float));
  state.SetItemsProcessed(state.iterations());  // messages
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["message_bytes"] = static_cast<double>(bytes);
}

struct SparseArgs {
  int dim;
  int keys;
  KeyDist dist;
};

SparseArgs ParseSparseArgs(const benchmark::State& state) {
  return {static_cast<int>(state.range(0)), static_cast<int>(state.range(1)),
          state.range(2) != 0 ? KeyDist::kZipf : KeyDist::kUniform};
}

// Also fails the benchmark when the timed loop created rows (it would have
// measured inserts, not lookups).
void ReportRows(benchmark::State& state, int64_t rows, const SparseArgs& a,
                Cluster* cluster) {
  state.SetItemsProcessed(rows);
  state.SetBytesProcessed(rows * a.dim * static_cast<int64_t>(sizeof(float)));
  state.SetLabel(bench::KeyDistName(a.dist));
  if (cluster->Rows(a.dim) != kUniverse) {
    state.SkipWithError(absl::StrCat("table grew to ", cluster->Rows(a.dim),
                                     " rows during the benchmark")
                            .c_str());
  }
}

void BM_GrpcPullSparse(benchmark::State& state, Cluster* cluster) {
  const SparseArgs a = ParseSparseArgs(state);
  cluster->Prefill(a.dim);
  const KeyBatches& batches = cluster->Batches(a.dist, a.keys);
  PsClient& client = cluster->Client();
  std::vector<float> values(static_cast<size_t>(a.keys) * a.dim);
  size_t b = 0;
  int64_t rows = 0;
  for (auto _ : state) {
    const std::vector<uint64_t>& keys = batches[b];
    absl::Status status = client.PullSparse(TableOfDim(a.dim), a.dim, keys,
                                            absl::MakeSpan(values), /*step=*/1);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(values.data());
    rows += static_cast<int64_t>(keys.size());
    if (++b == batches.size()) b = 0;
  }
  ReportRows(state, rows, a, cluster);
}

void BM_GrpcPushSparse(benchmark::State& state, Cluster* cluster) {
  const SparseArgs a = ParseSparseArgs(state);
  cluster->Prefill(a.dim);
  const KeyBatches& batches = cluster->Batches(a.dist, a.keys);
  PsClient& client = cluster->Client();
  std::vector<float> grads(static_cast<size_t>(a.keys) * a.dim);
  for (size_t i = 0; i < grads.size(); ++i) {
    grads[i] = 1e-3f * static_cast<float>(static_cast<int>(i % 17) - 8);
  }
  size_t b = 0;
  int64_t rows = 0;
  for (auto _ : state) {
    const std::vector<uint64_t>& keys = batches[b];
    client.PushAsync(TableOfDim(a.dim), a.dim, keys, grads, /*dense_table=*/0,
                     cluster->dense_blocks(), /*dense_grad=*/{}, /*step=*/1);
    absl::Status status = client.WaitPushes(0);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    rows += static_cast<int64_t>(keys.size());
    if (++b == batches.size()) b = 0;
  }
  ReportRows(state, rows, a, cluster);
}

void RegisterAll(Cluster* cluster) {
  benchmark::RegisterBenchmark("BM_GrpcRawBytes", BM_GrpcRawBytes, cluster)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_GrpcPullSparse", BM_GrpcPullSparse, cluster)
      ->ArgNames({"dim", "keys", "zipf"})
      ->ArgsProduct({{16, 64}, {16384, 65536}, {0, 1}})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_GrpcPushSparse", BM_GrpcPushSparse, cluster)
      ->ArgNames({"dim", "keys", "zipf"})
      ->ArgsProduct({{16}, {16384, 65536}, {0, 1}})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // The cluster outlives every benchmark and stops before exit (not from a
  // static destructor, which would race gRPC's own shutdown).
  auto cluster = std::make_unique<ps::Cluster>();
  ps::RegisterAll(cluster.get());
  benchmark::RunSpecifiedBenchmarks();
  cluster.reset();
  benchmark::Shutdown();
  return 0;
}

// The job configs the fuzz targets and their seed writer (make_seeds.cc)
// share, so the seeds are what the targets read: the same tables, dims and
// dense sizes; and the FULL export export_reader_fuzzer.cc applies deltas
// to.
#ifndef PS_TESTS_FUZZ_FUZZ_JOBS_H_
#define PS_TESTS_FUZZ_FUZZ_JOBS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/export_format.h"
#include "common/model_spec.h"
#include "glog/logging.h"

namespace ps {
namespace fuzz {

// checkpoint_manifest_fuzzer.cc: the job whose checkpoints it reads.
inline constexpr char kCheckpointJob[] = R"pb(
  cluster { servers: "127.0.0.1:1" num_workers: 1 }
  sparse_tables {
    name: "emb"
    dim: 4
    optimizer { type: ADAGRAD learning_rate: 0.05 }
  }
  model { type: DNN sparse_table: "emb" hidden_units: 4 }
  data { format: CRITEO train_files: "train.tsv" }
)pb";

// export_reader_fuzzer.cc: the job of its exports.
inline constexpr char kExportJob[] = R"pb(
  cluster { servers: "127.0.0.1:1" num_workers: 1 }
  sparse_tables {
    name: "emb"
    dim: 2
    optimizer { type: ADAGRAD learning_rate: 0.05 }
  }
  model { type: DNN sparse_table: "emb" hidden_units: 2 }
  data { format: SLOT num_slots: 2 num_dense: 1 train_files: "train.tsv" }
)pb";

// handler_fuzz.h: a one-server job with two MEMORY sparse tables, "emb"
// (table 0: dim 4, Adagrad, an accessor with admission at the second push,
// decay and a shrink every 10 steps) and "wide" (table 1: dim 1, SGD), and a
// small DNN's dense table (table 0).
inline constexpr char kHandlerJob[] = R"pb(
  cluster {
    servers: "127.0.0.1:1"
    num_workers: 2
    shard_num: 4
    dense_block_size: 8
  }
  sparse_tables {
    name: "emb"
    dim: 4
    optimizer { type: ADAGRAD learning_rate: 0.05 }
    initializer { type: UNIFORM scale: 0.01 }
    accessor {
      min_count: 2
      max_unseen_steps: 50
      score_half_life_steps: 20
      shrink_every_steps: 10
    }
  }
  sparse_tables {
    name: "wide"
    dim: 1
    optimizer { type: SGD learning_rate: 0.5 }
  }
  model { type: DNN sparse_table: "emb" hidden_units: 3 }
  data { format: SLOT num_slots: 2 num_dense: 1 train_files: "train.tsv" }
)pb";

inline JobConfig ParsedJob(const char* text) {
  auto config = ParseJobConfig(text, "job.pbtxt", "");
  CHECK(config.ok()) << config.status();
  return *config;
}

// The FULL export of kExportJob at step 5 that export deltas apply to: rows
// 1, 2 and 3 of "emb", every dense value 0.125.
inline void WriteBaseExport(const std::string& path) {
  const JobConfig config = ParsedJob(kExportJob);
  auto writer = ExportWriter::Create(path, config, 5);
  CHECK(writer.ok()) << writer.status();
  CHECK((*writer)->BeginTable("emb").ok());
  const std::vector<uint64_t> keys = {1, 2, 3};
  const std::vector<float> rows = {0.5f, -1, 2, 0, 0.25f, 8};
  CHECK((*writer)->AddRows(keys, rows).ok());
  CHECK((*writer)->EndTable().ok());
  const int64_t dense = MakeModelSpec(config).dense_size;
  CHECK((*writer)->SetDense(std::vector<float>(dense, 0.125f)).ok());
  CHECK((*writer)->Close().ok());
}

}  // namespace fuzz
}  // namespace ps

#endif  // PS_TESTS_FUZZ_FUZZ_JOBS_H_

// Helpers shared by the server tests: a small valid job config and a
// PsServer started on a free loopback port.
#ifndef PS_TESTS_TESTING_SERVER_TEST_UTIL_H_
#define PS_TESTS_TESTING_SERVER_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/status_macros.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "proto/config.pb.h"
#include "server/service/ps_handler.h"
#include "server/service/ps_server.h"

namespace ps {

// `num_servers` servers at placeholder endpoints 127.0.0.1:1.. (tests bind
// port 0); sparse table "emb" (dim `dim`, SGD lr 0.5, zero rows); a DNN with
// no hidden layer over 26 slots x dim + 13 dense inputs (26 * dim + 14 dense
// floats, in blocks of `dense_block_size`), dense SGD lr 0.25.
inline JobConfig SmallJobConfig(int num_servers, int num_workers, int dim,
                                int dense_block_size) {
  JobConfig c;
  ClusterConfig* cluster = c.mutable_cluster();
  for (int s = 0; s < num_servers; ++s) {
    cluster->add_servers(absl::StrCat("127.0.0.1:", s + 1));
  }
  cluster->set_num_workers(num_workers);
  cluster->set_shard_num(4);
  cluster->set_dense_block_size(dense_block_size);
  cluster->set_max_message_bytes(16 << 20);
  SparseTableConfig* table = c.add_sparse_tables();
  table->set_name("emb");
  table->set_dim(dim);
  table->mutable_optimizer()->set_type(OptimizerConfig::SGD);
  table->mutable_optimizer()->set_learning_rate(0.5f);
  table->mutable_initializer()->set_type(InitializerConfig::ZEROS);
  ModelConfig* model = c.mutable_model();
  model->set_type(ModelConfig::DNN);
  model->set_sparse_table("emb");
  model->mutable_dense_optimizer()->set_type(OptimizerConfig::SGD);
  model->mutable_dense_optimizer()->set_learning_rate(0.25f);
  c.mutable_data()->add_train_files("/data/train.tsv");
  c.mutable_data()->set_int_features(DataConfig::NORMALIZE);
  return c;
}

// A server of `config` with rank `rank` on 127.0.0.1, any free port; null
// (and a test failure) when it cannot start.
inline std::unique_ptr<PsServer> StartServer(const JobConfig& config,
                                             int rank) {
  PsServerOptions options;
  options.config = config;
  options.rank = rank;
  options.listen_address = "127.0.0.1:0";
  auto server = PsServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(server).value() : nullptr;
}

// Takes a checkpoint of `config`'s job at `step` as the coordinator does:
// every handler (one per server, by rank) writes its part into a new folder
// under checkpoint.dir, then the manifest is committed as LATEST.
inline absl::Status SaveAndCommit(const std::vector<PsHandler*>& handlers,
                                  const JobConfig& config, int64_t step) {
  ASSIGN_OR_RETURN(std::string dir,
                   PrepareCheckpointDir(config.checkpoint().dir(), step));
  Manifest m;
  m.set_global_step(step);
  m.set_num_servers(static_cast<int>(handlers.size()));
  google::protobuf::TextFormat::PrintToString(config, m.mutable_job_config());
  for (PsHandler* h : handlers) {
    SaveCheckpointRequest request;
    request.set_dir(dir);
    request.set_step(step);
    SaveCheckpointResponse response;
    RETURN_IF_ERROR(h->SaveCheckpoint(request, &response));
    for (const CheckpointFile& f : response.files()) *m.add_files() = f;
  }
  return CommitCheckpoint(config.checkpoint().dir(), m);
}

inline std::string Endpoint(const PsServer& server) {
  return absl::StrCat("127.0.0.1:", server.port());
}

}  // namespace ps

#endif  // PS_TESTS_TESTING_SERVER_TEST_UTIL_H_

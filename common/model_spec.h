// The shape of a model's inputs and dense parameters, derived from the job
// config alone, so servers (which hold and initialize the dense table) and
// workers (which compute with it) agree without talking.
//
// Dense parameters of a model are one flat float vector (dense table 0):
// for each layer l, W_l (in_l x out_l, row-major) then b_l (out_l).
// The vector is cut into blocks of `dense_block_size` floats; block b lives on
// server b % num_servers.
#ifndef PS_COMMON_MODEL_SPEC_H_
#define PS_COMMON_MODEL_SPEC_H_

#include <cstdint>
#include <vector>

#include "proto/config.pb.h"

namespace ps {

struct LayerSpec {
  int in = 0;
  int out = 0;
  bool relu = false;        // activation after this layer
  int64_t weight_offset = 0;  // into the flat dense vector
  int64_t bias_offset = 0;
};

struct ModelSpec {
  ModelConfig::Type type = ModelConfig::DNN;
  int num_slots = 0;   // sparse slots per example
  int num_dense = 0;   // dense features per example
  int emb_dim = 0;     // dim of the sparse table
  uint32_t sparse_table_id = 0;
  int input_width = 0;  // num_slots * emb_dim + num_dense (DNN)
  std::vector<LayerSpec> layers;  // last layer has out == 1
  int64_t dense_size = 0;         // floats in the flat dense vector
};

// REQUIRES: `config` passed ValidateJobConfig.
ModelSpec MakeModelSpec(const JobConfig& config);

// Deterministic initial value of the dense vector (Glorot uniform weights,
// zero biases); the same on every server.
float DenseInitValue(const ModelSpec& spec, uint64_t seed, int64_t index);

// Block layout of a dense vector across servers.
struct DenseBlocks {
  int64_t size = 0;
  int64_t block_size = 0;
  int num_servers = 0;

  int64_t num_blocks() const { return (size + block_size - 1) / block_size; }
  // The [begin, end) float ranges of the blocks `server` holds, in order.
  std::vector<std::pair<int64_t, int64_t>> RangesOf(int server) const;
  // Floats server holds.
  int64_t SizeOn(int server) const;
};

}  // namespace ps

#endif  // PS_COMMON_MODEL_SPEC_H_

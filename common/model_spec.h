// The shape of a model's inputs and dense parameters, derived from the job
// config alone, so servers (which hold and initialize the dense table) and
// workers (which compute with it) agree without talking. Plain values and
// pure functions; thread-safe.
//
// Sparse rows. Every slot reads one sparse table (model.sparse_table, or
// the one model.slot_tables maps it to), whose dim is the slot's row width;
// a row is [linear weight (linear_dim floats, 0 or 1) | embedding (the rest)]:
// LR rows are the weight alone, FM / FWFM / WIDE_DEEP / DEEPFM rows a weight
// then an embedding, DNN / DCN rows an embedding alone.
//
// Pooled rows. A step pools every slot's rows of an example into one row of
// `pooled_width` floats: table after table (`tables`, in the order of their
// first slot), each table's slots in increasing order, slot s at column
// slot_offset[s] with slot_width[s] floats. With one table that is slot 0,
// slot 1, ... at stride emb_dim.
//
// Logit = sum of the model's terms:
//   linear (LR, FM, FWFM, WIDE_DEEP, DEEPFM): the pooled linear weights of
//     `wide_slots` + the layer `linear` over the dense features (WIDE_DEEP:
//     a bias only, its dense features feed the deep part);
//   fm (FM, DEEPFM): the FM second-order term over all slots' embeddings;
//   fwfm (FWFM): the field-weighted pairwise term over all slots'
//     embeddings, one dense weight per slot pair (`fwfm`);
//   deep (DNN, WIDE_DEEP, DEEPFM, DCN): over x0 = [embeddings of
//     `deep_slots`, in that order, each of its own width | dense features]
//     (input_width floats), the
//     cross layers (DCN) and the activated hidden `layers`; `output` is a
//     linear layer over [x_L (when there are cross layers) | the last hidden
//     layer (when there are hidden layers)], or over x0 when neither.
//
// Dense parameters are one flat float vector (dense table 0), in the order
// linear (W then b), FWFM's slot-pair weights, hidden layers (W_l in_l x
// out_l row-major, then b_l), cross layers (w_l then b_l, width floats each),
// output (W then b). Blocks a model lacks take no space. Weights are
// Glorot-uniform or a constant (`weight_inits`), biases 0. The vector is cut
// into blocks of `dense_block_size` floats; block b lives on server b %
// num_servers.
#ifndef PS_COMMON_MODEL_SPEC_H_
#define PS_COMMON_MODEL_SPEC_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "common/fwfm_pairs.h"
#include "proto/config.pb.h"

namespace ps {

// y = act(x W + b): W (in x out, row-major) at weight_offset, b (out) at
// bias_offset of the dense vector.
struct LayerSpec {
  int in = 0;
  int out = 0;
  bool activated = false;     // the model's activation follows (hidden layers)
  int64_t weight_offset = 0;  // into the flat dense vector
  int64_t bias_offset = 0;
};

// A DCN cross layer over `width`-float vectors: w and b, width floats each.
struct CrossLayerSpec {
  int width = 0;
  int64_t weight_offset = 0;
  int64_t bias_offset = 0;
};

// `size` weights at `offset` drawn from U(-l, l), l = sqrt(6 / (fan_in +
// fan_out)), with the block's position in ModelSpec::weight_inits as the
// random stream; or, when `constant`, all equal to `value`.
struct WeightInit {
  int64_t offset = 0;
  int64_t size = 0;
  int fan_in = 0;
  int fan_out = 0;
  bool constant = false;
  float value = 0;
};

// FWFM's slot-pair weights: one per pair (f, g), f < g, of `num_fields`
// slots (in pooled order), numbered by FwFmPairIndex (common/fwfm_pairs.h),
// at `offset` of the dense vector.
struct FwFmSpec {
  int num_fields = 0;
  int64_t offset = 0;
  int64_t num_pairs() const { return FwFmNumPairs(num_fields); }
};

// A sparse table a model reads and the slots that read it.
struct TableSpec {
  uint32_t table_id = 0;   // index into config.sparse_tables
  int dim = 0;             // floats per row
  std::vector<int> slots;  // increasing
  int pooled_offset = 0;   // column of its first slot in a pooled row
};

struct ModelSpec {
  ModelConfig::Type type = ModelConfig::DNN;
  ModelConfig::Activation activation = ModelConfig::RELU;  // hidden layers
  int num_slots = 0;  // sparse slots per example
  int num_dense = 0;  // dense features per example

  std::vector<TableSpec> tables;  // at least one, ordered by first slot
  std::vector<int> slot_table;    // per slot: its index into `tables`
  std::vector<int> slot_offset;   // per slot: its column in a pooled row
  std::vector<int> slot_width;    // per slot: its table's dim
  int pooled_width = 0;           // the sum of slot_width

  // Row layout: a row of a table of dim d is linear_dim + (d - linear_dim)
  // embedding floats.
  int linear_dim = 0;  // 1: element 0 of a row is a linear weight
  // When every table has the same dim: that dim, and its embedding floats
  // (emb_dim - linear_dim). 0 and 0 when the dims differ (never for FM and
  // DEEPFM, which need one width).
  int emb_dim = 0;
  int factor_dim = 0;

  bool has_linear = false;
  std::vector<int> wide_slots;  // slots whose linear weight enters the logit
  LayerSpec linear;             // dense features -> 1, its bias the model's
  bool has_fm = false;          // FM second-order term over all slots
  bool has_fwfm = false;        // FWFM pairwise term over all slots
  FwFmSpec fwfm;

  bool has_deep = false;
  std::vector<int> deep_slots;  // slots whose embeddings form x0, in order
  int input_width = 0;  // x0: the deep slots' embedding floats + num_dense
  std::vector<LayerSpec> layers;      // hidden layers over x0
  std::vector<CrossLayerSpec> cross;  // cross layers over x0
  LayerSpec output;                   // -> the deep part's logit

  // ModelConfig.dropout: training only, no part of the shape.
  float dropout = 0;

  std::vector<WeightInit> weight_inits;  // every weight block; the rest is 0
  int64_t dense_size = 0;                // floats in the flat dense vector
};

// REQUIRES: `config` passed ValidateJobConfig.
ModelSpec MakeModelSpec(const JobConfig& config);

// Per slot (num_slots of them), the index into config.sparse_tables of the
// table it reads: model.slot_tables' mapping, else model.sparse_table; -1
// where neither names an existing table (a config that fails validation).
std::vector<int> SlotTableIds(const JobConfig& config, int num_slots);

// Where each table's rows start, in floats, when table t has
// table_rows[t] rows of spec.tables[t].dim floats, one table after the
// other; the last entry is the total. REQUIRES: one count per table.
inline std::vector<int64_t> RowFloatOffsets(
    const ModelSpec& spec, const std::vector<int64_t>& table_rows) {
  std::vector<int64_t> at(table_rows.size() + 1, 0);
  for (size_t t = 0; t < table_rows.size(); ++t) {
    at[t + 1] = at[t] + table_rows[t] * spec.tables[t].dim;
  }
  return at;
}

// The embedding floats of slot s: slot_width[s] - linear_dim.
inline int SlotFactorWidth(const ModelSpec& spec, int slot) {
  return spec.slot_width[slot] - spec.linear_dim;
}

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

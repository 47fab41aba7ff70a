// The table whose rows.bin rows_bin_fuzzer.cc reads and make_seeds.cc
// writes: MEMORY, dim 3, Adagrad, with an accessor (a row is 3 weights, 3
// Adagrad sums, show, click and last-seen step).
#ifndef PS_TESTS_FUZZ_ROWS_FUZZ_H_
#define PS_TESTS_FUZZ_ROWS_FUZZ_H_

#include "server/table/sparse_table.h"

namespace ps {
namespace fuzz {

inline SparseTableOptions RowsTableOptions() {
  SparseTableOptions options;
  options.name = "emb";
  options.dim = 3;
  options.shard_num = 4;
  options.optimizer.set_type(OptimizerConfig::ADAGRAD);
  options.optimizer.set_learning_rate(0.05f);
  options.has_accessor = true;
  return options;
}

}  // namespace fuzz
}  // namespace ps

#endif  // PS_TESTS_FUZZ_ROWS_FUZZ_H_

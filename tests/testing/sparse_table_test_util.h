// Helpers shared by the sparse table tests: table options, a table that must
// build and a pull that must succeed.
#ifndef PS_TESTS_TESTING_SPARSE_TABLE_TEST_UTIL_H_
#define PS_TESTS_TESTING_SPARSE_TABLE_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/table/sparse_table.h"

namespace ps {

inline SparseTableOptions TableOptions(OptimizerConfig::Type opt, int dim,
                                       InitializerConfig::Type init,
                                       int shard_num = 16) {
  SparseTableOptions o;
  o.name = "emb";
  o.dim = dim;
  o.shard_num = shard_num;
  o.optimizer.set_type(opt);
  o.optimizer.set_learning_rate(opt == OptimizerConfig::SGD ? 1.0f : 0.05f);
  o.initializer.set_type(init);
  o.initializer.set_scale(0.01f);
  o.init_seed = 3;
  return o;
}

inline SparseTableOptions Tiered(SparseTableOptions o, const std::string& dir,
                                 int64_t budget) {
  o.storage.set_type(SparseStorageConfig::TIERED);
  o.storage.set_dir(dir);
  o.storage.set_memory_budget_bytes(budget);
  return o;
}

inline std::unique_ptr<SparseTable> MustCreate(const SparseTableOptions& o) {
  auto table = SparseTable::Create(o);
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? std::move(table).value() : nullptr;
}

// The rows of `keys`; values a failed pull did not write stay -999.
inline std::vector<float> MustPull(SparseTable& table,
                                   const std::vector<uint64_t>& keys) {
  std::vector<float> values(keys.size() * table.dim(), -999.0f);
  absl::Status s = table.Pull(keys, absl::MakeSpan(values));
  EXPECT_TRUE(s.ok()) << s;
  return values;
}

}  // namespace ps

#endif  // PS_TESTS_TESTING_SPARSE_TABLE_TEST_UTIL_H_

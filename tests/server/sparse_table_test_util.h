// Helpers shared by the sparse table tests: a table that must build and a
// pull that must succeed.
#ifndef PS_TESTS_SERVER_SPARSE_TABLE_TEST_UTIL_H_
#define PS_TESTS_SERVER_SPARSE_TABLE_TEST_UTIL_H_

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "server/sparse_table.h"

namespace ps {

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

#endif  // PS_TESTS_SERVER_SPARSE_TABLE_TEST_UTIL_H_

// Helpers shared by the reader and parser tests: a fixture with a scratch
// folder removed at the end of each test, a gzip writer, a view of a Batch
// example and a loop over a reader's batches.
#ifndef PS_TESTS_TESTING_READER_TEST_UTIL_H_
#define PS_TESTS_TESTING_READER_TEST_UTIL_H_

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "worker/data/batch.h"
#include "worker/data/data_reader.h"

namespace ps {
namespace testing_util {

// A fixture with a fresh folder (a TempDir, see temp_dir.h), deleted when the
// fixture ends.
class TempDirTest : public ::testing::Test {
 protected:
  // Writes `content` to dir_/name and returns the path.
  std::string Write(const std::string& name, const std::string& content) {
    return temp_dir_.Write(name, content);
  }

  // Writes `content` gzip-compressed to dir_/name (zlib's gzwrite) and
  // returns the path.
  std::string WriteGzip(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr) << path;
    if (f == nullptr) return path;
    if (!content.empty()) {
      EXPECT_EQ(
          gzwrite(f, content.data(), static_cast<unsigned>(content.size())),
          static_cast<int>(content.size()));
    }
    EXPECT_EQ(gzclose(f), Z_OK);
    return path;
  }

  TempDir temp_dir_;
  std::string dir_ = temp_dir_.path();
};

// The keys of slot `slot` of example `i`.
inline std::vector<uint64_t> SlotKeys(const Batch& b, int i, int slot) {
  const size_t at = static_cast<size_t>(i) * b.num_slots + slot;
  return std::vector<uint64_t>(b.keys.begin() + b.offsets[at],
                               b.keys.begin() + b.offsets[at + 1]);
}

inline Batch EmptyBatch(int num_slots, int num_dense) {
  Batch b;
  b.num_slots = num_slots;
  b.num_dense = num_dense;
  return b;
}

// Reads every batch of a reader of `options`, calling on_batch(batch,
// reader) after each Next; failing to open or read fails the test. Returns
// the reader (null when it could not open) for its counts and position.
inline std::unique_ptr<DataReader> ReadEachBatch(
    const ReaderOptions& options,
    const std::function<void(const Batch&, const DataReader&)>& on_batch) {
  auto reader = DataReader::Open(options);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return nullptr;
  Batch b;
  while (true) {
    auto more = (*reader)->Next(&b);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    on_batch(b, **reader);
  }
  return std::move(reader).value();
}

// Lines `first` .. `first + count - 1` in the SLOT format, "label 0:id
// 1:id*3" (label id % 2), each ending in '\n': an example's slot-0 key
// (NumberedLineKeys) names its line.
inline std::string NumberedLines(int first, int count) {
  std::string out;
  for (int id = first; id < first + count; ++id) {
    absl::StrAppend(&out, id % 2, " 0:", id, " 1:", id * 3, "\n");
  }
  return out;
}

// The slot-0 keys of NumberedLines(first, count), in line order (a SLOT
// parser with hash seed 0).
inline std::vector<uint64_t> NumberedLineKeys(int first, int count) {
  std::vector<uint64_t> keys;
  for (int id = first; id < first + count; ++id) {
    keys.push_back(FeatureKey(0, 0, id));
  }
  return keys;
}

// The slot-0 key of every example of up to `max_batches` batches of
// `reader` (all: -1), in order, and where the reader stands after them
// (when `position` is set); the reader's error if it fails.
inline absl::StatusOr<std::vector<uint64_t>> ReadSlotZeroKeys(
    DataReader* reader, int max_batches = -1,
    DataPosition* position = nullptr) {
  std::vector<uint64_t> keys;
  for (int b = 0; max_batches < 0 || b < max_batches; ++b) {
    Batch batch;
    absl::StatusOr<bool> more = reader->Next(&batch);
    if (!more.ok()) return more.status();
    if (!*more) break;
    for (int i = 0; i < batch.size(); ++i) {
      keys.push_back(batch.keys[batch.offsets[i * batch.num_slots]]);
    }
  }
  if (position != nullptr) {
    absl::StatusOr<DataPosition> p = reader->Position();
    if (!p.ok()) return p.status();
    *position = *p;
  }
  return keys;
}

inline std::vector<uint64_t> Sorted(std::vector<uint64_t> keys) {
  std::sort(keys.begin(), keys.end());
  return keys;
}

}  // namespace testing_util
}  // namespace ps

#endif  // PS_TESTS_TESTING_READER_TEST_UTIL_H_

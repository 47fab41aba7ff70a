#include "worker/data/reader_shuffler.h"

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "worker/data/data_reader.h"

namespace ps {
namespace {

// An example as a comparable value: label, dense, keys per slot.
using Example =
    std::tuple<float, std::vector<float>, std::vector<std::vector<uint64_t>>>;

std::vector<Example> Examples(const Batch& b) {
  std::vector<Example> out;
  for (int i = 0; i < b.size(); ++i) {
    std::vector<std::vector<uint64_t>> slots;
    for (int s = 0; s < b.num_slots; ++s) {
      slots.push_back(testing_util::SlotKeys(b, i, s));
    }
    out.emplace_back(
        b.labels[i],
        std::vector<float>(b.dense.begin() + i * b.num_dense,
                           b.dense.begin() + (i + 1) * b.num_dense),
        slots);
  }
  return out;
}

// Lines with varying numbers of keys per slot and a dense value.
std::string Lines(int count) {
  std::string out;
  for (int id = 0; id < count; ++id) {
    absl::StrAppend(&out, id % 2, " 0:", id, " d0:", id * 0.5);
    for (int k = 0; k < id % 4; ++k) absl::StrAppend(&out, " 2:", id + k);
    absl::StrAppend(&out, "\n");
  }
  return out;
}

class ShuffleTest : public testing_util::TempDirTest {
 protected:
  ReaderOptions Options(int buffer, uint64_t seed) {
    ReaderOptions options;
    options.files = {file_};
    options.data.set_format(DataConfig::SLOT);
    options.data.set_num_slots(3);
    options.data.set_num_dense(1);
    options.batch_size = 16;
    options.shuffle_buffer = buffer;
    options.shuffle_seed = seed;
    return options;
  }

  // All examples in read order; checks every batch but the last is full.
  std::vector<Example> Read(const ReaderOptions& options) {
    std::vector<Example> out;
    absl::StatusOr<std::unique_ptr<DataReader>> reader =
        DataReader::Open(options);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return out;
    Batch batch;
    bool short_seen = false;
    while (true) {
      absl::StatusOr<bool> more = (*reader)->Next(&batch);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      EXPECT_FALSE(short_seen) << "a short batch before the last";
      short_seen = batch.size() < options.batch_size;
      EXPECT_EQ(batch.num_slots, 3);
      EXPECT_EQ(batch.offsets.size(), batch.size() * 3 + 1u);
      for (Example& e : Examples(batch)) out.push_back(std::move(e));
    }
    EXPECT_EQ(batch.size(), 0);
    EXPECT_EQ(batch.num_slots, 3);
    absl::StatusOr<bool> again = (*reader)->Next(&batch);
    EXPECT_TRUE(again.ok() && !*again);
    return out;
  }

  void SetUp() override {
    TempDirTest::SetUp();
    file_ = Write("a.txt", Lines(1000));
  }

  std::string file_;
};

std::vector<Example> Sorted(std::vector<Example> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST_F(ShuffleTest, KeepsTheExamplesAndChangesTheOrderReproducibly) {
  const std::vector<Example> plain = Read(Options(0, 0));
  ASSERT_EQ(plain.size(), 1000u);
  for (int buffer : {1, 10, 100, 5000}) {
    const std::vector<Example> a = Read(Options(buffer, 42));
    EXPECT_EQ(Sorted(a), Sorted(plain)) << buffer;
    EXPECT_EQ(Read(Options(buffer, 42)), a) << "same seed, same order";
    if (buffer == 1) {
      EXPECT_EQ(a, plain) << "a buffer of 1 cannot reorder";
      continue;
    }
    EXPECT_NE(a, plain) << buffer;
    EXPECT_NE(Read(Options(buffer, 43)), a) << "another seed, another order";
  }
}

TEST_F(ShuffleTest, ExamplesMoveAboutTheBufferSize) {
  const std::vector<Example> plain = Read(Options(0, 0));
  const std::vector<Example> shuffled = Read(Options(10, 7));
  // The i-th output example was read among the first i + 10.
  for (size_t i = 0; i < shuffled.size(); ++i) {
    auto at =
        std::find(plain.begin(), plain.end(), shuffled[i]) - plain.begin();
    EXPECT_LE(static_cast<size_t>(at), i + 10) << i;
  }
}

TEST_F(ShuffleTest, RanksShuffleTheirShareWithTheirOwnSeed) {
  EXPECT_NE(ShuffleSeed(1, 0), ShuffleSeed(1, 1));
  EXPECT_NE(ShuffleSeed(1, 0), ShuffleSeed(2, 0));
  std::vector<Example> all;
  for (int rank = 0; rank < 3; ++rank) {
    ReaderOptions options = Options(50, 9);
    options.num_workers = 3;
    options.worker_rank = rank;
    for (Example& e : Read(options)) all.push_back(std::move(e));
  }
  EXPECT_EQ(Sorted(all), Sorted(Read(Options(0, 0))));
}

TEST(ExampleShufflerTest, DrawsFromTheBufferOnly) {
  Batch in = testing_util::EmptyBatch(1, 0);
  for (int i = 0; i < 6; ++i) {
    in.labels.push_back(i % 2);
    for (int k = 0; k < i; ++k) in.keys.push_back(i);
    in.offsets.push_back(static_cast<uint32_t>(in.keys.size()));
  }
  ExampleShuffler shuffler(3, 5);
  Batch out = testing_util::EmptyBatch(1, 0);
  for (int i = 0; i < 3; ++i) shuffler.Put(in, i);
  EXPECT_TRUE(shuffler.full());
  shuffler.TakeRandom(&out);
  ASSERT_EQ(out.size(), 1);
  const size_t keys = out.offsets[1];
  EXPECT_LT(keys, 3u);  // one of examples 0, 1, 2 (example i has i keys)
  for (uint64_t k : out.keys) EXPECT_EQ(k, keys);
  EXPECT_EQ(out.labels[0], static_cast<float>(keys % 2));
  for (int i = 3; i < 6; ++i) {
    shuffler.TakeRandom(&out);
    shuffler.Put(in, i);
  }
  while (!shuffler.empty()) shuffler.TakeRandom(&out);
  ASSERT_EQ(out.size(), 6);
  std::vector<int> sizes;
  for (int i = 0; i < out.size(); ++i) {
    sizes.push_back(out.offsets[i + 1] - out.offsets[i]);
    for (uint32_t k = out.offsets[i]; k < out.offsets[i + 1]; ++k) {
      EXPECT_EQ(out.keys[k], static_cast<uint64_t>(sizes.back()));
    }
  }
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

}  // namespace
}  // namespace ps

// A shuffle buffer of examples, for DataReader.
//
// Holds up to `capacity` examples copied out of batches. The reader fills it
// in input order and, once it is full, emits a uniformly drawn buffered
// example before each new one goes in; at the end of the input it empties it
// in random order. An example thus moves at most about `capacity` places
// from where a pass over the files would put it. The draws come from a
// std::mt19937_64 seeded with the given seed, so the same input order and
// seed give the same output order on every platform. Storage is reused:
// once warm, no example allocates.
//
// NewShufflingReader wraps a DataReader so that its Next returns the inner
// reader's examples through an ExampleShuffler.
//
// Not thread-safe.
#ifndef PS_WORKER_DATA_READER_SHUFFLER_H_
#define PS_WORKER_DATA_READER_SHUFFLER_H_

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "worker/data/batch.h"
#include "worker/data/data_reader.h"

namespace ps {

class ExampleShuffler {
 public:
  // REQUIRES: capacity >= 1.
  ExampleShuffler(int capacity, uint64_t seed);
  ExampleShuffler(const ExampleShuffler&) = delete;
  ExampleShuffler& operator=(const ExampleShuffler&) = delete;

  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == capacity_; }

  // Copies example `i` of `in` into the buffer.
  // REQUIRES: !full(), 0 <= i < in.size(); all examples share num_slots and
  // num_dense.
  void Put(const Batch& in, int i);

  // Appends a uniformly drawn buffered example to `out` and drops it from
  // the buffer.
  // REQUIRES: !empty(); out has the examples' num_slots and num_dense.
  void TakeRandom(Batch* out);

 private:
  struct Example {
    float label = 0;
    std::vector<float> dense;
    std::vector<uint32_t> slot_sizes;  // keys per slot
    std::vector<uint64_t> keys;
  };

  const int capacity_;
  std::mt19937_64 rng_;
  // examples_[0, size_) are buffered; later ones are kept for their storage.
  std::vector<Example> examples_;
  int size_ = 0;
};

// The seed of worker `rank`'s shuffle for data.shuffle_seed `seed`.
uint64_t ShuffleSeed(uint64_t seed, int rank);

// A DataReader returning the examples of `inner`, in batches of up to
// `batch_size`, through an ExampleShuffler of `capacity` examples seeded with
// `seed`. Errors of `inner` are passed on (and stick); lines_read and
// bad_lines are the inner reader's. The first `skip` examples it would
// return are dropped (resuming: the order does not depend on how the
// examples are cut into batches). Its Position() is the inner reader's epoch
// and worker with file_index -1 and examples_done = skip + examples
// returned.
// REQUIRES: batch_size >= 1, capacity >= 1, skip >= 0.
std::unique_ptr<DataReader> NewShufflingReader(
    std::unique_ptr<DataReader> inner, int batch_size, int capacity,
    uint64_t seed, int64_t skip = 0);

}  // namespace ps

#endif  // PS_WORKER_DATA_READER_SHUFFLER_H_

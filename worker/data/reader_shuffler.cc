#include "worker/data/reader_shuffler.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "common/hash.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {

ExampleShuffler::ExampleShuffler(int capacity, uint64_t seed)
    : capacity_(capacity), rng_(seed) {
  CHECK_GE(capacity, 1);
}

void ExampleShuffler::Put(const Batch& in, int i) {
  DCHECK(!full());
  DCHECK(i >= 0 && i < in.size());
  if (size_ == static_cast<int>(examples_.size())) examples_.emplace_back();
  Example& e = examples_[size_++];
  e.label = in.labels[i];
  e.dense.assign(in.dense.begin() + static_cast<size_t>(i) * in.num_dense,
                 in.dense.begin() + static_cast<size_t>(i + 1) * in.num_dense);
  const size_t first = static_cast<size_t>(i) * in.num_slots;
  e.slot_sizes.resize(in.num_slots);
  for (int s = 0; s < in.num_slots; ++s) {
    e.slot_sizes[s] = in.offsets[first + s + 1] - in.offsets[first + s];
  }
  e.keys.assign(in.keys.begin() + in.offsets[first],
                in.keys.begin() + in.offsets[first + in.num_slots]);
}

void ExampleShuffler::TakeRandom(Batch* out) {
  DCHECK(!empty());
  // Multiply-shift draw in [0, size_): the same on every platform (unlike
  // std::uniform_int_distribution); its bias is below 2^-32 here.
  const int j = static_cast<int>(
      (static_cast<unsigned __int128>(rng_()) * static_cast<uint64_t>(size_)) >>
      64);
  Example& e = examples_[j];
  DCHECK_EQ(static_cast<int>(e.slot_sizes.size()), out->num_slots);
  DCHECK_EQ(static_cast<int>(e.dense.size()), out->num_dense);
  out->labels.push_back(e.label);
  out->dense.insert(out->dense.end(), e.dense.begin(), e.dense.end());
  uint32_t offset = out->offsets.back();
  for (uint32_t n : e.slot_sizes) {
    offset += n;
    out->offsets.push_back(offset);
  }
  out->keys.insert(out->keys.end(), e.keys.begin(), e.keys.end());
  // Keep the taken example's storage for reuse past the live ones.
  std::swap(examples_[j], examples_[size_ - 1]);
  --size_;
}

uint64_t ShuffleSeed(uint64_t seed, int rank) {
  return Mix64(Mix64(seed) ^ static_cast<uint64_t>(rank));
}

namespace {

class ShufflingReader final : public DataReader {
 public:
  ShufflingReader(std::unique_ptr<DataReader> inner, int batch_size,
                  int capacity, uint64_t seed, int64_t skip)
      : inner_(std::move(inner)),
        batch_size_(batch_size),
        shuffler_(capacity, seed),
        skip_left_(skip),
        examples_done_(skip) {
    CHECK_GE(batch_size, 1);
    CHECK_GE(skip, 0);
  }

  absl::StatusOr<bool> Next(Batch* batch) override {
    while (skip_left_ > 0) {
      ASSIGN_OR_RETURN(bool more,
                       Fill(batch, static_cast<int>(std::min<int64_t>(
                                       skip_left_, batch_size_))));
      if (!more) break;
      skip_left_ -= batch->size();
    }
    skip_left_ = 0;
    ASSIGN_OR_RETURN(bool more, Fill(batch, batch_size_));
    examples_done_.fetch_add(batch->size());
    return more;
  }

  int64_t lines_read() const override { return inner_->lines_read(); }
  int64_t bad_lines() const override { return inner_->bad_lines(); }
  double progress() const override { return inner_->progress(); }

  absl::StatusOr<DataPosition> Position() const override {
    ASSIGN_OR_RETURN(DataPosition position, inner_->Position());
    position.set_file_index(-1);
    position.clear_file();
    position.clear_offset();
    position.set_examples_done(examples_done_.load());
    return position;
  }

 private:
  // Replaces `batch` with up to n examples; false when none is left.
  absl::StatusOr<bool> Fill(Batch* batch, int n) {
    RETURN_IF_ERROR(error_);
    Batch out;
    out.num_slots = in_.num_slots;
    out.num_dense = in_.num_dense;
    while (out.size() < n) {
      if (in_row_ < in_.size()) {
        if (shuffler_.full()) shuffler_.TakeRandom(&out);
        shuffler_.Put(in_, in_row_++);
      } else if (!input_done_) {
        absl::StatusOr<bool> more = inner_->Next(&in_);
        if (!more.ok()) {
          error_ = more.status();
          return error_;
        }
        in_row_ = 0;
        input_done_ = !*more;
        out.num_slots = in_.num_slots;
        out.num_dense = in_.num_dense;
      } else if (!shuffler_.empty()) {
        shuffler_.TakeRandom(&out);
      } else {
        break;
      }
    }
    *batch = std::move(out);
    return batch->size() > 0;
  }

  const std::unique_ptr<DataReader> inner_;
  const int batch_size_;
  ExampleShuffler shuffler_;
  Batch in_;        // the inner reader's last batch
  int in_row_ = 0;  // next example of in_ to buffer
  bool input_done_ = false;
  absl::Status error_;
  int64_t skip_left_;  // examples still to drop before the first return
  std::atomic<int64_t> examples_done_;  // skipped + returned
};

}  // namespace

std::unique_ptr<DataReader> NewShufflingReader(
    std::unique_ptr<DataReader> inner, int batch_size, int capacity,
    uint64_t seed, int64_t skip) {
  return std::make_unique<ShufflingReader>(std::move(inner), batch_size,
                                           capacity, seed, skip);
}

}  // namespace ps

// BackendArray<T>: an array of T that a Model (worker/model/model.h) or one of
// its terms (worker/model/model_term.h) keeps between steps, in the memory of
// its Backend (kernels/backend.h): Backend::Allocate memory (device memory on a
// GPU), where every kernel operand lives, or Backend::AllocateHost memory
// (pinned host memory on a GPU) for the copies at a step's boundaries.
//
// The array grows on demand and never shrinks, so steps of the same batch
// size reuse it without allocating. Growing drops the contents. The backend
// is not owned and must outlive the array. Used by one thread, like its
// Model.
#ifndef PS_WORKER_MODEL_MODEL_BUFFER_H_
#define PS_WORKER_MODEL_MODEL_BUFFER_H_

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace ps {

template <typename T>
class BackendArray {
 public:
  enum class Memory {
    kBackend,  // Backend::Allocate: kernel operands
    kHost,     // Backend::AllocateHost: staging for copies
  };

  explicit BackendArray(Memory memory = Memory::kBackend) : memory_(memory) {}

  BackendArray(const BackendArray&) = delete;
  BackendArray& operator=(const BackendArray&) = delete;

  // Makes room for at least `count` elements (and at least one, so data() is
  // never null once this succeeded). Growing allocates at least 1.5 times
  // the old capacity and loses the contents. Errors are those of the
  // backend's Allocate / AllocateHost (the array is then left as it was).
  [[nodiscard]] absl::Status Reserve(Backend* backend, int64_t count) {
    count = std::max<int64_t>(count, 1);
    if (count <= capacity_) return absl::OkStatus();
    const int64_t capacity = std::max(count, capacity_ + capacity_ / 2);
    const int64_t bytes = capacity * static_cast<int64_t>(sizeof(T));
    absl::StatusOr<BackendBuffer> buffer = memory_ == Memory::kBackend
                                               ? backend->Allocate(bytes)
                                               : backend->AllocateHost(bytes);
    if (!buffer.ok()) return buffer.status();
    buffer_ = std::move(buffer).value();
    capacity_ = capacity;
    return absl::OkStatus();
  }

  // Null before the first successful Reserve.
  T* data() const { return buffer_.as<T>(); }
  int64_t capacity() const { return capacity_; }

 private:
  const Memory memory_;
  BackendBuffer buffer_;
  int64_t capacity_ = 0;
};

}  // namespace ps

#endif  // PS_WORKER_MODEL_MODEL_BUFFER_H_

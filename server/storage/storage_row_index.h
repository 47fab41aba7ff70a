// RowIndex: a map from 64-bit key to 32-bit row number for one sub-shard of
// a storage: open addressing with linear probing over 8-byte slots (8 to a
// cache line), at most 3/4 full. A slot holds the row number and 32 bits of
// the key's hash, not the key: the storage keeps each row's key (next to the
// row, where the lookup goes next anyway), and the index asks for it through
// the `key_of(row)` function every lookup takes, only when the hash bits
// match. So a lookup mostly reads the one index line its key's hash points
// to (which Prefetch(key) fetches ahead) plus the row it returns, and the
// index costs 8 bytes per slot: 10.7 to 21.3 bytes per row.
//
// Erase uses backward-shift deletion (no tombstones); rehashing and erasing
// need only the stored hash bits, never the keys.
//
// Not thread-safe: the sub-shard's lock guards it.
#ifndef PS_SERVER_STORAGE_STORAGE_ROW_INDEX_H_
#define PS_SERVER_STORAGE_STORAGE_ROW_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/hash.h"

namespace ps {

class RowIndex {
 public:
  static constexpr size_t kSlotBytes = 8;
  static constexpr uint32_t kNone = ~0u;  // never a row number

  RowIndex() : slots_(kMinCapacity) {}

  // Sizes the table for `rows` entries without growing.
  void Reserve(size_t rows) {
    size_t cap = slots_.size();
    while (rows * 4 > cap * 3) cap *= 2;
    if (cap != slots_.size()) Rehash(cap);
  }

  void Prefetch(uint64_t key) const {
    __builtin_prefetch(&slots_[Hash(key) & (slots_.size() - 1)]);
  }

  // The row of `key`, or kNone. key_of(row) returns the key stored with a
  // row the index holds.
  template <typename KeyOf>
  uint32_t Find(uint64_t key, const KeyOf& key_of) const {
    const uint32_t hash = Hash(key);
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (slot.row == kNone) return kNone;
      if (slot.hash == hash && key_of(slot.row) == key) return slot.row;
    }
  }

  // The row of `key`; when missing, first inserts key -> `row` (the caller
  // stores `key` with `row` before the next lookup). Returns the row and
  // whether it inserted.
  template <typename KeyOf>
  std::pair<uint32_t, bool> FindOrInsert(uint64_t key, uint32_t row,
                                         const KeyOf& key_of) {
    const uint32_t found = Find(key, key_of);
    if (found != kNone) return {found, false};
    if ((size_ + 1) * 4 > slots_.size() * 3) Rehash(slots_.size() * 2);
    Place(Slot{row, Hash(key)});
    ++size_;
    return {row, true};
  }

  // Removes `key`; returns its row, or kNone when it was absent.
  template <typename KeyOf>
  uint32_t Erase(uint64_t key, const KeyOf& key_of) {
    const uint32_t hash = Hash(key);
    const size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    for (;; i = (i + 1) & mask) {
      if (slots_[i].row == kNone) return kNone;
      if (slots_[i].hash == hash && key_of(slots_[i].row) == key) break;
    }
    const uint32_t row = slots_[i].row;
    // Backward shift: move later entries of the probe run into the hole
    // when their home is not cyclically in (hole, j].
    for (size_t j = (i + 1) & mask; slots_[j].row != kNone;
         j = (j + 1) & mask) {
      const size_t home = slots_[j].hash & mask;
      const bool home_in_range =
          i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (!home_in_range) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].row = kNone;
    --size_;
    return row;
  }

  size_t size() const { return size_; }
  size_t capacity() const { return slots_.size(); }

 private:
  static constexpr size_t kMinCapacity = 16;

  struct Slot {
    uint32_t row = kNone;
    uint32_t hash = 0;
  };
  static_assert(sizeof(Slot) == kSlotBytes);

  // Low bits of the mixed key (the sub-shard comes from its high bits); the
  // home slot is hash & mask, so capacities up to 2^32 slots work.
  static uint32_t Hash(uint64_t key) {
    return static_cast<uint32_t>(Mix64(key));
  }

  // REQUIRES: slot's key absent, a free slot.
  void Place(const Slot& slot) {
    const size_t mask = slots_.size() - 1;
    size_t i = slot.hash & mask;
    while (slots_[i].row != kNone) i = (i + 1) & mask;
    slots_[i] = slot;
  }

  void Rehash(size_t capacity) {
    std::vector<Slot> old(capacity);
    old.swap(slots_);
    for (const Slot& slot : old) {
      if (slot.row != kNone) Place(slot);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace ps

#endif  // PS_SERVER_STORAGE_STORAGE_ROW_INDEX_H_

// How many sparse slots and dense features an example of a data format has,
// derived from the data config alone (never from the data files) so servers,
// workers and tools agree. The parsers in worker/ produce exactly this shape
// (tests check it). Pure functions; thread-safe.
#ifndef PS_COMMON_INPUT_SHAPE_H_
#define PS_COMMON_INPUT_SHAPE_H_

#include "proto/config.pb.h"

namespace ps {

struct InputShape {
  int num_slots = 0;  // sparse slots per example
  int num_dense = 0;  // dense features per example
};

// Slots of MOVIELENS examples: user and item ids always; the user side slots
// when data.movielens_user_file is set, then the item side slots when
// data.movielens_item_file is set, in this order.
inline constexpr int kMovieLensIdSlots = 2;    // user id, item id
inline constexpr int kMovieLensUserSlots = 4;  // age, gender, occupation, zip
inline constexpr int kMovieLensItemSlots = 2;  // genres, release year

// AVAZU: hour of day, day of the week and 21 categorical fields
// (worker/data/avazu_parser.h).
inline constexpr int kAvazuSlots = 23;

// CRITEO: 39 slots (LOG_BUCKET) or 26 slots + 13 dense (NORMALIZE).
// SLOT: data.num_slots and data.num_dense.
// MOVIELENS: 2 slots, + 4 with a user file, + 2 with an item file; no dense.
// REQUIRES: `data` passed config validation.
InputShape InputShapeOf(const DataConfig& data);

}  // namespace ps

#endif  // PS_COMMON_INPUT_SHAPE_H_

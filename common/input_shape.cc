#include "common/input_shape.h"

namespace ps {

InputShape InputShapeOf(const DataConfig& data) {
  InputShape shape;
  switch (data.format()) {
    case DataConfig::SLOT:
      shape.num_slots = data.num_slots();
      shape.num_dense = data.num_dense();
      break;
    case DataConfig::MOVIELENS:
      shape.num_slots = kMovieLensIdSlots;
      if (data.has_movielens_user_file()) {
        shape.num_slots += kMovieLensUserSlots;
      }
      if (data.has_movielens_item_file()) {
        shape.num_slots += kMovieLensItemSlots;
      }
      break;
    case DataConfig::AVAZU:
      shape.num_slots = kAvazuSlots;
      break;
    default:
      // Criteo: 26 categorical slots, plus 13 integer slots when bucketized,
      // or 13 dense features when normalized.
      if (data.int_features() == DataConfig::NORMALIZE) {
        shape.num_slots = 26;
        shape.num_dense = 13;
      } else {
        shape.num_slots = 39;
      }
      break;
  }
  return shape;
}

}  // namespace ps

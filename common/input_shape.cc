#include "common/input_shape.h"

namespace ps {

InputShape InputShapeOf(const DataConfig& data) {
  InputShape shape;
  // Criteo: 26 categorical slots, plus 13 integer slots when bucketized, or
  // 13 dense features when normalized.
  if (data.int_features() == DataConfig::NORMALIZE) {
    shape.num_slots = 26;
    shape.num_dense = 13;
  } else {
    shape.num_slots = 39;
    shape.num_dense = 0;
  }
  return shape;
}

}  // namespace ps

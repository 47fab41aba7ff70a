// How many sparse slots and dense features an example of a data format has,
// derived from the data config alone so servers, workers and tools agree.
// Pure functions; thread-safe.
#ifndef PS_COMMON_INPUT_SHAPE_H_
#define PS_COMMON_INPUT_SHAPE_H_

#include "proto/config.pb.h"

namespace ps {

struct InputShape {
  int num_slots = 0;  // sparse slots per example
  int num_dense = 0;  // dense features per example
};

// REQUIRES: `data` passed config validation.
InputShape InputShapeOf(const DataConfig& data);

}  // namespace ps

#endif  // PS_COMMON_INPUT_SHAPE_H_

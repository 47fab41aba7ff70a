// The numbering of FWFM's field pairs (model.type FWFM), shared by the model
// shape (common/model_spec.h), the CPU and CUDA kernels and the tests: pair
// (f, g), f < g, of num_fields fields has index FwFmPairIndex, in the order
// (0,1), (0,2), ..., (0,F-1), (1,2), ...; there are FwFmNumPairs of them.
// In 64 bits: data.num_slots goes up to 10^5, whose pairs pass 2^31 (the
// config's dense size limit then refuses the model). Pure functions.
#ifndef PS_COMMON_FWFM_PAIRS_H_
#define PS_COMMON_FWFM_PAIRS_H_

#include <cstdint>

#include "common/host_device.h"

namespace ps {

// num_fields * (num_fields - 1) / 2; 0 for fewer than 2 fields.
PS_HOST_DEVICE inline int64_t FwFmNumPairs(int num_fields) {
  return num_fields < 2 ? 0 : int64_t{num_fields} * (num_fields - 1) / 2;
}

// REQUIRES: 0 <= f < g < num_fields.
PS_HOST_DEVICE inline int64_t FwFmPairIndex(int num_fields, int f, int g) {
  return int64_t{f} * (2 * int64_t{num_fields} - f - 1) / 2 + (g - f - 1);
}

}  // namespace ps

#endif  // PS_COMMON_FWFM_PAIRS_H_

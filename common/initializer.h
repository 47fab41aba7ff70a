// The value a sparse row starts with: a deterministic function of the
// initializer, a seed, the key and the position in the row, so every
// server, every restart, a resharded table and a model exported for serving
// agree on a row no push has touched. Thread-safe (pure).
#ifndef PS_COMMON_INITIALIZER_H_
#define PS_COMMON_INITIALIZER_H_

#include <cstdint>

#include "proto/config.pb.h"

namespace ps {

// Weight i of the row of `key`: ZEROS 0; UNIFORM scale * U(-1, 1); NORMAL
// scale * N(0, 1) (Box-Muller over two hashed uniforms).
float InitialWeight(const InitializerConfig& init, uint64_t seed, uint64_t key,
                    int i);

}  // namespace ps

#endif  // PS_COMMON_INITIALIZER_H_

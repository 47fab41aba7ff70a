#include "common/initializer.h"

#include <cmath>

#include "common/hash.h"

namespace ps {

float InitialWeight(const InitializerConfig& init, uint64_t seed, uint64_t key,
                    int i) {
  switch (init.type()) {
    case InitializerConfig::ZEROS:
      return 0.0f;
    case InitializerConfig::NORMAL: {
      // Box-Muller from two hashed uniforms.
      float u1 = HashUniform(seed, key, 2 * i) + 1e-7f;
      float u2 = HashUniform(seed, key, 2 * i + 1);
      return init.scale() * std::sqrt(-2.0f * std::log(u1)) *
             std::cos(6.2831853f * u2);
    }
    case InitializerConfig::UNIFORM:
    default:
      return init.scale() * (2.0f * HashUniform(seed, key, i) - 1.0f);
  }
}

}  // namespace ps

// Feature keys and their routing to servers and sub-shards.
//
// The functions here are fixed: they are part of the checkpoint and wire
// format, so changing them changes which server owns which key.
//   key        = FeatureKey(seed, slot, value)
//   server     = Mix64(key) % num_servers
//   sub-shard  = (Mix64(key) >> 32) % shard_num
// All functions are pure and thread-safe.
#ifndef PS_COMMON_HASH_H_
#define PS_COMMON_HASH_H_

#include <cstdint>

namespace ps {

// The splitmix64 finalizer: a bijection on 64-bit integers with full
// avalanche.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The 64-bit key of raw feature `value` in slot `slot`. The same value in two
// slots gives two different keys.
inline uint64_t FeatureKey(uint64_t seed, uint32_t slot, uint64_t value) {
  return Mix64(Mix64(seed ^ (static_cast<uint64_t>(slot) << 40) ^ 0x5EEDULL) ^
               value);
}

// REQUIRES: num_servers > 0.
inline int ServerForKey(uint64_t key, int num_servers) {
  return static_cast<int>(Mix64(key) % static_cast<uint64_t>(num_servers));
}

// REQUIRES: shard_num > 0.
inline int SubShardForKey(uint64_t key, int shard_num) {
  return static_cast<int>((Mix64(key) >> 32) %
                          static_cast<uint64_t>(shard_num));
}

// A deterministic uniform float in [0, 1) for (seed, a, b): used by
// initializers so a row is the same whichever server creates it.
inline float HashUniform(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t h = Mix64(Mix64(seed ^ Mix64(a)) ^ b);
  return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

}  // namespace ps

#endif  // PS_COMMON_HASH_H_

// Helpers shared by the CPU kernel tests: seeded random inputs and a CPU
// backend that must build.
#ifndef PS_TESTS_TESTING_KERNEL_TEST_UTIL_H_
#define PS_TESTS_TESTING_KERNEL_TEST_UTIL_H_

#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"

namespace ps {

inline std::vector<float> RandomVector(int64_t size, std::mt19937* rng,
                                       float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(size);
  for (float& x : v) x = dist(*rng);
  return v;
}

// Null (and a test failure) when the backend cannot be created.
inline std::unique_ptr<Backend> MakeBackend() {
  auto backend = Backend::CreateCpu(BackendOptions{});
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::move(backend).value() : nullptr;
}

}  // namespace ps

#endif  // PS_TESTS_TESTING_KERNEL_TEST_UTIL_H_

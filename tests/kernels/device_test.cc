#include "kernels/device.h"

#include <string>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(DeviceTest, ListGpusSucceedsWithOrWithoutAGpu) {
  // Without a driver (CI) the CUDA runtime answers "insufficient driver";
  // that must read as "no GPU", not as an error.
  auto gpus = ListGpus();
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  if (!BuiltWithCuda()) EXPECT_TRUE(gpus->empty());
  for (const GpuInfo& g : *gpus) {
    EXPECT_FALSE(g.name.empty());
    EXPECT_GE(g.compute_capability, 75);
    EXPECT_GT(g.memory_bytes, 0);
  }
}

TEST(DeviceTest, DescriptionSaysHowTheBinaryWasBuilt) {
  std::string text = DescribeAccelerators();
  if (BuiltWithCuda()) {
    EXPECT_EQ(text.rfind("CUDA built", 0), 0u) << text;
  } else {
    EXPECT_NE(text.find("built without CUDA"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace ps

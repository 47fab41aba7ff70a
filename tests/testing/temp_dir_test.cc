// The test-only scratch directory (tests/testing/temp_dir.h): fresh, under
// the test temp dir, and gone with everything in it when destroyed.
#include "tests/testing/temp_dir.h"

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::StartsWith;
using testing_util::ReadFile;
using testing_util::TempDir;

TEST(TempDirTest, IsAFreshEmptyDirectoryUnderTheTestTempDir) {
  TempDir a;
  TempDir b;
  EXPECT_NE(a.path(), b.path());
  EXPECT_TRUE(std::filesystem::is_directory(a.path()));
  EXPECT_TRUE(std::filesystem::is_empty(a.path()));
  std::string base = ::testing::TempDir();
  if (!base.empty() && base.back() == '/') base.pop_back();
  EXPECT_THAT(a.path(), StartsWith(base + "/"));
  EXPECT_NE(a.path().back(), '/');
}

TEST(TempDirTest, PathAndWrite) {
  TempDir dir;
  EXPECT_EQ(dir.Path("a/b.txt"), dir.path() + "/a/b.txt");
  EXPECT_FALSE(std::filesystem::exists(dir.Path("a")));
  const std::string binary("x\0y\n", 4);
  const std::string path = dir.Write("f.bin", binary);
  EXPECT_EQ(path, dir.Path("f.bin"));
  EXPECT_EQ(ReadFile(path), binary);
  dir.Write("f.bin", "shorter");
  EXPECT_EQ(ReadFile(path), "shorter");
}

TEST(TempDirTest, DestructorRemovesEverythingUnderIt) {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    std::filesystem::create_directories(dir.Path("sub/deeper"));
    dir.Write("sub/deeper/f", "x");
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace ps

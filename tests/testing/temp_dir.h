// A scratch directory for a test: made fresh with mkdtemp under
// ::testing::TempDir() ($TEST_TMPDIR, else $TMPDIR, else /tmp), so tests
// running in parallel processes never share one, and removed with all it
// holds when the TempDir is destroyed; and ReadFile, to read back a file
// the code under test wrote.
//
//   TempDir dir;
//   std::string path = dir.Write("a.tsv", "1\t2\n");   // dir.path() + "/a.tsv"
//   options.checkpoint_dir = dir.Path("ckpt");         // not created
//   EXPECT_EQ(ReadFile(path), "1\t2\n");
//
// Its methods are const: threads may write files under it at once; it must
// outlive them.
#ifndef PS_TESTS_TESTING_TEMP_DIR_H_
#define PS_TESTS_TESTING_TEMP_DIR_H_

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace ps {
namespace testing_util {

class TempDir {
 public:
  // Makes the directory; a test cannot go on without it, so failing to make
  // it aborts the test program.
  TempDir() {
    std::string base = ::testing::TempDir();
    if (!base.empty() && base.back() == '/') base.pop_back();
    std::string tmpl = base + "/ps_test_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::fprintf(stderr, "TempDir: mkdtemp(%s): %s\n", tmpl.c_str(),
                   strerror(errno));
      std::abort();
    }
    path_ = tmpl;
  }

  // Removes the directory and everything under it.
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The directory, without a trailing '/'.
  const std::string& path() const { return path_; }

  // path()/name; creates nothing.
  std::string Path(absl::string_view name) const {
    return absl::StrCat(path_, "/", name);
  }

  // Writes `content` to path()/name (replacing it) and returns that path; a
  // failed write fails the test.
  std::string Write(absl::string_view name, absl::string_view content) const {
    const std::string path = Path(name);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    EXPECT_TRUE(out.good()) << "cannot write " << path;
    return path;
  }

 private:
  std::string path_;
};

// The bytes of the file at `path`; "" when it cannot be read (tests print
// logs that may not have been written).
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace testing_util
}  // namespace ps

#endif  // PS_TESTS_TESTING_TEMP_DIR_H_

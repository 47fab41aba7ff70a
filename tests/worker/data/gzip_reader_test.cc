#include "worker/data/gzip_reader.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::ReadFile;
using testing_util::StatusIs;

class GzipLineSourceTest : public testing_util::TempDirTest {
 protected:
  // All lines of `path` with their line numbers checked against 1, 2, ...
  absl::StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
    std::vector<char> buffer;
    absl::StatusOr<std::unique_ptr<GzipLineSource>> source =
        GzipLineSource::Open(path, &buffer);
    if (!source.ok()) return source.status();
    std::vector<std::string> lines;
    absl::string_view line;
    while (true) {
      absl::StatusOr<bool> more = (*source)->Next(&line);
      if (!more.ok()) return more.status();
      if (!*more) break;
      lines.emplace_back(line);
      EXPECT_EQ(*(*source)->LineNumber(), static_cast<int64_t>(lines.size()));
    }
    absl::StatusOr<bool> again = (*source)->Next(&line);
    EXPECT_TRUE(again.ok() && !*again);
    return lines;
  }
};

TEST_F(GzipLineSourceTest, IsGzipPath) {
  EXPECT_TRUE(IsGzipPath("a/b.tsv.gz"));
  EXPECT_TRUE(IsGzipPath(".gz"));
  EXPECT_FALSE(IsGzipPath("a.gz.tsv"));
  EXPECT_FALSE(IsGzipPath("a.tgz"));
  EXPECT_FALSE(IsGzipPath("a.GZ"));
}

TEST_F(GzipLineSourceTest, LinesAsInThePlainText) {
  const std::string big(3 << 20, 'x');  // longer than the 1 MiB buffer
  const std::string text = absl::StrCat("a\n\nb\tc\r\n", big, "\nlast");
  absl::StatusOr<std::vector<std::string>> lines =
      ReadLines(WriteGzip("a.gz", text));
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, (std::vector<std::string>{"a", "", "b\tc\r", big, "last"}));

  lines = ReadLines(WriteGzip("empty.gz", ""));
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_TRUE(lines->empty());
}

TEST_F(GzipLineSourceTest, ConcatenatedMembersReadAsOneStream) {
  const std::string a = WriteGzip("a.gz", "1\n2\n");
  const std::string b = WriteGzip("b.gz", "3\n");
  absl::StatusOr<std::vector<std::string>> lines =
      ReadLines(Write("ab.gz", ReadFile(a) + ReadFile(b)));
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, (std::vector<std::string>{"1", "2", "3"}));
}

TEST_F(GzipLineSourceTest, TruncatedFileIsAnError) {
  std::string text;
  for (int i = 0; i < 20000; ++i) absl::StrAppend(&text, i * 7919, "\n");
  const std::string bytes = ReadFile(WriteGzip("full.gz", text));
  const std::string path = Write("cut.gz", bytes.substr(0, bytes.size() / 2));
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path);
  EXPECT_THAT(lines, StatusIs(absl::StatusCode::kInternal,
                              absl::StrCat("cannot decompress input file '",
                                           path, "': unexpected end of file")));
}

TEST_F(GzipLineSourceTest, CorruptFileIsAnError) {
  std::string bytes = ReadFile(WriteGzip("full.gz", std::string(10000, 'q')));
  bytes[12] ^= 0x55;  // inside the deflate data
  const std::string path = Write("bad.gz", bytes);
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path);
  EXPECT_THAT(lines,
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr(absl::StrCat("cannot decompress input file '",
                                              path, "': "))));
}

TEST_F(GzipLineSourceTest, PlainTextNamedGzIsRefused) {
  const std::string path = Write("plain.gz", "1\n2\n");
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path);
  EXPECT_THAT(lines, StatusIs(absl::StatusCode::kInvalidArgument,
                              absl::StrCat(
                                  "input file '", path,
                                  "' ends in .gz but is not gzip-compressed")));
}

TEST_F(GzipLineSourceTest, MissingFile) {
  std::vector<char> buffer;
  auto source = GzipLineSource::Open(dir_ + "/none.gz", &buffer);
  EXPECT_THAT(source,
              StatusIs(absl::StatusCode::kNotFound,
                       absl::StrCat("cannot open input file '", dir_,
                                    "/none.gz': No such file or directory")));
}

}  // namespace
}  // namespace ps

#include "worker/data/gzip_reader.h"

#include <algorithm>
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

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::ReadFile;
using testing_util::StatusIs;

class GzipLineSourceTest : public testing_util::TempDirTest {
 protected:
  // All lines of `path` with their line numbers checked against 1, 2, ...;
  // "<too long>" for a line over limits.max_line_bytes.
  absl::StatusOr<std::vector<std::string>> ReadLines(
      const std::string& path, const GzipLimits& limits = GzipLimits()) {
    absl::StatusOr<std::unique_ptr<GzipLineSource>> source =
        GzipLineSource::Open(path, &buffer_, limits);
    if (!source.ok()) return source.status();
    std::vector<std::string> lines;
    absl::string_view line;
    while (true) {
      absl::StatusOr<bool> more = (*source)->Next(&line);
      if (!more.ok()) return more.status();
      if (!*more) break;
      if ((*source)->too_long()) {
        EXPECT_TRUE(line.empty());
        lines.emplace_back("<too long>");
      } else {
        lines.emplace_back(line);
      }
      EXPECT_EQ(*(*source)->LineNumber(), static_cast<int64_t>(lines.size()));
    }
    absl::StatusOr<bool> again = (*source)->Next(&line);
    EXPECT_TRUE(again.ok() && !*again);
    return lines;
  }

  // `mib` MiB of zero bytes, gzip-compressed at zlib's default level (about
  // 1028:1), written in pieces: a gzip bomb.
  std::string WriteZeros(const std::string& name, int mib) {
    const std::string path = dir_ + "/" + name;
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr) << path;
    const std::string zeros(1 << 20, '\0');
    for (int i = 0; i < mib; ++i) {
      EXPECT_EQ(gzwrite(f, zeros.data(), zeros.size()),
                static_cast<int>(zeros.size()));
    }
    EXPECT_EQ(gzclose(f), Z_OK);
    return path;
  }

  std::vector<char> buffer_;  // the sources' line buffer
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
  GzipLimits limits;
  limits.max_line_bytes = 4 << 20;
  absl::StatusOr<std::vector<std::string>> lines =
      ReadLines(WriteGzip("a.gz", text), limits);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, (std::vector<std::string>{"a", "", "b\tc\r", big, "last"}));
  // With the default limit of 1 MiB the big line is dropped, not buffered.
  lines = ReadLines(WriteGzip("a.gz", text));
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, (std::vector<std::string>{"a", "", "b\tc\r", "<too long>",
                                              "last"}));

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
  EXPECT_THAT(lines, StatusIs(absl::StatusCode::kDataLoss,
                              absl::StrCat("cannot decompress input file '",
                                           path, "': unexpected end of file")));
}

TEST_F(GzipLineSourceTest, CorruptFileIsAnError) {
  std::string bytes = ReadFile(WriteGzip("full.gz", std::string(10000, 'q')));
  bytes[12] ^= 0x55;  // inside the deflate data
  const std::string path = Write("bad.gz", bytes);
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path);
  EXPECT_THAT(lines,
              StatusIs(absl::StatusCode::kDataLoss,
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

TEST_F(GzipLineSourceTest, GzipBombIsRefusedNamingTheFile) {
  const std::string path = WriteZeros("bomb.gz", 200);
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path);
  EXPECT_THAT(
      lines, StatusIs(absl::StatusCode::kResourceExhausted,
                      AllOf(HasSubstr(absl::StrCat("input file '", path,
                                                   "' looks like a gzip bomb")),
                            HasSubstr("data.gzip_max_ratio = 1000:1"))));
  // The zeros (one line) were never buffered whole.
  EXPECT_LE(buffer_.capacity(), (size_t{1} << 20) + 1);
}

TEST_F(GzipLineSourceTest, WithoutARatioLimitABombIsOneTooLongLine) {
  const std::string path = WriteZeros("bomb.gz", 40);
  GzipLimits limits;
  limits.max_ratio = 0;
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path, limits);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, std::vector<std::string>{"<too long>"});
  EXPECT_LE(buffer_.capacity(), (size_t{1} << 20) + 1);
}

TEST_F(GzipLineSourceTest, DecompressedSizeIsCapped) {
  std::string text;
  while (text.size() < (3u << 20)) absl::StrAppend(&text, text.size(), "\n");
  const std::string path = WriteGzip("big.gz", text);
  GzipLimits limits;
  limits.max_decompressed_bytes = 1 << 20;
  EXPECT_THAT(
      ReadLines(path, limits),
      StatusIs(absl::StatusCode::kResourceExhausted,
               absl::StrCat("input file '", path,
                            "' decompresses to more than 1048576 bytes "
                            "(data.gzip_max_decompressed_bytes); refusing to "
                            "read on")));
  limits.max_decompressed_bytes = text.size();  // exactly enough
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path, limits);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(static_cast<int64_t>(lines->size()),
            std::count(text.begin(), text.end(), '\n'));
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

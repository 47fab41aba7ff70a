// LineSource: lines of a byte range of a plain file, bounded by
// max_line_bytes: a longer line is dropped (reported through too_long) and
// the caller's buffer never grows past max(1 MiB, max_line_bytes + 1).
#include "worker/data/line_source.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"

namespace ps {
namespace {

constexpr size_t kInitialBuffer = size_t{1} << 20;

struct Line {
  std::string text;
  int64_t number = 0;
  bool too_long = false;
  bool operator==(const Line& o) const {
    return text == o.text && number == o.number && too_long == o.too_long;
  }
};

std::ostream& operator<<(std::ostream& os, const Line& l) {
  return os << l.number << ":"
            << (l.too_long ? "<too long>" : l.text.substr(0, 20));
}

class LineSourceTest : public testing_util::TempDirTest {
 protected:
  // The lines starting in [begin, end) of `path` (end -1: the file's size).
  std::vector<Line> Read(const std::string& path, int64_t max_line_bytes,
                         int64_t begin = 0, int64_t end = -1) {
    absl::StatusOr<InputFile> file = InputFile::Open(path);
    EXPECT_TRUE(file.ok()) << file.status();
    if (!file.ok()) return {};
    if (end < 0) end = *file->Size();
    LineSource source(&*file, begin, end, &buffer_, max_line_bytes);
    std::vector<Line> lines;
    absl::string_view text;
    while (true) {
      absl::StatusOr<bool> more = source.Next(&text);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      EXPECT_TRUE(!source.too_long() || text.empty());
      lines.push_back(
          {std::string(text), *source.LineNumber(), source.too_long()});
    }
    return lines;
  }

  std::vector<char> buffer_;  // shared by the sources, as a reader thread's
};

TEST_F(LineSourceTest, ALineOfMaxBytesIsKeptOneMoreIsDropped) {
  const std::string max(100, 'a'), over(101, 'b');
  const std::string path =
      Write("a.txt", absl::StrCat(max, "\n", over, "\nnext\n", over));
  EXPECT_EQ(
      Read(path, 100),
      (std::vector<Line>{
          {max, 1, false}, {"", 2, true}, {"next", 3, false}, {"", 4, true}}));
  // The '\r' of a CRLF line counts: it is the parser's to strip.
  EXPECT_EQ(Read(Write("crlf.txt", max + "\r\nx"), 100),
            (std::vector<Line>{{"", 1, true}, {"x", 2, false}}));
}

TEST_F(LineSourceTest, TenMiBWithoutNewlineKeepsTheBufferBounded) {
  const std::string huge(10 << 20, 'x');
  // Before the fix the buffer doubled to hold the whole line (16 MiB).
  const std::string path = Write("a.txt", absl::StrCat("first\n", huge));
  EXPECT_EQ(Read(path, kDefaultMaxLineBytes),
            (std::vector<Line>{{"first", 1, false}, {"", 2, true}}));
  EXPECT_LE(buffer_.capacity(),
            std::max<size_t>(kInitialBuffer, kDefaultMaxLineBytes + 1));

  // Followed by more lines: those are read as usual.
  const std::string more =
      Write("b.txt", absl::StrCat("first\n", huge, "\nsecond\nthird"));
  EXPECT_EQ(Read(more, kDefaultMaxLineBytes),
            (std::vector<Line>{{"first", 1, false},
                               {"", 2, true},
                               {"second", 3, false},
                               {"third", 4, false}}));
  EXPECT_LE(buffer_.capacity(),
            std::max<size_t>(kInitialBuffer, kDefaultMaxLineBytes + 1));
}

TEST_F(LineSourceTest, LinesUpToTheLimitStillGrowTheBuffer) {
  const std::string big(3 << 20, 'y');
  const std::string path = Write("a.txt", absl::StrCat(big, "\nz"));
  EXPECT_EQ(Read(path, 4 << 20),
            (std::vector<Line>{{big, 1, false}, {"z", 2, false}}));
  EXPECT_LE(buffer_.capacity(), (4u << 20) + 1);
}

TEST_F(LineSourceTest, RangesSplitLongLinesExactlyOnce) {
  // Every line, long or not, belongs to the one range it starts in.
  const std::string a(300, 'a'), b(5000, 'b');
  const std::string text = absl::StrCat("1\n", a, "\n2\n", b, "\n3\n", b);
  const std::string path = Write("a.txt", text);
  const std::vector<Line> whole = Read(path, 1000);
  ASSERT_EQ(whole, (std::vector<Line>{{"1", 1, false},
                                      {a, 2, false},
                                      {"2", 3, false},
                                      {"", 4, true},
                                      {"3", 5, false},
                                      {"", 6, true}}));
  for (int64_t step : {1, 7, 256, 4999}) {
    std::vector<Line> joined;
    for (int64_t at = 0; at < static_cast<int64_t>(text.size()); at += step) {
      for (Line& l : Read(path, 1000, at, at + step)) joined.push_back(l);
    }
    EXPECT_EQ(joined, whole) << "ranges of " << step << " bytes";
  }
}

}  // namespace
}  // namespace ps

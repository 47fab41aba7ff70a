// Fuzz target: splitting files into lines (worker/data/line_source.h).
//
// The input is a plain data file. Its lines (as fuzz::Lines splits it) must
// come out of
//   - one LineSource over the whole file, with their line numbers;
//   - three LineSources over byte ranges that cut the file at points the
//     input picks (its first two bytes), read one after the other as
//     DataReader's workers would: every line once, in order, each in the
//     range it starts in, with its line number and next_offset;
//   - a LineBuffer fed by reads of 1 to 17 bytes (sizes from the input), so
//     lines span reads as they do on pipes and short reads.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_util.h"
#include "worker/data/line_source.h"

namespace {

std::vector<char>* buffer;

// Reads the lines of [begin, end) of `file`, appending them to `out` and
// checking their line numbers continue `out`'s count.
void ReadRange(const ps::InputFile& file, int64_t begin, int64_t end,
               int64_t size, std::vector<std::string>* out) {
  ps::LineSource source(&file, begin, end, buffer);
  absl::string_view line;
  while (true) {
    absl::StatusOr<bool> more = source.Next(&line);
    CHECK(more.ok()) << more.status();
    if (!*more) break;
    out->emplace_back(line);
    absl::StatusOr<int64_t> number = source.LineNumber();
    CHECK(number.ok()) << number.status();
    CHECK_EQ(*number, static_cast<int64_t>(out->size()));
    CHECK_LE(source.next_offset(), size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  buffer = new std::vector<char>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<absl::string_view> want = ps::fuzz::Lines(text);
  const std::string path = ps::fuzz::ScratchPath("lines.tsv");
  ps::fuzz::WriteFileOrDie(path, text);
  absl::StatusOr<ps::InputFile> file = ps::InputFile::Open(path);
  CHECK(file.ok()) << file.status();
  const int64_t n = static_cast<int64_t>(size);

  std::vector<std::string> whole;
  ReadRange(*file, 0, n, n, &whole);
  CHECK_EQ(whole.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK_EQ(whole[i], want[i]);

  int64_t a = size > 0 ? data[0] * n / 256 : 0;
  int64_t b = size > 1 ? data[1] * n / 256 : n;
  if (a > b) std::swap(a, b);
  std::vector<std::string> pieces;
  ReadRange(*file, 0, a, n, &pieces);
  ReadRange(*file, a, b, n, &pieces);
  ReadRange(*file, b, n, n, &pieces);
  CHECK(pieces == whole) << "ranges cut at " << a << " and " << b;

  // No line of the input is longer than the input: none is too long.
  ps::LineBuffer lines(buffer, 0, static_cast<int64_t>(size) + 1);
  size_t at = 0;
  size_t reads = 0;
  auto read = [&](char* dst, size_t room) -> absl::StatusOr<size_t> {
    size_t chunk = size > 0 ? 1 + data[reads++ % size] % 17 : 1;
    chunk = std::min({chunk, room, size - at});
    std::memcpy(dst, data + at, chunk);
    at += chunk;
    return chunk;
  };
  absl::string_view line;
  int64_t start = 0;
  for (size_t i = 0;; ++i) {
    bool too_long = false;
    absl::StatusOr<bool> more = lines.Next(read, &line, &start, &too_long);
    CHECK(more.ok()) << more.status();
    CHECK(!too_long);
    if (!*more) {
      CHECK_EQ(i, want.size());
      break;
    }
    CHECK_LT(i, want.size());
    CHECK_EQ(line, want[i]);
    CHECK_EQ(start, want[i].data() - text.data());
  }
  return 0;
}

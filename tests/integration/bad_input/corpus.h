// The bad-input corpus of tests/data/bad/ (see its README): reading a
// category's cases.txt, checking a status against a case's expectation, and
// snapshots of folders to show that a refused input changed nothing on disk.
//
// A cases.txt holds one case a line, columns separated by " | ":
//   name | category-specific columns ... | CODE | expected
// CODE is a canonical status code name (INVALID_ARGUMENT, ... or OK for a
// control case, a valid input); expected is one or more texts separated by
// " && ", each of which must occur in the status message. Blank lines and
// lines starting with '#' are ignored.
//
// Everything here is for tests; nothing is thread-safe beyond being const.
#ifndef PS_TESTS_INTEGRATION_BAD_INPUT_CORPUS_H_
#define PS_TESTS_INTEGRATION_BAD_INPUT_CORPUS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ps {
namespace bad_input {

// The categories, each a folder of tests/data/bad/ with a cases.txt.
inline constexpr const char* kCategories[] = {
    "data_lines", "data_files", "configs", "checkpoints", "exports", "rpc"};
// What every category must hold, control cases not counted.
inline constexpr int kMinCasesPerCategory = 10;
inline constexpr int kMinCasesInAll = 80;

struct Case {
  std::string name;
  std::vector<std::string> columns;  // between the name and the code
  absl::StatusCode code = absl::StatusCode::kOk;
  std::vector<std::string> expected;
  int line = 0;  // in cases.txt

  bool control() const { return code == absl::StatusCode::kOk; }
  // "cases.txt:12 (name)", for failure messages.
  std::string where() const;
};

// tests/data/bad/ of the source tree this test was built from.
std::string CorpusDir();
// CorpusDir()/category.
std::string CategoryDir(absl::string_view category);

// The cases of `category`, each with exactly `columns` middle columns.
// InvalidArgument naming the line for a malformed line or a repeated name.
absl::StatusOr<std::vector<Case>> ReadCases(absl::string_view category,
                                            int columns);

// "" when `status` has the case's code and every expected text; otherwise
// what differs, with the status.
std::string Mismatch(const Case& c, const absl::Status& status);

// Every entry under a folder (recursively, symbolic links not followed):
// relative path -> "dir", "link -> target" or "file <size> <crc32>".
using TreeState = std::map<std::string, std::string>;
TreeState Snapshot(const std::string& dir);
// "" when equal; otherwise the entries added, removed or changed.
std::string TreeDiff(const TreeState& before, const TreeState& after);

// Byte edits for the checkpoint and export cases. Paths are absolute.
// Keeps the first `size` bytes (size < 0: drops the last -size bytes).
absl::Status Truncate(const std::string& path, int64_t size);
// Overwrites bytes at `offset` (< 0: from the end) with `bytes`.
absl::Status Put(const std::string& path, int64_t offset,
                 absl::string_view bytes);
// Recomputes a checksummed file's footer (common/checksummed_file.h) after
// its header or payload was edited, so the file passes its own checksum.
absl::Status Reseal(const std::string& path);
// Applies one edit of a case's steps to the folder `root` (paths relative
// to it; TEXT, OLD and NEW C-escaped, OLD and NEW without spaces):
//   truncate PATH N        keep N bytes (N < 0: drop the last -N)
//   flip PATH OFFSET       invert the byte at OFFSET (< 0: from the end)
//   put PATH OFFSET TEXT   overwrite bytes at OFFSET
//   replace PATH OLD NEW [K]  overwrite the K-th (default 1st) occurrence of
//                          OLD by NEW, of the same length
//   reseal PATH            see Reseal
//   remove PATH            delete a file or folder
//   write PATH TEXT        (re)write a file
//   symlink PATH           move the file out of `root` (to root.outside/) and
//                          leave a symbolic link to it in its place
//   mkdir PATH             make a folder
// Unimplemented for another verb (the caller's own), InvalidArgument for a
// malformed edit.
absl::Status ApplyEdit(const std::string& root, absl::string_view edit);
// Splits a case's steps column (" ; "-separated).
std::vector<std::string> SplitSteps(absl::string_view steps);

// The bytes of a file; NotFound when it cannot be read.
absl::StatusOr<std::string> ReadAll(const std::string& path);
absl::Status WriteAll(const std::string& path, absl::string_view bytes);

}  // namespace bad_input
}  // namespace ps

#endif  // PS_TESTS_INTEGRATION_BAD_INPUT_CORPUS_H_

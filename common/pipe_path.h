// Input paths that name a command, `pipe:CMD` (worker/data/pipe_reader.h
// reads them): what the config, its validation and the data reader all need
// to recognise one.
#ifndef PS_COMMON_PIPE_PATH_H_
#define PS_COMMON_PIPE_PATH_H_

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace ps {

// The prefix of a command input.
inline constexpr absl::string_view kPipePrefix = "pipe:";

// True when `path` starts with "pipe:".
inline bool IsPipePath(absl::string_view path) {
  return absl::StartsWith(path, kPipePrefix);
}

// The command of a pipe path (what follows "pipe:"); other paths as they are.
inline absl::string_view PipeCommand(absl::string_view path) {
  return IsPipePath(path) ? path.substr(kPipePrefix.size()) : path;
}

// True for a pipe path whose command is more than blanks.
inline bool HasPipeCommand(absl::string_view path) {
  return IsPipePath(path) &&
         PipeCommand(path).find_first_not_of(" \t") != absl::string_view::npos;
}

}  // namespace ps

#endif  // PS_COMMON_PIPE_PATH_H_

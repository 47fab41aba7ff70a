#include "tests/integration/bad_input/corpus.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ps {
namespace bad_input {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kColumnSeparator = " | ";
constexpr absl::string_view kExpectedSeparator = " && ";

// The canonical code named `name` ("INVALID_ARGUMENT"), if any.
bool ParseCode(absl::string_view name, absl::StatusCode* code) {
  for (int c = 0; c <= static_cast<int>(absl::StatusCode::kUnauthenticated);
       ++c) {
    const auto candidate = static_cast<absl::StatusCode>(c);
    if (absl::StatusCodeToString(candidate) == name) {
      *code = candidate;
      return true;
    }
  }
  return false;
}

uint32_t Crc(uint32_t crc, absl::string_view bytes) {
  return static_cast<uint32_t>(
      crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()),
            static_cast<uInt>(bytes.size())));
}

void PutLittleEndian(uint64_t value, int bytes, char* out) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>(value >> (8 * i));
}

}  // namespace

std::string Case::where() const {
  return absl::StrCat("cases.txt:", line, " (", name, ")");
}

std::string CorpusDir() {
  return absl::StrCat(PS_TEST_SOURCE_DIR, "/tests/data/bad");
}

std::string CategoryDir(absl::string_view category) {
  return absl::StrCat(CorpusDir(), "/", category);
}

absl::StatusOr<std::vector<Case>> ReadCases(absl::string_view category,
                                            int columns) {
  const std::string path = absl::StrCat(CategoryDir(category), "/cases.txt");
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<Case> cases;
  std::set<std::string> names;
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    if (text.empty() || text[0] == '#') continue;
    // A control case ends in "| OK |": no expected text.
    if (absl::EndsWith(text, " |")) text += " ";
    std::vector<std::string> parts =
        absl::StrSplit(text, absl::ByString(kColumnSeparator));
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", number, ": ", why));
    };
    if (static_cast<int>(parts.size()) != columns + 3) {
      return bad(absl::StrCat("expected ", columns + 3,
                              " columns separated by '", kColumnSeparator,
                              "', got ", parts.size()));
    }
    Case c;
    c.line = number;
    c.name = parts.front();
    if (!names.insert(c.name).second) return bad("the name is used twice");
    c.columns.assign(parts.begin() + 1, parts.end() - 2);
    if (!ParseCode(parts[parts.size() - 2], &c.code)) {
      return bad(
          absl::StrCat("unknown status code '", parts[parts.size() - 2], "'"));
    }
    const std::string& expected = parts.back();
    if (!absl::StripAsciiWhitespace(expected).empty()) {
      c.expected = absl::StrSplit(expected, absl::ByString(kExpectedSeparator));
    }
    if (c.control() != c.expected.empty()) {
      return bad(
          "a case expects an error code and text, a control OK and none");
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string Mismatch(const Case& c, const absl::Status& status) {
  std::vector<std::string> wrong;
  if (status.code() != c.code) {
    wrong.push_back(
        absl::StrCat("code ", absl::StatusCodeToString(c.code), " expected"));
  }
  for (const std::string& text : c.expected) {
    if (!absl::StrContains(status.message(), text)) {
      wrong.push_back(absl::StrCat("no '", text, "' in the message"));
    }
  }
  if (wrong.empty()) return "";
  return absl::StrCat(c.where(), ": ", absl::StrJoin(wrong, "; "), "; got ",
                      status.ToString());
}

TreeState Snapshot(const std::string& dir) {
  TreeState state;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return state;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string rel = fs::relative(p, dir, ec).string();
    const fs::file_status st = fs::symlink_status(p, ec);
    if (fs::is_symlink(st)) {
      state[rel] = absl::StrCat("link -> ", fs::read_symlink(p, ec).string());
    } else if (fs::is_directory(st)) {
      state[rel] = "dir";
    } else {
      absl::StatusOr<std::string> bytes = ReadAll(p.string());
      state[rel] =
          bytes.ok() ? absl::StrCat("file ", bytes->size(), " ", Crc(0, *bytes))
                     : "unreadable";
    }
  }
  if (ec) state["(error)"] = ec.message();
  return state;
}

std::string TreeDiff(const TreeState& before, const TreeState& after) {
  std::vector<std::string> out;
  for (const auto& [path, what] : before) {
    auto it = after.find(path);
    if (it == after.end()) {
      out.push_back(absl::StrCat("removed ", path));
    } else if (it->second != what) {
      out.push_back(
          absl::StrCat("changed ", path, ": ", what, " -> ", it->second));
    }
  }
  for (const auto& [path, what] : after) {
    if (before.count(path) == 0) {
      out.push_back(absl::StrCat("added ", path, " (", what, ")"));
    }
  }
  return absl::StrJoin(out, "; ");
}

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

absl::Status WriteAll(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out.good())
    return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status Truncate(const std::string& path, int64_t size) {
  auto bytes = ReadAll(path);
  if (!bytes.ok()) return bytes.status();
  const int64_t have = static_cast<int64_t>(bytes->size());
  const int64_t keep = size >= 0 ? size : have + size;
  if (keep < 0 || keep > have) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot truncate ", path, " (", have, " bytes) to ", keep));
  }
  return WriteAll(path, absl::string_view(*bytes).substr(0, keep));
}

absl::Status Put(const std::string& path, int64_t offset,
                 absl::string_view put) {
  auto bytes = ReadAll(path);
  if (!bytes.ok()) return bytes.status();
  const int64_t have = static_cast<int64_t>(bytes->size());
  const int64_t at = offset >= 0 ? offset : have + offset;
  if (at < 0 || at + static_cast<int64_t>(put.size()) > have) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot put ", put.size(), " bytes at ", offset, " of ", path));
  }
  bytes->replace(at, put.size(), put.data(), put.size());
  return WriteAll(path, *bytes);
}

absl::Status Reseal(const std::string& path) {
  auto bytes = ReadAll(path);
  if (!bytes.ok()) return bytes.status();
  constexpr size_t kHeader = 16, kFooter = 16;
  if (bytes->size() < kHeader + kFooter) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is too short to reseal"));
  }
  const size_t body = bytes->size() - kFooter;
  char* footer = bytes->data() + body;
  PutLittleEndian(body - kHeader, 8, footer);
  PutLittleEndian(Crc(0, absl::string_view(*bytes).substr(0, body)), 4,
                  footer + 8);
  return WriteAll(path, *bytes);
}

std::vector<std::string> SplitSteps(absl::string_view steps) {
  std::vector<std::string> out;
  for (absl::string_view step : absl::StrSplit(steps, absl::ByString(" ; "))) {
    step = absl::StripAsciiWhitespace(step);
    if (!step.empty()) out.emplace_back(step);
  }
  return out;
}

absl::Status ApplyEdit(const std::string& root, absl::string_view edit) {
  std::vector<std::string> words =
      absl::StrSplit(edit, absl::MaxSplits(' ', 2), absl::SkipEmpty());
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("edit '", edit, "': ", why));
  };
  if (words.size() < 2) return bad("needs a verb and a path");
  const std::string& verb = words[0];
  const std::string path = absl::StrCat(root, "/", words[1]);
  const std::string rest = words.size() > 2 ? words[2] : "";
  auto unescape = [&](absl::string_view text, std::string* out) {
    std::string error;
    return absl::CUnescape(text, out, &error);
  };
  auto number = [&](absl::string_view text, int64_t* out) {
    return absl::SimpleAtoi(text, out);
  };
  std::error_code ec;
  if (verb == "truncate" || verb == "flip") {
    int64_t n = 0;
    if (!number(rest, &n)) return bad("needs a number");
    if (verb == "truncate") return Truncate(path, n);
    auto bytes = ReadAll(path);
    if (!bytes.ok()) return bytes.status();
    const int64_t at = n >= 0 ? n : static_cast<int64_t>(bytes->size()) + n;
    if (at < 0 || at >= static_cast<int64_t>(bytes->size())) {
      return bad("offset out of the file");
    }
    (*bytes)[at] = static_cast<char>(~(*bytes)[at]);
    return WriteAll(path, *bytes);
  }
  if (verb == "put") {
    std::vector<std::string> args =
        absl::StrSplit(rest, absl::MaxSplits(' ', 1));
    int64_t at = 0;
    std::string text;
    if (args.size() != 2 || !number(args[0], &at) ||
        !unescape(args[1], &text)) {
      return bad("needs an offset and C-escaped text");
    }
    return Put(path, at, text);
  }
  if (verb == "replace") {
    std::vector<std::string> args =
        absl::StrSplit(rest, ' ', absl::SkipEmpty());
    std::string old_text, new_text;
    int64_t k = 1;
    if (args.size() < 2 || args.size() > 3 || !unescape(args[0], &old_text) ||
        !unescape(args[1], &new_text) || old_text.size() != new_text.size() ||
        old_text.empty() || (args.size() == 3 && !number(args[2], &k))) {
      return bad("needs OLD and NEW of one length, and maybe K");
    }
    auto bytes = ReadAll(path);
    if (!bytes.ok()) return bytes.status();
    size_t at = std::string::npos;
    for (size_t from = 0; k > 0; --k, from = at + 1) {
      at = bytes->find(old_text, from);
      if (at == std::string::npos) return bad("OLD does not occur K times");
    }
    bytes->replace(at, new_text.size(), new_text);
    return WriteAll(path, *bytes);
  }
  if (verb == "reseal") return Reseal(path);
  if (verb == "remove") {
    if (fs::remove_all(path, ec) == 0 || ec) return bad("nothing removed");
    return absl::OkStatus();
  }
  if (verb == "write") {
    std::string text;
    if (!unescape(rest, &text)) return bad("needs C-escaped text");
    return WriteAll(path, text);
  }
  if (verb == "symlink") {
    const fs::path outside =
        fs::path(root + ".outside") / fs::path(words[1]).filename();
    fs::create_directories(outside.parent_path(), ec);
    fs::rename(path, outside, ec);
    if (!ec) fs::create_symlink(outside, path, ec);
    if (ec) return bad(ec.message());
    return absl::OkStatus();
  }
  if (verb == "mkdir") {
    if (!fs::create_directories(path, ec)) return bad("cannot make it");
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat("edit '", edit, "'"));
}

}  // namespace bad_input
}  // namespace ps

// Fuzz target: MovieLens ratings and side files
// (worker/data/movielens_parser.h).
//
// An input starting "#user\n" or "#item\n" is the rest of a u.user or
// u.item side file: a parser is created over it (Create must succeed or
// refuse with InvalidArgument "path:line: reason"). Any other input is
// rating lines, checked as parser_fuzz.h says through two parsers: one
// without side files and one with a small u.user and u.item, written once.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "proto/config.pb.h"
#include "tests/fuzz/parser_fuzz.h"
#include "worker/data/line_parser.h"

namespace {

constexpr char kUsers[] =
    "1|24|M|technician|85711\n"
    "2|53|F|other|94043\n"
    "3|17|M|student|3\n";
constexpr char kItems[] =
    "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|"
    "0|0|0\n"
    "2|GoldenEye (1995)|||http://y|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
    "3|Four Rooms|1995||http://z|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0\n";

ps::LineParser* plain;
ps::LineParser* with_sides;

ps::DataConfig MovieLensData() {
  ps::DataConfig data;
  data.set_format(ps::DataConfig::MOVIELENS);
  data.set_hash_seed(5);
  return data;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  auto made = ps::LineParser::Create(MovieLensData());
  CHECK(made.ok()) << made.status();
  plain = made->release();
  ps::DataConfig data = MovieLensData();
  data.set_movielens_user_file(ps::fuzz::ScratchPath("u.user"));
  data.set_movielens_item_file(ps::fuzz::ScratchPath("u.item"));
  ps::fuzz::WriteFileOrDie(data.movielens_user_file(), kUsers);
  ps::fuzz::WriteFileOrDie(data.movielens_item_file(), kItems);
  made = ps::LineParser::Create(data);
  CHECK(made.ok()) << made.status();
  with_sides = made->release();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  const bool user = absl::ConsumePrefix(&text, "#user\n");
  if (user || absl::ConsumePrefix(&text, "#item\n")) {
    const std::string path = ps::fuzz::ScratchPath("side");
    ps::fuzz::WriteFileOrDie(path, text);
    ps::DataConfig config = MovieLensData();
    if (user) {
      config.set_movielens_user_file(path);
    } else {
      config.set_movielens_item_file(path);
    }
    auto parser = ps::LineParser::Create(config);
    if (!parser.ok()) {
      CHECK(absl::IsInvalidArgument(parser.status())) << parser.status();
      CHECK(absl::StrContains(parser.status().message(), path))
          << parser.status();
      return 0;
    }
    ps::fuzz::CheckParserOnLines(**parser, "1\t1\t5\t881250949\n");
    return 0;
  }
  ps::fuzz::CheckParserOnLines(*plain, text);
  ps::fuzz::CheckParserOnLines(*with_sides, text);
  return 0;
}

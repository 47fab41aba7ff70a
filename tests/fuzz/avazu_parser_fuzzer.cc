// Fuzz target: Avazu CSV lines (worker/data/avazu_parser.h), header line
// included, through the parser LineParser::Create makes. See parser_fuzz.h
// for what is checked.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "glog/logging.h"
#include "proto/config.pb.h"
#include "tests/fuzz/parser_fuzz.h"
#include "worker/data/line_parser.h"

namespace {

ps::LineParser* parser;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  ps::DataConfig data;
  data.set_format(ps::DataConfig::AVAZU);
  data.set_hash_seed(3);
  auto made = ps::LineParser::Create(data);
  CHECK(made.ok()) << made.status();
  parser = made->release();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ps::fuzz::CheckParserOnLines(
      *parser, absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

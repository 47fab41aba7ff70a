// Fuzz target: Criteo lines (worker/data/criteo_parser.h), through the
// parsers LineParser::Create makes for both int_features settings. See
// parser_fuzz.h for what is checked.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "glog/logging.h"
#include "proto/config.pb.h"
#include "tests/fuzz/parser_fuzz.h"
#include "worker/data/line_parser.h"

namespace {

std::vector<std::unique_ptr<ps::LineParser>>* parsers;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  parsers = new std::vector<std::unique_ptr<ps::LineParser>>();
  for (auto ints : {ps::DataConfig::LOG_BUCKET, ps::DataConfig::NORMALIZE}) {
    ps::DataConfig data;
    data.set_format(ps::DataConfig::CRITEO);
    data.set_int_features(ints);
    data.set_hash_seed(7);
    auto parser = ps::LineParser::Create(data);
    CHECK(parser.ok()) << parser.status();
    parsers->push_back(std::move(parser).value());
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto& parser : *parsers) {
    ps::fuzz::CheckParserOnLines(*parser, text);
  }
  return 0;
}

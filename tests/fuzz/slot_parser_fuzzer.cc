// Fuzz target: slot-format lines (worker/data/slot_parser.h), through the
// parsers LineParser::Create makes for 4 slots and 2 dense features and for
// 1 slot and none. See parser_fuzz.h for what is checked.
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
  for (auto [slots, dense] : {std::pair{4, 2}, std::pair{1, 0}}) {
    ps::DataConfig data;
    data.set_format(ps::DataConfig::SLOT);
    data.set_num_slots(slots);
    data.set_num_dense(dense);
    data.set_hash_seed(11);
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

// The bad-input corpus (tests/data/bad/, README there): every category holds
// enough cases, and no case file lies unlisted. The cases themselves run in
// data_test.cc, config_rpc_test.cc and checkpoint_export_test.cc, each
// asserting the clear error and that nothing was changed.
#include <filesystem>
#include <iostream>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/integration/bad_input/corpus.h"

namespace ps {
namespace bad_input {
namespace {

// The middle columns of each category's cases.txt.
int ColumnsOf(const std::string& category) {
  if (category == "configs" || category == "rpc") return 0;
  return 2;
}

TEST(BadInputTest, CorpusHasEnoughCases) {
  int total = 0;
  for (const char* category : kCategories) {
    auto cases = ReadCases(category, ColumnsOf(category));
    ASSERT_TRUE(cases.ok()) << cases.status();
    int bad = 0;
    for (const Case& c : *cases) bad += c.control() ? 0 : 1;
    EXPECT_GE(bad, kMinCasesPerCategory) << category;
    total += bad;
    std::cout << category << ": " << bad << " cases\n";
  }
  EXPECT_GE(total, kMinCasesInAll);
  std::cout << "in all: " << total << " cases\n";
}

// A .pbtxt case file in configs/ or rpc/ without a line in cases.txt would
// never run.
TEST(BadInputTest, EveryCaseFileIsListed) {
  for (const char* category : {"configs", "rpc"}) {
    auto cases = ReadCases(category, 0);
    ASSERT_TRUE(cases.ok()) << cases.status();
    std::set<std::string> listed;
    for (const Case& c : *cases) listed.insert(c.name);
    for (const auto& entry :
         std::filesystem::directory_iterator(CategoryDir(category))) {
      const std::string name = entry.path().filename().string();
      if (!absl::EndsWith(name, ".pbtxt")) continue;
      EXPECT_EQ(listed.count(name), 1u)
          << category << "/" << name << " is not in cases.txt";
    }
  }
}

}  // namespace
}  // namespace bad_input
}  // namespace ps

// The data_lines and data_files categories of the bad-input corpus: lines
// through each format's LineParser, whole files through the DataReader.
#include <zlib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "proto/config.pb.h"
#include "tests/integration/bad_input/corpus.h"
#include "tests/testing/temp_dir.h"
#include "worker/data/batch.h"
#include "worker/data/data_reader.h"
#include "worker/data/line_parser.h"

namespace ps {
namespace bad_input {
namespace {

// The case's DataConfig column, side files resolved against `dir`.
DataConfig ParseDataConfig(const Case& c, const std::string& dir) {
  DataConfig data;
  EXPECT_TRUE(
      google::protobuf::TextFormat::ParseFromString(c.columns[0], &data))
      << c.where() << ": the data config does not parse";
  for (std::string* f : {data.mutable_movielens_user_file(),
                         data.mutable_movielens_item_file()}) {
    if (!f->empty()) *f = absl::StrCat(dir, "/", *f);
  }
  if (data.movielens_user_file().empty()) data.clear_movielens_user_file();
  if (data.movielens_item_file().empty()) data.clear_movielens_item_file();
  return data;
}

TEST(BadInputTest, DataLines) {
  auto cases = ReadCases("data_lines", 2);
  ASSERT_TRUE(cases.ok()) << cases.status();
  const std::string dir = CategoryDir("data_lines");
  for (const Case& c : *cases) {
    SCOPED_TRACE(c.where());
    const DataConfig data = ParseDataConfig(c, dir);
    auto parser = LineParser::Create(data);
    ASSERT_TRUE(parser.ok()) << c.where() << ": " << parser.status();
    std::string line;
    std::string error;
    ASSERT_TRUE(absl::CUnescape(c.columns[1], &line, &error))
        << c.where() << ": the line does not unescape: " << error;
    Batch batch;
    batch.num_slots = (*parser)->num_slots();
    batch.num_dense = (*parser)->num_dense();
    const absl::Status status = (*parser)->Append(line, &batch);
    EXPECT_EQ(Mismatch(c, status), "");
    if (c.control()) {
      EXPECT_EQ(batch.size(), 1) << c.where();
      continue;
    }
    // A refused line leaves the batch as it was: empty.
    EXPECT_EQ(batch.size(), 0) << c.where();
    EXPECT_TRUE(batch.keys.empty()) << c.where();
    EXPECT_TRUE(batch.dense.empty()) << c.where();
    EXPECT_EQ(batch.offsets, std::vector<uint32_t>{0}) << c.where();
  }
}

// Writes gen:NAME into `dir` and returns its path.
std::string Generate(const std::string& name, const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", name);
  if (name == "bomb.tsv.gz") {
    // 24 MiB of one Criteo line: about 1000:1 at level 9, past the 16 MiB
    // after which the reader checks the ratio.
    std::string line = "1";
    for (int i = 0; i < 13; ++i) line += "\t1";
    for (int i = 0; i < 26; ++i) line += "\tabcdef01";
    line += "\n";
    std::string block;
    while (block.size() < (1 << 20)) block += line;
    gzFile f = gzopen(path.c_str(), "wb9");
    EXPECT_NE(f, nullptr) << path;
    if (f == nullptr) return path;
    for (int i = 0; i < 24; ++i) {
      gzwrite(f, block.data(), static_cast<unsigned>(block.size()));
    }
    EXPECT_EQ(gzclose(f), Z_OK);
    return path;
  }
  ADD_FAILURE() << "no generator for gen:" << name;
  return path;
}

// Reads every file of `options` to the end; the first error.
absl::Status ReadThrough(ReaderOptions options) {
  auto files = ExpandFiles(options.files);
  if (!files.ok()) return files.status();
  options.files = *files;
  auto reader = DataReader::Open(options);
  if (!reader.ok()) return reader.status();
  Batch batch;
  while (true) {
    absl::StatusOr<bool> more = (*reader)->Next(&batch);
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
  }
}

TEST(BadInputTest, DataFiles) {
  auto cases = ReadCases("data_files", 2);
  ASSERT_TRUE(cases.ok()) << cases.status();
  const std::string dir = CategoryDir("data_files");
  for (const Case& c : *cases) {
    SCOPED_TRACE(c.where());
    const TreeState corpus = Snapshot(dir);
    testing_util::TempDir scratch;
    ReaderOptions options;
    options.data = ParseDataConfig(c, dir);
    options.batch_size = 4;
    options.threads = 1;  // "first bad line" is the first recorded
    options.max_bad_line_ratio = 0;
    for (absl::string_view f :
         absl::StrSplit(c.columns[1], ' ', absl::SkipEmpty())) {
      options.files.push_back(absl::ConsumePrefix(&f, "gen:")
                                  ? Generate(std::string(f), scratch.path())
                                  : absl::StrCat(dir, "/", f));
    }
    const TreeState generated = Snapshot(scratch.path());
    EXPECT_EQ(Mismatch(c, ReadThrough(options)), "");
    // The inputs are as they were.
    EXPECT_EQ(TreeDiff(corpus, Snapshot(dir)), "") << c.where();
    EXPECT_EQ(TreeDiff(generated, Snapshot(scratch.path())), "") << c.where();
  }
}

}  // namespace
}  // namespace bad_input
}  // namespace ps

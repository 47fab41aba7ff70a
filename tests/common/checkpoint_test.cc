// The checkpoint layout (common/checkpoint.h): commit and open, every
// corruption refused naming the file, a crash at every commit stage leaves
// the previous checkpoint loadable, retention, the compatibility check.
#include "common/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/checksummed_file.h"
#include "common/config.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::StatusIs;
using testing_util::TempDir;

class CheckpointTest : public ::testing::Test {
 protected:
  // Writes step `step`'s checkpoint: two data files whose contents depend on
  // the step, one worker position; commits with `options`.
  absl::Status Write(int64_t step, const CommitOptions& options = {}) {
    auto dir = PrepareCheckpointDir(root_, step);
    if (!dir.ok()) return dir.status();
    fs::create_directories(*dir + "/server-0");
    Manifest m;
    m.set_global_step(step);
    m.set_num_servers(2);
    m.set_hash_seed(77);
    m.set_job_config("cluster { servers: \"a:1\" }");
    DataPosition* p = m.add_worker_positions();
    p->set_worker_rank(0);
    p->set_file("/data/train.tsv");
    p->set_file_index(0);
    p->set_offset(step * 100);
    for (const char* name : {"server-0/dense.bin", "sparse.sst"}) {
      auto digest = WriteChecksummedFile(
          *dir + "/" + name, "PSTEST01", 1,
          std::string(1000 + step, static_cast<char>('a' + step % 26)));
      if (!digest.ok()) return digest.status();
      CheckpointFile* f = m.add_files();
      f->set_path(name);
      f->set_size(digest->size);
      f->set_crc32(digest->crc32);
    }
    return CommitCheckpoint(root_, m, options);
  }

  std::string Dir(int64_t step) const {
    return root_ + "/" + CheckpointDirName(step);
  }

  std::vector<int64_t> Steps() const {
    std::vector<int64_t> steps;
    auto all = ListCheckpoints(root_);
    EXPECT_TRUE(all.ok());
    for (const auto& c : *all) steps.push_back(c.step);
    return steps;
  }

  // The step OpenLatest gives, or -1 with the error recorded.
  int64_t LatestStep() {
    auto opened = OpenLatest(root_);
    if (!opened.ok()) {
      last_error_ = opened.status();
      return -1;
    }
    return opened->manifest.global_step();
  }

  TempDir dir_;
  const std::string root_ = dir_.Path("ckpt");  // absent until a checkpoint
  absl::Status last_error_;
};

TEST_F(CheckpointTest, FolderNames) {
  EXPECT_EQ(CheckpointDirName(42), "ckpt-0000000042");
  EXPECT_EQ(CheckpointDirName(9999999999), "ckpt-9999999999");
  auto step = ParseCheckpointDirName("ckpt-0000001200");
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(*step, 1200);
  EXPECT_FALSE(ParseCheckpointDirName("ckpt-12").ok());
  EXPECT_FALSE(ParseCheckpointDirName("ckpt-00000012x0").ok());
  EXPECT_FALSE(ParseCheckpointDirName("LATEST").ok());
}

TEST_F(CheckpointTest, CommitThenOpenLatestGivesTheNewest) {
  EXPECT_THAT(OpenLatest(root_), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_TRUE(Write(10).ok());
  ASSERT_TRUE(Write(20).ok());
  auto opened = OpenLatest(root_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->dir, Dir(20));
  const Manifest& m = opened->manifest;
  EXPECT_EQ(m.global_step(), 20);
  EXPECT_EQ(m.num_servers(), 2);
  EXPECT_EQ(m.hash_seed(), 77u);
  EXPECT_EQ(m.format_version(), kCheckpointFormatVersion);
  EXPECT_GT(m.created_unix_micros(), 0);
  ASSERT_EQ(m.worker_positions_size(), 1);
  EXPECT_EQ(m.worker_positions(0).offset(), 2000);
  EXPECT_EQ(m.files_size(), 2);
  std::ifstream latest(root_ + "/LATEST");
  std::string line;
  std::getline(latest, line);
  EXPECT_EQ(line, "ckpt-0000000020");
}

TEST_F(CheckpointTest, VerifyNamesMissingTruncatedAndCorruptFiles) {
  ASSERT_TRUE(Write(5).ok());
  const std::string file = Dir(5) + "/server-0/dense.bin";
  const int64_t size = fs::file_size(file);

  {  // corrupt: same size, one byte flipped
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('#');
  }
  auto v = VerifyCheckpoint(Dir(5));
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kDataLoss,
                          AllOf(HasSubstr("'server-0/dense.bin'"),
                                HasSubstr("checksum mismatch"))));

  fs::resize_file(file, size - 7);
  v = VerifyCheckpoint(Dir(5));
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kDataLoss,
                          HasSubstr("'server-0/dense.bin': truncated: size " +
                                    std::to_string(size - 7) + " want " +
                                    std::to_string(size))));

  fs::remove(file);
  v = VerifyCheckpoint(Dir(5));
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kDataLoss,
                          AllOf(HasSubstr("'server-0/dense.bin': missing"),
                                HasSubstr(Dir(5)))));

  fs::remove(Dir(5) + "/MANIFEST");
  v = VerifyCheckpoint(Dir(5));
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("incomplete: no MANIFEST")));
}

TEST_F(CheckpointTest, CorruptManifestIsRefused) {
  ASSERT_TRUE(Write(5).ok());
  fs::resize_file(Dir(5) + "/MANIFEST", 40);
  auto v = VerifyCheckpoint(Dir(5));
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("MANIFEST")));
}

TEST_F(CheckpointTest, BrokenLatestCheckpointOffersThePreviousOne) {
  ASSERT_TRUE(Write(10).ok());
  ASSERT_TRUE(Write(20).ok());
  fs::remove(Dir(20) + "/sparse.sst");
  EXPECT_EQ(LatestStep(), -1);
  EXPECT_THAT(
      last_error_,
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("'sparse.sst': missing"),
                     HasSubstr("newest previous complete checkpoint is '" +
                               Dir(10) + "' (step 10)"))));
  // The offered one opens.
  auto prev = OpenCheckpoint(Dir(10));
  ASSERT_TRUE(prev.ok()) << prev.status();
  EXPECT_EQ(prev->manifest.global_step(), 10);
}

TEST_F(CheckpointTest, GarbledOrMissingLatestIsReportedNotIgnored) {
  ASSERT_TRUE(Write(10).ok());
  {
    std::ofstream out(root_ + "/LATEST", std::ios::trunc);
    out << "garbage";
  }
  EXPECT_EQ(LatestStep(), -1);
  EXPECT_THAT(last_error_,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("LATEST' is corrupt"),
                             HasSubstr("'" + Dir(10) + "' (step 10)"))));

  fs::remove(root_ + "/LATEST");
  EXPECT_EQ(LatestStep(), -1);
  EXPECT_THAT(last_error_, StatusIs(absl::StatusCode::kFailedPrecondition,
                                    AllOf(HasSubstr("LATEST' is missing"),
                                          HasSubstr("(step 10)"))));
}

TEST_F(CheckpointTest, NothingVerifiesSaysSo) {
  ASSERT_TRUE(Write(10).ok());
  fs::remove(Dir(10) + "/sparse.sst");
  EXPECT_EQ(LatestStep(), -1);
  EXPECT_THAT(last_error_, StatusIs(absl::StatusCode::kFailedPrecondition,
                                    HasSubstr("no other checkpoint")));
}

TEST_F(CheckpointTest, OnlyAnIncompleteFolderIsNotFound) {
  ASSERT_TRUE(PrepareCheckpointDir(root_, 3).ok());
  EXPECT_EQ(LatestStep(), -1);
  EXPECT_THAT(last_error_,
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("incomplete")));
}

// A crash before each stage of the commit of step 20 leaves step 10 (or,
// once LATEST moved, step 20) loadable; the next checkpoint then succeeds.
TEST_F(CheckpointTest, CrashAtEveryCommitStageLeavesALoadableCheckpoint) {
  for (CommitStage stage :
       {CommitStage::kSyncFiles, CommitStage::kWriteManifest,
        CommitStage::kRenameManifest, CommitStage::kWriteLatest,
        CommitStage::kRenameLatest, CommitStage::kRetention}) {
    SCOPED_TRACE(std::string(CommitStageName(stage)));
    fs::remove_all(root_);
    ASSERT_TRUE(Write(10).ok());
    CommitOptions crash;
    crash.failpoint = [stage](CommitStage s) {
      return s == stage ? absl::AbortedError("injected crash")
                        : absl::OkStatus();
    };
    absl::Status s = Write(20, crash);
    ASSERT_THAT(s, StatusIs(absl::StatusCode::kAborted));
    const int64_t want = stage == CommitStage::kRetention ? 20 : 10;
    EXPECT_EQ(LatestStep(), want) << last_error_;

    // Training resumed from `want` goes on and checkpoints again: a
    // leftover folder of step 20 is replaced, not an obstacle.
    if (want == 10) {
      ASSERT_TRUE(Write(20).ok());
    }
    ASSERT_TRUE(Write(30).ok());
    EXPECT_EQ(LatestStep(), 30) << last_error_;
    EXPECT_EQ(Steps(), (std::vector<int64_t>{10, 20, 30}));
  }
}

TEST_F(CheckpointTest, CrashWhileWritingDataFilesKeepsThePrevious) {
  ASSERT_TRUE(Write(10).ok());
  auto dir = PrepareCheckpointDir(root_, 20);
  ASSERT_TRUE(dir.ok());
  std::ofstream(*dir + "/half.bin") << "partial";
  EXPECT_EQ(LatestStep(), 10) << last_error_;
}

TEST_F(CheckpointTest, RetentionKeepsTheLastKComplete) {
  CommitOptions keep2;
  keep2.keep = 2;
  for (int64_t step : {1, 2, 3}) ASSERT_TRUE(Write(step, keep2).ok());
  EXPECT_EQ(Steps(), (std::vector<int64_t>{2, 3}));

  // An incomplete leftover older than the newest complete one goes; a
  // folder newer than LATEST (being written) stays.
  ASSERT_TRUE(PrepareCheckpointDir(root_, 4).ok());
  ASSERT_TRUE(Write(5, keep2).ok());
  ASSERT_TRUE(PrepareCheckpointDir(root_, 6).ok());
  ASSERT_TRUE(ApplyRetention(root_, 2).ok());
  EXPECT_EQ(Steps(), (std::vector<int64_t>{3, 5, 6}));
  EXPECT_EQ(LatestStep(), 5) << last_error_;
}

TEST_F(CheckpointTest, RetentionNeverDeletesWhatLatestNames) {
  ASSERT_TRUE(Write(1).ok());
  ASSERT_TRUE(Write(2).ok());
  ASSERT_TRUE(WriteFileAtomically(root_ + "/LATEST", "ckpt-0000000001\n").ok());
  ASSERT_TRUE(ApplyRetention(root_, 1).ok());
  EXPECT_EQ(LatestStep(), 1) << last_error_;
}

TEST_F(CheckpointTest, PrepareRefusesToOverwriteTheCurrentCheckpoint) {
  ASSERT_TRUE(Write(10).ok());
  EXPECT_THAT(PrepareCheckpointDir(root_, 10),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(LatestStep(), 10);
}

TEST_F(CheckpointTest, CommitRefusesFilesThatAreNotThere) {
  ASSERT_TRUE(PrepareCheckpointDir(root_, 7).ok());
  Manifest m;
  m.set_global_step(7);
  CheckpointFile* f = m.add_files();
  f->set_path("nope.bin");
  f->set_size(3);
  absl::Status s = CommitCheckpoint(root_, m);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDataLoss,
                          HasSubstr("'nope.bin': missing")));
  f->set_path("../escape");
  EXPECT_THAT(CommitCheckpoint(root_, m),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DescribeCheckpointFile(root_, "/abs"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

constexpr char kJob[] = R"pb(
  cluster { servers: "127.0.0.1:5000" }
  sparse_tables { name: "emb" dim: 8 }
  model { type: DNN sparse_table: "emb" hidden_units: 32 }
  data { train_files: "/t.tsv" }
)pb";

JobConfig MustParse(const std::string& text) {
  auto c = ParseJobConfig(text, "job.pbtxt", "");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : JobConfig();
}

Manifest ManifestOf(const JobConfig& job) {
  Manifest m;
  google::protobuf::TextFormat::PrintToString(job, m.mutable_job_config());
  return m;
}

std::string Replace(std::string text, const std::string& from,
                    const std::string& to) {
  size_t pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return text.replace(pos, from.size(), to);
}

TEST(CheckpointCompatTest, SameConfigIsCompatible) {
  JobConfig job = MustParse(kJob);
  EXPECT_TRUE(CheckCheckpointCompatible(ManifestOf(job), "/c", job).ok());
}

TEST(CheckpointCompatTest, OtherDimNamesTableAndBothValues) {
  JobConfig job = MustParse(kJob);
  Manifest saved = ManifestOf(MustParse(Replace(kJob, "dim: 8", "dim: 16")));
  absl::Status s = CheckCheckpointCompatible(saved, "/c/ckpt-1", job);
  EXPECT_THAT(
      s,
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("sparse table 'emb': dim 8 in the job config, 16 in "
                         "checkpoint '/c/ckpt-1'")));
}

TEST(CheckpointCompatTest, OtherTablesAndLayersAreRefused) {
  JobConfig job = MustParse(kJob);
  std::string renamed =
      Replace(Replace(kJob, "name: \"emb\"", "name: \"e2\""),
              "sparse_table: \"emb\"", "sparse_table: \"e2\"");
  absl::Status s =
      CheckCheckpointCompatible(ManifestOf(MustParse(renamed)), "/c", job);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("sparse table 'emb' of the job config is "
                                    "not in checkpoint '/c' (it has: e2)")));

  Manifest wider = ManifestOf(
      MustParse(Replace(kJob, "hidden_units: 32", "hidden_units: 64")));
  s = CheckCheckpointCompatible(wider, "/c", job);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("dense parameters")));

  Manifest garbage;
  garbage.set_job_config("not { a config");
  EXPECT_THAT(CheckCheckpointCompatible(garbage, "/c", job),
              StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace ps

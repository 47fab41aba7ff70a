// Checksummed files (common/checksummed_file.h): round trips, and every way
// a file can be damaged is refused with a message naming it.
#include "common/checksummed_file.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::ReadFile;
using testing_util::StatusIs;
using testing_util::TempDir;

constexpr char kMagic[] = "PSTEST01";

class ChecksummedFileTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_.Path(name); }

  static void WriteAll(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
  }

  TempDir dir_;
};

TEST_F(ChecksummedFileTest, RoundTripOfStreamedPayload) {
  const std::string path = Path("data.bin");
  auto writer = ChecksummedWriter::Create(path, kMagic, 2);
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::vector<float> floats(300000);
  for (size_t i = 0; i < floats.size(); ++i) floats[i] = i * 0.5f - 7;
  ASSERT_TRUE((*writer)->AppendU64(floats.size()).ok());
  ASSERT_TRUE((*writer)->AppendFloats(floats).ok());  // > the 1 MiB buffer
  ASSERT_TRUE(AppendString(writer->get(), "name").ok());
  // An empty append (a null data pointer) leaves the checksum alone.
  ASSERT_TRUE((*writer)->AppendFloats(std::vector<float>()).ok());
  auto digest = (*writer)->Close();
  ASSERT_TRUE(digest.ok()) << digest.status();

  // The digest is the whole file's, as DigestFile computes it.
  auto again = DigestFile(path);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(digest->size, again->size);
  EXPECT_EQ(digest->crc32, again->crc32);
  EXPECT_EQ(digest->size,
            static_cast<int64_t>(16 + 8 + 4 * floats.size() + 8 + 4 + 16));

  auto reader = ChecksummedReader::Open(path, kMagic, 2);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->version(), 2u);
  auto n = (*reader)->ReadU64();
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, floats.size());
  std::vector<float> back(*n);
  ASSERT_TRUE((*reader)->ReadFloats(absl::MakeSpan(back)).ok());
  auto name = (*reader)->ReadString(100);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "name");
  EXPECT_TRUE((*reader)->Finish().ok());
  EXPECT_EQ(back, floats);
}

TEST_F(ChecksummedFileTest, DigestIsZlibCrc32) {
  WriteAll(Path("check"), "123456789");
  auto digest = DigestFile(Path("check"));
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(digest->size, 9);
  EXPECT_EQ(digest->crc32, 0xCBF43926u);  // the CRC-32 check value
}

TEST_F(ChecksummedFileTest, TruncatedFileIsDataLossNamingIt) {
  const std::string path = Path("t.bin");
  ASSERT_TRUE(
      WriteChecksummedFile(path, kMagic, 1, std::string(1000, 'x')).ok());
  std::string data = ReadFile(path);
  for (size_t keep :
       {data.size() - 1, data.size() - 20, size_t{20}, size_t{3}}) {
    WriteAll(path, data.substr(0, keep));
    auto read = ReadChecksummedFile(path, kMagic, 1);
    ASSERT_FALSE(read.ok()) << keep;
    EXPECT_THAT(read, StatusIs(absl::StatusCode::kDataLoss,
                               AllOf(HasSubstr(path), HasSubstr("truncated"))))
        << keep;
  }
}

TEST_F(ChecksummedFileTest, FlippedPayloadByteIsChecksumMismatch) {
  const std::string path = Path("c.bin");
  ASSERT_TRUE(
      WriteChecksummedFile(path, kMagic, 1, std::string(1000, 'x')).ok());
  std::string data = ReadFile(path);
  data[500] ^= 1;
  WriteAll(path, data);
  auto read = ReadChecksummedFile(path, kMagic, 1);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read,
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path), HasSubstr("checksum mismatch"))));
}

TEST_F(ChecksummedFileTest, OtherKindAndNewerVersionAreRefused) {
  const std::string path = Path("k.bin");
  ASSERT_TRUE(WriteChecksummedFile(path, "PSOTHER1", 1, "abc").ok());
  auto other = ReadChecksummedFile(path, kMagic, 1);
  EXPECT_THAT(other, StatusIs(absl::StatusCode::kInvalidArgument,
                              HasSubstr("PSOTHER1")));

  ASSERT_TRUE(WriteChecksummedFile(path, kMagic, 3, "abc").ok());
  auto newer = ReadChecksummedFile(path, kMagic, 2);
  EXPECT_THAT(newer, StatusIs(absl::StatusCode::kFailedPrecondition,
                              HasSubstr("format version 3")));

  EXPECT_THAT(ReadChecksummedFile(Path("none"), kMagic, 1),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ChecksummedWriter::Create(path, "short", 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ChecksummedFileTest, ReadingPastThePayloadIsDataLoss) {
  const std::string path = Path("s.bin");
  ASSERT_TRUE(WriteChecksummedFile(path, kMagic, 1, "abc").ok());
  auto reader = ChecksummedReader::Open(path, kMagic, 1);
  ASSERT_TRUE(reader.ok());
  char buf[8];
  absl::Status s = (*reader)->Read(buf, 4);
  EXPECT_THAT(s,
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("only 3 left")));
  // A length field larger than the payload is refused, not allocated.
  ASSERT_TRUE(
      WriteChecksummedFile(path, kMagic, 1, std::string(8, '\xff')).ok());
  reader = ChecksummedReader::Open(path, kMagic, 1);
  ASSERT_TRUE(reader.ok());
  EXPECT_THAT((*reader)->ReadString(1 << 20),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(ChecksummedFileTest, UnreadPayloadFailsFinish) {
  const std::string path = Path("u.bin");
  ASSERT_TRUE(WriteChecksummedFile(path, kMagic, 1, "abcdef").ok());
  auto reader = ChecksummedReader::Open(path, kMagic, 1);
  ASSERT_TRUE(reader.ok());
  char buf[3];
  ASSERT_TRUE((*reader)->Read(buf, 3).ok());
  absl::Status s = (*reader)->Finish();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDataLoss,
                          HasSubstr("3 unexpected trailing")));
}

TEST_F(ChecksummedFileTest, WriteFileAtomicallyReplacesContents) {
  const std::string path = Path("LATEST");
  ASSERT_TRUE(WriteFileAtomically(path, "one\n").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two\n").ok());
  EXPECT_EQ(ReadFile(path), "two\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_THAT(WriteFileAtomically(Path("no/such/dir/x"), "a"),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace ps

#include "worker/data/criteo_parser.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "glog/logging.h"
#include "worker/data/parser_util.h"

namespace ps {
namespace {

constexpr int kNumFields = 40;
constexpr int kNumInts = 13;
constexpr int kNumCats = 26;
constexpr int kFirstInt = 1;             // field index of I1
constexpr int kFirstCat = 1 + kNumInts;  // field index of C1
constexpr int kMaxHexDigits = 16;

// Key encoding (part of the checkpoint format; tests pin it):
//
// Categorical: the key of hex value h in slot s is FeatureKey(seed, s, h).
// Keys are 64-bit and FeatureKey is a bijection of the value for a fixed
// slot, so whatever a missing value maps to is also the key of exactly one
// 64-bit value. Missing takes the key of h = 2^64 - 1: real Criteo values
// are 8-digit (32-bit) hashes and never reach it, and a 16-digit hashed
// value hits it with probability 2^-64, no more than any key collision.
// (Encodings such as h << 1 would instead merge pairs of 16-digit values.)
constexpr uint64_t kMissingCategorical = ~uint64_t{0};
//
// Integer (LOG_BUCKET): the key of bucket b is FeatureKey(seed, s, uint64(b))
// (two's complement, so negative buckets are distinct values). Buckets are
// at most floor(ln(INT64_MAX)^2) = 1905, so uint64 values in [1906, 2^63)
// never occur; missing takes 2^62, which no bucket can produce.
constexpr uint64_t kMissingInteger = uint64_t{1} << 62;

// "I5", "C3", "label" for a 0-based field index.
std::string FieldName(int field) {
  if (field == 0) return "label";
  if (field < kFirstCat) return absl::StrCat("I", field - kFirstInt + 1);
  return absl::StrCat("C", field - kFirstCat + 1);
}

absl::Status FieldError(int field, absl::string_view value,
                        absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("field ", field + 1, " (", FieldName(field),
                   "): ", QuoteField(value), " ", problem));
}

// Parses a non-empty decimal integer (optional leading '-', no spaces).
absl::Status ParseInt(absl::string_view s, int field, int64_t* out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  if (ec == std::errc::result_out_of_range) {
    return FieldError(field, s, "is out of the 64-bit integer range");
  }
  if (ec != std::errc() || ptr != end) {
    return FieldError(field, s, "is not an integer");
  }
  return absl::OkStatus();
}

// Parses a non-empty hex string of at most 16 digits (either case).
// Hex digit values by character; kNotHex for every other character.
constexpr uint8_t kNotHex = 0xFF;
struct HexTable {
  uint8_t value[256];
  constexpr HexTable() : value() {
    for (int c = 0; c < 256; ++c) value[c] = kNotHex;
    for (int c = '0'; c <= '9'; ++c) value[c] = static_cast<uint8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c)
      value[c] = static_cast<uint8_t>(c - 'a' + 10);
    for (int c = 'A'; c <= 'F'; ++c)
      value[c] = static_cast<uint8_t>(c - 'A' + 10);
  }
};
constexpr HexTable kHex;

absl::Status ParseHex(absl::string_view s, int field, uint64_t* out) {
  if (s.size() > kMaxHexDigits) {
    return FieldError(field, s, "has more than 16 hex digits");
  }
  // One table lookup per digit; a non-digit sets the high bits of `bad`.
  uint64_t v = 0;
  uint32_t bad = 0;
  for (char c : s) {
    const uint8_t digit = kHex.value[static_cast<unsigned char>(c)];
    bad |= digit;
    v = (v << 4) | (digit & 0xF);
  }
  if (bad & 0xF0) return FieldError(field, s, "is not a hex string");
  *out = v;
  return absl::OkStatus();
}

// CriteoLogBucket of 0 .. kBucketTableSize - 1, computed once by the same
// function (so equal bit for bit); floor(log(65535)^2) = 122 fits a byte.
constexpr int64_t kBucketTableSize = int64_t{1} << 16;
const uint8_t* BucketTable() {
  static const uint8_t* table = [] {
    auto* t = new uint8_t[kBucketTableSize];
    for (int64_t v = 0; v < kBucketTableSize; ++v) {
      t[v] = static_cast<uint8_t>(CriteoLogBucket(v));
    }
    return t;
  }();
  return table;
}

int64_t LogBucket(int64_t v) {
  if (v >= 0 && v < kBucketTableSize) return BucketTable()[v];
  return CriteoLogBucket(v);
}

}  // namespace

int CriteoNumSlots(const CriteoOptions& options) {
  return options.int_features == DataConfig::NORMALIZE ? kNumCats
                                                       : kNumInts + kNumCats;
}

int CriteoNumDense(const CriteoOptions& options) {
  return options.int_features == DataConfig::NORMALIZE ? kNumInts : 0;
}

int64_t CriteoLogBucket(int64_t v) {
  if (v <= 2) return v;
  double l = std::log(static_cast<double>(v));
  return static_cast<int64_t>(std::floor(l * l));
}

absl::Status AppendCriteoExample(absl::string_view line,
                                 const CriteoOptions& options, Batch* batch) {
  const bool normalize = options.int_features == DataConfig::NORMALIZE;
  CHECK_EQ(batch->num_slots, CriteoNumSlots(options));
  CHECK_EQ(batch->num_dense, CriteoNumDense(options));

  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

  // Split into exactly 40 fields without allocating; count the rest only to
  // report how many there were.
  absl::string_view fields[kNumFields];
  int num_fields = 0;
  const char* p = line.data();
  const char* const end = p + line.size();
  while (true) {
    const void* tab = std::memchr(p, '\t', end - p);
    const char* field_end = tab ? static_cast<const char*>(tab) : end;
    if (num_fields < kNumFields) {
      fields[num_fields] = absl::string_view(p, field_end - p);
    }
    ++num_fields;
    if (tab == nullptr) break;
    p = field_end + 1;
  }
  if (num_fields != kNumFields) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected ", kNumFields, " TAB-separated fields, got ", num_fields));
  }

  float label;
  if (fields[0] == "0") {
    label = 0.0f;
  } else if (fields[0] == "1") {
    label = 1.0f;
  } else {
    return FieldError(0, fields[0], "is not 0 or 1");
  }

  // Parse everything before touching `batch`, so a bad line leaves it as is.
  uint64_t keys[kNumInts + kNumCats];
  float dense[kNumInts];
  int num_keys = 0;
  for (int i = 0; i < kNumInts; ++i) {
    const int field = kFirstInt + i;
    const absl::string_view s = fields[field];
    int64_t v = 0;
    if (!s.empty()) {
      absl::Status status = ParseInt(s, field, &v);
      if (!status.ok()) return status;
    }
    if (normalize) {
      dense[i] = s.empty() || v <= 0
                     ? 0.0f
                     : static_cast<float>(std::log1p(static_cast<double>(v)));
    } else {
      const uint64_t value =
          s.empty() ? kMissingInteger : static_cast<uint64_t>(LogBucket(v));
      keys[num_keys] = FeatureKey(options.hash_seed, num_keys, value);
      ++num_keys;
    }
  }
  for (int c = 0; c < kNumCats; ++c) {
    const int field = kFirstCat + c;
    const absl::string_view s = fields[field];
    uint64_t value = kMissingCategorical;
    if (!s.empty()) {
      absl::Status status = ParseHex(s, field, &value);
      if (!status.ok()) return status;
    }
    keys[num_keys] = FeatureKey(options.hash_seed, num_keys, value);
    ++num_keys;
  }

  batch->labels.push_back(label);
  if (normalize)
    batch->dense.insert(batch->dense.end(), dense, dense + kNumInts);
  for (int k = 0; k < num_keys; ++k) {
    batch->keys.push_back(keys[k]);
    batch->offsets.push_back(static_cast<uint32_t>(batch->keys.size()));
  }
  return absl::OkStatus();
}

}  // namespace ps

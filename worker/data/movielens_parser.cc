#include "worker/data/movielens_parser.h"

#include <cstring>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/input_shape.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "worker/data/line_source.h"
#include "worker/data/parser_util.h"

namespace ps {
namespace {

constexpr int kUserSlot = 0;
constexpr int kItemSlot = 1;
constexpr int kDataFields = 4;
constexpr int kUserFields = 5;
constexpr int kItemFields = 5 + 19;  // 19 = MovieLensParser::kNumGenres
constexpr size_t kZipPrefix = 3;

// Splits `line` at `sep` into at most `max` fields; returns the count of all
// fields (also those beyond `max`, which are not stored).
int Split(absl::string_view line, char sep, absl::string_view* fields,
          int max) {
  int n = 0;
  const char* p = line.data();
  const char* const end = p + line.size();
  while (true) {
    const void* hit = std::memchr(p, sep, end - p);
    const char* field_end = hit ? static_cast<const char*>(hit) : end;
    if (n < max) fields[n] = absl::string_view(p, field_end - p);
    ++n;
    if (hit == nullptr) return n;
    p = field_end + 1;
  }
}

absl::Status FieldError(int field, absl::string_view name,
                        absl::string_view value, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(
      "field ", field, " (", name, "): ", QuoteField(value), " ", problem));
}

absl::Status ParseId(absl::string_view s, int field, absl::string_view name,
                     uint64_t* id) {
  if (!ParseDecimalUint64(s, id)) {
    return FieldError(field, name, s, "is not a decimal integer");
  }
  return absl::OkStatus();
}

// Calls `fn(line_number, line)` for every line of `path`; an error of `fn`
// is returned as "path:line: message" with its code.
absl::Status ForEachLine(
    const std::string& path,
    const std::function<absl::Status(int64_t, absl::string_view)>& fn) {
  ASSIGN_OR_RETURN(InputFile file, InputFile::Open(path));
  ASSIGN_OR_RETURN(const int64_t size, file.Size());
  std::vector<char> buffer;
  LineSource lines(&file, 0, size, &buffer);
  absl::string_view line;
  for (int64_t number = 1;; ++number) {
    ASSIGN_OR_RETURN(bool more, lines.Next(&line));
    if (!more) break;
    absl::Status status = fn(number, StripCarriageReturn(line));
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat(path, ":", number, ": ",
                                                      status.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int MovieLensParser::AgeGroup(int age) {
  static constexpr int kGroups[] = {56, 50, 45, 35, 25, 18};
  for (int lower : kGroups) {
    if (age >= lower) return lower;
  }
  return 1;
}

int MovieLensParser::YearBucket(int year) { return year - year % 5; }

MovieLensParser::MovieLensParser(const MovieLensOptions& options)
    : options_(options) {
  num_slots_ = kMovieLensIdSlots;
  if (!options_.user_file.empty()) {
    user_slot_ = num_slots_;
    num_slots_ += kMovieLensUserSlots;
  }
  if (!options_.item_file.empty()) {
    genre_slot_ = num_slots_;
    num_slots_ += kMovieLensItemSlots;
  }
}

absl::StatusOr<std::unique_ptr<MovieLensParser>> MovieLensParser::Create(
    const MovieLensOptions& options) {
  std::unique_ptr<MovieLensParser> parser(new MovieLensParser(options));
  if (parser->user_slot_ >= 0) RETURN_IF_ERROR(parser->LoadUsers());
  if (parser->genre_slot_ >= 0) RETURN_IF_ERROR(parser->LoadItems());
  return parser;
}

absl::Status MovieLensParser::ParseUser(absl::string_view line, uint64_t* id,
                                        User* user) const {
  absl::string_view f[kUserFields];
  const int n = Split(line, '|', f, kUserFields);
  if (n != kUserFields) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", kUserFields,
                     " '|'-separated fields (id|age|gender|occupation|zip), "
                     "got ",
                     n));
  }
  RETURN_IF_ERROR(ParseId(f[0], 1, "user id", id));
  int64_t age = 0;
  if (!ParseDecimalInt64(f[1], &age) || age < 0 || age > 150) {
    return FieldError(2, "age", f[1], "is not an integer in [0, 150]");
  }
  if (f[2] != "M" && f[2] != "F") {
    return FieldError(3, "gender", f[2], "is not M or F");
  }
  if (f[3].empty()) return FieldError(4, "occupation", f[3], "is empty");
  if (f[4].empty()) return FieldError(5, "zip code", f[4], "is empty");
  const uint64_t seed = options_.hash_seed;
  const int s = user_slot_;
  user->keys[0] = FeatureKey(seed, s, AgeGroup(static_cast<int>(age)));
  user->keys[1] = FeatureKey(seed, s + 1, f[2] == "M" ? 0 : 1);
  user->keys[2] = FeatureKey(seed, s + 2, StringFeatureValue(f[3]));
  user->keys[3] =
      FeatureKey(seed, s + 3, StringFeatureValue(f[4].substr(0, kZipPrefix)));
  return absl::OkStatus();
}

absl::Status MovieLensParser::ParseItem(absl::string_view line, uint64_t* id,
                                        Item* item) const {
  absl::string_view f[kItemFields];
  const int n = Split(line, '|', f, kItemFields);
  if (n != kItemFields) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected ", kItemFields,
        " '|'-separated fields (id|title|release date|video release date|"
        "IMDb URL|19 genre flags), got ",
        n));
  }
  RETURN_IF_ERROR(ParseId(f[0], 1, "item id", id));
  int64_t year = 0;
  const absl::string_view date = f[2];
  if (!date.empty()) {
    const absl::string_view tail =
        date.size() >= 4 ? date.substr(date.size() - 4) : date;
    if (date.size() < 4 || (date.size() > 4 && date[date.size() - 5] != '-') ||
        !ParseDecimalInt64(tail, &year) || year < 1000) {
      return FieldError(3, "release date", date,
                        "does not end in a 4-digit year");
    }
  }
  item->year_key = FeatureKey(options_.hash_seed, genre_slot_ + 1,
                              year == 0 ? 0 : YearBucket(year));
  item->genres = 0;
  for (int g = 0; g < kNumGenres; ++g) {
    const absl::string_view flag = f[5 + g];
    if (flag != "0" && flag != "1") {
      return FieldError(6 + g, absl::StrCat("genre ", g), flag,
                        "is not 0 or 1");
    }
    if (flag == "1") item->genres |= uint32_t{1} << g;
  }
  return absl::OkStatus();
}

absl::Status MovieLensParser::LoadUsers() {
  absl::flat_hash_map<uint64_t, int64_t> first_line;
  RETURN_IF_ERROR(
      ForEachLine(options_.user_file,
                  [&](int64_t number, absl::string_view line) -> absl::Status {
                    uint64_t id = 0;
                    User user;
                    RETURN_IF_ERROR(ParseUser(line, &id, &user));
                    auto [it, added] = first_line.emplace(id, number);
                    if (!added) {
                      return absl::InvalidArgumentError(absl::StrCat(
                          "user ", id, " is listed again (first on line ",
                          it->second, ")"));
                    }
                    users_.emplace(id, user);
                    return absl::OkStatus();
                  }));
  if (users_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "movielens user file '", options_.user_file, "' has no lines"));
  }
  return absl::OkStatus();
}

absl::Status MovieLensParser::LoadItems() {
  absl::flat_hash_map<uint64_t, int64_t> first_line;
  RETURN_IF_ERROR(
      ForEachLine(options_.item_file,
                  [&](int64_t number, absl::string_view line) -> absl::Status {
                    uint64_t id = 0;
                    Item item;
                    RETURN_IF_ERROR(ParseItem(line, &id, &item));
                    auto [it, added] = first_line.emplace(id, number);
                    if (!added) {
                      return absl::InvalidArgumentError(absl::StrCat(
                          "item ", id, " is listed again (first on line ",
                          it->second, ")"));
                    }
                    items_.emplace(id, item);
                    return absl::OkStatus();
                  }));
  if (items_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "movielens item file '", options_.item_file, "' has no lines"));
  }
  return absl::OkStatus();
}

absl::Status MovieLensParser::Append(absl::string_view line,
                                     Batch* batch) const {
  CHECK_EQ(batch->num_slots, num_slots_);
  CHECK_EQ(batch->num_dense, 0);
  line = StripCarriageReturn(line);
  absl::string_view f[kDataFields];
  const int n = Split(line, '\t', f, kDataFields);
  if (n != kDataFields) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected ", kDataFields,
        " TAB-separated fields (user_id, item_id, rating, timestamp), got ",
        n));
  }
  uint64_t user_id = 0;
  uint64_t item_id = 0;
  int64_t rating = 0;
  int64_t timestamp = 0;
  RETURN_IF_ERROR(ParseId(f[0], 1, "user_id", &user_id));
  RETURN_IF_ERROR(ParseId(f[1], 2, "item_id", &item_id));
  if (!ParseDecimalInt64(f[2], &rating) || rating < 1 || rating > 5) {
    return FieldError(3, "rating", f[2], "is not an integer in [1, 5]");
  }
  if (!ParseDecimalInt64(f[3], &timestamp)) {
    return FieldError(4, "timestamp", f[3], "is not an integer");
  }
  const User* user = nullptr;
  if (user_slot_ >= 0) {
    auto it = users_.find(user_id);
    if (it == users_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("user ", user_id, " is not in the user file '",
                       options_.user_file, "'"));
    }
    user = &it->second;
  }
  const Item* item = nullptr;
  if (genre_slot_ >= 0) {
    auto it = items_.find(item_id);
    if (it == items_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("item ", item_id, " is not in the item file '",
                       options_.item_file, "'"));
    }
    item = &it->second;
  }

  const uint64_t seed = options_.hash_seed;
  auto add_key = [batch](uint64_t key) { batch->keys.push_back(key); };
  auto end_slot = [batch] {
    batch->offsets.push_back(static_cast<uint32_t>(batch->keys.size()));
  };
  batch->labels.push_back(rating >= 4 ? 1.0f : 0.0f);
  add_key(FeatureKey(seed, kUserSlot, user_id));
  end_slot();
  add_key(FeatureKey(seed, kItemSlot, item_id));
  end_slot();
  if (user != nullptr) {
    for (uint64_t key : user->keys) {
      add_key(key);
      end_slot();
    }
  }
  if (item != nullptr) {
    for (int g = 0; g < kNumGenres; ++g) {
      if (item->genres & (uint32_t{1} << g)) {
        add_key(FeatureKey(seed, genre_slot_, g));
      }
    }
    end_slot();
    add_key(item->year_key);
    end_slot();
  }
  return absl::OkStatus();
}

}  // namespace ps

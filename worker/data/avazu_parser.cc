#include "worker/data/avazu_parser.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/civil_time.h"
#include "common/hash.h"
#include "common/input_shape.h"
#include "glog/logging.h"
#include "worker/data/parser_util.h"

namespace ps {
namespace {

constexpr int kNumFields = 24;
constexpr int kClickField = 1;
constexpr int kHourField = 2;
constexpr int kFirstCategorical = 3;  // C1
constexpr int kHourOfDaySlot = 0;
constexpr int kWeekdaySlot = 1;
constexpr int kFirstCategoricalSlot = 2;
static_assert(kFirstCategoricalSlot + kNumFields - kFirstCategorical ==
              kAvazuSlots);

constexpr const char* kFieldNames[kNumFields] = {
    "id",         "click",        "hour",         "C1",
    "banner_pos", "site_id",      "site_domain",  "site_category",
    "app_id",     "app_domain",   "app_category", "device_id",
    "device_ip",  "device_model", "device_type",  "device_conn_type",
    "C14",        "C15",          "C16",          "C17",
    "C18",        "C19",          "C20",          "C21"};

absl::Status FieldError(int field, absl::string_view value,
                        absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("field ", field + 1, " (", kFieldNames[field],
                   "): ", QuoteField(value), " ", problem));
}

// Two decimal digits at s[at], or -1.
int TwoDigits(absl::string_view s, int at) {
  const char a = s[at], b = s[at + 1];
  if (a < '0' || a > '9' || b < '0' || b > '9') return -1;
  return (a - '0') * 10 + (b - '0');
}

// The hour of day and day of the week (0 = Sunday) of YYMMDDHH.
absl::Status ParseHour(absl::string_view s, int* hour, int* weekday) {
  if (s.size() != 8) return FieldError(kHourField, s, "is not YYMMDDHH");
  const int yy = TwoDigits(s, 0), mm = TwoDigits(s, 2), dd = TwoDigits(s, 4),
            hh = TwoDigits(s, 6);
  if (yy < 0 || mm < 0 || dd < 0 || hh < 0) {
    return FieldError(kHourField, s, "is not YYMMDDHH");
  }
  const absl::CivilDay day(2000 + yy, mm, dd);
  // CivilDay normalizes (month 13 is next January): a real date survives.
  if (mm < 1 || day.month() != mm || day.day() != dd || hh > 23) {
    return FieldError(kHourField, s, "is not a valid date and hour");
  }
  *hour = hh;
  switch (absl::GetWeekday(day)) {
    case absl::Weekday::sunday:
      *weekday = 0;
      break;
    case absl::Weekday::monday:
      *weekday = 1;
      break;
    case absl::Weekday::tuesday:
      *weekday = 2;
      break;
    case absl::Weekday::wednesday:
      *weekday = 3;
      break;
    case absl::Weekday::thursday:
      *weekday = 4;
      break;
    case absl::Weekday::friday:
      *weekday = 5;
      break;
    case absl::Weekday::saturday:
      *weekday = 6;
      break;
  }
  return absl::OkStatus();
}

}  // namespace

int AvazuParser::num_slots() const { return kAvazuSlots; }

bool AvazuParser::IsHeader(absl::string_view line) const {
  absl::ConsumePrefix(&line, "\xEF\xBB\xBF");  // a UTF-8 byte order mark
  return absl::StartsWith(line, "id,click,hour");
}

absl::Status AvazuParser::Append(absl::string_view line, Batch* batch) const {
  CHECK_EQ(batch->num_slots, kAvazuSlots);
  CHECK_EQ(batch->num_dense, 0);
  line = StripCarriageReturn(line);

  // Split into exactly 24 fields without allocating.
  absl::string_view fields[kNumFields];
  int num_fields = 0;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    const absl::string_view field = line.substr(
        start, comma == absl::string_view::npos ? absl::string_view::npos
                                                : comma - start);
    if (num_fields < kNumFields) fields[num_fields] = field;
    ++num_fields;
    if (comma == absl::string_view::npos) break;
    start = comma + 1;
  }
  if (num_fields != kNumFields) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected ", kNumFields, " comma-separated fields, got ", num_fields));
  }
  if (fields[0].empty()) return FieldError(0, fields[0], "is empty");
  const absl::string_view click = fields[kClickField];
  if (click != "0" && click != "1") {
    return FieldError(kClickField, click, "is not 0 or 1");
  }
  int hour = 0, weekday = 0;
  absl::Status status = ParseHour(fields[kHourField], &hour, &weekday);
  if (!status.ok()) return status;

  batch->labels.push_back(click == "1" ? 1.0f : 0.0f);
  auto add = [&](int slot, uint64_t value) {
    batch->keys.push_back(FeatureKey(hash_seed_, slot, value));
    batch->offsets.push_back(static_cast<uint32_t>(batch->keys.size()));
  };
  add(kHourOfDaySlot, static_cast<uint64_t>(hour));
  add(kWeekdaySlot, static_cast<uint64_t>(weekday));
  for (int f = kFirstCategorical; f < kNumFields; ++f) {
    add(kFirstCategoricalSlot + f - kFirstCategorical,
        StringFeatureValue(fields[f]));
  }
  return absl::OkStatus();
}

}  // namespace ps

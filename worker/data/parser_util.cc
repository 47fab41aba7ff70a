#include "worker/data/parser_util.h"

#include <charconv>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ps {

std::string QuoteField(absl::string_view value) {
  constexpr size_t kMaxShown = 40;
  if (value.size() > kMaxShown) {
    return absl::StrCat("'", absl::CHexEscape(value.substr(0, kMaxShown)),
                        "...'");
  }
  return absl::StrCat("'", absl::CHexEscape(value), "'");
}

bool ParseDecimalUint64(absl::string_view s, uint64_t* out) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

bool ParseDecimalInt64(absl::string_view s, int64_t* out) {
  if (s.empty() || s[0] == '+') return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

bool ParseFiniteFloat(absl::string_view s, float* out) {
  if (s.empty() || s[0] == '+') return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end && std::isfinite(*out);
}

uint64_t StringFeatureValue(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace ps

// Small helpers shared by the LineParser implementations: quoting a field
// for an error message and strict number parsing. Pure functions;
// thread-safe.
#ifndef PS_WORKER_DATA_PARSER_UTIL_H_
#define PS_WORKER_DATA_PARSER_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace ps {

// `value` in single quotes for an error message: C-escaped, and cut after 40
// bytes with "..." so a runaway field cannot flood a log.
std::string QuoteField(absl::string_view value);

// Parses a non-empty string of decimal digits (no sign, no spaces) that fits
// in 64 bits.
bool ParseDecimalUint64(absl::string_view s, uint64_t* out);

// Parses a decimal integer with an optional leading '-' (no '+', no spaces).
bool ParseDecimalInt64(absl::string_view s, int64_t* out);

// Parses a finite decimal float ("0.5", "-3", "1e-3"; no "inf" or "nan", no
// leading '+' or spaces).
bool ParseFiniteFloat(absl::string_view s, float* out);

// A stable 64-bit value of a string feature (FNV-1a), used as the raw value
// given to FeatureKey. Part of the key encoding: do not change.
uint64_t StringFeatureValue(absl::string_view s);

// Strips one trailing '\r' (CRLF files).
inline absl::string_view StripCarriageReturn(absl::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace ps

#endif  // PS_WORKER_DATA_PARSER_UTIL_H_

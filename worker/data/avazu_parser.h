// The LineParser of format AVAZU: the Avazu CTR data set (Kaggle 2014), CSV.
//
// A line is 24 comma-separated fields:
//   id, click, hour, C1, banner_pos, site_id, site_domain, site_category,
//   app_id, app_domain, app_category, device_id, device_ip, device_model,
//   device_type, device_conn_type, C14, C15, C16, C17, C18, C19, C20, C21
// click is 0 or 1 (the label); hour is YYMMDDHH (20YY, a real date, hour
// 0..23); id is checked to be present, not used (it is unique per row). A
// trailing '\r' is ignored. The header line (starting "id,click,hour",
// after a UTF-8 byte order mark if any) is recognized by IsHeader, so
// readers skip it instead of counting a bad line.
//
// Slots (see common/input_shape.h), 23 in this order, one key each:
//   0 hour of day (0..23), 1 day of the week (0 = Sunday .. 6), then
//   2..22 the 21 fields from C1 to C21 above, each keyed by the
//   StringFeatureValue of its text (an empty field is the value of "",
//   a key of its own).
// Every key is FeatureKey(hash_seed, slot, value). No dense features.
// Immutable; thread-safe.
#ifndef PS_WORKER_DATA_AVAZU_PARSER_H_
#define PS_WORKER_DATA_AVAZU_PARSER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "worker/data/batch.h"
#include "worker/data/line_parser.h"

namespace ps {

class AvazuParser final : public LineParser {
 public:
  explicit AvazuParser(uint64_t hash_seed) : hash_seed_(hash_seed) {}

  int num_slots() const override;
  int num_dense() const override { return 0; }
  int64_t max_keys_per_example() const override { return num_slots(); }
  // On a malformed line: InvalidArgument naming the field, e.g.
  // "field 3 (hour): '14102' is not YYMMDDHH".
  absl::Status Append(absl::string_view line, Batch* batch) const override;
  bool IsHeader(absl::string_view line) const override;

 private:
  const uint64_t hash_seed_;
};

}  // namespace ps

#endif  // PS_WORKER_DATA_AVAZU_PARSER_H_

// The LineParser of format MOVIELENS: MovieLens ratings as implicit feedback.
//
// A line of u.data (or a u*.base / u*.test split) is
//   user_id TAB item_id TAB rating TAB timestamp
// with decimal ids, an integer rating in [1, 5] and an integer timestamp
// (checked, not used); the label is rating >= 4. A trailing '\r' is ignored.
//
// Slots, in this order (see common/input_shape.h):
//   0 user id, 1 item id; and with a user file (u.user, lines
//   `id|age|gender|occupation|zip`):
//     age bucket  (1: under 18, 18, 25, 35, 45, 50, 56: the MovieLens-1M
//                  groups, keyed by their lower bound),
//     gender      (M = 0, F = 1),
//     occupation  (StringFeatureValue of the name),
//     zip prefix  (StringFeatureValue of the first 3 characters);
//   and with an item file (u.item, ISO-8859-1, lines `id|title|release date|
//   video release date|IMDb URL|` then 19 genre flags 0/1):
//     genres      (one key per genre flagged 1, the genre's index 0..18;
//                  none when no flag is set),
//     release year bucket (the year rounded down to a multiple of 5; a
//                  missing release date is value 0).
// Every key is FeatureKey(hash_seed, slot, value). A rating whose user or
// item is not in a given side file is a malformed line.
//
// Side files are read once, by Create; a bad side-file line fails Create
// with "path:line: reason". Immutable afterwards; thread-safe.
#ifndef PS_WORKER_DATA_MOVIELENS_PARSER_H_
#define PS_WORKER_DATA_MOVIELENS_PARSER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/data/batch.h"
#include "worker/data/line_parser.h"

namespace ps {

struct MovieLensOptions {
  uint64_t hash_seed = 0;
  std::string user_file;  // u.user; "" = no user side slots
  std::string item_file;  // u.item; "" = no item side slots
};

class MovieLensParser final : public LineParser {
 public:
  // Loads the side files that are set. Errors: those of opening/reading a
  // file (naming it), InvalidArgument "path:line: reason" for a bad line or
  // a repeated id, InvalidArgument when a side file has no lines.
  static absl::StatusOr<std::unique_ptr<MovieLensParser>> Create(
      const MovieLensOptions& options);

  int num_slots() const override { return num_slots_; }
  int num_dense() const override { return 0; }
  // One key per slot, but a key per genre in the genres slot.
  int64_t max_keys_per_example() const override {
    return num_slots_ + kNumGenres;
  }
  absl::Status Append(absl::string_view line, Batch* batch) const override;

  // The age-group value of an age (1 for under 18, else 18, 25, 35, 45, 50
  // or 56).
  static int AgeGroup(int age);
  // The release-year value of a year: year - year % 5.
  static int YearBucket(int year);

 private:
  static constexpr int kNumGenres = 19;

  struct User {
    uint64_t keys[4];  // age group, gender, occupation, zip prefix
  };
  struct Item {
    uint32_t genres = 0;  // bit g set: genre g flagged
    uint64_t year_key = 0;
  };

  explicit MovieLensParser(const MovieLensOptions& options);
  absl::Status LoadUsers();
  absl::Status LoadItems();
  absl::Status ParseUser(absl::string_view line, uint64_t* id,
                         User* user) const;
  absl::Status ParseItem(absl::string_view line, uint64_t* id,
                         Item* item) const;

  const MovieLensOptions options_;
  // Slot indices of the side features; -1 when absent.
  int user_slot_ = -1;   // first user side slot
  int genre_slot_ = -1;  // genres; the year bucket follows
  int num_slots_ = 2;
  absl::flat_hash_map<uint64_t, User> users_;
  absl::flat_hash_map<uint64_t, Item> items_;
};

}  // namespace ps

#endif  // PS_WORKER_DATA_MOVIELENS_PARSER_H_

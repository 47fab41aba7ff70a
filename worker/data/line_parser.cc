#include "worker/data/line_parser.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/data/avazu_parser.h"
#include "worker/data/criteo_parser.h"
#include "worker/data/movielens_parser.h"
#include "worker/data/slot_parser.h"

namespace ps {

absl::StatusOr<std::unique_ptr<LineParser>> LineParser::Create(
    const DataConfig& data) {
  switch (data.format()) {
    case DataConfig::CRITEO: {
      if (data.int_features() != DataConfig::LOG_BUCKET &&
          data.int_features() != DataConfig::NORMALIZE) {
        return absl::InvalidArgumentError(
            absl::StrCat("criteo parser: int_features must be LOG_BUCKET or "
                         "NORMALIZE, got ",
                         DataConfig::IntFeatures_Name(data.int_features())));
      }
      CriteoOptions options;
      options.int_features = data.int_features();
      options.hash_seed = data.hash_seed();
      return std::make_unique<CriteoParser>(options);
    }
    case DataConfig::SLOT: {
      if (data.num_slots() < 1 || data.num_dense() < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "slot parser: num_slots must be >= 1 and num_dense >= 0, got ",
            data.num_slots(), " and ", data.num_dense()));
      }
      if (data.max_features_per_line() < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("slot parser: max_features_per_line must be >= 1, "
                         "got ",
                         data.max_features_per_line()));
      }
      SlotOptions options;
      options.num_slots = data.num_slots();
      options.num_dense = data.num_dense();
      options.hash_seed = data.hash_seed();
      options.max_features_per_line = data.max_features_per_line();
      return std::make_unique<SlotParser>(options);
    }
    case DataConfig::MOVIELENS: {
      // InputShapeOf counts a side file's slots when the field is set.
      if ((data.has_movielens_user_file() &&
           data.movielens_user_file().empty()) ||
          (data.has_movielens_item_file() &&
           data.movielens_item_file().empty())) {
        return absl::InvalidArgumentError(
            "movielens parser: movielens_user_file and movielens_item_file "
            "must not be set to an empty path");
      }
      MovieLensOptions options;
      options.hash_seed = data.hash_seed();
      options.user_file = data.movielens_user_file();
      options.item_file = data.movielens_item_file();
      ASSIGN_OR_RETURN(std::unique_ptr<MovieLensParser> parser,
                       MovieLensParser::Create(options));
      return std::unique_ptr<LineParser>(std::move(parser));
    }
    case DataConfig::AVAZU:
      return std::make_unique<AvazuParser>(data.hash_seed());
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("no parser for data format ",
                       DataConfig::Format_Name(data.format())));
  }
}

}  // namespace ps

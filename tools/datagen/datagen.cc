#include "tools/datagen/datagen.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "tools/datagen/planted_model.h"

namespace ps {
namespace {

absl::Status OutputError(absl::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(
      "cannot ", what, " output file '", path, "': ", std::strerror(errno)));
}

// Writes `path`.tmp from a buffer that `fill` appends to (returning false
// after its last part), then renames it to `path`, so a file under the final
// name is always complete.
template <typename Fill>
absl::Status WriteAtomically(const std::string& path, Fill fill) {
  const std::string tmp = path + ".tmp";
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(
      std::fopen(tmp.c_str(), "wb"), &std::fclose);
  if (file == nullptr) return OutputError("create", path);
  std::string buffer;
  for (bool more = true; more;) {
    buffer.clear();
    more = fill(&buffer);
    if (std::fwrite(buffer.data(), 1, buffer.size(), file.get()) !=
        buffer.size()) {
      std::remove(tmp.c_str());
      return OutputError("write", path);
    }
  }
  if (std::fclose(file.release()) != 0) {
    std::remove(tmp.c_str());
    return OutputError("close", path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return OutputError("rename into place", path);
  }
  return absl::OkStatus();
}

// HyperLogLog (Flajolet et al. 2007) over 2^14 registers: a distinct
// count within about 1 % in 16 KiB, whatever the number of items.
class DistinctCounter {
 public:
  void Add(uint64_t item) {
    const uint64_t h = Mix64(item ^ 0x686C6CULL);
    const uint32_t bucket = static_cast<uint32_t>(h >> (64 - kBits));
    const uint64_t rest = (h << kBits) | (uint64_t{1} << (kBits - 1));
    const uint8_t rank = static_cast<uint8_t>(__builtin_clzll(rest) + 1);
    registers_[bucket] = std::max(registers_[bucket], rank);
  }
  int64_t Estimate() const {
    constexpr double m = static_cast<double>(kRegisters);
    double sum = 0;
    int zeros = 0;
    for (uint8_t r : registers_) {
      sum += std::ldexp(1.0, -r);
      zeros += r == 0;
    }
    const double alpha = 0.7213 / (1.0 + 1.079 / m);
    double e = alpha * m * m / sum;
    // Small counts: linear counting is exact enough and unbiased.
    if (e <= 2.5 * m && zeros > 0) e = m * std::log(m / zeros);
    return static_cast<int64_t>(std::llround(e));
  }

 private:
  static constexpr int kBits = 14;
  static constexpr int kRegisters = 1 << kBits;
  std::vector<uint8_t> registers_ = std::vector<uint8_t>(kRegisters);
};

struct FileStats {
  int64_t positives = 0;
  std::vector<std::pair<double, bool>> predictions;  // kept when asked
  DistinctCounter distinct;
};

// Writes `rows` rows drawn from `m` with stream seed `stream` to `path`.
absl::StatusOr<FileStats> WriteFile(const PlantedModel& m, uint64_t stream,
                                    int64_t rows, bool keep_predictions,
                                    const std::string& path) {
  constexpr size_t kBufferBytes = size_t{4} << 20;
  RowDrawer drawer(&m, stream);
  FileStats stats;
  if (keep_predictions) stats.predictions.reserve(rows);
  int64_t row = 0;
  RETURN_IF_ERROR(WriteAtomically(path, [&](std::string* buffer) {
    for (; row < rows && buffer->size() < kBufferBytes; ++row) {
      auto [p, label] = drawer.Next(buffer);
      stats.positives += label;
      const uint64_t* features = drawer.last_features();
      for (int f = 0; f < RowDrawer::kNumFeatures; ++f) {
        stats.distinct.Add(features[f]);
      }
      if (keep_predictions) stats.predictions.emplace_back(p, label);
    }
    return row < rows;
  }));
  return stats;
}

// Exact AUC: the probability that a random positive outranks a random
// negative, ties counting one half. 0.5 without both classes.
double ExactAuc(std::vector<std::pair<double, bool>> preds) {
  std::sort(preds.begin(), preds.end());
  double negatives_below = 0, pairs_won = 0, positives = 0;
  for (size_t i = 0; i < preds.size();) {
    size_t j = i;
    double pos = 0, neg = 0;
    for (; j < preds.size() && preds[j].first == preds[i].first; ++j) {
      (preds[j].second ? pos : neg) += 1;
    }
    pairs_won += pos * negatives_below + 0.5 * pos * neg;
    negatives_below += neg;
    positives += pos;
    i = j;
  }
  if (positives == 0 || negatives_below == 0) return 0.5;
  return pairs_won / (positives * negatives_below);
}

double LogLoss(const std::vector<std::pair<double, bool>>& preds) {
  if (preds.empty()) return 0;
  double sum = 0;
  for (const auto& [p, y] : preds) {
    const double q = std::clamp(p, 1e-12, 1.0 - 1e-12);
    sum -= y ? std::log(q) : std::log1p(-q);
  }
  return sum / static_cast<double>(preds.size());
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string ReportJson(const GeneratorReport& r) {
  return absl::StrFormat(
      "{\"train_file\": %s, \"eval_file\": %s, \"train_rows\": %d, "
      "\"eval_rows\": %d, \"train_positive_rate\": %.6f, "
      "\"eval_positive_rate\": %.6f, \"oracle_auc\": %.6f, "
      "\"oracle_logloss\": %.6f, \"train_distinct_keys\": %d}\n",
      JsonString(r.train_file), JsonString(r.eval_file), r.train_rows,
      r.eval_rows, r.train_positive_rate, r.eval_positive_rate, r.oracle_auc,
      r.oracle_logloss, r.train_distinct_keys);
}

}  // namespace

absl::StatusOr<GeneratorReport> GenerateCriteoData(
    const GeneratorConfig& options) {
  if (options.output_dir().empty() || options.vocab_size() < 1 ||
      options.vocab_size() > PlantedModel::kMaxVocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("generator: needs an output_dir and a vocab_size in [1, ",
                     PlantedModel::kMaxVocab, "], got '", options.output_dir(),
                     "' and ", options.vocab_size()));
  }
  std::error_code ec;
  std::filesystem::create_directories(options.output_dir(), ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create output directory '", options.output_dir(),
                     "': ", ec.message()));
  }

  const PlantedModel model = PlantedModel::Build(options);
  GeneratorReport report;
  report.train_file = GeneratedTrainFile(options);
  report.eval_file = GeneratedEvalFile(options);
  report.train_rows = options.train_rows();
  report.eval_rows = options.eval_rows();

  // Train and eval rows come from separate streams, so changing train_rows
  // leaves the eval file as it was.
  ASSIGN_OR_RETURN(FileStats train,
                   WriteFile(model, Mix64(options.seed() ^ 0x747261696EULL),
                             report.train_rows, false, report.train_file));
  ASSIGN_OR_RETURN(FileStats eval,
                   WriteFile(model, Mix64(options.seed() ^ 0x6576616CULL),
                             report.eval_rows, true, report.eval_file));
  report.train_positive_rate = static_cast<double>(train.positives) /
                               std::max<int64_t>(report.train_rows, 1);
  report.eval_positive_rate = static_cast<double>(eval.positives) /
                              std::max<int64_t>(report.eval_rows, 1);
  report.train_distinct_keys = train.distinct.Estimate();
  report.oracle_logloss = LogLoss(eval.predictions);
  report.oracle_auc = ExactAuc(std::move(eval.predictions));

  RETURN_IF_ERROR(WriteAtomically(GeneratedOracleFile(options),
                                  [&report](std::string* buffer) {
                                    *buffer = ReportJson(report);
                                    return false;
                                  }));
  return report;
}

}  // namespace ps

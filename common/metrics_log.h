// A JSON-lines metrics file of one process: one object per line, written
// whole and flushed, so a plot script (scripts/plot_metrics.sh) can read it
// while the job runs. It also keeps the latest fields of each type, for a
// Prometheus scrape (common/metrics_http.h); InMemory() keeps only those.
// Thread-safe.
#ifndef PS_COMMON_METRICS_LOG_H_
#define PS_COMMON_METRICS_LOG_H_

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace ps {

class MetricsLog {
 public:
  // Opens (appends to) `path`, creating its folder. An error names the path.
  static absl::StatusOr<std::unique_ptr<MetricsLog>> Open(
      const std::string& path);
  // No file: Write only updates Latest.
  static std::unique_ptr<MetricsLog> InMemory();
  ~MetricsLog();

  // Writes {"type": type, "time": unix seconds, name: value, ...}: type and
  // names JSON-escaped, a non-finite value as null.
  void Write(const std::string& type,
             const std::vector<std::pair<std::string, double>>& fields);

  // The fields of the last Write of each type, by type in the order types
  // were first written.
  using Fields = std::vector<std::pair<std::string, double>>;
  std::vector<std::pair<std::string, Fields>> Latest() const;

 private:
  explicit MetricsLog(std::FILE* file) : file_(file) {}

  mutable absl::Mutex mu_;
  std::FILE* const file_ ABSL_PT_GUARDED_BY(mu_);  // null: in memory only
  std::vector<std::pair<std::string, Fields>> latest_ ABSL_GUARDED_BY(mu_);
};

// A finite number as metrics write it, exactly: an integral value below
// 2^53 in magnitude as an integer ("123456789", never "1.23457e+08"), any
// other as the shortest decimal that reads back to the same double
// ("0.1", "2.5e-07"). REQUIRES: std::isfinite(v).
std::string FormatMetricNumber(double v);

// CPU seconds (user + system) this process has used so far, all threads.
double ProcessCpuSeconds();

}  // namespace ps

#endif  // PS_COMMON_METRICS_LOG_H_

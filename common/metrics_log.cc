#include "common/metrics_log.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace ps {
namespace {

// Appends `s` as a JSON string (RFC 8259): quoted, with '"', '\\' and every
// control character escaped, so any name makes a valid line. Other bytes
// are copied (UTF-8 text stays as it is).
void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          absl::StrAppendFormat(out, "\\u%04x", c);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsLog>> MetricsLog::Open(
    const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    // mkdir -p of the parent folder.
    std::string dir = path.substr(0, slash);
    for (size_t i = 1; i <= dir.size(); ++i) {
      if (i == dir.size() || dir[i] == '/') {
        std::string part = dir.substr(0, i);
        if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
          return absl::PermissionDeniedError(absl::StrCat(
              "cannot create metrics folder '", part, "': ", strerror(errno)));
        }
      }
    }
  }
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot open metrics file '", path, "': ", strerror(errno)));
  }
  return std::unique_ptr<MetricsLog>(new MetricsLog(file));
}

std::unique_ptr<MetricsLog> MetricsLog::InMemory() {
  return std::unique_ptr<MetricsLog>(new MetricsLog(nullptr));
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

std::vector<std::pair<std::string, MetricsLog::Fields>> MetricsLog::Latest()
    const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

void MetricsLog::Write(
    const std::string& type,
    const std::vector<std::pair<std::string, double>>& fields) {
  std::string line = "{\"type\": ";
  AppendJsonString(&line, type);
  absl::StrAppendFormat(&line, ", \"time\": %.3f",
                        absl::ToUnixMicros(absl::Now()) / 1e6);
  for (const auto& [name, value] : fields) {
    line += ", ";
    AppendJsonString(&line, name);
    // JSON has no NaN/Inf: write null.
    if (std::isfinite(value)) {
      absl::StrAppend(&line, ": ", FormatMetricNumber(value));
    } else {
      line += ": null";
    }
  }
  line += "}\n";
  absl::MutexLock lock(&mu_);
  auto it = std::find_if(latest_.begin(), latest_.end(),
                         [&](const auto& t) { return t.first == type; });
  if (it == latest_.end()) {
    latest_.emplace_back(type, fields);
  } else {
    it->second = fields;
  }
  if (file_ == nullptr) return;
  std::fputs(line.c_str(), file_);
  std::fflush(file_);
}

std::string FormatMetricNumber(double v) {
  if (v == std::trunc(v) && std::fabs(v) < 0x1p53) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buf[32];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

double ProcessCpuSeconds() {
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace ps

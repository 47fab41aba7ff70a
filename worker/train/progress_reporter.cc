#include "worker/train/progress_reporter.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

namespace ps {

std::optional<double> EtaSeconds(double fraction, double elapsed,
                                 int epochs_after) {
  if (!(fraction > 0)) return std::nullopt;
  const double epoch = elapsed / std::min(fraction, 1.0);
  return std::max(0.0, epoch - elapsed) + std::max(epochs_after, 0) * epoch;
}

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::llround(std::max(seconds, 0.0)));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

ProgressReporter::ProgressReporter(ProgressOptions options, MetricsLog* metrics)
    : options_(std::move(options)), metrics_(metrics) {}

double ProgressReporter::Now() const {
  if (options_.clock) return options_.clock();
  return absl::ToUnixMicros(absl::Now()) / 1e6;
}

void ProgressReporter::CountStep(int64_t examples, double pull_ms) {
  pull_ms_ += pull_ms;
  window_examples_ += examples;
}

void ProgressReporter::AddMetrics(const AucAccumulator& part) {
  window_.Merge(part);
  total_.Merge(part);
}

void ProgressReporter::StartEpoch(int epoch) {
  epoch_ = epoch;
  epoch_start_ = Now();
  if (window_start_ == 0) window_start_ = epoch_start_;
}

void ProgressReporter::EndEpoch(int64_t examples, int64_t bad_lines) {
  train_seconds_ += Now() - epoch_start_;
  LOG(INFO) << "worker " << options_.rank << " finished epoch " << epoch_ + 1
            << "/" << options_.epochs << ": " << examples << " examples, "
            << bad_lines << " bad lines skipped";
}

std::string ProgressReporter::Report(int64_t step, int64_t examples,
                                     double epoch_fraction) {
  const int every = options_.log_every_steps;
  const double now = Now();
  const double rate = window_examples_ / std::max(now - window_start_, 1e-9);
  // The epoch's progress and the job's ETA, when the input's size is known.
  std::string eta;
  const std::optional<double> left = EtaSeconds(
      epoch_fraction, now - epoch_start_, options_.epochs - epoch_ - 1);
  if (left.has_value()) {
    eta = absl::StrFormat(" epoch %d/%d %.0f%% eta %s", epoch_ + 1,
                          options_.epochs, 100 * epoch_fraction,
                          FormatDuration(*left));
  }
  // Numbers as a log stream prints them.
  std::ostringstream line;
  line << "worker " << options_.rank << " step " << step << " examples "
       << examples << " loss " << window_.LogLoss() << " auc " << window_.Auc()
       << " ex/s " << static_cast<int64_t>(rate) << " pull_ms/step "
       << pull_ms_ / every << " push_wait_ms/step " << push_wait_ms_ / every
       << eta;
  LOG(INFO) << line.str();
  if (metrics_ != nullptr) {
    metrics_->Write("train", {{"step", step},
                              {"examples", examples},
                              {"loss", window_.LogLoss()},
                              {"auc", window_.Auc()},
                              {"examples_per_sec", rate},
                              {"pull_ms_per_step", pull_ms_ / every},
                              {"push_wait_ms_per_step", push_wait_ms_ / every},
                              {"epoch_fraction", epoch_fraction},
                              {"eta_sec", left.value_or(-1)}});
  }
  window_.Reset();
  window_examples_ = 0;
  pull_ms_ = push_wait_ms_ = 0;
  window_start_ = now;
  return line.str();
}

}  // namespace ps

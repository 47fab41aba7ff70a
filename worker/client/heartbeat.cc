#include "worker/client/heartbeat.h"

#include <utility>

#include "absl/time/clock.h"
#include "glog/logging.h"

namespace ps {

HeartbeatThread::HeartbeatThread(
    PsClient* client, absl::Duration interval, std::function<int64_t()> step,
    std::function<void(int64_t, absl::Time)> on_pending)
    : client_(client),
      interval_(interval),
      step_(std::move(step)),
      on_pending_(std::move(on_pending)),
      thread_([this] { Loop(); }) {}

HeartbeatThread::~HeartbeatThread() { Stop(); }

void HeartbeatThread::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void HeartbeatThread::Loop() {
  absl::Time last_warning = absl::InfinitePast();
  do {
    const absl::Time asked_at = absl::Now();
    absl::StatusOr<int64_t> pending = client_->Heartbeat(step_());
    if (pending.ok()) {
      on_pending_(*pending, asked_at);
    } else if (absl::Now() - last_warning >= absl::Seconds(10)) {
      last_warning = absl::Now();
      LOG(WARNING) << "heartbeat failed (the worker goes on): "
                   << pending.status();
    }
  } while (!stop_.WaitForNotificationWithTimeout(interval_));
}

}  // namespace ps

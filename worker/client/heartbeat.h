// A worker's heartbeat: a thread that calls PsClient::Heartbeat every
// interval with the worker's current step and hands the coordinator's answer
// (the open checkpoint round, 0 when none) and the time the beat was sent to
// a callback. A failed beat is
// logged (a WARNING at most every 10 s) and the thread beats again at the
// next interval: the coordinator notices a worker only by its beats.
//
// Thread-safe: `step` and `on_pending` run on the heartbeat thread, so they
// must be safe to call from it (Trainer::step and
// Trainer::SetCheckpointPending are).
#ifndef PS_WORKER_CLIENT_HEARTBEAT_H_
#define PS_WORKER_CLIENT_HEARTBEAT_H_

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "worker/client/ps_client.h"

namespace ps {

class HeartbeatThread {
 public:
  // Starts beating at once. `client` is not owned and must outlive this.
  // REQUIRES: interval > 0.
  HeartbeatThread(PsClient* client, absl::Duration interval,
                  std::function<int64_t()> step,
                  std::function<void(int64_t, absl::Time)> on_pending);
  // Stop()s.
  ~HeartbeatThread();
  HeartbeatThread(const HeartbeatThread&) = delete;
  HeartbeatThread& operator=(const HeartbeatThread&) = delete;

  // Stops the thread and joins it (waiting for a beat in flight, at most the
  // client's rpc_timeout_ms). Idempotent.
  void Stop();

 private:
  void Loop();

  PsClient* const client_;
  const absl::Duration interval_;
  const std::function<int64_t()> step_;
  const std::function<void(int64_t, absl::Time)> on_pending_;
  absl::Notification stop_;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace ps

#endif  // PS_WORKER_CLIENT_HEARTBEAT_H_

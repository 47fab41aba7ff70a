#include "server/coordinator/coordinator_state.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ps {

Membership::Membership(int num_workers, absl::Duration timeout)
    : num_workers_(num_workers), timeout_(timeout) {}

bool Membership::Register(int rank, absl::Time now) {
  const bool again = !registered_.insert(rank).second;
  finished_.erase(rank);
  last_seen_[rank] = now;
  return again;
}

Membership::HeartbeatNews Membership::Heartbeat(int rank, absl::Time now) {
  HeartbeatNews news;
  auto it = last_seen_.find(rank);
  news.was_dead = it != last_seen_.end() && now - it->second > timeout_;
  news.was_unknown = registered_.insert(rank).second;
  last_seen_[rank] = now;
  return news;
}

void Membership::Finish(int rank) { finished_.insert(rank); }

bool Membership::Dead(int rank, absl::Time now) const {
  if (finished(rank)) return false;
  auto it = last_seen_.find(rank);
  if (it == last_seen_.end()) return false;  // never heard from
  return now - it->second > timeout_;
}

std::vector<bool> Membership::DeadWorkers(absl::Time now) const {
  std::vector<bool> dead(num_workers_);
  for (int r = 0; r < num_workers_; ++r) dead[r] = Dead(r, now);
  return dead;
}

std::optional<Resume> BarrierTable::Arrive(const std::string& name, int rank,
                                           bool has_more,
                                           BarrierResponse* response,
                                           Resume resume,
                                           std::vector<Resume>* released) {
  Pending& barrier = barriers_[name];
  for (Waiter& w : barrier.waiting) {
    if (w.rank != rank) continue;
    // A retry (or a restarted worker): the newer call takes the place of
    // the earlier one, whose caller has gone.
    Resume earlier = std::exchange(w.resume, std::move(resume));
    w.has_more = has_more;
    w.response = response;
    return earlier;
  }
  barrier.waiting.push_back({rank, has_more, response, std::move(resume)});
  if (static_cast<int>(barrier.waiting.size()) < num_workers_) {
    return std::nullopt;
  }
  bool any_has_more = false;
  for (const Waiter& w : barrier.waiting) any_has_more |= w.has_more;
  for (Waiter& w : barrier.waiting) {
    w.response->set_all_done(!any_has_more);
    released->push_back(std::move(w.resume));
  }
  barriers_.erase(name);
  return std::nullopt;
}

std::vector<ParkedCall> BarrierTable::Leave(int rank) {
  std::vector<ParkedCall> calls;
  for (auto it = barriers_.begin(); it != barriers_.end();) {
    std::vector<Waiter>& waiting = it->second.waiting;
    for (auto w = waiting.begin(); w != waiting.end();) {
      if (w->rank == rank) {
        calls.push_back(
            {absl::StrCat("barrier '", it->first, "'"), std::move(w->resume)});
        w = waiting.erase(w);
      } else {
        ++w;
      }
    }
    if (waiting.empty()) {
      it = barriers_.erase(it);
    } else {
      ++it;
    }
  }
  return calls;
}

bool BarrierTable::Parked(int rank) const {
  for (const auto& [name, barrier] : barriers_) {
    for (const Waiter& w : barrier.waiting) {
      if (w.rank == rank) return true;
    }
  }
  return false;
}

std::vector<ParkedCall> BarrierTable::TakeAll() {
  std::vector<ParkedCall> calls;
  for (auto& [name, barrier] : barriers_) {
    const std::string what =
        absl::StrCat("barrier '", name, "' (", barrier.waiting.size(), " of ",
                     num_workers_, " workers arrived)");
    for (Waiter& w : barrier.waiting) {
      calls.push_back({what, std::move(w.resume)});
    }
  }
  barriers_.clear();
  return calls;
}

void StepGates::SetDone(int rank, bool done) {
  if (done) {
    done_.insert(rank);
  } else {
    done_.erase(rank);
  }
}

void StepGates::Park(int rank, int64_t step, int32_t staleness,
                     StepGateResponse* response, Resume resume) {
  waiters_.push_back({rank, step, staleness, response, std::move(resume)});
}

int64_t StepGates::SlowestActive(const std::vector<bool>& dead,
                                 int64_t fallback) const {
  int64_t slowest = -1;
  for (int r = 0; r < num_workers_; ++r) {
    if (done_.count(r) > 0 || dead[r]) continue;
    auto it = steps_.find(r);
    const int64_t step = it == steps_.end() ? 0 : it->second;
    if (slowest < 0 || step < slowest) slowest = step;
  }
  return slowest < 0 ? fallback : slowest;
}

std::vector<Resume> StepGates::Release(const std::vector<bool>& dead,
                                       int64_t open_round) {
  std::vector<Resume> released;
  std::vector<Waiter> still;
  for (Waiter& w : waiters_) {
    // The waiter itself stands at w.step; what holds it back is the
    // slowest of the others.
    const int64_t slowest = SlowestActive(dead, w.step);
    const int64_t lead = w.step - slowest;
    if (lead <= w.staleness) {
      max_granted_lead_ = std::max(max_granted_lead_, lead);
      w.response->set_slowest_step(slowest);
      released.push_back(std::move(w.resume));
    } else if (open_round > 0) {
      w.response->set_slowest_step(slowest);
      w.response->set_checkpoint_pending(open_round);
      released.push_back(std::move(w.resume));
    } else {
      still.push_back(std::move(w));
    }
  }
  waiters_ = std::move(still);
  return released;
}

std::vector<ParkedCall> StepGates::Leave(int rank) {
  std::vector<ParkedCall> calls;
  std::vector<Waiter> still;
  for (Waiter& w : waiters_) {
    if (w.rank == rank) {
      calls.push_back(
          {absl::StrCat("step gate of worker ", w.rank, " at step ", w.step),
           std::move(w.resume)});
    } else {
      still.push_back(std::move(w));
    }
  }
  waiters_ = std::move(still);
  return calls;
}

std::vector<ParkedCall> StepGates::TakeAll() {
  std::vector<ParkedCall> calls;
  for (Waiter& w : waiters_) {
    calls.push_back(
        {absl::StrCat("step gate of worker ", w.rank, " at step ", w.step),
         std::move(w.resume)});
  }
  waiters_.clear();
  return calls;
}

}  // namespace ps

#include "server/service/push_ledger.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ps {

PushLedger::Verdict PushLedger::Claim(const Key& key, int64_t* applied_first,
                                      int64_t* applied_last) {
  const std::pair<int64_t, uint32_t> id(key.step, key.part);
  const int64_t first = key.first_step();
  absl::MutexLock lock(&mu_);
  Worker& w = workers_[key.worker];
  while (w.in_progress.count(id) > 0) finished_.Wait(&mu_);
  const int64_t floor = w.max_step - kWindowSteps;
  auto conflict = [&](int64_t f, int64_t l) {
    if (applied_first != nullptr) *applied_first = f;
    if (applied_last != nullptr) *applied_last = l;
    return Verdict::kConflict;
  };
  auto it = w.applied.find(id);
  if (it != w.applied.end()) {
    if (it->second != first) return conflict(it->second, key.step);
    ++w.counts.duplicates;
    return Verdict::kDuplicate;
  }
  if (key.step <= floor) {
    ++w.counts.duplicates;
    return Verdict::kDuplicate;
  }
  if (first <= floor) return conflict(0, floor);
  // Another push whose steps overlap first..step (a part of this very push,
  // applied already, has the same range: no conflict).
  auto r = w.ranges.lower_bound(first);
  if (r != w.ranges.end() && r->second <= key.step &&
      !(r->first == key.step && r->second == first)) {
    return conflict(r->second, r->first);
  }
  w.in_progress.insert(id);
  return Verdict::kApply;
}

void PushLedger::Finish(const Key& key, bool applied, const Kind& kind) {
  const std::pair<int64_t, uint32_t> id(key.step, key.part);
  absl::MutexLock lock(&mu_);
  Worker& w = workers_[key.worker];
  w.in_progress.erase(id);
  finished_.SignalAll();
  if (!applied) return;
  w.applied.emplace(id, key.first_step());
  w.ranges[key.step] = key.first_step();
  w.max_step = std::max(w.max_step, key.step);
  PushCounts& c = w.counts;
  ++c.applied;
  c.last_step = w.max_step;
  if (kind.sparse) ++(kind.delta ? c.sparse_deltas : c.sparse_gradients);
  if (kind.dense) ++(kind.delta ? c.dense_deltas : c.dense_gradients);
  Prune(&w);
}

void PushLedger::Prune(Worker* w) {
  const int64_t floor = w->max_step - kWindowSteps;
  while (!w->applied.empty() && w->applied.begin()->first.first <= floor) {
    w->applied.erase(w->applied.begin());
  }
  while (!w->ranges.empty() && w->ranges.begin()->first <= floor) {
    w->ranges.erase(w->ranges.begin());
  }
}

int64_t PushLedger::MaxStep(int worker) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker);
  return it == workers_.end() ? -1 : it->second.max_step;
}

std::map<int, PushCounts> PushLedger::Counts() const {
  absl::MutexLock lock(&mu_);
  std::map<int, PushCounts> out;
  for (const auto& [rank, w] : workers_) out[rank] = w.counts;
  return out;
}

PushLedgerSnapshot PushLedger::Snapshot() const {
  absl::MutexLock lock(&mu_);
  PushLedgerSnapshot out;
  out.set_window_steps(kWindowSteps);
  for (const auto& [rank, w] : workers_) {
    WorkerLedger* l = out.add_workers();
    l->set_worker_rank(rank);
    l->set_max_step(w.max_step);
    for (const auto& [id, first] : w.applied) {
      l->add_steps(id.first);
      l->add_parts(id.second);
      l->add_firsts(first);
    }
    l->set_sparse_gradients(w.counts.sparse_gradients);
    l->set_sparse_deltas(w.counts.sparse_deltas);
    l->set_dense_gradients(w.counts.dense_gradients);
    l->set_dense_deltas(w.counts.dense_deltas);
    l->set_duplicates(w.counts.duplicates);
    l->set_applied(w.counts.applied);
  }
  return out;
}

absl::Status PushLedger::Merge(const PushLedgerSnapshot& snapshot) {
  if (snapshot.window_steps() != kWindowSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("push ledger: window of ", snapshot.window_steps(),
                     " steps, this server keeps ", kWindowSteps));
  }
  for (const WorkerLedger& l : snapshot.workers()) {
    if (l.steps_size() != l.parts_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "push ledger of worker ", l.worker_rank(), ": ", l.steps_size(),
          " steps but ", l.parts_size(), " parts"));
    }
  }
  absl::MutexLock lock(&mu_);
  for (const WorkerLedger& l : snapshot.workers()) {
    Worker& w = workers_[l.worker_rank()];
    w.max_step = std::max(w.max_step, l.max_step());
    for (int i = 0; i < l.steps_size(); ++i) {
      // Checkpoints before merged pushes were recorded: each step alone.
      const int64_t first =
          l.firsts_size() == l.steps_size() ? l.firsts(i) : l.steps(i);
      w.applied.emplace(std::make_pair(l.steps(i), l.parts(i)), first);
      w.ranges[l.steps(i)] = first;
    }
    PushCounts& c = w.counts;
    c.sparse_gradients += l.sparse_gradients();
    c.sparse_deltas += l.sparse_deltas();
    c.dense_gradients += l.dense_gradients();
    c.dense_deltas += l.dense_deltas();
    c.duplicates += l.duplicates();
    c.applied += l.applied();
    c.last_step = w.max_step;
    Prune(&w);
  }
  return absl::OkStatus();
}

}  // namespace ps

#include "server/service/push_ledger.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ps {

PushLedger::Verdict PushLedger::Claim(const Key& key) {
  const std::pair<int64_t, uint32_t> id(key.step, key.part);
  absl::MutexLock lock(&mu_);
  Worker& w = workers_[key.worker];
  while (w.in_progress.count(id) > 0) finished_.Wait(&mu_);
  if (key.step <= w.max_step - kWindowSteps || w.applied.count(id) > 0) {
    ++w.counts.duplicates;
    return Verdict::kDuplicate;
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
  w.applied.insert(id);
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
  while (!w->applied.empty() && w->applied.begin()->first <= floor) {
    w->applied.erase(w->applied.begin());
  }
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
    for (const auto& [step, part] : w.applied) {
      l->add_steps(step);
      l->add_parts(part);
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
      w.applied.emplace(l.steps(i), l.parts(i));
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

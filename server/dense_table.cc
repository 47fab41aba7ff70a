#include "server/dense_table.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/sparse_table.h"

namespace ps {

DenseTable::DenseTable(std::string name, int64_t local_size,
                       int64_t global_size, std::unique_ptr<OptimizerRule> rule)
    : name_(std::move(name)),
      local_size_(local_size),
      global_size_(global_size),
      rule_(std::move(rule)) {}

absl::StatusOr<std::unique_ptr<DenseTable>> DenseTable::Create(
    const std::string& name, const DenseBlocks& blocks, int rank,
    const OptimizerConfig& optimizer,
    const std::function<float(int64_t)>& init) {
  ASSIGN_OR_RETURN(auto rule, OptimizerRule::Create(optimizer));
  const int64_t local = blocks.SizeOn(rank);
  std::unique_ptr<DenseTable> table(
      new DenseTable(name, local, blocks.size, std::move(rule)));
  absl::MutexLock lock(&table->mu_);
  table->values_.reserve(local);
  for (const auto& [begin, end] : blocks.RangesOf(rank)) {
    for (int64_t i = begin; i < end; ++i) table->values_.push_back(init(i));
  }
  // The state of the whole local vector is one "row" to the rule.
  table->state_.resize(table->rule_->StateSize(static_cast<int>(local)));
  table->rule_->InitState(absl::MakeSpan(table->state_));
  return table;
}

void DenseTable::Pull(std::vector<float>* out) const {
  absl::MutexLock lock(&mu_);
  *out = values_;
}

absl::Status DenseTable::Push(absl::Span<const float> grads) {
  if (static_cast<int64_t>(grads.size()) != local_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense table '", name_, "' push: this server holds ",
                     local_size_, " floats, got ", grads.size()));
  }
  RETURN_IF_ERROR(
      CheckFinite(grads, absl::StrCat("dense table '", name_, "' gradient")));
  absl::MutexLock lock(&mu_);
  rule_->Update(RowView{absl::MakeSpan(values_), absl::MakeSpan(state_)},
                grads);
  return absl::OkStatus();
}

absl::Status DenseTable::AddDeltas(absl::Span<const float> deltas) {
  if (static_cast<int64_t>(deltas.size()) != local_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense table '", name_, "' delta push: this server holds ",
                     local_size_, " floats, got ", deltas.size()));
  }
  RETURN_IF_ERROR(
      CheckFinite(deltas, absl::StrCat("dense table '", name_, "' delta")));
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < deltas.size(); ++i) values_[i] += deltas[i];
  return absl::OkStatus();
}

}  // namespace ps

#include "server/table/dense_table.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/table/sparse_table.h"

namespace ps {

namespace {

constexpr char kDenseMagic[] = "PSDENSE1";
constexpr uint32_t kDenseVersion = 1;
constexpr uint64_t kMaxNameBytes = 4096;

}  // namespace

DenseTable::DenseTable(std::string name, const DenseBlocks& blocks, int rank,
                       int64_t local_size, std::unique_ptr<OptimizerRule> rule)
    : name_(std::move(name)),
      blocks_(blocks),
      rank_(rank),
      local_size_(local_size),
      global_size_(blocks.size),
      rule_(std::move(rule)) {}

absl::StatusOr<std::unique_ptr<DenseTable>> DenseTable::Create(
    const std::string& name, const DenseBlocks& blocks, int rank,
    const OptimizerConfig& optimizer,
    const std::function<float(int64_t)>& init) {
  ASSIGN_OR_RETURN(auto rule, OptimizerRule::Create(optimizer));
  const int64_t local = blocks.SizeOn(rank);
  std::unique_ptr<DenseTable> table(
      new DenseTable(name, blocks, rank, local, std::move(rule)));
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

absl::Status DenseTable::Push(absl::Span<const float> grads, int64_t step) {
  if (static_cast<int64_t>(grads.size()) != local_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense table '", name_, "' push: this server holds ",
                     local_size_, " floats, got ", grads.size()));
  }
  RETURN_IF_ERROR(
      CheckUpdate(grads, absl::StrCat("dense table '", name_, "' gradient")));
  absl::MutexLock lock(&mu_);
  rule_->Update(RowView{absl::MakeSpan(values_), absl::MakeSpan(state_)}, grads,
                UpdateContext{step, {}});
  return absl::OkStatus();
}

absl::Status DenseTable::AddDeltas(absl::Span<const float> deltas) {
  if (static_cast<int64_t>(deltas.size()) != local_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense table '", name_, "' delta push: this server holds ",
                     local_size_, " floats, got ", deltas.size()));
  }
  RETURN_IF_ERROR(
      CheckUpdate(deltas, absl::StrCat("dense table '", name_, "' delta")));
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < deltas.size(); ++i) {
    values_[i] = AddClipped(values_[i], deltas[i]);
  }
  return absl::OkStatus();
}

absl::StatusOr<FileDigest> DenseTable::Save(const std::string& path) const {
  std::vector<float> values;
  std::vector<float> state;
  {
    absl::MutexLock lock(&mu_);
    values = values_;
    state = state_;
  }
  // A restore refuses non-finite values: refuse to write them.
  RETURN_IF_ERROR(CheckFinite(
      values, absl::StrCat("dense table '", name_, "' save: weights")));
  RETURN_IF_ERROR(CheckFinite(
      state, absl::StrCat("dense table '", name_, "' save: optimizer state")));
  ASSIGN_OR_RETURN(auto writer,
                   ChecksummedWriter::Create(path, kDenseMagic, kDenseVersion));
  RETURN_IF_ERROR(AppendString(writer.get(), name_));
  for (int64_t v :
       {global_size_, blocks_.block_size,
        static_cast<int64_t>(blocks_.num_servers), static_cast<int64_t>(rank_),
        local_size_, static_cast<int64_t>(state.size())}) {
    RETURN_IF_ERROR(writer->AppendU64(static_cast<uint64_t>(v)));
  }
  RETURN_IF_ERROR(writer->AppendFloats(values));
  RETURN_IF_ERROR(writer->AppendFloats(state));
  return writer->Close();
}

absl::Status DenseTable::LoadResharded(const std::vector<std::string>& paths) {
  const int per_weight = rule_->StateSize(1) - rule_->StateSize(0);
  const int per_table = rule_->StateSize(0);
  std::vector<float> values(global_size_);
  std::vector<float> state(static_cast<size_t>(per_weight) * global_size_);
  std::vector<float> table_state(per_table);
  std::vector<bool> seen(global_size_, false);
  for (size_t r = 0; r < paths.size(); ++r) {
    const std::string& path = paths[r];
    ASSIGN_OR_RETURN(auto reader,
                     ChecksummedReader::Open(path, kDenseMagic, kDenseVersion));
    ASSIGN_OR_RETURN(std::string name, reader->ReadString(kMaxNameBytes));
    if (name != name_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'", path, "' holds dense table '", name, "', not '", name_, "'"));
    }
    uint64_t f[6];
    for (uint64_t& field : f) {
      ASSIGN_OR_RETURN(field, reader->ReadU64());
    }
    const int64_t global = static_cast<int64_t>(f[0]);
    const DenseBlocks old{global, static_cast<int64_t>(f[1]),
                          static_cast<int>(f[2])};
    const int old_rank = static_cast<int>(f[3]);
    const int64_t local = static_cast<int64_t>(f[4]);
    const int64_t state_size = static_cast<int64_t>(f[5]);
    if (global != global_size_ || old.block_size < 1 ||
        old.num_servers != static_cast<int>(paths.size()) ||
        old_rank != static_cast<int>(r) || local != old.SizeOn(old_rank) ||
        state_size != per_weight * local + per_table) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'", path, "': dense table '", name_, "' of ", global,
          " floats, server ", old_rank, " of ", old.num_servers, " holding ",
          local, " with ", state_size, " state floats; expected ", global_size_,
          " floats, server ", r, " of ", paths.size(),
          " and this optimizer's state"));
    }
    std::vector<float> v(local), st(state_size);
    RETURN_IF_ERROR(reader->ReadFloats(absl::MakeSpan(v)));
    RETURN_IF_ERROR(reader->ReadFloats(absl::MakeSpan(st)));
    RETURN_IF_ERROR(reader->Finish());
    int64_t at = 0;
    for (const auto& [begin, end] : old.RangesOf(old_rank)) {
      for (int64_t g = begin; g < end; ++g, ++at) {
        values[g] = v[at];
        seen[g] = true;
        for (int k = 0; k < per_weight; ++k) {
          state[k * global_size_ + g] = st[k * local + at];
        }
      }
    }
    if (r == 0) {
      for (int j = 0; j < per_table; ++j) {
        table_state[j] = st[per_weight * local + j];
      }
    }
  }
  for (int64_t g = 0; g < global_size_; ++g) {
    if (!seen[g]) {
      return absl::DataLossError(absl::StrCat("dense table '", name_,
                                              "': float ", g, " is in none of ",
                                              paths.size(), " files"));
    }
  }
  std::vector<float> my_values(local_size_);
  std::vector<float> my_state(rule_->StateSize(static_cast<int>(local_size_)));
  int64_t at = 0;
  for (const auto& [begin, end] : blocks_.RangesOf(rank_)) {
    for (int64_t g = begin; g < end; ++g, ++at) {
      my_values[at] = values[g];
      for (int k = 0; k < per_weight; ++k) {
        my_state[k * local_size_ + at] = state[k * global_size_ + g];
      }
    }
  }
  for (int j = 0; j < per_table; ++j) {
    my_state[per_weight * local_size_ + j] = table_state[j];
  }
  absl::MutexLock lock(&mu_);
  values_ = std::move(my_values);
  state_ = std::move(my_state);
  return absl::OkStatus();
}

absl::Status DenseTable::Load(const std::string& path) {
  ASSIGN_OR_RETURN(auto reader,
                   ChecksummedReader::Open(path, kDenseMagic, kDenseVersion));
  ASSIGN_OR_RETURN(std::string name, reader->ReadString(kMaxNameBytes));
  if (name != name_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "' holds dense table '", name, "', not '", name_, "'"));
  }
  const int64_t state_size = rule_->StateSize(static_cast<int>(local_size_));
  struct Field {
    const char* what;
    int64_t want;
  };
  const Field fields[] = {
      {"global size", global_size_},
      {"block size", blocks_.block_size},
      {"server count", blocks_.num_servers},
      {"server rank", rank_},
      {"floats on this server", local_size_},
      {"optimizer state floats (another optimizer?)", state_size},
  };
  for (const Field& f : fields) {
    ASSIGN_OR_RETURN(uint64_t got, reader->ReadU64());
    if (static_cast<int64_t>(got) != f.want) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'", path, "': dense table '", name_, "' ", f.what, ": ", f.want,
          " here, ", static_cast<int64_t>(got), " in the file"));
    }
  }
  std::vector<float> values(local_size_);
  std::vector<float> state(state_size);
  RETURN_IF_ERROR(reader->ReadFloats(absl::MakeSpan(values)));
  RETURN_IF_ERROR(reader->ReadFloats(absl::MakeSpan(state)));
  RETURN_IF_ERROR(reader->Finish());
  absl::MutexLock lock(&mu_);
  values_ = std::move(values);
  state_ = std::move(state);
  return absl::OkStatus();
}

}  // namespace ps

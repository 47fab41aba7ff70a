#include "server/dense_table.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/sparse_table.h"

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

absl::StatusOr<FileDigest> DenseTable::Save(const std::string& path) const {
  std::vector<float> values;
  std::vector<float> state;
  {
    absl::MutexLock lock(&mu_);
    values = values_;
    state = state_;
  }
  ASSIGN_OR_RETURN(auto writer,
                   ChecksummedWriter::Create(path, kDenseMagic, kDenseVersion));
  RETURN_IF_ERROR(AppendString(writer.get(), name_));
  for (int64_t v : {global_size_, blocks_.block_size,
                    static_cast<int64_t>(blocks_.num_servers),
                    static_cast<int64_t>(rank_), local_size_,
                    static_cast<int64_t>(state.size())}) {
    RETURN_IF_ERROR(writer->AppendU64(static_cast<uint64_t>(v)));
  }
  RETURN_IF_ERROR(writer->AppendFloats(values));
  RETURN_IF_ERROR(writer->AppendFloats(state));
  return writer->Close();
}

absl::Status DenseTable::Load(const std::string& path) {
  ASSIGN_OR_RETURN(auto reader,
                   ChecksummedReader::Open(path, kDenseMagic, kDenseVersion));
  ASSIGN_OR_RETURN(std::string name, reader->ReadString(kMaxNameBytes));
  if (name != name_) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' holds dense table '", name,
                     "', not '", name_, "'"));
  }
  const int64_t state_size =
      rule_->StateSize(static_cast<int>(local_size_));
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

// Server-side optimizer rules, applied per row on push.
//
// The update path is written once (SparseTable / DenseTable call Update on a
// RowView); each rule supplies only its math and declares how many floats of
// state it keeps per row. Rules are immutable after creation and thread-safe;
// callers serialize updates of one row.
#ifndef PS_SERVER_OPTIMIZER_H_
#define PS_SERVER_OPTIMIZER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proto/config.pb.h"

namespace ps {

// A typed view of one row: its weights and its optimizer state.
struct RowView {
  absl::Span<float> weights;
  absl::Span<float> state;
};

class OptimizerRule {
 public:
  // InvalidArgument for an unknown type or bad hyper-parameters.
  static absl::StatusOr<std::unique_ptr<OptimizerRule>> Create(
      const OptimizerConfig& config);
  virtual ~OptimizerRule() = default;

  virtual const char* Name() const = 0;
  // Floats of state per row of `dim` weights.
  virtual int StateSize(int dim) const = 0;
  // Sets the state of a new row.
  virtual void InitState(absl::Span<float> state) const = 0;
  // Applies gradient `grad` (same size as row.weights) to the row.
  // REQUIRES: grad finite, sizes as declared.
  virtual void Update(RowView row, absl::Span<const float> grad) const = 0;
};

}  // namespace ps

#endif  // PS_SERVER_OPTIMIZER_H_

// Server-side optimizer rules, applied to rows on push.
//
// The update path is written once (optimizer.cc): it loads a row's weights,
// state and gradient a few lanes at a time, hands them to the rule's math
// (common/optimizer_math.h, shared with the workers' backends) and
// stores the results; UpdateRows also prefetches rows ahead so that their
// cache misses overlap. Each rule supplies only its math (a few lines valid
// for a float or a vector of floats), its name, how many floats of state it
// keeps per weight and per row, and, for per-row state, a step run once per
// row update before its weights (Adam advances its beta powers there and
// computes the row's step size). Rules: SGD, Adagrad, Adam, FTRL-Proximal
// (formulas in proto/config.proto, OptimizerConfig). Rules are immutable
// after creation and thread-safe; callers serialize updates of one row.
//
// Row layout. A row's state is `StateSize(dim)` = S * dim + R floats, S
// values per weight then R values for the whole row: for weight i, its state
// value k (k < S) sits at state[k * dim + i]; the row's state value j (j < R)
// at state[S * dim + j]. SGD: S = 0, R = 0; Adagrad: S = 1 (g2), R = 0;
// Adam: S = 2 (m, v), R = 2 (beta1^t, beta2^t, t = the row's update count);
// FTRL: S = 2 (z, n), R = 0. UpdateRows works on packed rows,
// [weights (dim) | state], as SparseTable stores them. A dense table is one
// row (its whole local vector).
//
// Results are bit-identical whichever path (Update, UpdateRows, vector lanes
// or scalar tail) applies a gradient.
#ifndef PS_COMMON_OPTIMIZER_H_
#define PS_COMMON_OPTIMIZER_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/optimizer_math.h"
#include "proto/config.pb.h"

namespace ps {

// A typed view of one row: its weights and its optimizer state.
struct RowView {
  absl::Span<float> weights;
  absl::Span<float> state;
};

// What an update knows besides its gradients.
struct UpdateContext {
  // The step the update belongs to, which the learning-rate schedule goes by
  // (OptimizerConfig, "Learning-rate schedule").
  int64_t step = 0;
  // l2_by_frequency: how often each row's key occurred, one per row of the
  // call (Update: counts[0]); empty for 1 each. Ignored without
  // l2_by_frequency.
  absl::Span<const float> counts;
};

class OptimizerRule {
 public:
  // InvalidArgument naming the field and its value for an unknown type or a
  // hyper-parameter out of range: learning_rate must be finite and > 0,
  // weight_bound and l2 finite and >= 0; Adagrad's epsilon finite and > 0
  // and its initial_accumulator finite and >= 0; Adam's beta1 and beta2 in
  // [0, 1) and its epsilon finite and > 0; FTRL's ftrl_beta and l1 finite and
  // >= 0. The schedule (every rule): warmup_steps >= 0; with a decay,
  // decay_steps > 0 and min_learning_rate in [0, learning_rate] (> 0 for
  // FTRL); EXPONENTIAL's decay_rate in (0, 1]. l2_by_frequency needs l2 > 0.
  // Fields a rule does not use are not checked.
  static absl::StatusOr<std::unique_ptr<OptimizerRule>> Create(
      const OptimizerConfig& config);
  virtual ~OptimizerRule() = default;

  virtual const char* Name() const = 0;
  // Floats of state per row of `dim` weights (see "Row layout").
  virtual int StateSize(int dim) const = 0;
  // Sets the state of a new row.
  // REQUIRES: state.size() == StateSize(dim) for the row's dim.
  virtual void InitState(absl::Span<float> state) const = 0;
  // Applies gradient `grad` (same size as row.weights) to the row, at the
  // learning rate of context.step (and, with l2_by_frequency, the l2 of
  // context.counts[0]).
  // REQUIRES: grad finite, row.state.size() == StateSize(grad.size()).
  virtual void Update(RowView row, absl::Span<const float> grad,
                      const UpdateContext& context) const = 0;
  // Applies grads[i] (dim floats) to the packed row rows[i] (dim weights,
  // then StateSize(dim) floats of state), for i = 0, 1, ... in order: a row
  // listed several times receives its gradients in turn. One virtual call
  // per batch; the rows are prefetched a few ahead. Learning rate as
  // Update's; row i's l2 by context.counts[i].
  // REQUIRES: rows.size() == grads.size(), gradients finite, no row
  // overlaps a gradient, and context.counts empty or one per row.
  virtual void UpdateRows(int dim, absl::Span<float* const> rows,
                          absl::Span<const float* const> grads,
                          const UpdateContext& context) const = 0;

  // The above at step 0 with counts of 1: for rules without a schedule or
  // l2_by_frequency, and tests.
  void Update(RowView row, absl::Span<const float> grad) const {
    Update(row, grad, UpdateContext{});
  }
  void UpdateRows(int dim, absl::Span<float* const> rows,
                  absl::Span<const float* const> grads) const {
    UpdateRows(dim, rows, grads, UpdateContext{});
  }
};

// The rule of `config` as plain values (common/optimizer_math.h), for code
// that runs the rule's math itself, such as a backend's DenseOptimizerStep.
// Errors as OptimizerRule::Create.
absl::StatusOr<optimizer_math::Hyper> OptimizerHyper(
    const OptimizerConfig& config);

// Memory hints shared by UpdateRows and SparseTable's row loops.

// Asks the CPU to bring the cache lines of [p, p + bytes) in, for writing
// when kForWrite (PREFETCHW where the target has it, else a plain prefetch).
// A hint only: never faults.
template <bool kForWrite>
inline void PrefetchBytes(const void* p, size_t bytes) {
  constexpr size_t kLine = 64;
  const char* c = static_cast<const char*>(p);
  // From the line holding the first byte to the line holding the last.
  const char* end = c + bytes;
  c -= reinterpret_cast<uintptr_t>(c) % kLine;
  for (; c < end; c += kLine) __builtin_prefetch(c, kForWrite ? 1 : 0, 3);
}

// How many rows of `row_bytes` to prefetch ahead of the one being worked on:
// about kPrefetchBytes of rows (enough in flight to cover a memory latency,
// few enough not to run out of fill buffers), between 2 and 16 rows.
inline size_t PrefetchDistance(size_t row_bytes) {
  constexpr size_t kPrefetchBytes = 2048;
  const size_t rows = kPrefetchBytes / std::max<size_t>(row_bytes, 1);
  return std::clamp<size_t>(rows, 2, 16);
}

}  // namespace ps

#endif  // PS_COMMON_OPTIMIZER_H_

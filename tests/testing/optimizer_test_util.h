// Helpers shared by the optimizer rule tests: an SGD config, a rule that must
// build, and a row of weights with its rule-initialized state.
#ifndef PS_TESTS_TESTING_OPTIMIZER_TEST_UTIL_H_
#define PS_TESTS_TESTING_OPTIMIZER_TEST_UTIL_H_

#include <memory>
#include <utility>
#include <vector>

#include "common/optimizer.h"
#include "gtest/gtest.h"

namespace ps {

// SGD at rate `lr`, weights clipped to [-bound, bound] (0: none).
inline OptimizerConfig Sgd(float lr, float bound = 0.0f) {
  OptimizerConfig c;
  c.set_type(OptimizerConfig::SGD);
  c.set_learning_rate(lr);
  c.set_weight_bound(bound);
  return c;
}

inline std::unique_ptr<OptimizerRule> MustCreate(const OptimizerConfig& c) {
  auto rule = OptimizerRule::Create(c);
  EXPECT_TRUE(rule.ok()) << rule.status();
  return rule.ok() ? std::move(rule).value() : nullptr;
}

// A row of weights and its state, initialized by the rule.
struct Row {
  Row(const OptimizerRule& rule, std::vector<float> w)
      : weights(std::move(w)),
        state(rule.StateSize(static_cast<int>(weights.size()))) {
    rule.InitState(absl::MakeSpan(state));
  }
  RowView view() {
    return RowView{absl::MakeSpan(weights), absl::MakeSpan(state)};
  }
  std::vector<float> weights;
  std::vector<float> state;
};

}  // namespace ps

#endif  // PS_TESTS_TESTING_OPTIMIZER_TEST_UTIL_H_

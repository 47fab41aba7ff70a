#include "worker/data/slot_parser.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "glog/logging.h"
#include "worker/data/parser_util.h"

namespace ps {
namespace {

bool IsSeparator(char c) { return c == ' ' || c == '\t'; }

struct DenseToken {
  int index;
  float value;
  int token;  // 1-based position in the line
  absl::string_view text;
};

// Reusable per-thread storage, so parsing a line allocates nothing once warm.
struct Scratch {
  std::vector<std::pair<uint32_t, uint64_t>> features;  // (slot, key)
  std::vector<DenseToken> dense;
};

absl::Status TokenError(int token, absl::string_view text,
                        absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("token ", token, " ", QuoteField(text), ": ", problem));
}

}  // namespace

absl::Status SlotParser::Append(absl::string_view line, Batch* batch) const {
  CHECK_EQ(batch->num_slots, options_.num_slots);
  CHECK_EQ(batch->num_dense, options_.num_dense);
  line = StripCarriageReturn(line);

  thread_local Scratch scratch;
  scratch.features.clear();
  scratch.dense.clear();

  // Parse everything before touching `batch`, so a bad line leaves it as is.
  float label = 0;
  int token = 0;
  size_t pos = 0;
  while (true) {
    while (pos < line.size() && IsSeparator(line[pos])) ++pos;
    if (pos == line.size()) break;
    size_t end = pos;
    while (end < line.size() && !IsSeparator(line[end])) ++end;
    const absl::string_view text = line.substr(pos, end - pos);
    pos = end;
    ++token;
    if (token - 1 > options_.max_features_per_line) {
      return absl::InvalidArgumentError(
          absl::StrCat("more than data.max_features_per_line = ",
                       options_.max_features_per_line, " features (token ",
                       token, " ", QuoteField(text), ")"));
    }
    if (token == 1) {
      if (text != "0" && text != "1") {
        return absl::InvalidArgumentError(
            absl::StrCat("label ", QuoteField(text), " is not 0 or 1"));
      }
      label = text == "1" ? 1.0f : 0.0f;
      continue;
    }
    const size_t colon = text.find(':');
    if (colon == absl::string_view::npos) {
      return TokenError(token, text, "is not slot:key or d<index>:value");
    }
    const absl::string_view left = text.substr(0, colon);
    const absl::string_view right = text.substr(colon + 1);
    if (!left.empty() && left[0] == 'd') {
      uint64_t index = 0;
      if (!ParseDecimalUint64(left.substr(1), &index)) {
        return TokenError(
            token, text,
            absl::StrCat("dense index ", QuoteField(left.substr(1)),
                         " is not a decimal integer"));
      }
      if (index >= static_cast<uint64_t>(options_.num_dense)) {
        return TokenError(
            token, text,
            absl::StrCat("dense index ", index, " is not in [0, num_dense = ",
                         options_.num_dense, ")"));
      }
      float value = 0;
      if (!ParseFiniteFloat(right, &value)) {
        return TokenError(token, text,
                          absl::StrCat("value ", QuoteField(right),
                                       " is not a finite number"));
      }
      scratch.dense.push_back({static_cast<int>(index), value, token, text});
      continue;
    }
    uint64_t slot = 0;
    if (!ParseDecimalUint64(left, &slot)) {
      return TokenError(
          token, text,
          absl::StrCat("slot ", QuoteField(left), " is not a decimal integer"));
    }
    if (slot >= static_cast<uint64_t>(options_.num_slots)) {
      return TokenError(
          token, text,
          absl::StrCat("slot ", slot,
                       " is not in [0, num_slots = ", options_.num_slots, ")"));
    }
    uint64_t key = 0;
    if (!ParseDecimalUint64(right, &key)) {
      return TokenError(token, text,
                        absl::StrCat("key ", QuoteField(right),
                                     " is not a decimal integer in [0, 2^64)"));
    }
    scratch.features.emplace_back(static_cast<uint32_t>(slot), key);
  }
  if (token == 0) return absl::InvalidArgumentError("empty line");
  if (scratch.dense.size() > 1) {
    std::sort(scratch.dense.begin(), scratch.dense.end(),
              [](const DenseToken& a, const DenseToken& b) {
                return a.index != b.index ? a.index < b.index
                                          : a.token < b.token;
              });
    for (size_t i = 1; i < scratch.dense.size(); ++i) {
      const DenseToken& d = scratch.dense[i];
      if (d.index == scratch.dense[i - 1].index) {
        return TokenError(d.token, d.text,
                          absl::StrCat("dense index ", d.index,
                                       " was given before, in token ",
                                       scratch.dense[i - 1].token));
      }
    }
  }

  // Group keys by slot, keeping token order inside a slot.
  auto by_slot = [](const std::pair<uint32_t, uint64_t>& a,
                    const std::pair<uint32_t, uint64_t>& b) {
    return a.first < b.first;
  };
  if (!std::is_sorted(scratch.features.begin(), scratch.features.end(),
                      by_slot)) {
    std::stable_sort(scratch.features.begin(), scratch.features.end(), by_slot);
  }

  batch->labels.push_back(label);
  const size_t dense_at = batch->dense.size();
  batch->dense.resize(dense_at + options_.num_dense, 0.0f);
  for (const DenseToken& d : scratch.dense) {
    batch->dense[dense_at + d.index] = d.value;
  }
  size_t next = 0;
  for (int s = 0; s < options_.num_slots; ++s) {
    for (; next < scratch.features.size() &&
           scratch.features[next].first == static_cast<uint32_t>(s);
         ++next) {
      batch->keys.push_back(
          FeatureKey(options_.hash_seed, s, scratch.features[next].second));
    }
    batch->offsets.push_back(static_cast<uint32_t>(batch->keys.size()));
  }
  return absl::OkStatus();
}

}  // namespace ps

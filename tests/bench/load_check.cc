#include "tests/bench/load_check.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/hash.h"

namespace ps {
namespace load {

namespace {

void Note(Conservation* c, const std::string& what) {
  if (c->first_mismatch.empty()) c->first_mismatch = what;
}

}  // namespace

Conservation CheckConservation(const std::vector<PsHandler*>& handlers,
                               const KeyUniverse& universe, int dim,
                               float learning_rate,
                               const std::vector<ClientResult>& clients) {
  Conservation c;
  const int num_servers = static_cast<int>(handlers.size());
  std::vector<int64_t> sum(universe.size(), 0);
  std::vector<int64_t> abs_sum(universe.size(), 0);
  for (const ClientResult& r : clients) {
    for (int64_t i = 0; i < universe.size(); ++i) {
      sum[i] += r.k_sum[i];
      abs_sum[i] += r.k_abs[i];
    }
  }
  for (int64_t i = 0; i < universe.size(); ++i) {
    // Every partial sum at dim d is a multiple of 2^-10 of magnitude at most
    // abs_sum * dim * 2^-10: exact while abs_sum * dim <= 2^24.
    if (abs_sum[i] * dim > (int64_t{1} << 24)) c.exact = false;
  }
  std::vector<bool> seen(universe.size(), false);
  for (int s = 0; s < num_servers; ++s) {
    auto rows = handlers[s]->DumpSparse(0);
    if (!rows.ok()) {
      ++c.mismatches;
      Note(&c, absl::StrCat("server ", s, ": ", rows.status().ToString()));
      continue;
    }
    for (const auto& [key, row] : *rows) {
      ++c.rows;
      if (ServerForKey(key, num_servers) != s) {
        ++c.misplaced;
        Note(&c, absl::StrCat("key ", key, " on server ", s));
      }
      const int64_t i = universe.IndexOf(key);
      if (i < 0) {
        ++c.other_rows;
      } else {
        seen[i] = true;
      }
      if (static_cast<int>(row.size()) != dim) {
        ++c.mismatches;
        Note(&c, absl::StrCat("key ", key, ": row of ", row.size(),
                              " floats, expected ", dim));
        continue;
      }
      for (int d = 0; d < dim; ++d) {
        const double want = i < 0 ? 0.0
                                  : -static_cast<double>(learning_rate) *
                                        static_cast<double>(sum[i] * (d + 1)) *
                                        kGradUnit;
        if (static_cast<double>(row[d]) != want) {
          ++c.mismatches;
          Note(&c, absl::StrCat("key ", key, " (rank ", i, ") dim ", d,
                                ": server ", s, " holds ", row[d],
                                ", the pushes sum to ", want));
          break;
        }
      }
    }
  }
  for (int64_t i = 0; i < universe.size(); ++i) {
    if (abs_sum[i] == 0) continue;
    ++c.keys_pushed;
    if (!seen[i]) {
      ++c.missing;
      Note(&c, absl::StrCat("key ", universe.key(i), " (rank ", i,
                            ") was pushed but has no row"));
    }
  }
  for (int s = 0; s < num_servers; ++s) {
    const std::map<int, PushCounts> counts = handlers[s]->AllPushCounts();
    for (int w = 0; w < static_cast<int>(clients.size()); ++w) {
      auto it = counts.find(w);
      const int64_t applied = it == counts.end() ? 0 : it->second.applied;
      const int64_t repeats = it == counts.end() ? 0 : it->second.duplicates;
      if (applied != clients[w].applied[s] || repeats != 0) {
        c.ledger_ok = false;
        Note(&c, absl::StrCat("server ", s, " applied ", applied, " and ",
                              repeats, " repeats of client ", w,
                              "'s pushes; it acknowledged ",
                              clients[w].applied[s]));
      }
    }
  }
  return c;
}

}  // namespace load
}  // namespace ps

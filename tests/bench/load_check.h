// The conservation check of the load benchmark (tests/bench/load_bench.cc):
// after the clients stopped, every row the servers hold must be exactly
// what the gradients the clients pushed (and the servers acknowledged) make
// of a zero row under SGD (see load_honest.h for why the sums are exact),
// and each server's push ledger must count exactly the pushes acknowledged
// to each client.
#ifndef PS_TESTS_BENCH_LOAD_CHECK_H_
#define PS_TESTS_BENCH_LOAD_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/service/ps_handler.h"
#include "tests/bench/load_honest.h"

namespace ps {
namespace load {

struct Conservation {
  int64_t rows = 0;         // rows on all servers
  int64_t keys_pushed = 0;  // universe keys with a nonzero gradient pushed
  int64_t mismatches = 0;   // rows not equal to -lr * (sum of gradients)
  int64_t missing = 0;      // keys pushed that have no row
  int64_t misplaced = 0;    // rows on a server that does not own the key
  // Rows of keys outside the universe (pulls of the garbage client create
  // them); each must be zero, or it counts as a mismatch.
  int64_t other_rows = 0;
  // Every key's sum of |gradient| fits float's exact range (else the
  // comparison is not meaningful and the check fails).
  bool exact = true;
  // Every server's ledger counts, per client, the pushes acknowledged to it
  // and no repeat.
  bool ledger_ok = true;
  std::string first_mismatch;  // the first problem found, for the report

  bool ok() const {
    return mismatches == 0 && missing == 0 && misplaced == 0 && exact &&
           ledger_ok;
  }
};

// Checks `handlers` (by server rank; no request in flight) against what
// `clients` (by worker rank) pushed to sparse table 0, of width `dim`,
// trained by SGD with `learning_rate` from zero rows.
Conservation CheckConservation(const std::vector<PsHandler*>& handlers,
                               const KeyUniverse& universe, int dim,
                               float learning_rate,
                               const std::vector<ClientResult>& clients);

}  // namespace load
}  // namespace ps

#endif  // PS_TESTS_BENCH_LOAD_CHECK_H_

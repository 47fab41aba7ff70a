// The server both request-handler fuzz targets (ps_pull_fuzzer.cc,
// ps_push_fuzzer.cc) send their requests to: a PsHandler
// (server/service/ps_handler.h) of kHandlerJob (fuzz_jobs.h). One server:
// every key is its own, so requests get past the ownership check to the
// tables.
//
// The handler is made once (it starts a thread pool); ResetHandler gives it
// fresh tables, an empty push ledger and a new incarnation (Reload), so
// every run starts from the same state and a crash replays from its input.
#ifndef PS_TESTS_FUZZ_HANDLER_FUZZ_H_
#define PS_TESTS_FUZZ_HANDLER_FUZZ_H_

#include <memory>

#include "common/config.h"
#include "glog/logging.h"
#include "server/service/ps_handler.h"
#include "tests/fuzz/fuzz_jobs.h"
#include "tests/fuzz/fuzz_util.h"

namespace ps {
namespace fuzz {

inline PsHandler& Handler() {
  static PsHandler* handler = [] {
    auto made = PsHandler::Create(ParsedJob(kHandlerJob), 0);
    CHECK(made.ok()) << made.status();
    return made->release();
  }();
  return *handler;
}

inline void ResetHandler() {
  const absl::Status reloaded = Handler().Reload(nullptr);
  CHECK(reloaded.ok()) << reloaded;
}

}  // namespace fuzz
}  // namespace ps

#endif  // PS_TESTS_FUZZ_HANDLER_FUZZ_H_

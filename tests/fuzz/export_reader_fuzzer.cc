// Fuzz target: model exports (common/export_format.h), as the worker's
// predict path loads them.
//
// Each input is an export file as it is (LoadFile), then the payload of a
// well-formed export file (so the bytes get past the checksum), loaded
// alone (LoadFile) and applied as a DELTA (ApplyDelta) to a FULL export of
// step 5 written once by ExportWriter (fuzz::WriteBaseExport). Errors must
// have the documented codes; a loaded model must answer for its keys, rows
// and dense vector consistently; a refused delta must leave the model as it
// was.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/export_format.h"
#include "common/model_spec.h"
#include "glog/logging.h"
#include "proto/config.pb.h"
#include "tests/fuzz/fuzz_jobs.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

std::string* base_path;

void CheckError(const absl::Status& status) {
  CHECK(absl::IsDataLoss(status) || absl::IsFailedPrecondition(status) ||
        absl::IsInvalidArgument(status))
      << status;
}

void CheckModel(const ps::ExportedModel& model) {
  CHECK_EQ(static_cast<int64_t>(model.dense().size()),
           ps::MakeModelSpec(model.config()).dense_size);
  for (int t = 0; t < model.config().sparse_tables_size(); ++t) {
    const std::vector<uint64_t> keys = model.Keys(t);
    CHECK_EQ(static_cast<int64_t>(keys.size()), model.num_rows(t));
    const int dim = model.config().sparse_tables(t).dim();
    std::vector<uint64_t> asked = keys;
    asked.push_back(0x5eed);
    std::vector<float> out(asked.size() * dim);
    const int64_t found = model.Lookup(t, asked, absl::MakeSpan(out));
    CHECK_GE(found, static_cast<int64_t>(keys.size()));
    for (uint64_t key : keys) CHECK(model.Row(t, key) != nullptr);
  }
}

void Load(const std::string& path) {
  auto model = ps::ExportedModel::LoadFile(path);
  if (!model.ok()) {
    CheckError(model.status());
    return;
  }
  CheckModel(**model);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  base_path = new std::string(ps::ExportPath(ps::fuzz::ScratchDir(), 5));
  ps::fuzz::WriteBaseExport(*base_path);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string path = ps::fuzz::ScratchPath("fuzzed.psx");
  ps::fuzz::WriteFileOrDie(path, bytes);
  Load(path);

  ps::fuzz::WriteFileOrDie(path,
                           ps::fuzz::ChecksummedImage("PSEXPORT", 1, bytes));
  Load(path);
  auto base = ps::ExportedModel::LoadFile(*base_path);
  CHECK(base.ok()) << base.status();
  const absl::Status applied = (*base)->ApplyDelta(path);
  if (!applied.ok()) {
    CheckError(applied);
    CHECK_EQ((*base)->step(), 5);
    CHECK_EQ((*base)->num_rows(0), 3);
  }
  CheckModel(**base);
  return 0;
}

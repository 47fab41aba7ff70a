// Backend::CreateCuda for builds without nvcc.
#include "kernels/backend.h"

namespace ps {

absl::StatusOr<std::unique_ptr<Backend>> Backend::CreateCuda(
    const BackendOptions& options) {
  return absl::UnavailableError(
      "CUDA backend: this binary was built without CUDA (no nvcc at build "
      "time, or -DPS_ENABLE_CUDA=OFF); rebuild with the CUDA toolkit or use "
      "the CPU backend");
}

}  // namespace ps

#include "kernels/backend_select.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/blas_core.h"
#include "kernels/device.h"

namespace ps {

namespace {

absl::StatusOr<SelectedBackend> Cpu(const BackendOptions& options,
                                    std::string why) {
  auto backend = Backend::CreateCpu(options);
  if (!backend.ok()) return backend.status();
  // Which kernels OpenBLAS runs (kernels/cpu/blas_core.h) matters 4-6x.
  return SelectedBackend{
      std::move(backend).value(),
      absl::StrCat(why, "; OpenBLAS ", BlasCoreName(), " kernels")};
}

}  // namespace

absl::StatusOr<SelectedBackend> SelectBackend(BackendKind kind,
                                              const BackendOptions& options) {
  switch (kind) {
    case BackendKind::kCpu:
      return Cpu(options, "backend CPU: cpu (as configured)");
    case BackendKind::kCuda: {
      auto backend = Backend::CreateCuda(options);
      if (!backend.ok()) {
        return absl::Status(backend.status().code(),
                            absl::StrCat("training.backend is CUDA: ",
                                         backend.status().message()));
      }
      return SelectedBackend{
          std::move(backend).value(),
          absl::StrCat("backend CUDA: cuda on GPU ", options.device, " (",
                       DescribeAccelerators(), ")")};
    }
    case BackendKind::kAuto:
      break;
  }
  if (!BuiltWithCuda()) {
    return Cpu(options, absl::StrCat("backend AUTO: cpu (",
                                     DescribeAccelerators(), ")"));
  }
  auto gpus = ListGpus();
  if (!gpus.ok() || gpus->empty()) {
    return Cpu(options,
               absl::StrCat("backend AUTO: cpu, no usable GPU (",
                            gpus.ok() ? DescribeAccelerators()
                                      : std::string(gpus.status().message()),
                            ")"));
  }
  auto backend = Backend::CreateCuda(options);
  if (!backend.ok()) {
    return Cpu(options, absl::StrCat("backend AUTO: cpu, the CUDA backend "
                                     "failed to start: ",
                                     backend.status().message()));
  }
  return SelectedBackend{
      std::move(backend).value(),
      absl::StrCat("backend AUTO: cuda on GPU ", options.device, " (",
                   DescribeAccelerators(), ")")};
}

}  // namespace ps

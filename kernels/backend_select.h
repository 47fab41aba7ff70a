// Picks the compute backend a process uses: the CPU backend, the CUDA
// backend, or (AUTO) the CUDA backend when this binary has CUDA and a usable
// GPU, else the CPU backend. Thread-safe (each call creates a new backend).
#ifndef PS_KERNELS_BACKEND_SELECT_H_
#define PS_KERNELS_BACKEND_SELECT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace ps {

enum class BackendKind { kAuto, kCpu, kCuda };

struct SelectedBackend {
  std::unique_ptr<Backend> backend;
  // One line for the log: what was asked, what was chosen and why, e.g.
  // "backend AUTO: cuda on GPU 0 (CUDA built, 1 GPU(s): 0: NVIDIA H100 ...)".
  std::string description;
};

// kCpu: Backend::CreateCpu. kCuda: Backend::CreateCuda, whose errors are
// returned as they are: Unavailable when the binary was built without CUDA,
// FailedPrecondition when there is no usable GPU options.device (each
// message names the problem). kAuto: the CUDA backend when a GPU is usable;
// the CPU backend when none is, or when creating the CUDA backend fails
// (the description then says why).
absl::StatusOr<SelectedBackend> SelectBackend(BackendKind kind,
                                              const BackendOptions& options);

}  // namespace ps

#endif  // PS_KERNELS_BACKEND_SELECT_H_

// Started by blas_core_test: does what ps_worker does first, then prints the
// OpenBLAS core it runs and OPENBLAS_CORETYPE.
#include <cstdio>
#include <cstdlib>

#include "kernels/cpu/blas_core.h"

int main(int argc, char** argv) {
  ps::RestartWithBetterBlasCore(argv);
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  std::printf("core=%s env=%s args=%d\n", ps::BlasCoreName().c_str(),
              env != nullptr ? env : "(unset)", argc);
  return 0;
}

// Started by blas_core_test: does what ps_worker does first, then prints the
// OpenBLAS core it runs and OPENBLAS_CORETYPE. With --no-restart as its only
// argument it skips the restart and prints OpenBLAS's own choice and the
// core ps_worker would restart with ("better=", empty when the choice
// stands); scripts/test.sh picks the second core type to test with from
// them.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/blas_core.h"

int main(int argc, char** argv) {
  const bool no_restart =
      argc == 2 && std::strcmp(argv[1], "--no-restart") == 0;
  if (!no_restart) ps::RestartWithBetterBlasCore(argv);
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  std::printf("core=%s env=%s args=%d\n", ps::BlasCoreName().c_str(),
              env != nullptr ? env : "(unset)", argc);
  if (no_restart) {
    const ps::CpuVectorSupport cpu = ps::DetectCpuVectorSupport();
    std::printf("better=%s\n",
                ps::BetterBlasCore(ps::BlasCoreName(), cpu.avx512, cpu.avx2_fma)
                    .c_str());
  }
  return 0;
}

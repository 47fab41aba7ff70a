// OpenBLAS's kernels for this CPU.
//
// A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernels once, when the library
// loads, from the CPU model it recognizes. OpenBLAS 0.3.21 (Debian 12) does
// not recognize many current CPUs, virtual ones above all (they report a
// generic "Intel Xeon Processor"), and then falls back to its Prescott (SSE3)
// kernels: measured here, 4-6x slower at the model's GEMM shapes than its
// SkylakeX (AVX-512) kernels on the same CPU. The only way to choose is the
// environment variable OPENBLAS_CORETYPE, read when the library loads, so a
// process can only fix the choice by starting again.
#ifndef PS_KERNELS_CPU_BLAS_CORE_H_
#define PS_KERNELS_CPU_BLAS_CORE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace ps {

// The core OpenBLAS runs (openblas_get_corename), e.g. "SkylakeX".
std::string BlasCoreName();

// What this CPU (and OS) support of what OpenBLAS's cores need: AVX-512 F,
// CD, BW, DQ and VL (SkylakeX); AVX2 and FMA (Haswell).
struct CpuVectorSupport {
  bool avx512 = false;
  bool avx2_fma = false;
};
CpuVectorSupport DetectCpuVectorSupport();

// The OPENBLAS_CORETYPE to run instead of the core OpenBLAS chose
// (`chosen`, as openblas_get_corename says it), given what the CPU
// supports: "SkylakeX" with AVX-512 (F, CD, BW, DQ, VL), else "Haswell" with
// AVX2 and FMA, when `chosen` is a core without AVX (or, for Haswell,
// Sandybridge's AVX without AVX2). Empty when the choice stands.
std::string BetterBlasCore(absl::string_view chosen, bool avx512,
                           bool avx2_fma);

// Called first in main (before any thread or file is opened): when
// OPENBLAS_CORETYPE is unset and BetterBlasCore names a core for this CPU,
// sets it and executes this program again with `argv`, saying so on
// stderr. Returns when there is nothing to do, and when the program was
// started through an explicit dynamic loader (ld-linux... prog: executing
// /proc/self/exe would lose the loader's arguments) or exec failed, after a
// line on stderr naming the variable to set.
void RestartWithBetterBlasCore(char** argv);

}  // namespace ps

#endif  // PS_KERNELS_CPU_BLAS_CORE_H_

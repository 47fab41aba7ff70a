// OpenBLAS's kernels for this CPU.
//
// A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernels once, when the library
// loads, from the CPUID family and model numbers it knows. OpenBLAS 0.3.21
// (Debian 12) does not know those of many current CPUs (this machine's:
// family 6, model 207) and then falls back to its Prescott (SSE3) kernels:
// measured here, 4-6x slower at the model's GEMM shapes than its SkylakeX
// (AVX-512) kernels on the same CPU. The only way to choose is the
// environment variable OPENBLAS_CORETYPE, read when the library loads, so a
// process can only fix the choice by starting again.
#ifndef PS_KERNELS_CPU_BLAS_CORE_H_
#define PS_KERNELS_CPU_BLAS_CORE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace ps {

// The core OpenBLAS runs (openblas_get_corename), e.g. "SkylakeX".
std::string BlasCoreName();

// What this CPU (and OS) support of what OpenBLAS's cores need: AVX2 and FMA
// (Haswell); those and AVX-512 F, CD, BW, DQ and VL (SkylakeX). All false
// off x86.
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

// Called first in main, before flags are parsed (argv as the program got
// it) and before the program opens anything of its own (OpenBLAS's threads
// already run; exec ends them): when OPENBLAS_CORETYPE is unset and
// BetterBlasCore names a core for this CPU, sets it and executes this
// program again with `argv` (same process id), saying so on stderr. Returns
// when there is nothing to do; and, after a line on stderr naming the
// variable to set, when the program was started through an explicit dynamic
// loader (ld-linux... prog: executing /proc/self/exe would lose the loader's
// arguments), when /proc/self/exe cannot be read, or when exec fails.
// Setting OPENBLAS_CORETYPE (to any value) avoids the restart, e.g. under a
// debugger.
void RestartWithBetterBlasCore(char** argv);

}  // namespace ps

#endif  // PS_KERNELS_CPU_BLAS_CORE_H_

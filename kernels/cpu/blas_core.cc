#include "kernels/cpu/blas_core.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"

namespace ps {
namespace {

// OpenBLAS x86 cores without AVX.
constexpr const char* kPreAvxCores[] = {
    "Katmai",       "Coppermine", "Northwood", "Prescott", "Banias", "Core2",
    "Penryn",       "Dunnington", "Nehalem",   "Atom",     "Athlon", "Opteron",
    "Opteron_SSE3", "Barcelona",  "Bobcat",    "Nano"};

bool IsPreAvx(absl::string_view core) {
  for (const char* name : kPreAvxCores) {
    if (core == name) return true;
  }
  return false;
}

}  // namespace

std::string BlasCoreName() {
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "";
}

CpuVectorSupport DetectCpuVectorSupport() {
  CpuVectorSupport s;
#if defined(__x86_64__) || defined(__i386__)
  // libgcc also checks that the OS enabled the registers (XGETBV).
  __builtin_cpu_init();
  s.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // OpenBLAS's SkylakeX kernels use AVX2 and FMA too.
  s.avx512 = s.avx2_fma && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512cd") &&
             __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
#endif
  return s;
}

std::string BetterBlasCore(absl::string_view chosen, bool avx512,
                           bool avx2_fma) {
  if (IsPreAvx(chosen)) {
    if (avx512) return "SkylakeX";
    if (avx2_fma) return "Haswell";
    return "";
  }
  if (chosen == "Sandybridge" && (avx512 || avx2_fma)) {
    return avx512 ? "SkylakeX" : "Haswell";
  }
  return "";
}

void RestartWithBetterBlasCore(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // chosen already
  const char* chosen = openblas_get_corename();
  if (chosen == nullptr) return;
  const CpuVectorSupport cpu = DetectCpuVectorSupport();
  const std::string core = BetterBlasCore(chosen, cpu.avx512, cpu.avx2_fma);
  if (core.empty()) return;
  const char* program = argv[0] != nullptr ? argv[0] : "this program";
  const char* has = cpu.avx512 ? "AVX-512" : "AVX2";
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  const char* base = nullptr;
  if (n > 0) {
    exe[n] = '\0';
    base = std::strrchr(exe, '/');
    base = base != nullptr ? base + 1 : exe;
  }
  if (base == nullptr || absl::StartsWith(base, "ld-")) {
    std::fprintf(stderr,
                 "%s: OpenBLAS runs its %s kernels on a CPU with %s; set "
                 "OPENBLAS_CORETYPE=%s for faster ones\n",
                 program, chosen, has, core.c_str());
    return;
  }
  std::fprintf(stderr,
               "%s: OpenBLAS chose its %s kernels on a CPU with %s; starting "
               "again with OPENBLAS_CORETYPE=%s (set OPENBLAS_CORETYPE to "
               "choose)\n",
               program, chosen, has, core.c_str());
  std::fflush(stderr);
  // Without the variable set, the new program would start again in turn.
  if (setenv("OPENBLAS_CORETYPE", core.c_str(), 1) != 0) return;
  execv(exe, argv);
  const int err = errno;
  unsetenv("OPENBLAS_CORETYPE");
  std::fprintf(stderr,
               "%s: could not start again (%s); going on with the %s "
               "kernels\n",
               program, std::strerror(err), chosen);
}

}  // namespace ps

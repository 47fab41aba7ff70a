// kernels/cpu/blas_core.h: which OpenBLAS core a CPU should run, and that a
// program started with OpenBLAS's fallback kernels starts again with the
// better ones (its arguments kept), unless OPENBLAS_CORETYPE is set.
#include "kernels/cpu/blas_core.h"

#include <stdio.h>
#include <stdlib.h>

#include <string>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(BlasCoreTest, PreAvxChoicesAreReplacedByWhatTheCpuSupports) {
  EXPECT_EQ(BetterBlasCore("Prescott", true, true), "SkylakeX");
  EXPECT_EQ(BetterBlasCore("Prescott", false, true), "Haswell");
  EXPECT_EQ(BetterBlasCore("Prescott", false, false), "");
  EXPECT_EQ(BetterBlasCore("Nehalem", false, true), "Haswell");
  EXPECT_EQ(BetterBlasCore("Core2", true, true), "SkylakeX");
  EXPECT_EQ(BetterBlasCore("Sandybridge", false, true), "Haswell");
  EXPECT_EQ(BetterBlasCore("Sandybridge", false, false), "");
  // OpenBLAS's own AVX2 / AVX-512 choices stand.
  EXPECT_EQ(BetterBlasCore("Haswell", true, true), "");
  EXPECT_EQ(BetterBlasCore("SkylakeX", true, true), "");
  EXPECT_EQ(BetterBlasCore("Cooperlake", true, true), "");
  EXPECT_EQ(BetterBlasCore("Zen", false, true), "");
}

// Runs the probe with OPENBLAS_CORETYPE = `env` (null: unset); its stdout
// and stderr.
std::string RunProbe(const char* env) {
  std::string command;
  if (env == nullptr) {
    command = "env -u OPENBLAS_CORETYPE ";
  } else {
    command = std::string("env OPENBLAS_CORETYPE=") + env + " ";
  }
  command += std::string("'") + PS_BLAS_CORE_PROBE + "' one two 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr) << command;
  if (pipe == nullptr) return "";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  EXPECT_EQ(pclose(pipe), 0) << out;
  return out;
}

TEST(BlasCoreTest, AProgramStartsAgainWithTheBetterCore) {
  // A set OPENBLAS_CORETYPE is left alone (and obeyed, by an OpenBLAS that
  // chooses its kernels when it loads; one built for one CPU ignores it).
  const std::string forced = RunProbe("Prescott");
  if (forced.find("core=Prescott ") == std::string::npos) {
    GTEST_SKIP() << "this OpenBLAS does not choose its kernels at load time: "
                 << forced;
  }
  EXPECT_NE(forced.find("core=Prescott env=Prescott args=3"), std::string::npos)
      << forced;
  EXPECT_EQ(forced.find("starting again"), std::string::npos) << forced;
  const std::string out = RunProbe(nullptr);
  const CpuVectorSupport cpu = DetectCpuVectorSupport();
  if (out.find("set OPENBLAS_CORETYPE=") != std::string::npos) {
    GTEST_SKIP() << "the restart was refused here (no /proc?): " << out;
  }
  if (out.find("starting again") == std::string::npos) {
    // No restart: OpenBLAS's own choice must then stand.
    const size_t at = out.find("core=");
    ASSERT_NE(at, std::string::npos) << out;
    const std::string core = out.substr(at + 5, out.find(' ', at) - at - 5);
    EXPECT_EQ(BetterBlasCore(core, cpu.avx512, cpu.avx2_fma), "") << out;
    EXPECT_NE(out.find("env=(unset) args=3"), std::string::npos) << out;
    return;
  }
  const std::string want = cpu.avx512 ? "SkylakeX" : "Haswell";
  EXPECT_NE(out.find("core=" + want + " env=" + want + " args=3"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("OPENBLAS_CORETYPE=" + want), std::string::npos) << out;
}

}  // namespace
}  // namespace ps

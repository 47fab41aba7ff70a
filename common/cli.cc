#include "common/cli.h"

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gflags/gflags.h"
#include "ps_build_info.h"

// gflags ends the process through this hook (exported by libgflags, not in
// its header) on a bad flag, with status 1, and after --helpfull, also with
// 1; ParseCommandLine points it at exits with our codes instead.
namespace google {
extern void (*gflags_exitfunc)(int);
}  // namespace google

namespace ps {
namespace {

[[noreturn]] void ExitUsage(int) { std::exit(kExitUsage); }
[[noreturn]] void ExitOk(int) { std::exit(kExitOk); }

// Where a flag was defined, relative to the source tree, or "" when outside
// it. gflags records the __FILE__ of each DEFINE: an absolute path under the
// source tree, or, when ccache rewrites paths under CCACHE_BASEDIR
// (scripts/build.sh), one relative to the object's folder ("../../server/
// ..."). The libraries' flags are elsewhere ("/build/gflags-...", and
// RocksDB's and glog's "./tools/...", "./src/...").
std::string ProjectPath(const std::string& file) {
  const std::string root = PS_SOURCE_ROOT "/";
  if (absl::StartsWith(file, root)) return file.substr(root.size());
  if (!absl::StartsWith(file, "../")) return "";
  std::string rest = file;
  while (absl::StartsWith(rest, "../")) rest = rest.substr(3);
  for (const char* top :
       {"common/", "kernels/", "server/", "worker/", "tools/", "tests/"}) {
    if (absl::StartsWith(rest, top)) return rest;
  }
  return "";
}

bool FlagIsSet(const char* name) {
  std::string value;
  return gflags::GetCommandLineOption(name, &value) && value == "true";
}

}  // namespace

std::string VersionString(const std::string& name) {
  return absl::StrCat(name, " ", PS_VERSION, " (git ", PS_GIT_REVISION, ", ",
                      PS_BUILD_TYPE, " build)");
}

std::string HelpText(const std::string& usage, const char* main_file,
                     bool short_help) {
  const std::string own = ProjectPath(main_file);
  std::vector<gflags::CommandLineFlagInfo> flags;
  gflags::GetAllFlags(&flags);  // sorted by file, then name
  std::map<std::string, std::vector<const gflags::CommandLineFlagInfo*>>
      by_file;
  for (const auto& flag : flags) {
    const std::string file = ProjectPath(flag.filename);
    if (file.empty() || (short_help && file != own)) continue;
    by_file[file].push_back(&flag);
  }
  std::string text = absl::StartsWith(usage, "usage: ")
                         ? usage
                         : absl::StrCat("usage: ", usage);
  if (!absl::EndsWith(text, "\n")) text += "\n";
  for (const auto& [file, list] : by_file) {
    absl::StrAppend(&text, "\n  flags from ", file, ":\n");
    for (const gflags::CommandLineFlagInfo* flag : list) {
      absl::StrAppend(&text, "    --", flag->name, " (", flag->description,
                      ") type: ", flag->type, " default: ",
                      flag->type == "string"
                          ? absl::StrCat("\"", flag->default_value, "\"")
                          : flag->default_value,
                      "\n");
    }
  }
  absl::StrAppend(&text,
                  "\n  --help: these flags; --helpshort: this binary's own; "
                  "--helpfull: every flag of every library; --version\n"
                  "  exit codes: 0 ok, 1 failure, 2 bad usage or config\n");
  return text;
}

void ParseCommandLine(const std::string& name, const std::string& usage,
                      const char* main_file, int* argc, char*** argv) {
  gflags::SetUsageMessage(usage);
  gflags::SetVersionString(VersionString(name));
  google::gflags_exitfunc = &ExitUsage;  // an unknown flag or a bad value
  gflags::ParseCommandLineNonHelpFlags(argc, argv, true);
  if (FlagIsSet("version")) {
    std::cout << VersionString(name) << "\n";
    std::exit(kExitOk);
  }
  if (FlagIsSet("help") || FlagIsSet("helpshort")) {
    std::cout << HelpText(usage, main_file, FlagIsSet("helpshort"));
    std::exit(kExitOk);
  }
  google::gflags_exitfunc = &ExitOk;  // after --helpfull, --helpon, ...
  gflags::HandleCommandLineHelpFlags();
  google::gflags_exitfunc = &std::exit;
}

}  // namespace ps

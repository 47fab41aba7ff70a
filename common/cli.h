// Command-line conventions shared by ps_server, ps_worker, ps_datagen and
// ps_ctl: flag parsing with help that lists this project's flags (not the
// hundreds that RocksDB's tools and glog register in the same process),
// --version with the build's identity, and the documented exit codes.
//
//   --help       usage, then every flag defined in this project's sources
//   --helpshort  usage, then the flags of the binary's own main file
//   --helpfull   every registered flag (gflags' listing, RocksDB's included)
//   --version    "NAME VERSION (git REVISION, BUILD_TYPE build)"
// Each of them prints to stdout and exits 0.
//
// Exit codes of every binary: kExitOk (0) success; kExitFailure (1) the work
// failed (a peer, a file, the data); kExitUsage (2) bad flags or a bad
// config, nothing was done. ps_server adds kExitJobFailed (3): it stopped
// cleanly, but the job it served failed.
#ifndef PS_COMMON_CLI_H_
#define PS_COMMON_CLI_H_

#include <string>

namespace ps {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitJobFailed = 3;

// "NAME VERSION (git REVISION, BUILD_TYPE build)", e.g.
// "ps_server 0.9.0 (git 730bfd3c1a2b, RelWithDebInfo build)".
std::string VersionString(const std::string& name);

// Parses the flags (removing them from argv) and handles the help and
// version flags above, exiting 0 after printing. `main_file` is the
// caller's __FILE__ (whose flags --helpshort lists). Call once, first
// thing in main.
void ParseCommandLine(const std::string& name, const std::string& usage,
                      const char* main_file, int* argc, char*** argv);

// The text --help (short = false) or --helpshort (short = true) prints.
std::string HelpText(const std::string& usage, const char* main_file,
                     bool short_help);

}  // namespace ps

#endif  // PS_COMMON_CLI_H_

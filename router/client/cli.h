#ifndef SEMSHARE_ROUTER_CLIENT_CLI_H_
#define SEMSHARE_ROUTER_CLIENT_CLI_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "router/client/semshare_client.h"

// The `semshare` command line: `semshare generate ...` and `semshare stats ...` over the SDK.
namespace semshare::client {

inline constexpr char kCliUsage[] =
    "usage:\n"
    "  semshare generate --router ADDR --api-key KEY (--prompt TEXT | --prompt-file FILE)\n"
    "                    [--max-tokens N] [--similarity-threshold X] [--temperature T]\n"
    "                    [--top-p P] [--seed S] [--deadline-s SECONDS] [--json]\n"
    "  semshare stats --router ADDR --api-key KEY [--deadline-s SECONDS] [--json]\n"
    "generate streams the text to stdout and a summary of how it was served to stderr;\n"
    "--json prints one JSON object instead. Exit codes: 0 ok, 1 the call failed, 2 bad usage.\n";

struct CliCommand {
  enum class Kind { kGenerate, kStats, kHelp };
  Kind kind = Kind::kHelp;
  SemshareClient::Options client;
  std::string prompt;       // --prompt
  std::string prompt_file;  // --prompt-file
  GenerateOptions generate;
  bool json = false;
};

// Parses the arguments after the program name. InvalidArgument, naming the flag, for anything
// the usage does not allow.
absl::StatusOr<CliCommand> ParseCliArgs(const std::vector<std::string>& args);

// Runs the command line; returns the exit code (0 ok, 1 the call failed, 2 bad usage).
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace semshare::client

#endif  // SEMSHARE_ROUTER_CLIENT_CLI_H_

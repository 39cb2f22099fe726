#include "router/client/cli.h"

#include <cmath>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "router/client/client_output.h"

namespace semshare::client {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

absl::Status FlagError(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", what));
}

absl::Status ParseInt(absl::string_view flag, const std::string& value, int64_t min, int64_t max,
                      int64_t* out) {
  if (!absl::SimpleAtoi(value, out) || *out < min || *out > max) {
    return FlagError(
        flag, absl::StrCat("expected an integer in [", min, ", ", max, "], got '", value, "'"));
  }
  return absl::OkStatus();
}

absl::Status ParseDouble(absl::string_view flag, const std::string& value, double* out) {
  if (!absl::SimpleAtod(value, out) || !std::isfinite(*out)) {
    return FlagError(flag, absl::StrCat("expected a number, got '", value, "'"));
  }
  return absl::OkStatus();
}

// Applies one --flag=value to `command`; `generate` says which flags are allowed.
absl::Status ApplyFlag(const std::string& name, const std::string& value, bool generate,
                       CliCommand* command) {
  if (name == "router") {
    command->client.router_address = value;
  } else if (name == "api-key") {
    command->client.api_key = value;
  } else if (name == "deadline-s") {
    double seconds = 0;
    if (!absl::SimpleAtod(value, &seconds) || !(seconds > 0) || !std::isfinite(seconds)) {
      return FlagError(name, absl::StrCat("expected seconds > 0, got '", value, "'"));
    }
    command->client.deadline = absl::Seconds(seconds);
  } else if (generate && name == "prompt") {
    command->prompt = value;
  } else if (generate && name == "prompt-file") {
    command->prompt_file = value;
  } else if (generate && name == "max-tokens") {
    int64_t max_tokens = 0;
    if (absl::Status s = ParseInt(name, value, 1, 1 << 20, &max_tokens); !s.ok()) return s;
    command->generate.max_tokens = static_cast<int32_t>(max_tokens);
  } else if (generate && name == "similarity-threshold") {
    double threshold = 0;
    if (absl::Status s = ParseDouble(name, value, &threshold); !s.ok()) return s;
    if (threshold < 0 || threshold > 1) return FlagError(name, "must be in [0, 1]");
    command->generate.similarity_threshold = threshold;
  } else if (generate && name == "temperature") {
    if (absl::Status s = ParseDouble(name, value, &command->generate.temperature); !s.ok())
      return s;
    if (command->generate.temperature < 0) return FlagError(name, "must be >= 0");
  } else if (generate && name == "top-p") {
    if (absl::Status s = ParseDouble(name, value, &command->generate.top_p); !s.ok()) return s;
    if (!(command->generate.top_p > 0 && command->generate.top_p <= 1)) {
      return FlagError(name, "must be in (0, 1]");
    }
  } else if (generate && name == "seed") {
    if (!absl::SimpleAtoi(value, &command->generate.seed)) {
      return FlagError(name, absl::StrCat("expected an unsigned integer, got '", value, "'"));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag --", name, " for ", generate ? "generate" : "stats"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CliCommand> ParseCliArgs(const std::vector<std::string>& args) {
  CliCommand command;
  if (args.empty()) return absl::InvalidArgumentError("missing command: generate or stats");
  if (args[0] == "help" || args[0] == "--help" || args[0] == "-h") return command;
  if (args[0] == "generate") {
    command.kind = CliCommand::Kind::kGenerate;
  } else if (args[0] == "stats") {
    command.kind = CliCommand::Kind::kStats;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", args[0], "': expected generate or stats"));
  }
  const bool generate = command.kind == CliCommand::Kind::kGenerate;
  std::map<std::string, int> seen;
  for (size_t i = 1; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") return CliCommand{};
    if (!absl::ConsumePrefix(&arg, "--") || arg.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", args[i], "'"));
    }
    std::string name(arg);
    std::string value;
    const size_t equals = name.find('=');
    if (equals != std::string::npos) {
      value = name.substr(equals + 1);
      name.resize(equals);
    }
    for (char& c : name) {
      if (c == '_') c = '-';  // --max_tokens is --max-tokens
    }
    if (++seen[name] > 1) return FlagError(name, "given more than once");
    if (name == "json") {
      if (equals != std::string::npos && value != "true" && value != "false") {
        return FlagError(name, "takes no value");
      }
      command.json = equals == std::string::npos || value == "true";
      continue;
    }
    if (equals == std::string::npos) {
      if (i + 1 >= args.size()) return FlagError(name, "missing value");
      value = args[++i];
    }
    if (absl::Status s = ApplyFlag(name, value, generate, &command); !s.ok()) return s;
  }
  if (command.client.router_address.empty()) return FlagError("router", "is required");
  if (command.client.api_key.empty()) return FlagError("api-key", "is required");
  if (generate && command.prompt.empty() == command.prompt_file.empty()) {
    return absl::InvalidArgumentError("give exactly one of --prompt and --prompt-file");
  }
  return command;
}

namespace {

int RunGenerate(const CliCommand& command, SemshareClient& client, std::ostream& out,
                std::ostream& err) {
  std::string prompt = command.prompt;
  if (!command.prompt_file.empty()) {
    absl::StatusOr<std::string> read = ReadFileToString(command.prompt_file);
    if (!read.ok()) {
      err << "error: --prompt-file: " << read.status().message() << "\n";
      return kExitUsage;
    }
    prompt = *std::move(read);
  }
  absl::StatusOr<GenerateResult> result;
  bool printed = false;
  if (command.json) {
    result = client.Generate(prompt, command.generate);
  } else {
    result =
        client.Generate(prompt, command.generate, [&out, &printed](const GenerateChunk& chunk) {
          out << chunk.text << std::flush;
          printed = printed || !chunk.text.empty();
          return absl::OkStatus();
        });
  }
  if (!result.ok()) {
    if (printed) out << std::endl;  // end the partial text before the error
    err << "error: generate failed: " << result.status() << "\n";
    return kExitFailed;
  }
  if (command.json) {
    out << GenerateResultToJson(*result).Dump() << std::endl;
  } else {
    if (result->text.empty() || result->text.back() != '\n') out << "\n";
    out << std::flush;
    err << FormatGenerateStats(result->stats) << std::flush;
  }
  return kExitOk;
}

int RunStats(const CliCommand& command, SemshareClient& client, std::ostream& out,
             std::ostream& err) {
  absl::StatusOr<RouterStats> stats = client.Stats();
  if (!stats.ok()) {
    err << "error: stats failed: " << stats.status() << "\n";
    return kExitFailed;
  }
  if (command.json) {
    out << RouterStatsToJson(*stats).Dump() << std::endl;
  } else {
    out << FormatRouterStats(*stats) << std::flush;
  }
  return kExitOk;
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<CliCommand> command = ParseCliArgs(args);
  if (!command.ok()) {
    err << "error: " << command.status().message() << "\n" << kCliUsage;
    return kExitUsage;
  }
  if (command->kind == CliCommand::Kind::kHelp) {
    out << kCliUsage;
    return kExitOk;
  }
  absl::StatusOr<std::unique_ptr<SemshareClient>> client = SemshareClient::Create(command->client);
  if (!client.ok()) {
    err << "error: " << client.status().message() << "\n" << kCliUsage;
    return kExitUsage;
  }
  if (command->kind == CliCommand::Kind::kGenerate)
    return RunGenerate(*command, **client, out, err);
  return RunStats(*command, **client, out, err);
}

}  // namespace semshare::client

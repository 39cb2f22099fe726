#ifndef SEMSHARE_COMMON_CLI_H_
#define SEMSHARE_COMMON_CLI_H_

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/json.h"

// What every command-line tool shares: flag parsing, error exits, result output.
namespace semshare {

// Parses flags, accepting --kebab-case names as well as absl's --snake_case, so the tools take
// the documented spellings (--max-tokens, --data-dir). Returns positional arguments.
std::vector<std::string> ParseToolFlags(int argc, char** argv, const char* usage);

// InvalidArgument "--NAME is required" for the first (NAME, value) whose value is empty.
absl::Status RequireFlags(std::initializer_list<std::pair<const char*, std::string>> flags);

// Prints "error: <status>" and returns exit code 1 (2 for bad flags).
int Fail(const absl::Status& status);

// Writes JSON to `json_path` (and the table to stdout), or the JSON to stdout and the table
// to stderr when no path is given. Returns the exit code.
int EmitResultTo(const Json& result, const std::string& table, const std::string& json_path);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_CLI_H_

#include "common/cli.h"

#include <algorithm>
#include <iostream>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace semshare {

std::vector<std::string> ParseToolFlags(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  std::vector<std::string> storage;
  storage.reserve(static_cast<size_t>(argc));
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && arg.rfind("--", 0) == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      for (size_t c = 2; c < end; ++c) {
        if (arg[c] == '-') arg[c] = '_';
      }
    }
    storage.push_back(std::move(arg));
  }
  std::vector<char*> pointers;
  pointers.reserve(storage.size());
  for (std::string& s : storage) pointers.push_back(s.data());
  const std::vector<char*> rest = absl::ParseCommandLine(argc, pointers.data());
  return std::vector<std::string>(rest.begin() + 1, rest.end());
}

absl::Status RequireFlags(std::initializer_list<std::pair<const char*, std::string>> flags) {
  for (const auto& [name, value] : flags) {
    if (value.empty()) return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  }
  return absl::OkStatus();
}

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << std::endl;
  return absl::IsInvalidArgument(status) ? 2 : 1;
}

int EmitResultTo(const Json& result, const std::string& table, const std::string& json_path) {
  if (json_path.empty()) {
    std::cerr << table;
    std::cout << result.Dump(2) << std::endl;
    return 0;
  }
  absl::Status written = WriteStringToFile(json_path, result.Dump(2) + "\n");
  if (!written.ok()) return Fail(written);
  std::cout << table;
  return 0;
}

}  // namespace semshare

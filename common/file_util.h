#ifndef SEMSHARE_COMMON_FILE_UTIL_H_
#define SEMSHARE_COMMON_FILE_UTIL_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace semshare {

// Reads a whole file. NotFound if it does not exist, DataLoss on a short read.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes a whole file atomically (temporary file, then rename).
absl::Status WriteStringToFile(const std::string& path, absl::string_view contents);

bool FileExists(const std::string& path);

// Creates a directory and its parents; OK if it exists.
absl::Status MakeDirectories(const std::string& path);

std::string JoinPath(absl::string_view dir, absl::string_view name);

// The KEY=VALUE lines of a file such as deploy/local/cluster.sh's cluster.env (blank lines
// and # comments skipped; the value is everything after the first '='). Empty if unreadable.
std::map<std::string, std::string> ReadKeyValueFile(const std::string& path);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_FILE_UTIL_H_

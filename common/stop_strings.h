#ifndef SEMSHARE_COMMON_STOP_STRINGS_H_
#define SEMSHARE_COMMON_STOP_STRINGS_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace semshare {

// OpenAI's `stop`: at most this many strings.
inline constexpr size_t kMaxStopStrings = 4;

// Applies stop strings to streamed text. Feed() takes each decoded piece and returns the text
// that is safe to send now: it holds back any tail that could still become a stop string, and
// any incomplete UTF-8 character at the end. Once a stop string appears, the text before it is
// the last text returned, and it and everything after it is dropped.
class StopStringMatcher {
 public:
  // InvalidArgument for more than kMaxStopStrings, or an empty or non-UTF-8 string.
  static absl::StatusOr<StopStringMatcher> Create(std::vector<std::string> stop_strings);

  struct Step {
    std::string text;      // safe to emit now
    bool stopped = false;  // a stop string matched: nothing more will be emitted
  };

  Step Feed(absl::string_view piece);

  // At the end of generation without a stop: the held-back text, which is final.
  std::string Flush();

  bool stopped() const { return stopped_; }
  // The stop string that matched; empty until one has.
  const std::string& matched() const { return matched_; }

 private:
  explicit StopStringMatcher(std::vector<std::string> stop_strings)
      : stop_strings_(std::move(stop_strings)) {}

  std::vector<std::string> stop_strings_;
  std::string held_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace semshare

#endif  // SEMSHARE_COMMON_STOP_STRINGS_H_

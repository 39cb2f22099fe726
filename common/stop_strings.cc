#include "common/stop_strings.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace semshare {
namespace {

// The length of a trailing UTF-8 sequence that its lead byte says is not complete yet.
size_t IncompleteUtf8Tail(absl::string_view text) {
  const size_t scan = std::min<size_t>(text.size(), 4);
  for (size_t back = 1; back <= scan; ++back) {
    const auto byte = static_cast<unsigned char>(text[text.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for the lead
    const size_t need = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

// The longest suffix of `text` that is a proper prefix of `stop`.
size_t PartialMatchLength(absl::string_view text, absl::string_view stop) {
  const size_t longest = std::min(text.size(), stop.size() - 1);
  for (size_t length = longest; length > 0; --length) {
    if (text.substr(text.size() - length) == stop.substr(0, length)) return length;
  }
  return 0;
}

}  // namespace

absl::StatusOr<StopStringMatcher> StopStringMatcher::Create(std::vector<std::string> stop_strings) {
  if (stop_strings.size() > kMaxStopStrings) {
    return absl::InvalidArgumentError(absl::StrCat("stop: at most ", kMaxStopStrings,
                                                   " stop strings, got ", stop_strings.size()));
  }
  for (const std::string& stop : stop_strings) {
    if (stop.empty()) return absl::InvalidArgumentError("stop: a stop string is empty");
    if (FindInvalidUtf8(stop) != absl::string_view::npos) {
      return absl::InvalidArgumentError("stop: a stop string is not valid UTF-8");
    }
  }
  return StopStringMatcher(std::move(stop_strings));
}

StopStringMatcher::Step StopStringMatcher::Feed(absl::string_view piece) {
  Step step;
  if (stopped_) return step;
  held_.append(piece.data(), piece.size());
  // The earliest stop string wins; at one position, the first listed.
  size_t first = std::string::npos;
  for (const std::string& stop : stop_strings_) {
    const size_t at = held_.find(stop);
    if (at < first) {
      first = at;
      matched_ = stop;
    }
  }
  if (first != std::string::npos) {
    step.text = held_.substr(0, first);
    step.stopped = true;
    stopped_ = true;
    held_.clear();
    return step;
  }
  size_t hold = IncompleteUtf8Tail(held_);
  for (const std::string& stop : stop_strings_) {
    hold = std::max(hold, PartialMatchLength(held_, stop));
  }
  step.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return step;
}

std::string StopStringMatcher::Flush() {
  if (stopped_) return "";
  std::string rest = std::move(held_);
  held_.clear();
  return rest;
}

}  // namespace semshare

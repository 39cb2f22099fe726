#include "common/stop_strings.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace semshare {
namespace {

StopStringMatcher Make(std::vector<std::string> stops) {
  absl::StatusOr<StopStringMatcher> matcher = StopStringMatcher::Create(std::move(stops));
  EXPECT_TRUE(matcher.ok()) << matcher.status();
  return *std::move(matcher);
}

TEST(StopStringMatcherTest, WithoutStopStringsEverythingPassesAtOnce) {
  StopStringMatcher matcher = Make({});
  EXPECT_EQ(matcher.Feed("Hello").text, "Hello");
  EXPECT_EQ(matcher.Feed(" world").text, " world");
  EXPECT_EQ(matcher.Flush(), "");
}

TEST(StopStringMatcherTest, AStopStringInOnePieceEndsTheTextBeforeIt) {
  StopStringMatcher matcher = Make({"###"});
  StopStringMatcher::Step step = matcher.Feed("answer### and more");
  EXPECT_EQ(step.text, "answer");
  EXPECT_TRUE(step.stopped);
  EXPECT_EQ(matcher.matched(), "###");
  EXPECT_EQ(matcher.Feed("later").text, "");
  EXPECT_EQ(matcher.Flush(), "");
}

TEST(StopStringMatcherTest, AStopStringSpanningPiecesIsNeverPartlySent) {
  StopStringMatcher matcher = Make({"</answer>"});
  std::string sent;
  for (const char* piece : {"The result", " is 4<", "/ans", "wer", "> trailing"}) {
    StopStringMatcher::Step step = matcher.Feed(piece);
    sent += step.text;
    EXPECT_EQ(sent.find('<'), std::string::npos) << "sent part of the stop string: " << sent;
    if (step.stopped) break;
  }
  EXPECT_TRUE(matcher.stopped());
  EXPECT_EQ(sent, "The result is 4");
}

TEST(StopStringMatcherTest, AHeldPrefixThatDoesNotMatchIsReleased) {
  StopStringMatcher matcher = Make({"STOP"});
  EXPECT_EQ(matcher.Feed("go ST").text, "go ");
  StopStringMatcher::Step step = matcher.Feed("ART now");
  EXPECT_EQ(step.text, "START now");
  EXPECT_FALSE(step.stopped);
  EXPECT_EQ(matcher.Feed("ST").text, "");
  EXPECT_EQ(matcher.Flush(), "ST");  // the end of generation: a prefix is just text
}

TEST(StopStringMatcherTest, TheEarliestOfSeveralStopStringsWins) {
  StopStringMatcher matcher = Make({"world", "lo", "\n\n", "x"});
  StopStringMatcher::Step step = matcher.Feed("hello world");
  EXPECT_EQ(step.text, "hel");
  EXPECT_EQ(matcher.matched(), "lo");
}

TEST(StopStringMatcherTest, OverlappingPrefixesHoldTheLongestCandidate) {
  StopStringMatcher matcher = Make({"aab"});
  EXPECT_EQ(matcher.Feed("xaa").text, "x");
  EXPECT_EQ(matcher.Feed("a").text, "a");  // "aaa": only the last "aa" can still match
  StopStringMatcher::Step step = matcher.Feed("b!");
  EXPECT_EQ(step.text, "");
  EXPECT_TRUE(step.stopped);
}

TEST(StopStringMatcherTest, NeverSplitsAMultiByteCharacter) {
  StopStringMatcher matcher = Make({"\xe2\x82\xac!"});  // "€!"
  // "é" arrives one byte at a time: nothing is sent until it is whole.
  EXPECT_EQ(matcher.Feed("caf\xc3").text, "caf");
  EXPECT_EQ(matcher.Feed("\xa9").text, "\xc3\xa9");
  // "€" followed by something other than "!" is released whole.
  EXPECT_EQ(matcher.Feed("\xe2\x82").text, "");
  EXPECT_EQ(matcher.Feed("\xac").text, "");  // could still be "€!"
  EXPECT_EQ(matcher.Feed("?").text, "\xe2\x82\xac?");
  StopStringMatcher::Step step = matcher.Feed("\xe2\x82\xac!");
  EXPECT_TRUE(step.stopped);
  EXPECT_EQ(step.text, "");
}

TEST(StopStringMatcherTest, RefusesBadStopStrings) {
  EXPECT_FALSE(StopStringMatcher::Create({"a", "b", "c", "d", "e"}).ok());
  EXPECT_FALSE(StopStringMatcher::Create({""}).ok());
  EXPECT_FALSE(StopStringMatcher::Create({"\xff"}).ok());
  EXPECT_TRUE(StopStringMatcher::Create({"a", "b", "c", "d"}).ok());
}

}  // namespace
}  // namespace semshare

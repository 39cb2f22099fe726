#include "common/json.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare {
namespace {

TEST(JsonTest, ParsesNestedDocument) {
  absl::StatusOr<Json> doc =
      ParseJson(R"({"a": [1, 2.5, -3e2], "b": {"c": "x\u00e9\n"}, "d": true, "e": null})");
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ((*doc)["a"].array_items().size(), 3u);
  EXPECT_DOUBLE_EQ((*doc)["a"].array_items()[2].number_value(), -300.0);
  EXPECT_EQ((*doc)["b"]["c"].string_value(), "x\xc3\xa9\n");
  EXPECT_TRUE((*doc)["d"].bool_value());
  EXPECT_TRUE((*doc)["e"].is_null());
  EXPECT_TRUE((*doc)["missing"].is_null());
}

TEST(JsonTest, SurrogatePairsDecodeToUtf8) {
  absl::StatusOr<Json> doc = ParseJson(R"("\ud83d\ude00")");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->string_value(), "\xf0\x9f\x98\x80");
}

// JSON text is UTF-8 (RFC 8259, 8.1): strings keep valid UTF-8 as it is and refuse bytes or
// escapes that would make them invalid.
TEST(JsonTest, StringsAreValidUtf8) {
  absl::StatusOr<Json> doc = ParseJson("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(doc->string_value(), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  for (const char* bad : {"\"\xff\"", "\"a\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
                          "\"\xf4\x90\x80\x80\"", "\"\\udc00\"", "\"\\ud800\\u0041\""}) {
    absl::StatusOr<Json> rejected = ParseJson(bad);
    ASSERT_FALSE(rejected.ok()) << bad;
    EXPECT_THAT(std::string(rejected.status().message()),
                ::testing::AnyOf(::testing::HasSubstr("UTF-8"), ::testing::HasSubstr("surrogate")))
        << bad;
  }
}

// Errors quote printable ASCII and name other bytes in hex: a message never carries the bad
// bytes themselves (it may end up in a JSON error body).
TEST(JsonTest, ErrorsNameUnexpectedBytesInHex) {
  EXPECT_EQ(ParseJson("[x]").status().message(), "JSON: unexpected character 'x' at byte 1");
  EXPECT_EQ(ParseJson("[\xff]").status().message(), "JSON: unexpected byte 0xff at byte 1");
  EXPECT_EQ(ParseJson("[\x01]").status().message(), "JSON: unexpected byte 0x01 at byte 1");
}

TEST(JsonTest, RejectsMalformedInputWithOffset) {
  for (const char* bad : {"{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "1 2", "{\"a\":01x}", ""}) {
    absl::StatusOr<Json> doc = ParseJson(bad);
    EXPECT_FALSE(doc.ok()) << bad;
    if (!doc.ok()) {
      EXPECT_NE(doc.status().message().find("at byte"), std::string::npos);
    }
  }
}

TEST(JsonTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep(100000, '[');
  EXPECT_FALSE(ParseJson(deep).ok());
}

TEST(JsonTest, DumpRoundTrips) {
  Json doc;
  doc["name"] = "semshare";
  doc["ints"].push_back(1);
  doc["ints"].push_back(int64_t{1} << 40);
  doc["ratio"] = 0.25;
  doc["quote"] = "a\"b";
  absl::StatusOr<Json> back = ParseJson(doc.Dump(2));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->Dump(), doc.Dump());
  EXPECT_EQ(doc.Dump(),
            R"({"ints":[1,1099511627776],"name":"semshare","quote":"a\"b","ratio":0.25})");
}

TEST(JsonTest, TypedGettersNameTheField) {
  absl::StatusOr<Json> doc = ParseJson(R"({"n": 2.5, "s": "x"})");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(GetInt(*doc, "n").status().message(), "field 'n' must be an integer");
  EXPECT_EQ(GetInt(*doc, "absent").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(GetString(*doc, "s").value(), "x");
  EXPECT_FALSE(GetNumber(*doc, "s").ok());
}

}  // namespace
}  // namespace semshare

// The real chat templates of Llama 3.1/3.2, Qwen2.5, Mistral v0.3 and Gemma 2/3 (copied with
// their sources in tests/data/chat_templates/README.md) against byte-exact prompts.
#include <cctype>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/jinja/json_value.h"
#include "common/jinja/template.h"
#include "gtest/gtest.h"

namespace semshare::jinja {
namespace {

std::string DataPath(const std::string& name) {
  return std::string(SEMSHARE_TEST_DATA_DIR) + "/chat_templates/" + name;
}

bool ReadFile(const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *text = buffer.str();
  return true;
}

struct Model {
  const char* file;
  const char* bos;  // null: the model's config has none
  const char* eos;
};

// bos_token and eos_token as each model's tokenizer_config.json sets them.
constexpr Model kModels[] = {
    {"llama-3.1-8b-instruct", "<|begin_of_text|>", "<|eot_id|>"},
    {"llama-3.2-3b-instruct", "<|begin_of_text|>", "<|eot_id|>"},
    {"qwen2.5-7b-instruct", nullptr, "<|im_end|>"},
    {"mistral-7b-instruct-v0.3", "<s>", "</s>"},
    {"gemma-2-2b-it", "<bos>", "<eos>"},
    {"gemma-3-it", "<bos>", "<eos>"},
};

struct Case {
  Model model;
  bool with_system;
  bool generation_prompt;
};

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (const Model& model : kModels) {
    for (const bool with_system : {true, false}) {
      for (const bool generation : {true, false}) cases.push_back({model, with_system, generation});
    }
  }
  return cases;
}

class ChatTemplateTest : public testing::TestWithParam<Case> {};

// expected/<model>[.no_system].<gen|nogen>.txt holds the prompt, or .error.txt the message the
// template raises; tests/data/chat_templates/render_expected.py wrote them with Jinja2 set up
// as transformers sets it up.
TEST_P(ChatTemplateTest, RendersTheSamePromptAsTransformers) {
  const Case& c = GetParam();
  std::string source;
  ASSERT_TRUE(ReadFile(DataPath(std::string(c.model.file) + ".jinja"), &source));
  std::string conversation_text;
  ASSERT_TRUE(ReadFile(DataPath("conversation.json"), &conversation_text));
  nlohmann::ordered_json context = nlohmann::ordered_json::parse(conversation_text);
  if (!c.with_system) context["messages"].erase(0);
  context["add_generation_prompt"] = c.generation_prompt;
  if (c.model.bos != nullptr) context["bos_token"] = c.model.bos;
  context["eos_token"] = c.model.eos;

  const std::string stem = std::string("expected/") + c.model.file +
                           (c.with_system ? "" : ".no_system") +
                           (c.generation_prompt ? ".gen" : ".nogen");
  absl::StatusOr<Template> tmpl = Template::Parse(source);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  absl::StatusOr<std::string> prompt = tmpl->Render(ValueFromJson(context));
  std::string expected;
  if (ReadFile(DataPath(stem + ".error.txt"), &expected)) {
    ASSERT_FALSE(prompt.ok()) << *prompt;
    EXPECT_TRUE(IsRaisedByTemplate(prompt.status())) << prompt.status();
    EXPECT_EQ(prompt.status().message().substr(0, expected.size()), expected) << prompt.status();
    return;
  }
  ASSERT_TRUE(ReadFile(DataPath(stem + ".txt"), &expected)) << stem;
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt, expected);
}

INSTANTIATE_TEST_SUITE_P(RealTemplates, ChatTemplateTest, testing::ValuesIn(AllCases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           std::string name = info.param.model.file;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name + (info.param.with_system ? "_System" : "_NoSystem") +
                                  (info.param.generation_prompt ? "_Generation" : "_NoGeneration");
                         });

absl::StatusOr<std::string> RenderModel(const std::string& file, const char* context_json) {
  std::string source;
  if (!ReadFile(DataPath(file + ".jinja"), &source)) return absl::NotFoundError(file);
  absl::StatusOr<Template> tmpl = Template::Parse(source);
  if (!tmpl.ok()) return tmpl.status();
  return tmpl->Render(ValueFromJson(nlohmann::ordered_json::parse(context_json)));
}

// llama.cpp's tests/test-chat-template.cpp, case "Mistral-Large-Instruct-2407 (mistralai 'v3'
// template)", expected_output_jinja, with its bos_token "" and eos_token "</s>".
TEST(ChatTemplateSourcesTest, MistralV3MatchesLlamaCppsExpectedOutput) {
  std::string conversation;
  ASSERT_TRUE(ReadFile(DataPath("conversation.json"), &conversation));
  nlohmann::ordered_json context = nlohmann::ordered_json::parse(conversation);
  context["bos_token"] = "";
  context["eos_token"] = "</s>";
  context["add_generation_prompt"] = true;
  absl::StatusOr<std::string> prompt =
      RenderModel("mistral-7b-instruct-v0.3", context.dump().c_str());
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt,
            "[INST] Hello[/INST] Hi there</s>[INST] Who are you[/INST] I am an assistant</s>"
            "[INST] You are a helpful assistant\n\nAnother question[/INST]");
}

constexpr char kSystemAndUser[] = R"({"messages": [
  {"role": "system", "content": "You are a helpful assistant"},
  {"role": "user", "content": "Hello"}],
  "add_generation_prompt": true, "date_string": "26 Jul 2024",
  "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})";

// Meta's documented Llama 3.1 format (llama-models, models/llama3_1/prompt_format.md).
TEST(ChatTemplateSourcesTest, Llama31MatchesMetasDocumentedFormat) {
  absl::StatusOr<std::string> prompt = RenderModel("llama-3.1-8b-instruct", kSystemAndUser);
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
            "You are a helpful assistant<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Qwen's documented ChatML format (qwen.readthedocs.io, "Chat template").
TEST(ChatTemplateSourcesTest, Qwen25MatchesChatMl) {
  absl::StatusOr<std::string> prompt = RenderModel("qwen2.5-7b-instruct", kSystemAndUser);
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt,
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
            "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
}

// Google's documented Gemma format (ai.google.dev/gemma/docs/core/prompt-structure): the
// system prompt goes into the first user turn.
TEST(ChatTemplateSourcesTest, Gemma3MatchesGooglesDocumentedFormat) {
  absl::StatusOr<std::string> prompt = RenderModel(
      "gemma-3-it", R"({"messages": [{"role": "system", "content": "You are a helpful assistant"},
                                     {"role": "user", "content": "Hello"}],
                        "add_generation_prompt": true, "bos_token": "<bos>"})");
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt,
            "<bos><start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
            "<start_of_turn>model\n");
}

// Gemma 3 also takes OpenAI-style content parts.
TEST(ChatTemplateSourcesTest, Gemma3TakesContentParts) {
  absl::StatusOr<std::string> prompt =
      RenderModel("gemma-3-it",
                  R"({"messages": [{"role": "user", "content": [{"type": "text", "text": " Hi "}]}],
                        "add_generation_prompt": false, "bos_token": "<bos>"})");
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt, "<bos><start_of_turn>user\nHi<end_of_turn>\n");
}

// Without date_string, Llama 3.2 asks strftime_now for today's date.
TEST(ChatTemplateSourcesTest, Llama32TakesTodayFromStrftimeNow) {
  std::string source;
  ASSERT_TRUE(ReadFile(DataPath("llama-3.2-3b-instruct.jinja"), &source));
  absl::StatusOr<Template> tmpl = Template::Parse(source);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  RenderOptions options;
  options.now = absl::FromUnixSeconds(1733356800);  // 2024-12-05 00:00 UTC
  absl::StatusOr<std::string> prompt = tmpl->Render(
      ValueFromJson(nlohmann::ordered_json::parse(
          R"({"messages": [{"role": "user", "content": "Hi"}], "bos_token": "<|begin_of_text|>"})")),
      options);
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_NE(prompt->find("Today Date: 05 Dec 2024\n"), std::string::npos) << *prompt;
}

}  // namespace
}  // namespace semshare::jinja

// The real chat templates of Llama 3.1/3.2, Qwen2.5, Mistral v0.3 and Gemma 2/3 (copied with
// their sources in tests/data/chat_templates/README.md) against byte-exact prompts.
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

}  // namespace
}  // namespace semshare::jinja

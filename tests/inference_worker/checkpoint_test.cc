#include "inference_worker/engine/checkpoint.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/json.h"
#include "inference_worker/engine/model_config.h"
#include "inference_worker/engine/safetensors.h"
#include "tests/common/corrupt_bytes.h"

namespace semshare {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kAustenDir = SEMSHARE_TEST_DATA_DIR "/austen-5m";

// A fresh, empty directory per test (and per tag within a test).
std::string FreshDir(const std::string& tag = "dir") {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = JoinPath(
      ::testing::TempDir(),
      absl::StrCat("checkpoint_test_", info->test_suite_name(), "_", info->name(), "_", tag));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

absl::StatusOr<ModelConfig> ParseConfig(const std::string& text) {
  absl::StatusOr<Json> json = ParseJson(text);
  if (!json.ok()) return json.status();
  return ModelConfig::FromJson(*json);
}

// The smallest valid config, with `extra` fields ("\"k\": v, ...") merged in.
std::string ConfigText(const std::string& model_type, const std::string& extra = "") {
  return absl::StrCat(R"({"model_type": ")", model_type,
                      R"(", "vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
                          "num_attention_heads": 8, "intermediate_size": 128)",
                      extra.empty() ? "" : ", ", extra, "}");
}

// Writes a safetensors file byte by byte, for headers no correct writer would produce.
void WriteRawSafetensors(const std::string& path, const std::string& header, size_t data_bytes) {
  std::string contents;
  uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) contents.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  contents += header;
  contents.append(data_bytes, '\0');
  ASSERT_TRUE(WriteStringToFile(path, contents).ok());
}

uint64_t HeaderLength(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  EXPECT_TRUE(contents.ok());
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>((*contents)[i]);
  return length;
}

// A tiny random checkpoint in `dir`.
void WriteTiny(const std::string& dir, uint64_t seed = 0, const std::string& dtype = "bfloat16") {
  absl::StatusOr<ModelConfig> config = PresetConfig("tiny");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::Status status = WriteRandomCheckpoint(*config, seed, dtype, dir);
  ASSERT_TRUE(status.ok()) << status;
}

int64_t ParameterCount(const ModelConfig& config) {
  int64_t total = 0;
  for (const auto& [name, shape] : ExpectedTensorShapes(config)) {
    int64_t numel = 1;
    for (int64_t dim : shape) numel *= dim;
    total += numel;
  }
  return total;
}

// ---------------------------------------------------------------------------------------
// The trained fixture model.

TEST(AustenCheckpointTest, LoadsAndValidates) {
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(kAustenDir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const ModelConfig& config = checkpoint->config;
  EXPECT_EQ(config.model_type, "llama");
  EXPECT_EQ(config.hidden_size, 256);
  EXPECT_EQ(config.num_hidden_layers, 6);
  EXPECT_EQ(config.num_key_value_heads, 4);
  EXPECT_EQ(config.head_dim, 32);
  EXPECT_TRUE(config.tie_word_embeddings);
  EXPECT_EQ(config.bos_token_id, 1);
  EXPECT_EQ(config.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(config.sliding_window, 0);
  EXPECT_FALSE(config.rope_scaling.has_value());
  // 56 weights: embeddings, final norm and 9 per layer (the file's header has 57 keys, the
  // 57th being __metadata__).
  EXPECT_EQ(checkpoint->tensors.size(), 56u);
  EXPECT_EQ(ExpectedTensorShapes(config).size(), 56u);
  for (const auto& [name, tensor] : checkpoint->tensors) {
    EXPECT_EQ(tensor.scalar_type(), at::kBFloat16) << name;
  }
  EXPECT_EQ(checkpoint->tensors.at("model.layers.5.self_attn.k_proj.weight").sizes(),
            at::IntArrayRef({128, 256}));
  EXPECT_THAT(checkpoint->fingerprint, ::testing::MatchesRegex("[0-9a-f]{16}"));

  absl::StatusOr<Checkpoint> again = LoadCheckpoint(kAustenDir);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->fingerprint, checkpoint->fingerprint);
}

TEST(AustenCheckpointTest, FingerprintSeesWeightsConfigAndNotLayout) {
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(kAustenDir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const std::string original = checkpoint->fingerprint;

  // Same values in a non-contiguous layout: the same model.
  TensorMap strided = checkpoint->tensors;
  at::Tensor& embed = strided.at("model.embed_tokens.weight");
  embed = embed.t().contiguous().t();
  ASSERT_FALSE(embed.is_contiguous());
  EXPECT_EQ(ComputeModelFingerprint(checkpoint->config, strided), original);

  // Element 0 is always sampled.
  TensorMap edited = checkpoint->tensors;
  at::Tensor& norm = edited.at("model.norm.weight");
  norm = norm.clone();
  norm.index_put_({0}, norm[0] + 1);
  EXPECT_NE(ComputeModelFingerprint(checkpoint->config, edited), original);

  ModelConfig other = checkpoint->config;
  other.rope_theta = 20000;
  EXPECT_NE(ComputeModelFingerprint(other, checkpoint->tensors), original);

  TensorMap as_float = checkpoint->tensors;
  as_float.at("model.norm.weight") = as_float.at("model.norm.weight").to(at::kFloat);
  EXPECT_NE(ComputeModelFingerprint(checkpoint->config, as_float), original);
}

// ---------------------------------------------------------------------------------------
// config.json parsing.

TEST(ModelConfigTest, LlamaDefaults) {
  absl::StatusOr<ModelConfig> config = ParseConfig(ConfigText("llama"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->head_dim, 8);
  EXPECT_EQ(config->num_key_value_heads, 8);
  EXPECT_EQ(config->bos_token_id, -1);
  EXPECT_TRUE(config->eos_token_ids.empty());
  EXPECT_EQ(config->sliding_window, 0);
  EXPECT_FALSE(config->attention_bias);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(config->rope_theta, 10000.0);
  EXPECT_EQ(config->torch_dtype, "float32");
  EXPECT_EQ(ExpectedTensorShapes(*config).count("lm_head.weight"), 1u);
}

TEST(ModelConfigTest, LlamaOptionalFields) {
  absl::StatusOr<ModelConfig> config = ParseConfig(
      ConfigText("llama", R"("attention_bias": true, "bos_token_id": null, "head_dim": 16,
                  "num_key_value_heads": 2, "sliding_window": 512, "torch_dtype": "bfloat16")"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->attention_bias);
  EXPECT_EQ(config->bos_token_id, -1);
  EXPECT_EQ(config->head_dim, 16);
  EXPECT_EQ(config->q_dim(), 128);
  EXPECT_EQ(config->kv_dim(), 32);
  EXPECT_EQ(config->sliding_window, 0);  // not a llama field
  EXPECT_EQ(config->torch_dtype, "bfloat16");
  const auto shapes = ExpectedTensorShapes(*config);
  EXPECT_EQ(shapes.at("model.layers.1.self_attn.o_proj.weight"), (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(shapes.at("model.layers.1.self_attn.k_proj.bias"), (std::vector<int64_t>{32}));
}

TEST(ModelConfigTest, Mistral) {
  absl::StatusOr<ModelConfig> config = ParseConfig(ConfigText(
      "mistral", R"("sliding_window": 4096, "num_key_value_heads": 2, "eos_token_id": 2)"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 4096);
  EXPECT_FALSE(config->attention_bias);
  EXPECT_EQ(config->eos_token_ids, std::vector<int64_t>{2});

  config = ParseConfig(ConfigText("mistral", R"("sliding_window": null)"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 0);
}

TEST(ModelConfigTest, Qwen2HasBiasAndHonoursUseSlidingWindow) {
  absl::StatusOr<ModelConfig> config =
      ParseConfig(ConfigText("qwen2", R"("use_sliding_window": false, "sliding_window": 32768,
                  "tie_word_embeddings": true)"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->attention_bias);
  EXPECT_EQ(config->sliding_window, 0);
  const auto shapes = ExpectedTensorShapes(*config);
  EXPECT_EQ(shapes.at("model.layers.0.self_attn.q_proj.bias"), (std::vector<int64_t>{64}));
  EXPECT_EQ(shapes.at("model.layers.1.self_attn.v_proj.bias"), (std::vector<int64_t>{64}));
  EXPECT_EQ(shapes.count("lm_head.weight"), 0u);
  EXPECT_EQ(shapes.size(), 2u + 2u * 12u);

  config =
      ParseConfig(ConfigText("qwen2", R"("use_sliding_window": true, "sliding_window": 4096)"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 4096);
  EXPECT_EQ(config->sliding_window_first_layer, 28);  // transformers' default max_window_layers

  config = ParseConfig(ConfigText(
      "qwen2", R"("use_sliding_window": true, "sliding_window": 64, "max_window_layers": 1)"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window_first_layer, 1);
  const absl::StatusOr<ModelConfig> round_trip = ParseConfig(config->ToJson().Dump());
  ASSERT_TRUE(round_trip.ok()) << round_trip.status();
  EXPECT_EQ(round_trip->sliding_window, 64);
  EXPECT_EQ(round_trip->sliding_window_first_layer, 1);

  config = ParseConfig(ConfigText(
      "qwen2", R"("use_sliding_window": true, "sliding_window": 64, "max_window_layers": -1)"));
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("max_window_layers"), std::string::npos);
}

TEST(ModelConfigTest, Llama3RopeScaling) {
  absl::StatusOr<ModelConfig> config = ParseConfig(ConfigText(
      "llama", R"("rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 32.0,
                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192})"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(config->rope_scaling->factor, 32.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling->low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(config->rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(config->rope_theta, 500000.0);

  // Older configs say "type".
  config = ParseConfig(
      ConfigText("llama", R"("rope_scaling": {"type": "llama3", "factor": 8, "low_freq_factor": 1,
                  "high_freq_factor": 4, "original_max_position_embeddings": 8192})"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->rope_scaling->factor, 8.0);

  config = ParseConfig(ConfigText("llama", R"("rope_scaling": null)"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->rope_scaling.has_value());
}

TEST(ModelConfigTest, EosList) {
  absl::StatusOr<ModelConfig> config =
      ParseConfig(ConfigText("llama", R"("eos_token_id": [128001, 128008, 128009])"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_FALSE(ParseConfig(ConfigText("llama", R"("eos_token_id": [1, "x"])")).ok());
  EXPECT_FALSE(ParseConfig(ConfigText("llama", R"("eos_token_id": "2")")).ok());
}

TEST(ModelConfigTest, UnknownModelType) {
  absl::StatusOr<ModelConfig> config = ParseConfig(ConfigText("gpt2"));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(config.status().message()),
            "config.json: field 'model_type' is 'gpt2'; supported: llama, mistral, qwen2");
}

TEST(ModelConfigTest, RefusesOtherRopeTypes) {
  for (const std::string type : {"linear", "dynamic", "yarn"}) {
    absl::StatusOr<ModelConfig> config = ParseConfig(ConfigText(
        "llama", absl::StrCat(R"("rope_scaling": {"rope_type": ")", type, R"(", "factor": 2.0})")));
    ASSERT_FALSE(config.ok()) << type;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(config.status().message()), HasSubstr("rope_scaling.rope_type"));
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(type));
  }
  absl::StatusOr<ModelConfig> config = ParseConfig(
      ConfigText("llama", R"("rope_scaling": {"rope_type": "llama3", "low_freq_factor": 1,
                  "high_freq_factor": 4, "original_max_position_embeddings": 8192})"));
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("rope_scaling.factor"));
}

TEST(ModelConfigTest, RefusesBadShapesAndActivations) {
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {ConfigText("llama", R"("num_key_value_heads": 3)"), "num_key_value_heads"},
      {ConfigText("llama", R"("hidden_act": "gelu")"), "hidden_act"},
      {R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 0, "num_hidden_layers": 2,
          "num_attention_heads": 8, "intermediate_size": 128})",
       "hidden_size"},
      {R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "num_hidden_layers": -1,
          "num_attention_heads": 8, "intermediate_size": 128})",
       "num_hidden_layers"},
      {R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 8, "intermediate_size": 128})",
       "missing field 'vocab_size'"},
      {R"({"model_type": "llama", "vocab_size": 100.5, "hidden_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 8, "intermediate_size": 128})",
       "vocab_size"},
      {R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 60, "num_hidden_layers": 2,
          "num_attention_heads": 8, "intermediate_size": 128})",
       "head_dim"},
      {ConfigText("llama", R"("head_dim": 7)"), "head_dim"},
      {ConfigText("llama", R"("tie_word_embeddings": "yes")"), "tie_word_embeddings"},
      {R"({"vocab_size": 100})", "model_type"},
      {"[]", "object"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ModelConfig> config = ParseConfig(c.text);
    ASSERT_FALSE(config.ok()) << c.text;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.message)) << c.text;
    EXPECT_THAT(std::string(config.status().message()), ::testing::StartsWith("config.json: "));
  }
}

TEST(ModelConfigTest, ToJsonRoundTrips) {
  std::vector<ModelConfig> configs;
  for (const std::string preset : {"tiny", "bench-100m", "llama-3.2-1b", "llama-3-8b"}) {
    absl::StatusOr<ModelConfig> config = PresetConfig(preset);
    ASSERT_TRUE(config.ok()) << config.status();
    configs.push_back(*config);
  }
  for (const std::string& text :
       {ConfigText("qwen2", R"("use_sliding_window": true, "sliding_window": 4096,
                               "eos_token_id": [3, 4])"),
        ConfigText("mistral", R"("sliding_window": 4096, "bos_token_id": 1)")}) {
    absl::StatusOr<ModelConfig> config = ParseConfig(text);
    ASSERT_TRUE(config.ok()) << config.status();
    configs.push_back(*config);
  }
  for (const ModelConfig& config : configs) {
    const std::string dumped = config.ToJson().Dump();
    absl::StatusOr<ModelConfig> parsed = ParseConfig(dumped);
    ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << dumped;
    EXPECT_EQ(parsed->ToJson().Dump(), dumped);
    EXPECT_EQ(parsed->eos_token_ids, config.eos_token_ids);
    EXPECT_EQ(parsed->sliding_window, config.sliding_window);
    EXPECT_EQ(parsed->rope_scaling.has_value(), config.rope_scaling.has_value());
  }
}

TEST(ModelConfigTest, LoadModelConfigNamesTheDirectory) {
  const std::string dir = FreshDir();
  absl::StatusOr<ModelConfig> config = LoadModelConfig(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr(dir));

  ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "config.json"), "{not json").ok());
  config = LoadModelConfig(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("config.json"));
}

// ---------------------------------------------------------------------------------------
// Safetensors.

TEST(SafetensorsTest, RoundTripsEveryDtype) {
  TensorMap tensors;
  tensors["bf16"] = at::randn({3, 5}).to(at::kBFloat16);
  tensors["f16"] = at::randn({7}).to(at::kHalf);
  tensors["f32"] = at::randn({2, 3, 4});
  tensors["f64"] = at::randn({4, 1}, at::TensorOptions().dtype(at::kDouble));
  tensors["i64"] = at::arange(-5, 6, at::TensorOptions().dtype(at::kLong));
  tensors["i32"] = at::arange(-3, 9, at::TensorOptions().dtype(at::kInt)).reshape({3, 4});
  tensors["i16"] = at::arange(-300, 300, 7, at::TensorOptions().dtype(at::kShort));
  tensors["i8"] = at::arange(-128, 128, at::TensorOptions().dtype(at::kChar));
  tensors["u8"] = at::arange(0, 256, at::TensorOptions().dtype(at::kByte));
  tensors["bool"] = at::arange(0, 9, at::TensorOptions().dtype(at::kLong)).remainder(2).eq(0);
  tensors["scalar"] = at::scalar_tensor(2.5, at::TensorOptions().dtype(at::kFloat));
  tensors["empty"] = at::zeros({0, 3}, at::TensorOptions().dtype(at::kBFloat16));
  tensors["transposed"] = at::randn({3, 4}).t();  // written contiguous

  const std::string path = JoinPath(FreshDir(), "all.safetensors");
  absl::Status status = WriteSafetensorsFile(path, tensors);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(FileExists(path + ".tmp"));
  // Data starts 8-byte aligned, with the header padded by spaces, as Hugging Face writes it.
  const uint64_t header_length = HeaderLength(path);
  EXPECT_EQ(header_length % 8, 0u);
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  ASSERT_TRUE(contents.ok());
  EXPECT_TRUE(ParseJson(contents->substr(8, header_length)).ok());

  absl::StatusOr<TensorMap> read = ReadSafetensorsFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    ASSERT_EQ(read->count(name), 1u) << name;
    const at::Tensor& got = read->at(name);
    EXPECT_EQ(got.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), tensor.sizes()) << name;
    EXPECT_TRUE(got.is_contiguous()) << name;
    EXPECT_TRUE(at::equal(got, tensor)) << name;
  }
}

TEST(SafetensorsTest, RefusesUnstorableDtype) {
  TensorMap tensors;
  tensors["complex"] = at::zeros({2}, at::TensorOptions().dtype(at::kComplexFloat));
  const std::string path = JoinPath(FreshDir(), "bad.safetensors");
  absl::Status status = WriteSafetensorsFile(path, tensors);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("complex"));
  EXPECT_FALSE(FileExists(path));
  EXPECT_FALSE(FileExists(path + ".tmp"));
}

TEST(SafetensorsTest, RefusesMalformedHeaders) {
  const std::string dir = FreshDir();
  struct Case {
    std::string name;
    std::string header;
    size_t data_bytes;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"beyond_file", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8,
       "extend past"},
      {"far_beyond_file", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[1000000,1000016]}})",
       16, "extend past"},
      {"size_mismatch", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16,
       "needs 12"},
      {"overlap", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},
                      "b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
       24, "overlap"},
      {"reversed", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8, "data_offsets"},
      {"negative_dim", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, "shape"},
      {"huge_shape",
       R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})", 4,
       "shape"},
      {"unknown_dtype", R"({"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4,
       "F8_E4M3"},
      {"no_offsets", R"({"a":{"dtype":"F32","shape":[1]}})", 4, "data_offsets"},
      {"not_json", R"({"a":)", 4, "JSON"},
      {"not_object", R"([1,2])", 4, "object"},
      {"bool_byte", R"({"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}})", 1, ""},
  };
  for (const Case& c : cases) {
    const std::string path = JoinPath(dir, c.name + ".safetensors");
    WriteRawSafetensors(path, c.header, c.data_bytes);
    if (c.name == "bool_byte") {
      // A BOOL stored as 7.
      absl::StatusOr<std::string> contents = ReadFileToString(path);
      ASSERT_TRUE(contents.ok());
      contents->back() = 7;
      ASSERT_TRUE(WriteStringToFile(path, *contents).ok());
    }
    absl::StatusOr<TensorMap> read = ReadSafetensorsFile(path);
    ASSERT_FALSE(read.ok()) << c.name;
    EXPECT_THAT(std::string(read.status().message()), HasSubstr(path)) << c.name;
    EXPECT_THAT(std::string(read.status().message()), HasSubstr(c.message)) << c.name;
  }

  // A header length far beyond the file.
  const std::string path = JoinPath(dir, "huge_length.safetensors");
  ASSERT_TRUE(WriteStringToFile(path, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10)).ok());
  absl::StatusOr<TensorMap> read = ReadSafetensorsFile(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);

  read = ReadSafetensorsFile(JoinPath(dir, "absent.safetensors"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, AcceptsMetadataAndEmptyFiles) {
  const std::string dir = FreshDir();
  const std::string path = JoinPath(dir, "meta.safetensors");
  WriteRawSafetensors(path,
                      R"({"__metadata__":{"format":"pt"},
                          "a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})",
                      2);
  absl::StatusOr<TensorMap> read = ReadSafetensorsFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), 1u);

  const std::string empty = JoinPath(dir, "empty.safetensors");
  ASSERT_TRUE(WriteSafetensorsFile(empty, TensorMap()).ok());
  read = ReadSafetensorsFile(empty);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->empty());
}

// ---------------------------------------------------------------------------------------
// Checkpoint directories.

TEST(CheckpointTest, RandomTinyLoadsAndIsDeterministic) {
  const std::string dir = FreshDir("seed0");
  absl::StatusOr<ModelConfig> tiny = PresetConfig("tiny");
  ASSERT_TRUE(tiny.ok());
  absl::StatusOr<CheckpointSummary> summary =
      WriteRandomCheckpointWithSummary(*tiny, 0, "bfloat16", dir);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->parameters, ParameterCount(*tiny));
  EXPECT_EQ(summary->bytes,
            static_cast<int64_t>(fs::file_size(JoinPath(dir, "model.safetensors"))));

  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->fingerprint, summary->fingerprint);
  EXPECT_EQ(checkpoint->config.torch_dtype, "bfloat16");
  EXPECT_EQ(checkpoint->tensors.size(), 2u + 2u * 9u);
  for (const auto& [name, tensor] : checkpoint->tensors) {
    EXPECT_EQ(tensor.scalar_type(), at::kBFloat16) << name;
  }
  EXPECT_TRUE(at::equal(checkpoint->tensors.at("model.layers.1.input_layernorm.weight"),
                        at::ones({64}, at::TensorOptions().dtype(at::kBFloat16))));
  const at::Tensor embed = checkpoint->tensors.at("model.embed_tokens.weight").to(at::kFloat);
  EXPECT_NEAR(embed.mean().item<double>(), 0.0, 0.001);
  EXPECT_NEAR(embed.std().item<double>(), 0.02, 0.001);
  // Tensors are drawn independently: no two weight matrices are equal.
  EXPECT_FALSE(at::equal(checkpoint->tensors.at("model.layers.0.mlp.gate_proj.weight"),
                         checkpoint->tensors.at("model.layers.0.mlp.up_proj.weight")));

  const std::string same_dir = FreshDir("seed0_again");
  WriteTiny(same_dir, 0);
  absl::StatusOr<Checkpoint> same = LoadCheckpoint(same_dir);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->fingerprint, checkpoint->fingerprint);
  EXPECT_TRUE(at::equal(same->tensors.at("model.embed_tokens.weight"),
                        checkpoint->tensors.at("model.embed_tokens.weight")));

  const std::string other_dir = FreshDir("seed1");
  WriteTiny(other_dir, 1);
  absl::StatusOr<Checkpoint> other = LoadCheckpoint(other_dir);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->fingerprint, checkpoint->fingerprint);
}

TEST(CheckpointTest, RandomCheckpointDtypes) {
  const std::string dir = FreshDir();
  WriteTiny(dir, 3, "float32");
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->config.torch_dtype, "float32");
  EXPECT_EQ(checkpoint->tensors.at("model.norm.weight").scalar_type(), at::kFloat);

  absl::StatusOr<ModelConfig> tiny = PresetConfig("tiny");
  ASSERT_TRUE(tiny.ok());
  absl::Status status = WriteRandomCheckpoint(*tiny, 0, "int8", FreshDir("int8"));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("int8"));
}

TEST(CheckpointTest, RandomCheckpointWithBiasAndUntiedHead) {
  absl::StatusOr<ModelConfig> config =
      ParseConfig(ConfigText("qwen2", R"("num_key_value_heads": 2, "tie_word_embeddings": false)"));
  ASSERT_TRUE(config.ok()) << config.status();
  const std::string dir = FreshDir();
  ASSERT_TRUE(WriteRandomCheckpoint(*config, 0, "float16", dir).ok());
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->config.model_type, "qwen2");
  EXPECT_EQ(checkpoint->tensors.size(), ExpectedTensorShapes(*config).size());
  EXPECT_EQ(checkpoint->tensors.at("lm_head.weight").sizes(), at::IntArrayRef({100, 64}));
  EXPECT_EQ(checkpoint->tensors.at("model.layers.0.self_attn.q_proj.bias")
                .count_nonzero()
                .item<int64_t>(),
            0);
}

TEST(CheckpointTest, Presets) {
  struct Expected {
    std::string name;
    double parameters;
  };
  for (const Expected& expected : std::vector<Expected>{{"tiny", 0.35e6},
                                                        {"bench-100m", 103e6},
                                                        {"llama-3.2-1b", 1.24e9},
                                                        {"llama-3-8b", 8.03e9}}) {
    absl::StatusOr<ModelConfig> config = PresetConfig(expected.name);
    ASSERT_TRUE(config.ok()) << config.status();
    const double parameters = static_cast<double>(ParameterCount(*config));
    EXPECT_NEAR(parameters / expected.parameters, 1.0, 0.03) << expected.name << " " << parameters;
    EXPECT_TRUE(ModelConfig::FromJson(config->ToJson()).ok()) << expected.name;
  }
  absl::StatusOr<ModelConfig> llama32 = PresetConfig("llama-3.2-1b");
  ASSERT_TRUE(llama32.ok());
  ASSERT_TRUE(llama32->rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(llama32->rope_scaling->factor, 32.0);
  absl::StatusOr<ModelConfig> llama3 = PresetConfig("llama-3-8b");
  ASSERT_TRUE(llama3.ok());
  EXPECT_FALSE(llama3->tie_word_embeddings);
  EXPECT_EQ(ExpectedTensorShapes(*llama3).count("lm_head.weight"), 1u);

  absl::StatusOr<ModelConfig> unknown = PresetConfig("gpt-5");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("bench-100m"));
}

TEST(CheckpointTest, ShardedCheckpoint) {
  const std::string single = FreshDir("single");
  WriteTiny(single, 5);
  absl::StatusOr<Checkpoint> reference = LoadCheckpoint(single);
  ASSERT_TRUE(reference.ok()) << reference.status();

  const std::string sharded = FreshDir("sharded");
  fs::copy_file(JoinPath(single, "config.json"), JoinPath(sharded, "config.json"));
  TensorMap shards[2];
  Json weight_map = Json::MakeObject();
  int i = 0;
  for (const auto& [name, tensor] : reference->tensors) {
    const int shard = i++ % 2;
    shards[shard][name] = tensor;
    weight_map[name] = absl::StrCat("model-0000", shard + 1, "-of-00002.safetensors");
  }
  ASSERT_TRUE(
      WriteSafetensorsFile(JoinPath(sharded, "model-00001-of-00002.safetensors"), shards[0]).ok());
  ASSERT_TRUE(
      WriteSafetensorsFile(JoinPath(sharded, "model-00002-of-00002.safetensors"), shards[1]).ok());
  Json index = Json::MakeObject();
  index["metadata"]["total_size"] = 12345;
  index["weight_map"] = weight_map;
  ASSERT_TRUE(
      WriteStringToFile(JoinPath(sharded, "model.safetensors.index.json"), index.Dump(2)).ok());

  absl::StatusOr<Checkpoint> loaded = LoadCheckpoint(sharded);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->tensors.size(), reference->tensors.size());
  EXPECT_EQ(loaded->fingerprint, reference->fingerprint);

  // A shard the index names but the directory lacks.
  fs::remove(JoinPath(sharded, "model-00002-of-00002.safetensors"));
  loaded = LoadCheckpoint(sharded);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("model-00002-of-00002.safetensors"));

  // An index pointing outside the directory.
  Json hostile = Json::MakeObject();
  hostile["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors";
  ASSERT_TRUE(
      WriteStringToFile(JoinPath(sharded, "model.safetensors.index.json"), hostile.Dump()).ok());
  loaded = LoadCheckpoint(sharded);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("elsewhere"));

  // Neither weights file.
  fs::remove(JoinPath(sharded, "model.safetensors.index.json"));
  loaded = LoadCheckpoint(sharded);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("model.safetensors"));
}

// Rewrites DIR/model.safetensors after `edit` changes its tensors.
template <typename Edit>
void EditWeights(const std::string& dir, Edit edit) {
  const std::string path = JoinPath(dir, "model.safetensors");
  absl::StatusOr<TensorMap> tensors = ReadSafetensorsFile(path);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  edit(*tensors);
  ASSERT_TRUE(WriteSafetensorsFile(path, *tensors).ok());
}

TEST(CheckpointTest, MissingTensor) {
  const std::string dir = FreshDir();
  WriteTiny(dir);
  EditWeights(dir, [](TensorMap& tensors) { tensors.erase("model.layers.1.mlp.up_proj.weight"); });
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      std::string(checkpoint.status().message()),
      absl::StrCat("checkpoint ", dir, ": tensor 'model.layers.1.mlp.up_proj.weight' missing"));
}

TEST(CheckpointTest, WrongShape) {
  const std::string dir = FreshDir();
  WriteTiny(dir);
  EditWeights(dir, [](TensorMap& tensors) {
    tensors["model.layers.0.self_attn.k_proj.weight"] =
        at::zeros({64, 64}, at::TensorOptions().dtype(at::kBFloat16));
  });
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(std::string(checkpoint.status().message()),
            absl::StrCat("checkpoint ", dir,
                         ": tensor 'model.layers.0.self_attn.k_proj.weight' has shape [64, 64], "
                         "expected [32, 64]"));
}

TEST(CheckpointTest, NonFloatingTensor) {
  const std::string dir = FreshDir();
  WriteTiny(dir);
  EditWeights(dir, [](TensorMap& tensors) {
    tensors["model.norm.weight"] = at::ones({64}, at::TensorOptions().dtype(at::kInt));
  });
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(std::string(checkpoint.status().message()), HasSubstr("'model.norm.weight'"));
  EXPECT_THAT(std::string(checkpoint.status().message()), HasSubstr("floating"));
}

TEST(CheckpointTest, ExtraTensorsAreFine) {
  const std::string dir = FreshDir();
  WriteTiny(dir);
  EditWeights(dir, [](TensorMap& tensors) {
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = at::ones({8});
  });
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
}

TEST(CheckpointTest, UnknownModelType) {
  const std::string dir = FreshDir();
  WriteTiny(dir);
  absl::StatusOr<Json> config = ParseJson(*ReadFileToString(JoinPath(dir, "config.json")));
  ASSERT_TRUE(config.ok());
  (*config)["model_type"] = "gpt2";
  ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "config.json"), config->Dump()).ok());
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(checkpoint.status().message()), HasSubstr(dir));
  EXPECT_THAT(std::string(checkpoint.status().message()),
              HasSubstr("field 'model_type' is 'gpt2'; supported: llama, mistral, qwen2"));
}

TEST(CheckpointTest, MissingDirectory) {
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(JoinPath(FreshDir(), "nowhere"));
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, TruncatedAustenFails) {
  const std::string source = JoinPath(kAustenDir, "model.safetensors");
  const uint64_t size = fs::file_size(source);
  const uint64_t header_end = 8 + HeaderLength(source);
  for (const uint64_t cut : std::vector<uint64_t>{0, 4, 7, 8, 9, 100, header_end - 1, header_end,
                                                  header_end + 1, size / 2, size - 1}) {
    const std::string dir = FreshDir(absl::StrCat("cut", cut));
    fs::copy_file(JoinPath(kAustenDir, "config.json"), JoinPath(dir, "config.json"));
    const std::string path = JoinPath(dir, "model.safetensors");
    fs::copy_file(source, path);
    fs::resize_file(path, cut);
    absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
    ASSERT_FALSE(checkpoint.ok()) << "cut at " << cut;
    EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kDataLoss) << "cut at " << cut;
    EXPECT_THAT(std::string(checkpoint.status().message()), HasSubstr(path)) << "cut at " << cut;
  }
}

// Random bytes overwritten in the safetensors header (its length prefix and JSON) or in
// config.json: every load either succeeds with the shapes the config asks for or returns an
// error naming the problem, never a crash or an allocation the file cannot back.
TEST(CheckpointTest, CorruptedHeadersAndConfigsNeverCrash) {
  const std::string source = FreshDir("source");
  WriteTiny(source);
  absl::StatusOr<std::string> weights = ReadFileToString(JoinPath(source, "model.safetensors"));
  absl::StatusOr<std::string> config = ReadFileToString(JoinPath(source, "config.json"));
  ASSERT_TRUE(weights.ok() && config.ok());
  const size_t header_end = 8 + HeaderLength(JoinPath(source, "model.safetensors"));
  const std::string dir = FreshDir("corrupted");
  std::mt19937 rng(7);
  int refused = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string corrupted_weights = *weights;
    std::string corrupted_config = *config;
    std::string& target = trial % 2 == 0 ? corrupted_weights : corrupted_config;
    CorruptBytes(trial, trial % 2 == 0 ? header_end : target.size(), &rng, &target);
    ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "model.safetensors"), corrupted_weights).ok());
    ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "config.json"), corrupted_config).ok());
    absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
    if (!checkpoint.ok()) {
      ++refused;
      EXPECT_FALSE(checkpoint.status().message().empty()) << "trial " << trial;
      continue;
    }
    for (const auto& [name, shape] : ExpectedTensorShapes(checkpoint->config)) {
      ASSERT_EQ(checkpoint->tensors.count(name), 1u) << "trial " << trial << ": " << name;
      EXPECT_EQ(checkpoint->tensors.at(name).sizes().vec(), shape) << "trial " << trial;
    }
  }
  // Most corruptions must be caught; a few (a digit of rope_theta, a key's spelling in an
  // unused field) leave a valid checkpoint.
  EXPECT_GT(refused, 150);
}

TEST(CheckpointTest, CorruptHeaderInAustenCopyFails) {
  const std::string dir = FreshDir();
  fs::copy_file(JoinPath(kAustenDir, "config.json"), JoinPath(dir, "config.json"));
  const std::string path = JoinPath(dir, "model.safetensors");
  absl::StatusOr<std::string> contents =
      ReadFileToString(JoinPath(kAustenDir, "model.safetensors"));
  ASSERT_TRUE(contents.ok());
  // Point the final norm's data past the end of the file.
  const uint64_t header_length = HeaderLength(JoinPath(kAustenDir, "model.safetensors"));
  absl::StatusOr<Json> header = ParseJson(contents->substr(8, header_length));
  ASSERT_TRUE(header.ok());
  (*header)["model.norm.weight"]["data_offsets"] =
      Json(Json::Array{Json(20000000), Json(20000512)});
  WriteRawSafetensors(path, header->Dump(), 0);
  absl::StatusOr<std::string> rebuilt = ReadFileToString(path);
  ASSERT_TRUE(rebuilt.ok());
  ASSERT_TRUE(WriteStringToFile(path, *rebuilt + contents->substr(8 + header_length)).ok());
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(dir);
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(checkpoint.status().message()), HasSubstr("model.norm.weight"));
}

}  // namespace
}  // namespace semshare

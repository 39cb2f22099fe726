#include "inference_worker/engine/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace semshare {
namespace {

// Elements of each tensor that the fingerprint reads: enough to tell fine-tunes and
// re-initialisations apart, few enough that a 16 GB checkpoint hashes in microseconds.
constexpr int64_t kFingerprintSamples = 64;
constexpr double kInitStddev = 0.02;

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string DtypeName(at::ScalarType dtype) {
  const std::string name = SafetensorsDtypeName(dtype);
  return name.empty() ? std::string(c10::toString(dtype)) : name;
}

bool IsFloating(at::ScalarType dtype) {
  return dtype == at::kBFloat16 || dtype == at::kHalf || dtype == at::kFloat ||
         dtype == at::kDouble;
}

// Hashes tensors one at a time, in name order, so that a checkpoint being written can be
// fingerprinted without holding all of it.
class FingerprintBuilder {
 public:
  explicit FingerprintBuilder(const ModelConfig& config) { AddString(config.ToJson().Dump()); }

  void AddTensor(const std::string& name, const at::Tensor& tensor) {
    AddString(name);
    if (!tensor.defined()) {
      AddString("undefined");
      return;
    }
    AddString(DtypeName(tensor.scalar_type()));
    hasher_.UpdateU64(static_cast<uint64_t>(tensor.dim()));
    for (int64_t size : tensor.sizes()) hasher_.UpdateU64(static_cast<uint64_t>(size));
    const int64_t numel = tensor.numel();
    const int64_t count = std::min(numel, kFingerprintSamples);
    if (count == 0) return;
    const int64_t element_size = static_cast<int64_t>(tensor.element_size());
    std::vector<int64_t> indices(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) indices[static_cast<size_t>(i)] = i * numel / count;

    if (tensor.device().is_cpu() && tensor.is_contiguous()) {
      const char* data = static_cast<const char*>(tensor.data_ptr());
      for (int64_t index : indices) {
        hasher_.Update(
            absl::string_view(data + index * element_size, static_cast<size_t>(element_size)));
      }
      return;
    }
    // Elsewhere (a GPU, a view) gather just the samples: the bytes, and so the fingerprint,
    // are the same as for the contiguous CPU copy.
    try {
      at::Tensor index =
          at::tensor(indices, at::TensorOptions().dtype(at::kLong)).to(tensor.device());
      at::Tensor sample = tensor.reshape({-1}).index_select(0, index).cpu().contiguous();
      hasher_.Update(absl::string_view(static_cast<const char*>(sample.data_ptr()),
                                       static_cast<size_t>(count * element_size)));
    } catch (const c10::Error& e) {
      // Only a broken device gets here; the marker makes the fingerprint match nothing real.
      AddString(absl::StrCat("unreadable: ", e.what_without_backtrace()));
    }
  }

  std::string Finish() const { return hasher_.HexDigest(); }

 private:
  // Length-prefixed so that ("ab", "c") and ("a", "bc") hash differently.
  void AddString(absl::string_view text) {
    hasher_.UpdateU64(text.size());
    hasher_.Update(text);
  }

  StableHasher hasher_;
};

// SplitMix64: a counter-based generator, so element i's value depends only on (key, i) and
// the tensor can be filled by any number of threads with the same result.
uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Fills `out` with normal(0, stddev) by Box-Muller, two values per random word. Plain C++
// rather than at::normal_ so the weights do not change with the libtorch version. Each pair
// depends on its index alone, so the values do not depend on how many threads fill them.
// Plain threads, at::get_num_threads() of them: at::parallel_for's OpenMP backend is inline
// in ATen's headers and runs serially in a translation unit built without -fopenmp.
template <typename T>
void FillNormal(T* out, int64_t numel, uint64_t key, double stddev) {
  const int64_t pairs = (numel + 1) / 2;
  constexpr double kTwoPi = 6.283185307179586;
  constexpr double kUnit = 1.0 / 16777216.0;  // 2^-24
  auto fill = [=](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const uint64_t bits = SplitMix64(key + static_cast<uint64_t>(pair) * 0x9e3779b97f4a7c15ULL);
      const double u1 = static_cast<double>((bits >> 40) + 1) * kUnit;  // (0, 1]: log is finite
      const double u2 = static_cast<double>((bits >> 16) & 0xffffff) * kUnit;
      const double radius = stddev * std::sqrt(-2.0 * std::log(u1));
      const int64_t first = 2 * pair;
      out[first] = static_cast<T>(static_cast<float>(radius * std::cos(kTwoPi * u2)));
      if (first + 1 < numel) {
        out[first + 1] = static_cast<T>(static_cast<float>(radius * std::sin(kTwoPi * u2)));
      }
    }
  };
  constexpr int64_t kMinPairsPerThread = 1 << 16;
  const int64_t threads = std::clamp<int64_t>(pairs / kMinPairsPerThread, 1, at::get_num_threads());
  const int64_t per_thread = (pairs + threads - 1) / threads;
  std::vector<std::thread> workers;
  for (int64_t t = 1; t < threads; ++t) {
    workers.emplace_back(fill, t * per_thread, std::min(pairs, (t + 1) * per_thread));
  }
  fill(0, std::min(pairs, per_thread));
  for (std::thread& worker : workers) worker.join();
}

absl::StatusOr<at::Tensor> MakeRandomTensor(const SafetensorsEntry& entry, uint64_t seed) {
  try {
    const at::TensorOptions options = at::TensorOptions().dtype(entry.dtype);
    // Norm weights start at one and biases at zero, as in transformers' _init_weights.
    if (absl::EndsWith(entry.name, ".bias")) return at::zeros(entry.shape, options);
    if (entry.shape.size() == 1) return at::ones(entry.shape, options);
    StableHasher hasher;
    hasher.Update("semshare random checkpoint");
    hasher.UpdateU64(seed);
    hasher.Update(entry.name);
    at::Tensor tensor = at::empty(entry.shape, options);
    const int64_t numel = tensor.numel();
    switch (entry.dtype) {
      case at::kBFloat16:
        FillNormal(tensor.data_ptr<at::BFloat16>(), numel, hasher.Digest(), kInitStddev);
        break;
      case at::kHalf:
        FillNormal(tensor.data_ptr<at::Half>(), numel, hasher.Digest(), kInitStddev);
        break;
      case at::kFloat:
        FillNormal(tensor.data_ptr<float>(), numel, hasher.Digest(), kInitStddev);
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("random weights in ", c10::toString(entry.dtype), " are not supported"));
    }
    return tensor;
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("tensor '", entry.name, "': ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("tensor '", entry.name, "': out of memory"));
  }
}

absl::StatusOr<at::ScalarType> ParseWeightDtype(const std::string& dtype) {
  if (dtype == "bfloat16") return at::kBFloat16;
  if (dtype == "float16") return at::kHalf;
  if (dtype == "float32") return at::kFloat;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype '", dtype, "' is not supported; supported: bfloat16, float16, float32"));
}

ModelConfig LlamaPreset() {
  ModelConfig config;
  config.model_type = "llama";
  config.rope_theta = 10000.0;
  config.rms_norm_eps = 1e-5;
  config.tie_word_embeddings = true;
  config.max_position_embeddings = 8192;
  config.bos_token_id = 1;
  config.eos_token_ids = {2};
  config.torch_dtype = "bfloat16";
  return config;
}

}  // namespace

std::map<std::string, std::vector<int64_t>> ExpectedTensorShapes(const ModelConfig& config) {
  const int64_t hidden = config.hidden_size;
  const int64_t intermediate = config.intermediate_size;
  std::map<std::string, std::vector<int64_t>> shapes;
  shapes["model.embed_tokens.weight"] = {config.vocab_size, hidden};
  shapes["model.norm.weight"] = {hidden};
  if (!config.tie_word_embeddings) shapes["lm_head.weight"] = {config.vocab_size, hidden};
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string prefix = absl::StrCat("model.layers.", layer, ".");
    shapes[prefix + "input_layernorm.weight"] = {hidden};
    shapes[prefix + "post_attention_layernorm.weight"] = {hidden};
    shapes[prefix + "self_attn.q_proj.weight"] = {config.q_dim(), hidden};
    shapes[prefix + "self_attn.k_proj.weight"] = {config.kv_dim(), hidden};
    shapes[prefix + "self_attn.v_proj.weight"] = {config.kv_dim(), hidden};
    shapes[prefix + "self_attn.o_proj.weight"] = {hidden, config.q_dim()};
    if (config.attention_bias) {
      shapes[prefix + "self_attn.q_proj.bias"] = {config.q_dim()};
      shapes[prefix + "self_attn.k_proj.bias"] = {config.kv_dim()};
      shapes[prefix + "self_attn.v_proj.bias"] = {config.kv_dim()};
    }
    shapes[prefix + "mlp.gate_proj.weight"] = {intermediate, hidden};
    shapes[prefix + "mlp.up_proj.weight"] = {intermediate, hidden};
    shapes[prefix + "mlp.down_proj.weight"] = {hidden, intermediate};
  }
  return shapes;
}

absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& dir) {
  Checkpoint checkpoint;
  checkpoint.dir = dir;
  SEMSHARE_ASSIGN_OR_RETURN(checkpoint.config, LoadModelConfig(dir));
  SEMSHARE_ASSIGN_OR_RETURN(checkpoint.tensors, ReadCheckpointTensors(dir));

  const std::map<std::string, std::vector<int64_t>> expected =
      ExpectedTensorShapes(checkpoint.config);
  std::vector<std::string> missing;
  for (const auto& [name, shape] : expected) {
    if (checkpoint.tensors.count(name) == 0) missing.push_back(name);
  }
  if (!missing.empty()) {
    std::string more;
    if (missing.size() > 1) more = absl::StrCat(" (and ", missing.size() - 1, " more)");
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", dir, ": tensor '", missing.front(), "' missing", more));
  }
  for (const auto& [name, shape] : expected) {
    const at::Tensor& tensor = checkpoint.tensors.at(name);
    if (tensor.sizes() != at::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint ", dir, ": tensor '", name,
                                                     "' has shape ", ShapeString(tensor.sizes()),
                                                     ", expected ", ShapeString(shape)));
    }
    if (!IsFloating(tensor.scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint ", dir, ": tensor '", name, "' has dtype ", DtypeName(tensor.scalar_type()),
          ", expected a floating type (BF16, F16, F32, F64)"));
    }
  }
  checkpoint.fingerprint = ComputeModelFingerprint(checkpoint.config, checkpoint.tensors);
  return checkpoint;
}

std::string ComputeModelFingerprint(const ModelConfig& config, const TensorMap& tensors) {
  FingerprintBuilder builder(config);
  for (const auto& [name, tensor] : tensors) builder.AddTensor(name, tensor);
  return builder.Finish();
}

absl::StatusOr<ModelConfig> PresetConfig(const std::string& preset) {
  ModelConfig config = LlamaPreset();
  if (preset == "tiny") {
    config.vocab_size = 4096;
    config.hidden_size = 64;
    config.num_hidden_layers = 2;
    config.num_attention_heads = 4;
    config.num_key_value_heads = 2;
    config.head_dim = 16;
    config.intermediate_size = 176;
  } else if (preset == "bench-100m") {
    config.vocab_size = 32000;
    config.hidden_size = 576;
    config.num_hidden_layers = 24;
    config.num_attention_heads = 9;
    config.num_key_value_heads = 3;
    config.head_dim = 64;
    config.intermediate_size = 1536;
  } else if (preset == "llama-3.2-1b") {
    config.vocab_size = 128256;
    config.hidden_size = 2048;
    config.num_hidden_layers = 16;
    config.num_attention_heads = 32;
    config.num_key_value_heads = 8;
    config.head_dim = 64;
    config.intermediate_size = 8192;
    config.rope_theta = 500000.0;
    config.rope_scaling = RopeScaling{32.0, 1.0, 4.0, 8192};
    config.max_position_embeddings = 131072;
    config.bos_token_id = 128000;
    config.eos_token_ids = {128001};
  } else if (preset == "llama-3-8b") {
    config.vocab_size = 128256;
    config.hidden_size = 4096;
    config.num_hidden_layers = 32;
    config.num_attention_heads = 32;
    config.num_key_value_heads = 8;
    config.head_dim = 128;
    config.intermediate_size = 14336;
    config.rope_theta = 500000.0;
    config.tie_word_embeddings = false;
    config.max_position_embeddings = 8192;
    config.bos_token_id = 128000;
    config.eos_token_ids = {128001};
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown model preset '", preset, "'; known: tiny, bench-100m, llama-3.2-1b, llama-3-8b"));
  }
  return config;
}

absl::StatusOr<CheckpointSummary> WriteRandomCheckpointWithSummary(const ModelConfig& config,
                                                                   uint64_t seed,
                                                                   const std::string& dtype,
                                                                   const std::string& out_dir) {
  SEMSHARE_ASSIGN_OR_RETURN(const at::ScalarType scalar_type, ParseWeightDtype(dtype));
  ModelConfig requested = config;
  requested.torch_dtype = dtype;
  // Validate, and fingerprint the config exactly as LoadCheckpoint will read it back (JSON
  // numbers are printed with 9 significant digits, so parse the text, not the Json value).
  const std::string config_text = requested.ToJson().Dump(2) + "\n";
  SEMSHARE_ASSIGN_OR_RETURN(const Json config_json, ParseJson(config_text));
  SEMSHARE_ASSIGN_OR_RETURN(const ModelConfig written, ModelConfig::FromJson(config_json));
  SEMSHARE_RETURN_IF_ERROR(MakeDirectories(out_dir));

  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, shape] : ExpectedTensorShapes(written)) {
    entries.push_back({name, scalar_type, shape});
  }
  CheckpointSummary summary;
  // Entries come in name order, the order the fingerprint needs.
  FingerprintBuilder fingerprint(written);
  auto make_tensor = [&](const SafetensorsEntry& entry) -> absl::StatusOr<at::Tensor> {
    SEMSHARE_ASSIGN_OR_RETURN(at::Tensor tensor, MakeRandomTensor(entry, seed));
    fingerprint.AddTensor(entry.name, tensor);
    summary.parameters += tensor.numel();
    return tensor;
  };
  SEMSHARE_ASSIGN_OR_RETURN(
      summary.bytes,
      WriteSafetensorsFileStreaming(JoinPath(out_dir, "model.safetensors"), entries, make_tensor));
  // config.json last: a directory with a config has complete weights.
  SEMSHARE_RETURN_IF_ERROR(WriteStringToFile(JoinPath(out_dir, "config.json"), config_text));
  summary.fingerprint = fingerprint.Finish();
  return summary;
}

absl::Status WriteRandomCheckpoint(const ModelConfig& config, uint64_t seed,
                                   const std::string& dtype, const std::string& out_dir) {
  return WriteRandomCheckpointWithSummary(config, seed, dtype, out_dir).status();
}

}  // namespace semshare

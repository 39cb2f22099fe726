#include "cache_node/request_checks.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace semshare::cache_node {
namespace {

constexpr size_t kMaxReferenceIdBytes = 1024;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status CheckBlob(const TensorBlob& blob, int64_t num_tokens, absl::string_view what) {
  if (blob.shape.size() != 3 || blob.shape[0] <= 0 || blob.shape[1] != num_tokens ||
      blob.shape[2] <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has shape ", ShapeString(blob.shape),
                                                   ", expected [kv_heads, ", num_tokens,
                                                   ", head_dim]"));
  }
  if (static_cast<int64_t>(blob.data.size()) != blob.num_elements() * DTypeSize(blob.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " holds ", blob.data.size(),
                                                   " bytes, its shape and dtype need ",
                                                   blob.num_elements() * DTypeSize(blob.dtype)));
  }
  return absl::OkStatus();
}

}  // namespace

ModelLayout ModelLayout::Of(const ReferenceMeta& meta, const ReferenceCodes& codes) {
  return ModelLayout{meta.num_layers, meta.dtype,        meta.kv_heads,
                     meta.head_dim,   codes.codes.nbits, static_cast<int32_t>(codes.sketch.size())};
}

absl::Status CheckScope(const ReferenceScope& scope) {
  if (scope.tenant.empty()) return absl::InvalidArgumentError("no tenant");
  if (scope.model_fingerprint.empty()) return absl::InvalidArgumentError("no model fingerprint");
  return absl::OkStatus();
}

absl::Status CheckTokenCodes(const TokenCodes& codes, absl::string_view what) {
  if (codes.nbits <= 0)
    return absl::InvalidArgumentError(absl::StrCat(what, " codes have no bits"));
  if (codes.size() == 0) return absl::InvalidArgumentError(absl::StrCat(what, " codes are empty"));
  if (codes.words.size() != static_cast<size_t>(codes.size() * codes.words_per_code())) {
    return absl::InvalidArgumentError(absl::StrCat(what, " codes: ", codes.words.size(),
                                                   " words is not a whole number of ", codes.nbits,
                                                   "-bit codes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelLayout> CheckNewReference(const NewReference& reference) {
  if (reference.reference_id.empty()) return absl::InvalidArgumentError("no reference id");
  if (reference.reference_id.size() > kMaxReferenceIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference id longer than ", kMaxReferenceIdBytes, " bytes"));
  }
  const int64_t n = static_cast<int64_t>(reference.token_ids.size());
  if (n == 0) return absl::InvalidArgumentError("empty prompt (no token ids)");
  if (absl::Status s = CheckTokenCodes(reference.codes, "reference"); !s.ok()) return s;
  if (reference.codes.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(reference.codes.size(), " token codes for ", n, " tokens"));
  }
  if (reference.sketch.empty()) return absl::InvalidArgumentError("empty sketch");
  for (float x : reference.sketch) {
    if (!std::isfinite(x)) return absl::InvalidArgumentError("sketch holds a non-finite value");
  }
  if (reference.layers.empty()) return absl::InvalidArgumentError("no KV layers");
  const TensorBlob& first = reference.layers[0].key;
  for (size_t l = 0; l < reference.layers.size(); ++l) {
    for (const TensorBlob* blob : {&reference.layers[l].key, &reference.layers[l].value}) {
      const std::string what =
          absl::StrCat("layer ", l, blob == &reference.layers[l].key ? " keys" : " values");
      if (absl::Status s = CheckBlob(*blob, n, what); !s.ok()) return s;
      if (blob->shape != first.shape || blob->dtype != first.dtype) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " are ", DTypeName(blob->dtype), ShapeString(blob->shape),
                         ", layer 0 keys ", DTypeName(first.dtype), ShapeString(first.shape)));
      }
    }
  }
  return ModelLayout{static_cast<int32_t>(reference.layers.size()),
                     first.dtype,
                     first.shape[0],
                     first.shape[2],
                     reference.codes.nbits,
                     static_cast<int32_t>(reference.sketch.size())};
}

absl::Status CheckSameLayout(const ModelLayout& model, const ModelLayout& incoming) {
  const auto differ = [](absl::string_view what, auto was, auto is) {
    return absl::FailedPreconditionError(
        absl::StrCat("the model's references have ", was, " ", what, ", this one ", is));
  };
  if (incoming.num_layers != model.num_layers) {
    return differ("layers", model.num_layers, incoming.num_layers);
  }
  if (incoming.dtype != model.dtype) {
    return differ("dtype", DTypeName(model.dtype), DTypeName(incoming.dtype));
  }
  if (incoming.kv_heads != model.kv_heads)
    return differ("kv heads", model.kv_heads, incoming.kv_heads);
  if (incoming.head_dim != model.head_dim)
    return differ("head dim", model.head_dim, incoming.head_dim);
  if (incoming.code_bits != model.code_bits) {
    return differ("code bits", model.code_bits, incoming.code_bits);
  }
  if (incoming.sketch_dim != model.sketch_dim) {
    return differ("sketch values", model.sketch_dim, incoming.sketch_dim);
  }
  return absl::OkStatus();
}

absl::Status CheckFetch(absl::Span<const int32_t> source, int64_t num_tokens, int32_t num_layers,
                        const std::vector<std::vector<int32_t>>& token_subsets) {
  if (source.empty()) return absl::InvalidArgumentError("empty source mapping");
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] < 0 || source[i] >= num_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "source[", i, "] = ", source[i], " is outside the reference's ", num_tokens, " tokens"));
    }
  }
  if (token_subsets.empty()) return absl::OkStatus();
  if (static_cast<int64_t>(token_subsets.size()) != num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat(token_subsets.size(), " token subsets for ", num_layers, " layers"));
  }
  const auto targets = static_cast<int64_t>(source.size());
  for (size_t l = 0; l < token_subsets.size(); ++l) {
    int64_t previous = -1;
    for (int32_t t : token_subsets[l]) {
      if (t <= previous || t >= targets) {
        return absl::InvalidArgumentError(absl::StrCat("token subset of layer ", l,
                                                       " must ascend strictly within [0, ", targets,
                                                       "), has ", t));
      }
      previous = t;
    }
  }
  return absl::OkStatus();
}

}  // namespace semshare::cache_node

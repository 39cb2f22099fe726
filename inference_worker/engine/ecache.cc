#include "inference_worker/engine/ecache.h"

#include <ATen/ATen.h>

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

namespace semshare {
namespace {

// Box-Muller over mt19937_64: std::normal_distribution is not the same on every standard
// library, and codes must agree cluster-wide.
class PortableGaussian {
 public:
  explicit PortableGaussian(uint64_t seed) : engine_(seed) {}
  double Next() {
    const double u1 = (static_cast<double>(engine_() >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = (static_cast<double>(engine_() >> 11) + 0.5) * 0x1.0p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  std::mt19937_64 engine_;
};

// A [dim, nbits] projection: orthonormal columns (modified Gram-Schmidt in double) when
// nbits <= dim, plain Gaussian columns otherwise.
at::Tensor RandomRotation(int64_t dim, int64_t nbits, uint64_t seed) {
  PortableGaussian gaussian(seed);
  std::vector<std::vector<double>> columns(static_cast<size_t>(nbits),
                                           std::vector<double>(static_cast<size_t>(dim)));
  for (auto& column : columns) {
    for (double& x : column) x = gaussian.Next();
  }
  if (nbits <= dim) {
    for (size_t c = 0; c < columns.size(); ++c) {
      for (size_t p = 0; p < c; ++p) {
        double dot = 0;
        for (int64_t i = 0; i < dim; ++i) dot += columns[c][i] * columns[p][i];
        for (int64_t i = 0; i < dim; ++i) columns[c][i] -= dot * columns[p][i];
      }
      double norm = 0;
      for (double x : columns[c]) norm += x * x;
      norm = std::sqrt(norm);
      for (double& x : columns[c]) x /= norm;
    }
  }
  at::Tensor projection = at::empty({dim, nbits}, at::kFloat);
  float* out = projection.data_ptr<float>();
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t c = 0; c < nbits; ++c) out[i * nbits + c] = static_cast<float>(columns[c][i]);
  }
  return projection;
}

}  // namespace

absl::Status ECacheOptions::Validate() const {
  if (nbits <= 0 || nbits % 64 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ecache nbits must be a positive multiple of 64, got ", nbits));
  }
  if (!(position_divisor > 0)) {
    return absl::InvalidArgumentError("ecache position_divisor must be > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<TokenEncoder> TokenEncoder::Create(const ModelConfig& config,
                                                  const ECacheOptions& options,
                                                  const at::Device& device) {
  absl::Status valid = options.Validate();
  if (!valid.ok()) return valid;
  if (config.hidden_size % 2 != 0) {
    return absl::InvalidArgumentError("hidden_size must be even for the E-cache rotation");
  }
  return TokenEncoder(options, Rope(config.hidden_size, config.rope_theta, std::nullopt),
                      RandomRotation(config.hidden_size, options.nbits, options.seed).to(device));
}

at::Tensor TokenEncoder::RotatedEmbeddings(const at::Tensor& embeddings,
                                           int64_t first_position) const {
  at::Tensor x = embeddings.to(at::kFloat);
  if (!options_.use_rope) return x;
  const int64_t n = x.size(0);
  const at::Tensor positions =
      at::arange(first_position, first_position + n, at::TensorOptions().dtype(at::kDouble))
          .div_(options_.position_divisor);
  return rope_.Apply(x, positions);
}

TokenCodes TokenEncoder::Encode(const at::Tensor& rotated) const {
  // The projection runs where the embeddings are; only the sign bits cross to the host (a
  // 5,120-token prompt of a 4,096-wide model is 84 MB of fp32 embeddings, 1.3 MB of signs).
  const at::Tensor x = rotated.to(at::kFloat);
  // to() is free where the projection already is (the engine keeps it on the model's device).
  const at::Tensor positive =
      at::matmul(x, projection_.to(x.device())).gt(0).to(at::kCPU).contiguous();
  const int64_t n = positive.size(0);
  TokenCodes codes;
  codes.nbits = options_.nbits;
  const int32_t words = codes.words_per_code();
  codes.words.assign(static_cast<size_t>(n * words), 0);
  const bool* p = positive.data_ptr<bool>();
  for (int64_t t = 0; t < n; ++t) {
    uint64_t* code = codes.words.data() + t * words;
    for (int32_t b = 0; b < options_.nbits; ++b) {
      if (p[t * options_.nbits + b]) code[b / 64] |= uint64_t{1} << (b % 64);
    }
  }
  return codes;
}

at::Tensor TokenEncoder::Sketch(const at::Tensor& rotated) const {
  const at::Tensor mean = rotated.to(at::kFloat).mean(0).to(at::kCPU);
  return mean / mean.norm().clamp_min(1e-12);
}

}  // namespace semshare

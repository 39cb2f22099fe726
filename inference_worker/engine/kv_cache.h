#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_KV_CACHE_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_KV_CACHE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace semshare {

// One layer's cache: keys (RoPE already applied), values and the prompt position of every
// cached token, kept in ascending position order. Layers may hold different tokens and
// different counts (retention prunes each layer by its own budget). Storage grows by
// doubling so decode appends are amortised O(1).
class LayerKV {
 public:
  LayerKV() = default;
  // Takes k, v [kv_heads, n, head_dim] and positions int64 [n] as the initial contents.
  LayerKV(const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions);
  // An empty cache of `capacity` tokens.
  static LayerKV Empty(int64_t kv_heads, int64_t head_dim, int64_t capacity, at::ScalarType dtype,
                       at::Device device);

  int64_t size() const { return size_; }
  at::Tensor k() const;          // [kv_heads, size, head_dim] view
  at::Tensor v() const;          // [kv_heads, size, head_dim] view
  at::Tensor positions() const;  // int64 [size] view
  // Per-KV-head additive attention logit bias, float [kv_heads, size] view, or undefined when
  // the layer has none (all zero). Merged tokens carry log(tokens they stand for) here
  // (KeepMerging); tokens written later get 0.
  at::Tensor bias() const;
  // Sets the bias of the live tokens (float [kv_heads, size]); undefined removes it.
  void SetBias(const at::Tensor& bias);

  // Appends tokens whose positions exceed every cached position (decode and prefill chunks).
  void Append(const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions);
  // Writes tokens into existing slots `index` (int64 [s]) in place, positions included: fresh
  // KV replacing reused KV, or a prefill filling slots made by Resize.
  void Overwrite(const at::Tensor& index, const at::Tensor& k, const at::Tensor& v,
                 const at::Tensor& positions);
  // Keeps only the tokens at sorted `index` (int64 [s]).
  void Keep(const at::Tensor& index);
  // Sets the size (tokens beyond it are dropped); used to pre-size a cache for prefill.
  void Resize(int64_t size);
  // Makes room for `tokens` more appends now, exactly (no doubling): a scheduler that knows a
  // sequence's max_tokens holds its KV at its final size from the start of decode.
  void ReserveExtra(int64_t tokens);

  int64_t bytes() const;  // bytes of the live K and V

 private:
  void Reserve(int64_t capacity);     // grows by doubling
  void Reallocate(int64_t capacity);  // exactly `capacity`, keeping the live tokens

  at::Tensor k_;  // [kv_heads, capacity, head_dim]
  at::Tensor v_;
  at::Tensor positions_;  // int64 [capacity]
  at::Tensor bias_;       // float [kv_heads, capacity] or undefined
  int64_t size_ = 0;
};

// Every layer's cache for one sequence.
struct KVCache {
  std::vector<LayerKV> layers;

  int64_t bytes() const;
  // Tokens held summed over layers (the denominator of "KV kept" shares).
  int64_t token_layers() const;
  // A deep copy of the live tokens (no spare capacity): decoding from it leaves this unchanged.
  KVCache Clone() const;
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_KV_CACHE_H_

#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_MODEL_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_MODEL_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/engine/checkpoint.h"
#include "inference_worker/engine/kv_cache.h"
#include "inference_worker/engine/model_config.h"
#include "inference_worker/engine/retention.h"
#include "inference_worker/engine/rope.h"
#include "inference_worker/engine/tokenizer.h"

namespace semshare {

struct ModelOptions {
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:N"
  // "auto" (float32 on CPU, bfloat16 on CUDA), "float32", "bfloat16" or "float16".
  std::string dtype = "auto";
  // Rows per tile of a batched decode step (Model::DecodeBatch): a batch of B costs
  // ceil(B / rows) passes over the weights, and one sequence alone costs a whole tile's compute.
  // Measured on bench-100m, 2 CPU cores (README, "Batched decode"): 16 rows make one sequence
  // alone 1.6x slower per token than 1 row but 16 sequences 8.6x faster in total.
  int64_t decode_tile_rows = 16;
};

// The compute dtype `name` (a ModelOptions::dtype) stands for on `device`.
absl::StatusOr<at::ScalarType> ResolveDtype(const std::string& name, const at::Device& device);

// The tokenizer of the checkpoint in `dir` (LoadTokenizer), or null when it has none.
// InvalidArgument when the tokenizer has more tokens than the model's vocab_size: its ids
// would index past the embedding matrix.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const std::string& dir,
                                                              const ModelConfig& config);

// Optional attention bookkeeping for retention: which queries count as the observation
// window (prompt positions >= window_start_position).
struct AttentionStatsRequest {
  LayerAttentionStats* stats = nullptr;  // accumulated into; sized to the layer's cache
  int64_t window_start_position = 0;
  // accumulated_mass sums every query's attention (H2O reads it). Without it only the queries
  // from window_start_position on and the last one are gathered, and accumulated_mass is left
  // as it was: a prefill skips the stats of every chunk of queries before the window.
  bool every_query = true;
};

// A Llama-family decoder (llama, mistral, qwen2) with explicit per-layer KV caches and
// explicit positions. Every forward pass goes through ForwardLayer, so full prefill,
// selective recompute and decode share one numerical path: this is what makes "100%
// recompute equals full prefill" hold exactly.
class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& dir,
                                                     const ModelOptions& options);
  static absl::StatusOr<std::unique_ptr<Model>> FromCheckpoint(Checkpoint checkpoint,
                                                               const ModelOptions& options);

  const ModelConfig& config() const { return config_; }
  const std::string& fingerprint() const { return fingerprint_; }
  // Null when the checkpoint directory has no tokenizer (random-weight benchmark models).
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }
  int64_t num_layers() const { return config_.num_hidden_layers; }
  int64_t decode_tile_rows() const { return decode_tile_rows_; }

  // Input embeddings of int64 ids [N]: [N, hidden] in the compute dtype.
  at::Tensor Embed(const at::Tensor& ids) const;

  // Runs one decoder layer for S tokens whose layer inputs are `hidden` [S, hidden] at prompt
  // `positions` (int64 [S]). Their fresh keys/values are written into `kv` at `write_index`
  // (int64 [S], slots that already exist) or appended when `write_index` is undefined; the
  // queries then attend causally (by position) over everything in `kv`. Returns the layer
  // outputs [S, hidden]. Same as WriteLayerKV followed by FinishLayer of every row.
  at::Tensor ForwardLayer(int64_t layer, const at::Tensor& hidden, const at::Tensor& positions,
                          LayerKV* kv, const at::Tensor& write_index,
                          const AttentionStatsRequest& stats_request = {}) const;

  // A layer split in two so a caller can skip the attention and MLP of tokens whose outputs
  // nobody reads (the recompute set only shrinks; a prefill's last layer needs only its last
  // token): WriteLayerKV writes the fresh keys/values of all S tokens, FinishLayer runs the
  // queries, attention and MLP of the chosen rows only.
  struct PendingLayer {
    int64_t layer = 0;
    at::Tensor hidden;     // [S, hidden] layer inputs
    at::Tensor normed;     // [S, hidden] after the input norm
    at::Tensor positions;  // int64 [S]
    Rope::Table rope;      // of `positions`, shared by the keys and the queries
  };
  PendingLayer WriteLayerKV(int64_t layer, const at::Tensor& hidden, const at::Tensor& positions,
                            LayerKV* kv, const at::Tensor& write_index) const;
  // `rows` (int64 indices into the S tokens, ascending; undefined = all) -> outputs [R, hidden].
  at::Tensor FinishLayer(const PendingLayer& pending, const at::Tensor& rows, const LayerKV& kv,
                         const AttentionStatsRequest& stats_request = {}) const;

  // Final norm and LM head: float32 logits [S, vocab].
  at::Tensor Logits(const at::Tensor& hidden) const;

  // An empty cache with room for `capacity` tokens per layer.
  KVCache NewCache(int64_t capacity) const;

  // Prefill of `ids` into `cache`: at positions 0..N-1 into an empty cache, or after the P
  // tokens (positions 0..P-1) every layer already holds, at P..P+N-1. Returns float32 logits
  // of the last token [vocab]. `stats` (may be null) receives per-layer attention stats: in
  // the last layer from the observation window's queries only, unless `stats_from_every_query`
  // (H2O's accumulated mass needs them all).
  at::Tensor Prefill(const std::vector<int32_t>& ids, KVCache* cache,
                     std::vector<LayerAttentionStats>* stats = nullptr,
                     int64_t observation_window = 32, bool stats_from_every_query = false) const;

  // One chunk of a prefill that runs in pieces: `ids` after the tokens every layer of `cache`
  // already holds. Stats accumulate across chunks (sized on the first); the observation window
  // is the queries at positions >= window_start_position, wherever the chunks cut it.
  struct PrefillChunkRequest {
    std::vector<LayerAttentionStats>* stats = nullptr;  // may be null
    int64_t window_start_position = 0;
    bool stats_from_every_query = false;
    bool last_chunk = false;  // the prompt's last token is in it: its logits are returned
  };
  // Returns float32 logits [vocab] of the chunk's last token when last_chunk, else undefined.
  // Prefill is one chunk of the whole prompt (with fresh stats).
  at::Tensor PrefillChunk(const std::vector<int32_t>& ids, KVCache* cache,
                          const PrefillChunkRequest& request) const;

  // One decode step: the token at `position` through every layer (appended to each layer's
  // cache, whatever its length). Returns float32 logits [vocab]. DecodeBatch of one row.
  at::Tensor DecodeStep(int32_t token, int64_t position, KVCache* cache,
                        std::vector<LayerAttentionStats>* stats = nullptr) const;

  // One sequence's part of a batched decode step.
  struct DecodeRow {
    int32_t token = 0;
    int64_t position = 0;
    KVCache* cache = nullptr;
    std::vector<LayerAttentionStats>* stats = nullptr;  // may be null
  };
  // A batched decode step runs its norms, linear layers (QKV, output projection, MLP) and LM
  // head over tiles of exactly ModelOptions::decode_tile_rows rows, the last tile padded. BLAS
  // picks its kernels by the matrix shape, so a row's bits depend on how many rows share the
  // call (OpenBLAS: 1 to 3 rows give other bits than 8 or 16), but not on the row's place or the
  // other rows' contents: with one fixed shape a sequence's logits are the same bits in any
  // batch and alone.
  // Every row's token through every layer together: the linear layers run once per tile for
  // all its rows, attention per sequence over its own cache (layers of different lengths after
  // retention). Each row's key/value is appended to its cache. Returns float32 logits
  // [rows, vocab], the same bits for a row whatever the other rows are.
  at::Tensor DecodeBatch(const std::vector<DecodeRow>& rows) const;

  at::Tensor IdsTensor(const std::vector<int32_t>& ids) const;  // int64 [N] on the device

  // Token ids of `text` with the tokenizer's BOS in front when `add_bos` (and the vocabulary
  // has one). FailedPrecondition when the checkpoint has no tokenizer.
  absl::StatusOr<std::vector<int32_t>> Tokenize(const std::string& text, bool add_bos) const;

  const Rope& rope() const { return rope_; }

 private:
  struct LayerWeights {
    at::Tensor input_norm, post_attention_norm;
    at::Tensor q_weight, q_bias;    // [q_dim, hidden]; bias may be undefined
    at::Tensor kv_weight, kv_bias;  // fused [2 * kv_dim, hidden]
    at::Tensor o_weight;
    at::Tensor gate_up_weight;  // fused [2 * intermediate, hidden]
    at::Tensor down_weight;
  };

  Model(ModelConfig config, std::string fingerprint, at::Device device, at::ScalarType dtype,
        int64_t decode_tile_rows);

  at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight) const;
  // `window` > 0: a query sees only keys at positions > its own - window (sliding window).
  at::Tensor Attend(const at::Tensor& q, const LayerKV& kv, const at::Tensor& q_positions,
                    const AttentionStatsRequest& stats_request, int64_t window) const;
  // The sliding window of `layer` (0: none).
  int64_t AttentionWindow(int64_t layer) const;

  ModelConfig config_;
  std::string fingerprint_;
  at::Device device_;
  at::ScalarType dtype_;
  int64_t decode_tile_rows_;
  Rope rope_;
  std::unique_ptr<Tokenizer> tokenizer_;
  at::Tensor embed_tokens_;
  at::Tensor final_norm_;
  at::Tensor lm_head_;
  std::vector<LayerWeights> layers_;
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_MODEL_H_

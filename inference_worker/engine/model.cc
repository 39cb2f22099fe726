#include "inference_worker/engine/model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace semshare {
namespace {

// Attention score blocks are bounded to this many bytes; long prompts run in query chunks.
// On the CPU a block that stays in cache is fastest. On a GPU every chunk costs a dozen kernel
// launches, and small chunks leave the device idle between them (24 MiB blocks made a 5,120-token
// prefill of the llama-3.2-1b shape 1.1 s on an H100), so blocks there are as large as memory
// comfortably allows.
constexpr int64_t kCpuAttentionBlockBytes = int64_t{24} << 20;
constexpr int64_t kCudaAttentionBlockBytes = int64_t{1} << 30;

absl::StatusOr<at::Device> ResolveDevice(const std::string& name) {
  try {
    at::Device device(name);
    if (device.is_cuda() && !at::hasCUDA()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device '", name, "' requested but this libtorch has no usable CUDA"));
    }
    if (!device.is_cpu() && !device.is_cuda()) {
      return absl::InvalidArgumentError(absl::StrCat("device '", name, "' is not cpu or cuda"));
    }
    return device;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", name, "': ", e.what_without_backtrace()));
  }
}

}  // namespace

absl::StatusOr<at::ScalarType> ResolveDtype(const std::string& name, const at::Device& device) {
  if (name == "auto") return device.is_cuda() ? at::kBFloat16 : at::kFloat;
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype '", name, "' is not one of auto, float32, bfloat16, float16"));
}

Model::Model(ModelConfig config, std::string fingerprint, at::Device device, at::ScalarType dtype,
             int64_t decode_tile_rows)
    : config_(std::move(config)),
      fingerprint_(std::move(fingerprint)),
      device_(device),
      dtype_(dtype),
      decode_tile_rows_(decode_tile_rows),
      rope_(config_.head_dim, config_.rope_theta, config_.rope_scaling) {}

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir,
                                                   const ModelOptions& options) {
  SEMSHARE_ASSIGN_OR_RETURN(Checkpoint checkpoint, LoadCheckpoint(dir));
  SEMSHARE_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                            FromCheckpoint(std::move(checkpoint), options));
  SEMSHARE_ASSIGN_OR_RETURN(model->tokenizer_, LoadModelTokenizer(dir, model->config()));
  return model;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const std::string& dir,
                                                              const ModelConfig& config) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(dir);
  if (absl::IsNotFound(tokenizer.status())) return std::unique_ptr<Tokenizer>();
  if (!tokenizer.ok()) return tokenizer.status();
  if ((*tokenizer)->vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", dir, ": the tokenizer has ", (*tokenizer)->vocab_size(),
                     " tokens, more than config.json's vocab_size ", config.vocab_size));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Model>> Model::FromCheckpoint(Checkpoint checkpoint,
                                                             const ModelOptions& options) {
  SEMSHARE_ASSIGN_OR_RETURN(at::Device device, ResolveDevice(options.device));
  SEMSHARE_ASSIGN_OR_RETURN(at::ScalarType dtype, ResolveDtype(options.dtype, device));
  if (options.decode_tile_rows < 1 || options.decode_tile_rows > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode tile rows must be in [1, 1024], got ", options.decode_tile_rows));
  }
  std::unique_ptr<Model> model(new Model(checkpoint.config, checkpoint.fingerprint, device, dtype,
                                         options.decode_tile_rows));
  try {
    TensorMap& t = checkpoint.tensors;
    auto take = [&](const std::string& name) {
      at::Tensor tensor = t.at(name).to(device, dtype).contiguous();
      t.erase(name);  // release the CPU copy as we go
      return tensor;
    };
    const ModelConfig& c = model->config_;
    model->embed_tokens_ = take("model.embed_tokens.weight");
    model->final_norm_ = take("model.norm.weight");
    model->lm_head_ = c.tie_word_embeddings ? model->embed_tokens_ : take("lm_head.weight");
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string p = absl::StrCat("model.layers.", l, ".");
      LayerWeights w;
      w.input_norm = take(p + "input_layernorm.weight");
      w.post_attention_norm = take(p + "post_attention_layernorm.weight");
      w.q_weight = take(p + "self_attn.q_proj.weight");
      w.kv_weight =
          at::cat({take(p + "self_attn.k_proj.weight"), take(p + "self_attn.v_proj.weight")}, 0)
              .contiguous();
      if (c.attention_bias) {
        w.q_bias = take(p + "self_attn.q_proj.bias");
        w.kv_bias =
            at::cat({take(p + "self_attn.k_proj.bias"), take(p + "self_attn.v_proj.bias")}, 0);
      }
      w.o_weight = take(p + "self_attn.o_proj.weight");
      w.gate_up_weight =
          at::cat({take(p + "mlp.gate_proj.weight"), take(p + "mlp.up_proj.weight")}, 0)
              .contiguous();
      w.down_weight = take(p + "mlp.down_proj.weight");
      model->layers_.push_back(std::move(w));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("placing weights on ", options.device, ": ", e.what_without_backtrace()));
  } catch (const std::out_of_range& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", checkpoint.dir, " lacks a tensor the model needs"));
  }
  return model;
}

at::Tensor Model::IdsTensor(const std::vector<int32_t>& ids) const {
  return at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong).to(device_);
}

absl::StatusOr<std::vector<int32_t>> Model::Tokenize(const std::string& text, bool add_bos) const {
  if (tokenizer_ == nullptr) {
    return absl::FailedPreconditionError("the model directory has no tokenizer");
  }
  return TokenizePrompt(*tokenizer_, text, add_bos);
}

at::Tensor Model::Embed(const at::Tensor& ids) const {
  return embed_tokens_.index_select(0, ids.to(device_, at::kLong));
}

at::Tensor Model::RmsNorm(const at::Tensor& x, const at::Tensor& weight) const {
  // As HF: normalise in float32, cast back, then scale.
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor normed =
      x32 * at::rsqrt(x32.pow(2).mean({-1}, /*keepdim=*/true) + config_.rms_norm_eps);
  return weight * normed.to(dtype_);
}

at::Tensor Model::ForwardLayer(int64_t layer, const at::Tensor& hidden, const at::Tensor& positions,
                               LayerKV* kv, const at::Tensor& write_index,
                               const AttentionStatsRequest& stats_request) const {
  return FinishLayer(WriteLayerKV(layer, hidden, positions, kv, write_index), at::Tensor(), *kv,
                     stats_request);
}

Model::PendingLayer Model::WriteLayerKV(int64_t layer, const at::Tensor& hidden,
                                        const at::Tensor& positions, LayerKV* kv,
                                        const at::Tensor& write_index) const {
  const LayerWeights& w = layers_[static_cast<size_t>(layer)];
  const int64_t s = hidden.size(0);
  const int64_t kv_heads = config_.num_key_value_heads;
  const int64_t hd = config_.head_dim;
  PendingLayer pending{
      layer, hidden, RmsNorm(hidden, w.input_norm), positions.to(device_, at::kLong), {}};
  pending.rope = rope_.MakeTable(pending.positions);
  const std::vector<at::Tensor> kv_parts =
      at::linear(pending.normed, w.kv_weight, w.kv_bias).chunk(2, 1);
  // [S, h, hd] -> [h, S, hd]
  const at::Tensor k =
      rope_.Apply(kv_parts[0].view({s, kv_heads, hd}).transpose(0, 1), pending.rope);
  const at::Tensor v = kv_parts[1].view({s, kv_heads, hd}).transpose(0, 1);
  if (write_index.defined()) {
    kv->Overwrite(write_index, k, v, pending.positions);
  } else {
    kv->Append(k, v, pending.positions);
  }
  return pending;
}

at::Tensor Model::FinishLayer(const PendingLayer& pending, const at::Tensor& rows,
                              const LayerKV& kv, const AttentionStatsRequest& stats_request) const {
  const LayerWeights& w = layers_[static_cast<size_t>(pending.layer)];
  at::Tensor hidden = pending.hidden;
  at::Tensor normed = pending.normed;
  at::Tensor positions = pending.positions;
  Rope::Table rope = pending.rope;
  if (rows.defined()) {
    const at::Tensor r = rows.to(device_, at::kLong);
    hidden = hidden.index_select(0, r);
    normed = normed.index_select(0, r);
    positions = positions.index_select(0, r);
    rope = rope.Select(r);
  }
  const int64_t s = hidden.size(0);
  const int64_t heads = config_.num_attention_heads;
  const int64_t hd = config_.head_dim;
  const at::Tensor q = rope_.Apply(
      at::linear(normed, w.q_weight, w.q_bias).view({s, heads, hd}).transpose(0, 1), rope);
  const at::Tensor attended =
      Attend(q, kv, positions, stats_request, AttentionWindow(pending.layer));
  const at::Tensor h = hidden + at::linear(attended, w.o_weight);

  const at::Tensor gate_up = at::linear(RmsNorm(h, w.post_attention_norm), w.gate_up_weight);
  const std::vector<at::Tensor> gu = gate_up.chunk(2, 1);
  return h + at::linear(at::silu(gu[0]) * gu[1], w.down_weight);
}

int64_t Model::AttentionWindow(int64_t layer) const {
  return config_.sliding_window > 0 && layer >= config_.sliding_window_first_layer
             ? config_.sliding_window
             : 0;
}

at::Tensor Model::Attend(const at::Tensor& q, const LayerKV& kv, const at::Tensor& q_positions,
                         const AttentionStatsRequest& stats_request, int64_t window) const {
  const int64_t heads = q.size(0);
  const int64_t s = q.size(1);
  const int64_t hd = q.size(2);
  const int64_t kv_heads = config_.num_key_value_heads;
  const int64_t group = heads / kv_heads;
  const int64_t n = kv.size();
  const at::Tensor keys = kv.k();
  const at::Tensor values = kv.v();
  const at::Tensor key_positions = kv.positions();
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  LayerAttentionStats* stats = stats_request.stats;
  if (stats != nullptr) {
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device_);
    for (at::Tensor* t : stats->tensors()) {
      if (!t->defined() || t->size(0) != n) {
        at::Tensor grown = at::zeros({n}, f32);
        if (t->defined())
          grown.narrow(0, 0, std::min(n, t->size(0)))
              .copy_(t->narrow(0, 0, std::min(n, t->size(0))));
        *t = grown;
      }
    }
    stats->last_query_mass.zero_();
  }

  // In fp32 the scale goes on the queries, a pass over [S, hd] instead of over every score; in
  // bf16/fp16 it stays on the fp32 scores, where it costs no rounding.
  const bool scale_queries = q.scalar_type() == at::kFloat;
  // [h, S, hd] -> [kv_heads, group * S, hd]: head h reads kv head h / group, as HF repeat_kv.
  const at::Tensor grouped = (scale_queries ? q * scale : q).reshape({kv_heads, group, s, hd});
  at::Tensor out = at::empty({kv_heads, group, s, hd}, q.options());
  const int64_t block_bytes =
      device_.is_cuda() ? kCudaAttentionBlockBytes : kCpuAttentionBlockBytes;
  const int64_t chunk = std::max<int64_t>(
      16, block_bytes / std::max<int64_t>(1, heads * n * static_cast<int64_t>(sizeof(float))));
  // Query positions ascend and key positions ascend, so a chunk only needs keys up to its
  // largest position: this skips the upper triangle of a causal prefill.
  const at::Tensor q_positions_cpu = q_positions.to(at::kCPU).contiguous();
  const at::Tensor key_positions_cpu = key_positions.to(at::kCPU).contiguous();
  const int64_t* qpos = q_positions_cpu.data_ptr<int64_t>();
  const int64_t* kpos = key_positions_cpu.data_ptr<int64_t>();
  TORCH_CHECK(std::is_sorted(qpos, qpos + s), "attention queries must be in position order");
  const int64_t last_query_position = s > 0 ? qpos[s - 1] : 0;
  const int64_t first_stats_position =
      std::min(stats_request.window_start_position, last_query_position);
  for (int64_t start = 0, len = 0; start < s; start += len) {
    // A chunk computes every query against the keys up to its largest position and masks the
    // rest; when the queries are a sparse recompute set their positions spread, so end the
    // chunk early rather than waste most of its work on masked keys.
    // A GPU would rather compute masked scores than launch more, smaller chunks.
    const int64_t span_limit = device_.is_cuda() ? std::numeric_limits<int64_t>::max()
                                                 : std::max<int64_t>(256, qpos[start] / 4);
    len = 1;
    while (len < chunk && start + len < s && qpos[start + len] - qpos[start] <= span_limit) ++len;
    const int64_t chunk_min = qpos[start];
    const int64_t chunk_max = qpos[start + len - 1];
    // Keys at positions <= chunk_max (found on the host: no device round trip per chunk); the
    // first `lower` of them, at positions <= chunk_min, are visible to every query of the chunk.
    const int64_t upper = std::upper_bound(kpos, kpos + n, chunk_max) - kpos;
    const int64_t lower = std::upper_bound(kpos, kpos + upper, chunk_min) - kpos;
    const at::Tensor qc = grouped.narrow(2, start, len).reshape({kv_heads, group * len, hd});
    const at::Tensor kc = keys.narrow(1, 0, upper);
    const at::Tensor vc = values.narrow(1, 0, upper);
    at::Tensor scores = at::matmul(qc, kc.transpose(1, 2)).to(at::kFloat);
    if (!scale_queries) scores.mul_(scale);
    scores = scores.view({kv_heads, group, len, upper});
    // Merged tokens stand for several: their logits carry log(how many) (LayerKV::bias).
    if (kv.bias().defined()) {
      scores.add_(kv.bias().narrow(1, 0, upper).view({kv_heads, 1, 1, upper}));
    }
    const at::Tensor chunk_queries = q_positions.narrow(0, start, len).unsqueeze(1);
    // A query always sees its own key (position i > i - window), so no row is all masked.
    if (window > 0) {
      const at::Tensor chunk_keys = key_positions.narrow(0, 0, upper).unsqueeze(0);
      const at::Tensor masked =
          (chunk_keys > chunk_queries).logical_or(chunk_keys <= chunk_queries - window);
      scores.masked_fill_(masked, -std::numeric_limits<float>::infinity());
    } else if (upper > lower) {
      // Causal: only keys after the chunk's first query can be masked.
      const at::Tensor late_keys = key_positions.narrow(0, lower, upper - lower).unsqueeze(0);
      scores.narrow(3, lower, upper - lower)
          .masked_fill_(late_keys > chunk_queries, -std::numeric_limits<float>::infinity());
    }
    const at::Tensor probs = at::softmax(scores, -1);
    const at::Tensor attended =
        at::matmul(probs.to(values.scalar_type()).view({kv_heads, group * len, upper}), vc);
    out.narrow(2, start, len).copy_(attended.view({kv_heads, group, len, hd}));

    if (stats != nullptr && (stats_request.every_query || chunk_max >= first_stats_position)) {
      // Without every_query only the chunk's queries from first_stats_position on count (the
      // window and the last query); positions ascend, so they are its last rows. Reducing only
      // those saves most of the stats' cost: a chunk holds ~136 queries, a window 32.
      const int64_t first_row =
          stats_request.every_query
              ? 0
              : std::lower_bound(qpos + start, qpos + start + len, first_stats_position) -
                    (qpos + start);
      const int64_t rows = len - first_row;
      const at::Tensor per_query =
          probs.narrow(2, first_row, rows).sum(at::IntArrayRef{0, 1});  // [rows, upper]
      if (stats_request.every_query)
        stats->accumulated_mass.narrow(0, 0, upper).add_(per_query.sum(0));
      const at::Tensor chunk_positions = q_positions.narrow(0, start + first_row, rows);
      const at::Tensor in_window =
          (chunk_positions >= stats_request.window_start_position).to(at::kFloat);
      stats->window_mass.narrow(0, 0, upper).add_(at::matmul(in_window, per_query));
      const at::Tensor is_last = (chunk_positions == last_query_position).to(at::kFloat);
      stats->last_query_mass.narrow(0, 0, upper).add_(at::matmul(is_last, per_query));
    }
  }
  // [kv_heads, group, S, hd] -> [S, heads * hd]
  return out.permute({2, 0, 1, 3}).reshape({s, heads * hd});
}

at::Tensor Model::Logits(const at::Tensor& hidden) const {
  return at::linear(RmsNorm(hidden, final_norm_), lm_head_).to(at::kFloat);
}

KVCache Model::NewCache(int64_t capacity) const {
  KVCache cache;
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    cache.layers.push_back(
        LayerKV::Empty(config_.num_key_value_heads, config_.head_dim, capacity, dtype_, device_));
  }
  return cache;
}

at::Tensor Model::Prefill(const std::vector<int32_t>& ids, KVCache* cache,
                          std::vector<LayerAttentionStats>* stats, int64_t observation_window,
                          bool stats_from_every_query) const {
  const int64_t base = cache->layers.empty() ? 0 : cache->layers.front().size();
  if (stats != nullptr) stats->assign(static_cast<size_t>(num_layers()), LayerAttentionStats{});
  PrefillChunkRequest request;
  request.stats = stats;
  request.window_start_position = base + static_cast<int64_t>(ids.size()) - observation_window;
  request.stats_from_every_query = stats_from_every_query;
  request.last_chunk = true;
  return PrefillChunk(ids, cache, request);
}

at::Tensor Model::PrefillChunk(const std::vector<int32_t>& ids, KVCache* cache,
                               const PrefillChunkRequest& chunk) const {
  const int64_t n = static_cast<int64_t>(ids.size());
  // The new tokens follow the ones already cached (a reused prefix, earlier chunks), at
  // positions base.. .
  const int64_t base = cache->layers.empty() ? 0 : cache->layers.front().size();
  const at::Tensor positions =
      at::arange(base, base + n, at::TensorOptions().dtype(at::kLong).device(device_));
  // Every layer writes the new tokens to the same cache rows, right after the cached ones.
  const at::Tensor write_rows = at::arange(base, base + n, positions.options());
  std::vector<LayerAttentionStats>* stats = chunk.stats;
  if (stats != nullptr && static_cast<int64_t>(stats->size()) != num_layers())
    stats->assign(static_cast<size_t>(num_layers()), LayerAttentionStats{});
  // After the last layer only the last token's output is read (its logits, in the last chunk)
  // and the observation window's attention, when stats are wanted: skip the other rows'
  // queries and MLP (and, in a chunk with neither, the whole of the last layer's attention).
  at::Tensor last_rows;
  bool last_layer_needed = true;
  if (!(stats != nullptr && chunk.stats_from_every_query)) {
    int64_t first = chunk.last_chunk ? n - 1 : n;
    if (stats != nullptr) {
      first = std::min(first, std::clamp<int64_t>(chunk.window_start_position - base, 0, n));
    }
    last_layer_needed = first < n;
    if (first > 0) last_rows = at::arange(first, n, positions.options());
  }
  at::Tensor hidden = Embed(IdsTensor(ids));
  for (int64_t l = 0; l < num_layers(); ++l) {
    LayerKV& layer = cache->layers[static_cast<size_t>(l)];
    TORCH_CHECK(layer.size() == base, "prefill: layer ", l, " holds ", layer.size(),
                " tokens, layer 0 ", base);
    AttentionStatsRequest request;
    if (stats != nullptr) {
      request.stats = &(*stats)[static_cast<size_t>(l)];
      request.window_start_position = chunk.window_start_position;
      request.every_query = chunk.stats_from_every_query;
    }
    layer.Resize(base + n);
    const PendingLayer pending = WriteLayerKV(l, hidden, positions, &layer, write_rows);
    const bool last = l + 1 == num_layers();
    if (last && !last_layer_needed) return at::Tensor();
    hidden = FinishLayer(pending, last ? last_rows : at::Tensor(), layer, request);
  }
  if (!chunk.last_chunk) return at::Tensor();
  return Logits(hidden.narrow(0, hidden.size(0) - 1, 1)).squeeze(0);
}

at::Tensor Model::DecodeStep(int32_t token, int64_t position, KVCache* cache,
                             std::vector<LayerAttentionStats>* stats) const {
  return DecodeBatch({DecodeRow{token, position, cache, stats}}).squeeze(0);
}

at::Tensor Model::DecodeBatch(const std::vector<DecodeRow>& rows) const {
  const int64_t batch = static_cast<int64_t>(rows.size());
  const int64_t heads = config_.num_attention_heads;
  const int64_t kv_heads = config_.num_key_value_heads;
  const int64_t hd = config_.head_dim;
  const int64_t tile = decode_tile_rows_;
  const auto long_options = at::TensorOptions().dtype(at::kLong);
  at::Tensor logits =
      at::empty({batch, config_.vocab_size}, at::TensorOptions().dtype(at::kFloat).device(device_));
  for (int64_t first = 0; first < batch; first += tile) {
    const int64_t m = std::min(tile, batch - first);
    // Padding rows: token 0 at position 0; computed with the others, read by nobody.
    std::vector<int64_t> ids(static_cast<size_t>(tile), 0);
    std::vector<int64_t> position_values(static_cast<size_t>(tile), 0);
    for (int64_t r = 0; r < m; ++r) {
      ids[r] = rows[first + r].token;
      position_values[r] = rows[first + r].position;
    }
    const at::Tensor positions = at::tensor(position_values, long_options).to(device_);
    const Rope::Table rope = rope_.MakeTable(positions);
    at::Tensor hidden = Embed(at::tensor(ids, long_options));
    for (int64_t l = 0; l < num_layers(); ++l) {
      const LayerWeights& w = layers_[static_cast<size_t>(l)];
      const at::Tensor normed = RmsNorm(hidden, w.input_norm);
      const std::vector<at::Tensor> kv_parts =
          at::linear(normed, w.kv_weight, w.kv_bias).chunk(2, 1);
      const at::Tensor k =
          rope_.Apply(kv_parts[0].view({tile, kv_heads, hd}).transpose(0, 1), rope);
      const at::Tensor v = kv_parts[1].view({tile, kv_heads, hd}).transpose(0, 1);
      const at::Tensor q = rope_.Apply(
          at::linear(normed, w.q_weight, w.q_bias).view({tile, heads, hd}).transpose(0, 1), rope);
      at::Tensor attended = at::zeros({tile, heads * hd}, q.options());
      for (int64_t r = 0; r < m; ++r) {
        const DecodeRow& row = rows[first + r];
        LayerKV& cache = row.cache->layers[static_cast<size_t>(l)];
        const at::Tensor position = positions.narrow(0, r, 1);
        cache.Append(k.narrow(1, r, 1), v.narrow(1, r, 1), position);
        AttentionStatsRequest request;
        if (row.stats != nullptr && static_cast<int64_t>(row.stats->size()) == num_layers()) {
          request.stats = &(*row.stats)[static_cast<size_t>(l)];
          request.window_start_position = row.position;
        }
        attended.narrow(0, r, 1).copy_(
            Attend(q.narrow(1, r, 1), cache, position, request, AttentionWindow(l)));
      }
      const at::Tensor h = hidden + at::linear(attended, w.o_weight);
      const at::Tensor gate_up = at::linear(RmsNorm(h, w.post_attention_norm), w.gate_up_weight);
      const std::vector<at::Tensor> gu = gate_up.chunk(2, 1);
      hidden = h + at::linear(at::silu(gu[0]) * gu[1], w.down_weight);
    }
    logits.narrow(0, first, m).copy_(Logits(hidden).narrow(0, 0, m));
  }
  return logits;
}

}  // namespace semshare

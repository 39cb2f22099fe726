#include "router/client/client_output.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace semshare::client {

Json GenerateStatsToJson(const GenerateStats& stats) {
  Json json = Json::MakeObject();
  json["cache_hit"] = stats.cache_hit;
  json["reference_id"] = stats.reference_id;
  json["similarity"] = stats.similarity;
  json["recompute_share"] = stats.recompute_share;
  json["kv_kept_share"] = stats.kv_kept_share;
  json["ttft_ms"] = stats.ttft_ms;
  json["latency_ms"] = stats.latency_ms;
  json["prompt_tokens"] = stats.prompt_tokens;
  json["completion_tokens"] = stats.completion_tokens;
  Json stages = Json::MakeObject();
  stages["tokenize_ms"] = stats.stages.tokenize_ms;
  stages["search_ms"] = stats.stages.search_ms;
  stages["fetch_ms"] = stats.stages.fetch_ms;
  stages["recompute_ms"] = stats.stages.recompute_ms;
  stages["decode_ms"] = stats.stages.decode_ms;
  json["stages"] = std::move(stages);
  json["worker"] = stats.worker;
  json["shard"] = stats.shard;
  json["worker_local_hit"] = stats.worker_local_hit;
  json["bypassed"] = stats.bypassed;
  json["bypass_reason"] = stats.bypass_reason;
  return json;
}

Json GenerateResultToJson(const GenerateResult& result) {
  Json json = Json::MakeObject();
  json["text"] = result.text;
  Json token_ids = Json::MakeArray();
  for (int32_t id : result.token_ids) token_ids.push_back(id);
  json["token_ids"] = std::move(token_ids);
  json["stats"] = GenerateStatsToJson(result.stats);
  return json;
}

Json RouterStatsToJson(const RouterStats& stats) {
  Json json = Json::MakeObject();
  json["requests"] = stats.requests;
  json["hits"] = stats.hits;
  json["misses"] = stats.misses;
  json["failures"] = stats.failures;
  Json shards = Json::MakeArray();
  for (const ShardStatus& shard : stats.shards) {
    Json entry = Json::MakeObject();
    entry["address"] = shard.address;
    entry["healthy"] = shard.healthy;
    entry["references"] = shard.references;
    entry["bytes"] = shard.bytes;
    shards.push_back(std::move(entry));
  }
  json["shards"] = std::move(shards);
  Json workers = Json::MakeArray();
  for (const WorkerLoad& worker : stats.workers) {
    Json entry = Json::MakeObject();
    entry["address"] = worker.address;
    entry["healthy"] = worker.healthy;
    entry["active_requests"] = worker.active_requests;
    entry["queued_requests"] = worker.queued_requests;
    workers.push_back(std::move(entry));
  }
  json["workers"] = std::move(workers);
  return json;
}

std::string FormatGenerateStats(const GenerateStats& stats) {
  std::string out;
  if (stats.cache_hit) {
    absl::StrAppendFormat(
        &out, "cache hit: reference %s (similarity %.3f, recomputed %.1f%%, kept %.1f%% of KV)%s\n",
        stats.reference_id, stats.similarity, 100 * stats.recompute_share,
        100 * stats.kv_kept_share, stats.worker_local_hit ? ", already on the worker" : "");
  } else if (stats.bypassed) {
    absl::StrAppendFormat(&out, "reuse bypassed (similarity %.3f): %s\n", stats.similarity,
                          stats.bypass_reason);
  } else {
    absl::StrAppendFormat(&out, "cache miss: stored as reference %s\n",
                          stats.reference_id.empty() ? "(none)" : stats.reference_id);
  }
  absl::StrAppendFormat(&out, "ttft %.1f ms, latency %.1f ms, %d prompt + %d completion tokens\n",
                        stats.ttft_ms, stats.latency_ms, stats.prompt_tokens,
                        stats.completion_tokens);
  absl::StrAppendFormat(
      &out,
      "stages: tokenize %.1f ms, search %.1f ms, fetch %.1f ms, recompute %.1f ms, "
      "decode %.1f ms\n",
      stats.stages.tokenize_ms, stats.stages.search_ms, stats.stages.fetch_ms,
      stats.stages.recompute_ms, stats.stages.decode_ms);
  if (!stats.worker.empty() || !stats.shard.empty()) {
    absl::StrAppendFormat(&out, "worker %s, shard %s\n", stats.worker.empty() ? "-" : stats.worker,
                          stats.shard.empty() ? "-" : stats.shard);
  }
  return out;
}

std::string FormatRouterStats(const RouterStats& stats) {
  std::string out;
  absl::StrAppendFormat(&out, "requests %d: %d hits, %d misses, %d failures\n", stats.requests,
                        stats.hits, stats.misses, stats.failures);
  for (const ShardStatus& shard : stats.shards) {
    absl::StrAppendFormat(&out, "shard  %-21s %-9s %d references, %d bytes\n", shard.address,
                          shard.healthy ? "healthy" : "DOWN", shard.references, shard.bytes);
  }
  for (const WorkerLoad& worker : stats.workers) {
    absl::StrAppendFormat(&out, "worker %-21s %-9s %d active, %d queued\n", worker.address,
                          worker.healthy ? "healthy" : "DOWN", worker.active_requests,
                          worker.queued_requests);
  }
  return out;
}

}  // namespace semshare::client

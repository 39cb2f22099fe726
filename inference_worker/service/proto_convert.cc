#include "inference_worker/service/proto_convert.h"

#include <utility>

namespace semshare::worker {

WorkerRequest FromProto(const v1::WorkerGenerateRequest& request, std::string tenant) {
  WorkerRequest out;
  out.tenant = std::move(tenant);
  out.model_fingerprint = request.model_fingerprint();
  out.prompt.assign(request.prompt_token_ids().begin(), request.prompt_token_ids().end());
  if (request.has_sampling()) {
    out.sampling.max_tokens = request.sampling().max_tokens();
    out.sampling.temperature = request.sampling().temperature();
    out.sampling.top_p = request.sampling().top_p() > 0 ? request.sampling().top_p() : 1.0;
    out.sampling.seed = request.sampling().seed();
    out.sampling.stop_strings.assign(request.sampling().stop().begin(),
                                     request.sampling().stop().end());
    out.sampling.stop_token_ids.assign(request.sampling().stop_token_ids().begin(),
                                       request.sampling().stop_token_ids().end());
  }
  if (request.has_reuse()) {
    const v1::ReuseSource& reuse = request.reuse();
    ReuseSource source;
    source.shard = reuse.shard();
    source.reference_id = reuse.reference_id();
    const v1::TokenMapping& m = reuse.mapping();
    source.mapping.similarity = m.similarity();
    source.mapping.source.assign(m.source().begin(), m.source().end());
    source.mapping.distance.assign(m.distance().begin(), m.distance().end());
    source.mapping.unmatched.assign(source.mapping.source.size(), 0);
    for (int32_t i : m.unmatched()) {
      if (i >= 0 && i < static_cast<int32_t>(source.mapping.unmatched.size()))
        source.mapping.unmatched[i] = 1;
    }
    source.mapping.num_unmatched = m.unmatched_size();
    out.reuse = std::move(source);
  }
  if (request.has_store()) {
    out.store = StorePlacement{request.store().shard(), request.store().reference_id(),
                               request.store().tenant_byte_budget()};
  }
  out.similarity_threshold = request.similarity_threshold();
  return out;
}

v1::GenerateStats StatsToProto(const WorkerReply& reply, const std::string& worker_address) {
  v1::GenerateStats stats;
  stats.set_cache_hit(reply.cache_hit);
  stats.set_reference_id(reply.reference_id);
  stats.set_similarity(reply.similarity);
  stats.set_recompute_share(reply.recompute_share);
  stats.set_kv_kept_share(reply.kv_kept_share);
  stats.set_ttft_ms(reply.ttft_ms);
  stats.set_latency_ms(reply.latency_ms);
  stats.set_prompt_tokens(reply.prompt_tokens);
  stats.set_completion_tokens(static_cast<int64_t>(reply.tokens.size()));
  stats.mutable_stages()->set_queue_ms(reply.queue_ms);
  stats.mutable_stages()->set_fetch_ms(reply.fetch_ms);
  stats.mutable_stages()->set_recompute_ms(reply.recompute_ms);
  stats.mutable_stages()->set_decode_ms(reply.decode_ms);
  stats.set_worker(worker_address);
  stats.set_shard(reply.shard);
  stats.set_worker_local_hit(reply.local_hit);
  stats.set_bypassed(reply.bypassed);
  stats.set_bypass_reason(reply.bypass_reason);
  stats.set_finish_reason(reply.finish_reason);
  stats.set_cached_tokens(reply.cached_tokens);
  return stats;
}

v1::WorkerStatus StatusToProto(const WorkerLoad& load) {
  v1::WorkerStatus status;
  status.set_model_fingerprint(load.model_fingerprint);
  status.set_active_requests(load.active_requests);
  status.set_queued_requests(load.queued_requests);
  status.set_max_concurrency(load.max_batch);
  status.set_batch_size(load.batch_size);
  status.set_kv_reserved_bytes(load.kv_reserved_bytes);
  status.set_kv_budget_bytes(load.kv_budget_bytes);
  for (const std::string& id : load.cached_reference_ids) status.add_cached_reference_ids(id);
  status.set_pending_stores(load.stores.pending);
  return status;
}

}  // namespace semshare::worker

#ifndef SEMSHARE_ROUTER_HTTP_ROUTER_BACKEND_H_
#define SEMSHARE_ROUTER_HTTP_ROUTER_BACKEND_H_

#include <functional>
#include <string>

#include "router/http/completion_backend.h"
#include "router/service/router.h"
#include "router/service/worker_pool.h"

namespace semshare::router::http {

// The in-process Router behind the HTTP front. Ready when some worker answers its status
// (a dead shard only costs misses, so shards do not decide readiness).
class RouterBackend final : public CompletionBackend {
 public:
  // Both must outlive the backend.
  RouterBackend(Router* router, WorkerPool* workers) : router_(router), workers_(workers) {}

  absl::StatusOr<v1::GenerateStats> Generate(
      const std::string& tenant, const v1::GenerateRequest& request,
      const std::function<bool(const v1::TokenChunk&)>& on_tokens) override {
    return router_->Generate(tenant, request, on_tokens);
  }
  absl::Status Ready() override { return workers_->ModelFingerprint().status(); }

 private:
  Router* const router_;
  WorkerPool* const workers_;
};

}  // namespace semshare::router::http

#endif  // SEMSHARE_ROUTER_HTTP_ROUTER_BACKEND_H_

#ifndef SEMSHARE_ROUTER_HTTP_COMPLETION_BACKEND_H_
#define SEMSHARE_ROUTER_HTTP_COMPLETION_BACKEND_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "semshare/v1/router.pb.h"

namespace semshare::router::http {

// What the HTTP front needs of the cluster: the router's request path (RouterBackend) in
// production, a fake in tests.
class CompletionBackend {
 public:
  virtual ~CompletionBackend() = default;

  // As Router::Generate: chunks go to `on_tokens` (false: the client went away, stop).
  virtual absl::StatusOr<v1::GenerateStats> Generate(
      const std::string& tenant, const v1::GenerateRequest& request,
      const std::function<bool(const v1::TokenChunk&)>& on_tokens) = 0;

  // Ok when a request could be served now; Unavailable (with why) otherwise.
  virtual absl::Status Ready() = 0;
};

}  // namespace semshare::router::http

#endif  // SEMSHARE_ROUTER_HTTP_COMPLETION_BACKEND_H_

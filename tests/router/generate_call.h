#ifndef SEMSHARE_TESTS_ROUTER_GENERATE_CALL_H_
#define SEMSHARE_TESTS_ROUTER_GENERATE_CALL_H_

#include <grpcpp/client_context.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "semshare/v1/router.grpc.pb.h"

namespace semshare::router {

// One Router.Generate call as a test sees it: the status, every streamed token, the stats.
struct GenerateCall {
  grpc::Status status;
  std::vector<int32_t> tokens;
  v1::GenerateStats stats;
  // The caller's own clock: from the call to the first token read, and to the end.
  double first_token_ms = -1;
  double latency_ms = -1;
};

// Calls Generate with `key` as the bearer token (no authorization when empty) and reads the
// whole stream.
inline GenerateCall CallGenerate(v1::Router::StubInterface* stub, const std::string& key,
                                 const std::string& prompt, int32_t max_tokens) {
  grpc::ClientContext context;
  if (!key.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", key));
  v1::GenerateRequest request;
  request.set_prompt(prompt);
  request.set_max_tokens(max_tokens);
  GenerateCall call;
  const auto start = std::chrono::steady_clock::now();
  const auto since = [&start] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
  };
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.has_tokens()) {
      if (call.first_token_ms < 0 && response.tokens().token_ids_size() > 0)
        call.first_token_ms = since();
      call.tokens.insert(call.tokens.end(), response.tokens().token_ids().begin(),
                         response.tokens().token_ids().end());
    }
    if (response.has_stats()) call.stats = response.stats();
  }
  call.status = reader->Finish();
  call.latency_ms = since();
  return call;
}

}  // namespace semshare::router

#endif  // SEMSHARE_TESTS_ROUTER_GENERATE_CALL_H_

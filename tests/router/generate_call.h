#ifndef SEMSHARE_TESTS_ROUTER_GENERATE_CALL_H_
#define SEMSHARE_TESTS_ROUTER_GENERATE_CALL_H_

#include <grpcpp/client_context.h>

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
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.has_tokens()) {
      call.tokens.insert(call.tokens.end(), response.tokens().token_ids().begin(),
                         response.tokens().token_ids().end());
    }
    if (response.has_stats()) call.stats = response.stats();
  }
  call.status = reader->Finish();
  return call;
}

}  // namespace semshare::router

#endif  // SEMSHARE_TESTS_ROUTER_GENERATE_CALL_H_
